"""Does a ViaRL selector find the needle? Tiny models on synthetic needle QA, held-out accuracy over the cycles.

python recipes/viarl_experiment.py [--seeds 0 1] [--output_dir runs/viarl-experiment] [--selector_steps 60]
(or: make viarl-experiment). Resumable: started again, it skips what is done.
See temporal_rl/experiments/viarl_experiment.py.
"""

from trl import TrlParser

from temporal_rl.experiments.viarl_experiment import ViaRLExperimentConfig, run_experiment

if __name__ == "__main__":
    (experiment_config,) = TrlParser((ViaRLExperimentConfig,)).parse_args_and_config()
    run_experiment(experiment_config)
