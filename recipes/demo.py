"""The main job: tiny Qwen2.5-VL, synthetic grounding, SFT warm start, GRPO, held-out evaluation and report.

python recipes/demo.py [--seed 1] [--output_dir runs/demo-seed1] [--grpo_steps 100]   (or: make demo)
"""

from trl import TrlParser

from temporal_rl.experiments.demo import DemoConfig, run_demo

if __name__ == "__main__":
    (demo_config,) = TrlParser((DemoConfig,)).parse_args_and_config()
    run_demo(demo_config)
