"""Trainer subclasses of TRL's, overriding only the methods each docstring names."""

from temporal_rl.trainers.grpo_trainer import TemporalGRPOTrainer, add_video_prompts
from temporal_rl.trainers.selector_trainer import AnswerModelReward, ViaRLSelectorTrainer, load_answer_model

__all__ = [
    "AnswerModelReward",
    "TemporalGRPOTrainer",
    "ViaRLSelectorTrainer",
    "add_video_prompts",
    "load_answer_model",
]
