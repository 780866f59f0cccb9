"""Temporal-RLT's GRPO: TRL's GRPOTrainer made correct for video prompts, and its config.

- `config.py`: `TemporalGRPOConfig` (GRPOConfig + the video fields + the reward names).
- `trainer.py`: `TemporalGRPOTrainer` (the TRL override points only) and `train_grpo` (`recipes/grpo.py`).
- `video_rows.py`: per-row video inputs through TRL's shuffle and split; `encode_video_prompts` with a frame source.
- `vision_sharing.py`: the vision tower once per distinct video per step.
- `baselines.py`: stock TRL and plain-TRL-with-the-fix trainers, the reference points of tests and benchmarks.

May import the foundation (`temporal_rl.video`, `rewards`, `prompts`, `models`, `training`, ...); never `viarl`,
`filtering`, `eval` or `experiments`. ViaRL's selector trainer extends `TemporalGRPOTrainer`.
"""
