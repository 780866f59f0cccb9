"""The training jobs, as functions the recipes (and the demo) call: SFT warm start, video GRPO, ViaRL selector.

Each loads the canonical data, the model and processor, builds the trainer, trains (resuming from
`resume_from_checkpoint` when given), and saves the model or adapter with the processor in `output_dir`.
"""

from __future__ import annotations

import time

import datasets
from transformers import TrainerCallback
from trl import SFTTrainer

from temporal_rl.configs import DataArguments, TemporalGRPOConfig, TemporalSFTConfig, ViaRLSelectorConfig
from temporal_rl.data import load_dataset
from temporal_rl.modeling import TemporalModelConfig, load_model, load_processor, lora_config
from temporal_rl.trainers import TemporalGRPOTrainer, ViaRLSelectorTrainer
from temporal_rl.trainers.sft import VideoSFTCollator


def load_splits(data_args: DataArguments) -> tuple[datasets.Dataset, datasets.Dataset | None]:
    """The train (and eval) canonical datasets, cut to `max_*_samples`."""

    def cut(dataset: datasets.Dataset, limit: int | None) -> datasets.Dataset:
        return dataset.select(range(min(limit, len(dataset)))) if limit else dataset

    train = cut(load_dataset(data_args.train_file), data_args.max_train_samples)
    evaluation = cut(load_dataset(data_args.eval_file), data_args.max_eval_samples) if data_args.eval_file else None
    return train, evaluation


def load_trainable_model(model_args: TemporalModelConfig, adapter: str | None = None) -> tuple:
    """The model to train and the LoRA config for its trainer: `(load_model(model_args), lora_config(model_args))`,
    or, to continue a LoRA adapter, `(PeftModel with adapter loaded trainable, None)`."""
    model = load_model(model_args)
    if adapter is None:
        return model, lora_config(model_args)
    from pathlib import Path

    from peft import PeftModel

    if not (Path(adapter) / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{adapter} holds no LoRA adapter (adapter_config.json) to continue")
    return PeftModel.from_pretrained(model, str(adapter), is_trainable=True), None


def train_sft(
    data_args: DataArguments,
    config: TemporalSFTConfig,
    model_args: TemporalModelConfig,
    callbacks: list[TrainerCallback] | None = None,
) -> SFTTrainer:
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
        callbacks=callbacks,
    )
    return _train_and_save(trainer, processor)


def train_grpo(
    data_args: DataArguments,
    config: TemporalGRPOConfig,
    model_args: TemporalModelConfig,
    callbacks: list[TrainerCallback] | None = None,
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
        callbacks=callbacks,
    )
    return _train_and_save(trainer, processor)


def train_selector(
    data_args: DataArguments,
    config: ViaRLSelectorConfig,
    model_args: TemporalModelConfig,
    adapter: str | None = None,
) -> ViaRLSelectorTrainer:
    """ViaRL stage 1: the frame selector by REINFORCE++, rewarded by the frozen answer model of the config.

    `adapter`: a LoRA adapter of the selector to continue (the previous ViaRL cycle's), loaded trainable onto
    `model_args.model_name_or_path`. Saves the selector's LoRA adapter (or model) and its processor to
    `config.output_dir`.
    """
    train, evaluation = load_splits(data_args)
    processor = load_processor(model_args)
    model, peft_config = load_trainable_model(model_args, adapter)
    trainer = ViaRLSelectorTrainer(
        model=model,
        args=config,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=processor,
        peft_config=peft_config,
    )
    return _train_and_save(trainer, processor)


class WallClockBudget(TrainerCallback):
    """Stops training after the first optimizer step that ends `seconds` after training began, and adds the
    training seconds so far to every log entry (`train_seconds`), for curves against compute.

    The clock starts at `on_train_begin` (after model loading and data preparation), so two runs given the same
    budget get the same training time whatever their set-up costs.
    """

    def __init__(self, seconds: float, clock=time.perf_counter):
        self.seconds, self.clock, self.started = seconds, clock, None

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = self.clock()

    def on_step_end(self, args, state, control, **kwargs):
        if self.started is not None and self.clock() - self.started >= self.seconds:
            control.should_training_stop = True
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.started is not None and state.log_history:
            state.log_history[-1]["train_seconds"] = round(self.clock() - self.started, 2)


def _train_and_save(trainer, processor):
    """Train (resuming when the config says so), then save the state, the model or adapter and the processor.

    A config's `max_train_seconds` stops training after that much wall-clock time (`WallClockBudget`).
    """
    budget = getattr(trainer.args, "max_train_seconds", None)
    if budget is not None:
        trainer.add_callback(WallClockBudget(budget))
    trainer.train(resume_from_checkpoint=trainer.args.resume_from_checkpoint)
    trainer.save_state()
    trainer.save_model(trainer.args.output_dir)
    processor.save_pretrained(trainer.args.output_dir)
    return trainer
