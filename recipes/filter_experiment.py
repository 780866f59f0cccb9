"""Does the variance-aware filter help GRPO? Filtered vs random (same size) vs full training set, same steps.

python recipes/filter_experiment.py [--sft_model runs/demo/sft] [--seeds 0 1 2] [--grpo_steps 150] ...
    (or: make filter-experiment)

Writes results.json and results.md in --output_dir (default runs/filter-experiment); see
temporal_rl/experiments/filter_experiment.py.
"""

from trl import TrlParser

from temporal_rl.experiments.filter_experiment import FilterExperimentConfig, run_experiment

if __name__ == "__main__":
    (experiment_config,) = TrlParser((FilterExperimentConfig,)).parse_args_and_config()
    run_experiment(experiment_config, log=lambda line: print(line, flush=True))
    print(f"wrote {experiment_config.output_dir}/results.json and results.md")
