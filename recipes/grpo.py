"""GRPO on video with the dual reward (Temporal-RLT).

accelerate launch recipes/grpo.py --config recipes/tiny/grpo_grounding.yaml [--any_field value ...]
"""

from trl import TrlParser

from temporal_rl.configs import DataArguments
from temporal_rl.grpo.config import TemporalGRPOConfig
from temporal_rl.grpo.trainer import train_grpo
from temporal_rl.models.loading import TemporalModelConfig

if __name__ == "__main__":
    parser = TrlParser((DataArguments, TemporalGRPOConfig, TemporalModelConfig))
    data_args, grpo_config, model_args = parser.parse_args_and_config()
    train_grpo(data_args, grpo_config, model_args)
