"""Training jobs the recipes, the methods and the experiments share: the data splits, the model to train, the one
supervised fine-tuning engine, and train-then-save.

`train_sft` is the only SFT loop: the recipes' SFT warm start (`recipes/sft.py`) and ViaRL's answer stage and warm
starts (`temporal_rl.viarl`) all call it, with a frame source, a prompt and a target per row
(`temporal_rl.sft.VideoSFTCollator`). The methods' RL jobs build on the same pieces:
`temporal_rl.grpo.trainer.train_grpo` and `temporal_rl.viarl.selector_trainer.train_selector`.

Each job loads the canonical data, the model and processor, builds the trainer, trains, and saves the model or
adapter with the processor in `output_dir`. A job resumes from `resume_from_checkpoint` when given, and otherwise
from the newest complete checkpoint already in `output_dir` (`newest_complete_checkpoint`) when that folder holds
one of the same run (`run_settings`, guarded by `temporal_rl.resumable.check_settings`): a job killed at any moment,
SIGKILL included, and started again with the same command goes on from its last checkpoint.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import datasets
from transformers import TrainerCallback
from trl import SFTTrainer

from temporal_rl.configs import DataArguments, TemporalSFTConfig
from temporal_rl.data import load_dataset
from temporal_rl.families import family_of
from temporal_rl.models.loading import TemporalModelConfig, load_model, load_processor, lora_config
from temporal_rl.resumable import check_settings, lock_output_dir, stop_with_launcher, write_json_atomic
from temporal_rl.sft import FrameSource, VideoSFTCollator


def load_splits(data_args: DataArguments) -> tuple[datasets.Dataset, datasets.Dataset | None]:
    """The train (and eval) canonical datasets, cut to `max_*_samples`."""

    def cut(dataset: datasets.Dataset, limit: int | None) -> datasets.Dataset:
        return dataset.select(range(min(limit, len(dataset)))) if limit else dataset

    train = cut(load_dataset(data_args.train_file), data_args.max_train_samples)
    evaluation = cut(load_dataset(data_args.eval_file), data_args.max_eval_samples) if data_args.eval_file else None
    return train, evaluation


def load_trainable_model(model_args: TemporalModelConfig, adapter: str | os.PathLike | None = None) -> tuple:
    """The model to train and the LoRA config for its trainer: `(load_model(model_args), lora_config(model_args,
    its family))`, or, to continue a LoRA adapter, `(PeftModel with adapter loaded trainable, None)`."""
    if adapter is None:
        model = load_model(model_args)
        return model, lora_config(model_args, family_of(model))
    if not (Path(adapter) / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{adapter} holds no LoRA adapter (adapter_config.json) to continue")
    return load_model(model_args, adapter=adapter, adapter_trainable=True), None


def train_sft(
    data_args: DataArguments,
    config: TemporalSFTConfig,
    model_args: TemporalModelConfig,
    *,
    frames: FrameSource | None = None,
    messages: Callable[[Mapping[str, Any]], list[dict]] | None = None,
    completion: Callable[[Mapping[str, Any]], str] | None = None,
    adapter: str | os.PathLike | None = None,
    callbacks: list | None = None,
) -> SFTTrainer:
    """Supervised tuning on video rows, the loss on the target tokens only.

    By default: each row's own video at the config's frame budget, its task prompt, and its gold answer (the SFT warm
    start). Every part is pluggable.

    Args:
        data_args: the training (and eval) records.
        config: a `TemporalSFTConfig` (frame budget and cache of the default frame source; its prompt options word the
            default prompt and target).
        model_args: the model; LoRA when `use_peft`.
        frames: the frame source, `row -> SampledVideo` (default: `PathFrames` at the config's budget), e.g. the
            frames a selector picked (`temporal_rl.viarl.answer_stage.SelectedFrames`).
        messages, completion: the prompt and target per row (default: the config's `PromptOptions`).
        adapter: a LoRA adapter to continue (loaded trainable onto `model_args.model_name_or_path`).
        callbacks: extra `transformers.TrainerCallback`s.

    Returns:
        The trainer, after training and saving the model or adapter with the processor in `config.output_dir`
        (resuming from `config.resume_from_checkpoint` when set).
    """
    processor = load_processor(model_args)
    config.remove_unused_columns = False
    config.dataset_kwargs = {**(config.dataset_kwargs or {}), "skip_prepare_dataset": True}
    collator = VideoSFTCollator(
        processor,
        config.frame_sampling(),
        config.frame_cache(),
        config.prompt_options(),
        frames=frames,
        messages=messages,
        completion=completion,
    )
    return train_job(
        SFTTrainer, data_args, config, model_args, adapter=adapter, processor=processor, data_collator=collator,
        callbacks=callbacks,
    )  # fmt: skip


def train_job(
    trainer_cls: type,
    data_args: DataArguments,
    config,
    model_args: TemporalModelConfig,
    *,
    adapter: str | os.PathLike | None = None,
    processor=None,
    **trainer_kwargs,
):
    """One training job: the data splits, the processor, the model (its LoRA config, or `adapter` continued), a
    `trainer_cls` over them (plus `trainer_kwargs`), trained and saved (`train_and_save`). Every job of the project
    is this with its trainer: `train_sft`, `temporal_rl.grpo.trainer.train_grpo`,
    `temporal_rl.viarl.selector_trainer.train_selector`.
    """
    train, evaluation = load_splits(data_args)
    processor = processor if processor is not None else load_processor(model_args)
    model, peft_config = load_trainable_model(model_args, adapter)
    trainer = trainer_cls(
        model=model,
        args=config,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=processor,
        peft_config=peft_config,
        **trainer_kwargs,
    )
    return train_and_save(trainer, processor, settings=run_settings(data_args, config, model_args))


# ---------------------------------------------------------------------------------------------------------------
# Resuming a killed run

RUN_SETTINGS_FILE = "run_settings.json"
# Settings that do not change what a run trains: where it writes, how often it logs or saves, what it shows, how it
# resumes, how fast it loads. Any other change makes the checkpoints in an output folder another run's.
NOT_RESULT_SETTINGS = frozenset(
    {"output_dir", "logging_dir", "run_name", "resume_from_checkpoint", "overwrite_output_dir", "report_to",
     "logging_steps", "logging_strategy", "logging_first_step", "logging_nan_inf_filter", "log_level",
     "log_level_replica", "disable_tqdm", "save_steps", "save_strategy", "save_total_limit", "save_only_model",
     "save_safetensors", "save_on_each_node", "push_to_hub", "hub_model_id", "hub_strategy", "hub_private_repo",
     "frame_cache_dir", "dataloader_num_workers", "dataloader_prefetch_factor", "dataloader_persistent_workers",
     "max_train_seconds", "log_completions", "num_completions_to_print", "eval_steps", "eval_strategy"}
)  # fmt: skip
_CHECKPOINT_NAME = re.compile(r"checkpoint-(\d+)")


def run_settings(*settings_objects) -> dict[str, Any]:
    """The settings that define a run, from its argument dataclasses (data, trainer config, model): every field whose
    value is JSON (scalars, lists, dicts), less `NOT_RESULT_SETTINGS` and anything named like a token. Two runs with
    equal settings train the same weights from the same data."""
    from dataclasses import fields

    merged: dict[str, Any] = {}
    for settings in settings_objects:
        for item in fields(settings):
            name, value = item.name, getattr(settings, item.name)
            if name in NOT_RESULT_SETTINGS or name.endswith("token") or name.startswith("_"):
                continue
            value = getattr(value, "value", value)  # enums
            try:
                merged[name] = json.loads(json.dumps(value))
            except (TypeError, ValueError):
                continue
    return merged


def newest_complete_checkpoint(output_dir: str | os.PathLike) -> tuple[str | None, list[str]]:
    """The newest complete `checkpoint-<step>` folder in `output_dir`, and the newer ones skipped as torn.

    Complete: its `trainer_state.json` parses and records `global_step == step`. HF Trainer writes that file last,
    after the weights, the optimizer, the scheduler and the RNG state, so a checkpoint whose save a kill interrupted
    lacks it (or holds a torn one) and is skipped.

    Returns:
        (path or None, [names of the skipped folders, newest first]).
    """
    folder = Path(output_dir)
    if not folder.is_dir():
        return None, []
    steps = sorted(
        (int(match.group(1)), path)
        for path in folder.iterdir()
        if path.is_dir() and (match := _CHECKPOINT_NAME.fullmatch(path.name))
    )
    skipped = []
    for step, path in reversed(steps):
        try:
            state = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            state = None
        if isinstance(state, dict) and state.get("global_step") == step:
            return str(path), skipped
        skipped.append(path.name)
    return None, skipped


def checkpoint_to_resume(args, settings: dict[str, Any] | None, log: Callable[[str], None]) -> str | None:
    """The checkpoint a job resumes from: `args.resume_from_checkpoint` when given (as given), else the newest
    complete one in `args.output_dir` when its settings (`RUN_SETTINGS_FILE`) are this run's; then records this
    run's settings there (when `settings` is given).

    Raises:
        temporal_rl.resumable.SettingsChanged: the folder holds checkpoints of a run with other settings.
    """
    if args.resume_from_checkpoint is not None:
        return args.resume_from_checkpoint
    checkpoint, skipped = newest_complete_checkpoint(args.output_dir)
    if skipped:
        log(f"skipping {', '.join(skipped)} in {args.output_dir}: incomplete (a save interrupted by a kill)")
    if settings is not None and args.process_index == 0:
        check_settings(
            Path(args.output_dir) / RUN_SETTINGS_FILE, settings, sorted(settings),
            has_results=checkpoint is not None, results="checkpoints",
            fix="use another --output_dir, or pass --resume_from_checkpoint to continue one anyway",
            path=args.output_dir,
        )  # fmt: skip
        write_json_atomic(Path(args.output_dir) / RUN_SETTINGS_FILE, settings)
    if checkpoint is not None:
        log(f"resuming from {checkpoint} (the newest complete checkpoint in {args.output_dir})")
    return checkpoint


def load_full_weights(model, checkpoint: str | os.PathLike) -> bool:
    """Load a full (not LoRA) model checkpoint's weights into `model`, in place, through `from_pretrained`.

    HF Trainer's own resume (transformers 5.x) loads `model.safetensors` with `load_state_dict(strict=False)` under
    the names on disk, which for Qwen2.5-VL (`model.layers...` on disk, `model.language_model.layers...` in memory)
    match none: it loads no weight, warns at a level nobody sees, and trains on from the base weights with the
    checkpoint's optimizer. `from_pretrained` converts the names; every tensor is then copied strictly. Costs a
    second copy of the model while it loads. A LoRA model (an adapter checkpoint) is left to the Trainer, whose
    adapter loading is right.

    Returns:
        Whether weights were loaded (False: a PEFT model, or no full weights in `checkpoint`).
    """
    folder = Path(checkpoint)
    full = (folder / "model.safetensors").is_file() or (folder / "model.safetensors.index.json").is_file()
    if hasattr(model, "peft_config") or not full:
        return False
    reference = next(model.parameters())
    loaded = type(model).from_pretrained(folder, dtype=reference.dtype)
    model.load_state_dict(loaded.state_dict(), strict=True)
    return True


def reached_max_steps(checkpoint: str | os.PathLike, args) -> bool:
    """Whether `checkpoint` is at (or past) `args.max_steps` (> 0): the run it belongs to had trained to its end."""
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text(encoding="utf-8"))
    return 0 < args.max_steps <= state.get("global_step", 0)


def restore_finished(trainer, checkpoint: str | os.PathLike) -> None:
    """Make `trainer` hold the end of a run that had trained to `max_steps` and was killed before its final save:
    the checkpoint's weights (full, or the LoRA adapter as HF Trainer loads it) and its trainer state.

    HF Trainer (transformers 5.23) resumed from such a checkpoint trains one step more than `max_steps`, so the
    restart's model would not be the run's.
    """
    from transformers import TrainerState

    if not load_full_weights(trainer.model, checkpoint):
        trainer.model.load_adapter(str(checkpoint), trainer.model.active_adapter, is_trainable=True)
    trainer.state = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))


def _log(message: str) -> None:
    print(f"[temporal_rl] {message}", file=sys.stderr, flush=True)  # noqa: T201


class WallClockBudget(TrainerCallback):
    """Stops training after the first optimizer step that ends `seconds` after training began, and adds the
    training seconds so far to every log entry (`train_seconds`), for curves against compute.

    The clock starts at `on_train_begin` (after model loading and data preparation), so two runs given the same
    budget get the same training time whatever their set-up costs.
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.perf_counter):
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


def train_and_save(trainer, processor, settings: dict[str, Any] | None = None):
    """Train, then save the state, the model or adapter and the processor.

    Resumes from the config's `resume_from_checkpoint` when set, else from the newest complete checkpoint in
    `output_dir` of the same run (`checkpoint_to_resume`; `settings`: the run's `run_settings`, compared with those
    recorded there and then recorded; None: no comparison); a full model's weights are loaded by
    `load_full_weights` (the Trainer's own loading misses them); a checkpoint at `max_steps` is restored and saved
    without training (`restore_finished`).

    A config's `max_train_seconds` stops training after that much wall-clock time (`WallClockBudget`). Each process
    first takes its rank's lock on `output_dir` (`temporal_rl.resumable.lock_output_dir`: a second live run there
    fails at once) and asks to die with its launcher (`stop_with_launcher`).
    """
    stop_with_launcher()
    lock_output_dir(trainer.args.output_dir, trainer.args.process_index)
    budget = getattr(trainer.args, "max_train_seconds", None)
    if budget is not None:
        trainer.add_callback(WallClockBudget(budget))
    resume = checkpoint_to_resume(trainer.args, settings, _log)
    if resume is not None and reached_max_steps(resume, trainer.args):
        _log(f"{resume} is at max_steps={trainer.args.max_steps}: training is over, saving its model")
        restore_finished(trainer, resume)
    else:
        if resume is not None and load_full_weights(trainer.model, resume):
            _log(f"loaded the full model weights of {resume}")
        trainer.train(resume_from_checkpoint=resume)
    trainer.save_state()
    trainer.save_model(trainer.args.output_dir)
    processor.save_pretrained(trainer.args.output_dir)
    return trainer
