"""Trainer subclasses of TRL's, overriding only the methods each docstring names."""

from temporal_rl.trainers.grpo_trainer import TemporalGRPOTrainer, add_video_prompts

__all__ = ["TemporalGRPOTrainer", "add_video_prompts"]
