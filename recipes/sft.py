"""SFT warm start on the gold answers of canonical video data (cold start for GRPO).

accelerate launch recipes/sft.py --config recipes/tiny/sft_grounding.yaml [--any_field value ...]
"""

from trl import TrlParser

from temporal_rl.configs import DataArguments, TemporalSFTConfig
from temporal_rl.models.loading import TemporalModelConfig
from temporal_rl.training import train_sft

if __name__ == "__main__":
    parser = TrlParser((DataArguments, TemporalSFTConfig, TemporalModelConfig))
    data_args, sft_config, model_args = parser.parse_args_and_config()
    train_sft(data_args, sft_config, model_args)
