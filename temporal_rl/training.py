"""The two training jobs, as functions the recipes (and the demo) call: SFT warm start and video GRPO.

Each loads the canonical data, the model and processor, builds the trainer, trains (resuming from
`resume_from_checkpoint` when given), and saves the model or adapter with the processor in `output_dir`.
"""

from __future__ import annotations

import datasets
from trl import SFTTrainer

from temporal_rl.configs import DataArguments, TemporalGRPOConfig, TemporalSFTConfig
from temporal_rl.data import load_dataset
from temporal_rl.modeling import TemporalModelConfig, load_model, load_processor, lora_config
from temporal_rl.trainers import TemporalGRPOTrainer
from temporal_rl.trainers.sft import VideoSFTCollator


def load_splits(data_args: DataArguments) -> tuple[datasets.Dataset, datasets.Dataset | None]:
    """The train (and eval) canonical datasets, cut to `max_*_samples`."""

    def cut(dataset: datasets.Dataset, limit: int | None) -> datasets.Dataset:
        return dataset.select(range(min(limit, len(dataset)))) if limit else dataset

    train = cut(load_dataset(data_args.train_file), data_args.max_train_samples)
    evaluation = cut(load_dataset(data_args.eval_file), data_args.max_eval_samples) if data_args.eval_file else None
    return train, evaluation


def train_sft(data_args: DataArguments, config: TemporalSFTConfig, model_args: TemporalModelConfig) -> SFTTrainer:
    """Instruction-tune on the gold answers of the canonical data (the loss on the answer tokens only)."""
    train, evaluation = load_splits(data_args)
    processor = load_processor(model_args)
    config.remove_unused_columns = False
    config.dataset_kwargs = {**(config.dataset_kwargs or {}), "skip_prepare_dataset": True}
    collator = VideoSFTCollator(processor, config.frame_sampling(), config.frame_cache(), config.prompt_options())
    trainer = SFTTrainer(
        model=load_model(model_args),
        args=config,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=processor,
        data_collator=collator,
        peft_config=lora_config(model_args),
    )
    return _train_and_save(trainer, processor)


def train_grpo(
    data_args: DataArguments, config: TemporalGRPOConfig, model_args: TemporalModelConfig
) -> TemporalGRPOTrainer:
    """GRPO with the configured rewards on the canonical data, every forward with its video."""
    train, evaluation = load_splits(data_args)
    processor = load_processor(model_args)
    trainer = TemporalGRPOTrainer(
        model=load_model(model_args),
        args=config,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=processor,
        peft_config=lora_config(model_args),
    )
    return _train_and_save(trainer, processor)


def _train_and_save(trainer, processor):
    """Train (resuming when the config says so), then save the state, the model or adapter and the processor."""
    trainer.train(resume_from_checkpoint=trainer.args.resume_from_checkpoint)
    trainer.save_state()
    trainer.save_model(trainer.args.output_dir)
    processor.save_pretrained(trainer.args.output_dir)
    return trainer
