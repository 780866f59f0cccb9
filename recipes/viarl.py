"""ViaRL iterated amplification: cycles of {selector RL, selection sampling, answer SFT}, resumable.

accelerate launch recipes/viarl.py --config recipes/tiny/viarl_needle.yaml [--num_cycles 1] [--overwrite]

Killed at any point and started again with the same command, it resumes at the stage it was in and redoes nothing
that finished (state: <output_dir>/viarl_state.json); see temporal_rl/viarl/amplification.py.
"""

from trl import TrlParser

from temporal_rl.viarl.amplification import ViaRLConfig, run_viarl

if __name__ == "__main__":
    (viarl_config,) = TrlParser((ViaRLConfig,)).parse_args_and_config()
    run_viarl(viarl_config)
