"""The knobs every run shares, as dataclasses extending TRL's, parsed by `TrlParser` (YAML plus CLI overrides).

- `DataArguments`: where the canonical JSONL files are.
- `VideoArguments`: how frames are sampled and cached, and how prompts are worded (shared by GRPO, SFT, the filter
  and evaluation).
- `TemporalSFTConfig(VideoArguments, SFTConfig)`: supervised tuning on the same data and video pipeline.

`parse_recipe` / `parse_config` read a recipe YAML with overrides, for the jobs that run several recipes (ViaRL's
stages, the experiments). The methods' own configs extend these: `temporal_rl.grpo.config.TemporalGRPOConfig`,
`temporal_rl.viarl.config.ViaRLSelectorConfig`, `temporal_rl.filtering.config.FilterConfig`.

Invalid combinations fail in `__post_init__` with a message that says how to fix them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from trl import SFTConfig

from temporal_rl.prompts import SPAN_FORMATS, VIDEO_POSITIONS, PromptOptions
from temporal_rl.video.cache import FrameCache
from temporal_rl.video.sampling import FrameSampling


@dataclass
class DataArguments:
    """The canonical JSONL files of a run (see `temporal_rl.data`)."""

    train_file: str | None = field(default=None, metadata={"help": "Canonical JSONL file to train on."})
    eval_file: str | None = field(default=None, metadata={"help": "Canonical JSONL file to evaluate on."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training samples."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N eval samples."})

    def __post_init__(self):
        if self.train_file is None:
            raise ValueError("DataArguments: train_file is required (a canonical JSONL file; see temporal_rl.data)")
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"DataArguments: {name} must be a positive count or null, got {value}")


@dataclass
class VideoArguments:
    """Frame sampling (Qwen's frame budget), the frame cache and the prompt wording.

    > Parameters that control video sampling

    video_fps: frames sampled per second of video (ignored when `video_num_frames` is set).
    video_num_frames: a fixed, even number of frames sampled uniformly instead.
    video_min_frames, video_max_frames: bounds on the fps-derived count.
    video_min_pixels, video_max_pixels: pixels of one frame (qwen-vl-utils' defaults; small synthetic frames need
        a small `video_min_pixels`, or they are upscaled).
    video_total_pixels: pixel budget of a whole video.
    frame_cache_dir: where decoded frames are cached (default `$TEMPORAL_RL_CACHE` or ~/.cache/temporal_rl/frames).

    > Parameters that control the prompt

    think: ask for a `<think>` section before the answer.
    span_format: "json" (Temporal-R1's `{"start_time": ..., "end_time": ...}`) or "plain" ("5.5 - 9.0").
    video_position: "first" (video, then text) or "last" (text, then video: a fixed distance from the video to the
        answer, which small models need to read times off the rotary positions).
    """

    video_fps: float = field(default=2.0, metadata={"help": "Frames sampled per second of video."})
    video_num_frames: int | None = field(
        default=None, metadata={"help": "Fixed even frame count sampled uniformly (overrides video_fps)."}
    )
    video_min_frames: int = field(default=4, metadata={"help": "Lower bound of the fps-derived frame count."})
    video_max_frames: int = field(default=768, metadata={"help": "Upper bound of the fps-derived frame count."})
    video_min_pixels: int = field(default=128 * 28 * 28, metadata={"help": "Minimum pixels of one frame."})
    video_max_pixels: int = field(default=768 * 28 * 28, metadata={"help": "Maximum pixels of one frame."})
    video_total_pixels: int = field(
        default=int(128000 * 28 * 28 * 0.9), metadata={"help": "Pixel budget of a whole video."}
    )
    frame_cache_dir: str | None = field(
        default=None, metadata={"help": "Frame cache directory (default $TEMPORAL_RL_CACHE or ~/.cache/...)."}
    )
    think: bool = field(default=False, metadata={"help": "Ask for a <think> section before the answer."})
    span_format: str = field(default="json", metadata={"help": "Span answer format: 'json' or 'plain'."})
    video_position: str = field(
        default="first", metadata={"help": "Where the video goes in the user message: 'first' or 'last'."}
    )

    def validate_video(self) -> None:
        if self.span_format not in SPAN_FORMATS:
            raise ValueError(f"span_format must be one of {', '.join(SPAN_FORMATS)}, got {self.span_format!r}")
        if self.video_position not in VIDEO_POSITIONS:
            raise ValueError(
                f"video_position must be one of {', '.join(VIDEO_POSITIONS)}, got {self.video_position!r}"
            )
        try:
            self.frame_sampling()
        except ValueError as err:
            raise ValueError(f"invalid video sampling ({err}); check the video_* fields") from None

    def frame_sampling(self) -> FrameSampling:
        return FrameSampling(
            fps=self.video_fps,
            num_frames=self.video_num_frames,
            min_frames=self.video_min_frames,
            max_frames=self.video_max_frames,
            min_pixels=self.video_min_pixels,
            max_pixels=self.video_max_pixels,
            total_pixels=self.video_total_pixels,
        )

    def frame_cache(self) -> FrameCache:
        return FrameCache(self.frame_cache_dir)

    def prompt_options(self) -> PromptOptions:
        return PromptOptions(think=self.think, span_format=self.span_format, video_position=self.video_position)


@dataclass
class TrainingBudgetArguments:
    """A wall-clock limit on training, for comparisons at equal compute (the demo's GRPO vs continued SFT).

    max_train_seconds: stop after the first optimizer step that ends this many seconds after training started
        (None: no limit; `max_steps` still applies and still sets the learning-rate schedule's length).
    """

    max_train_seconds: float | None = field(
        default=None, metadata={"help": "Stop training after this many wall-clock seconds (None: no limit)."}
    )

    def validate_budget(self) -> None:
        if self.max_train_seconds is not None and not self.max_train_seconds > 0:
            raise ValueError(f"max_train_seconds must be positive or null, got {self.max_train_seconds}")


@dataclass
class TemporalSFTConfig(TrainingBudgetArguments, VideoArguments, SFTConfig):
    """`SFTConfig` for the warm start: instruction tuning on the gold answers, same data and video pipeline."""

    def __post_init__(self):
        super().__post_init__()
        self.validate_video()
        self.validate_budget()


def parse_config(path: str | os.PathLike, dataclass_types: Sequence[type], overrides: Mapping[str, Any] | None = None):
    """The dataclasses of a YAML recipe, parsed as `accelerate launch recipes/*.py --config PATH --key value ...`
    parses it (`TrlParser`: YAML values, then the overrides; unknown keys fail).

    Args:
        path: the YAML file.
        dataclass_types: the dataclasses to fill, e.g. `(FilterConfig,)`.
        overrides: `--key value` pairs; None values are skipped (the recipe's value stays).

    Returns:
        One instance per dataclass type, in order.
    """
    from trl import TrlParser

    return TrlParser(tuple(dataclass_types)).parse_args_and_config(args=recipe_arguments(path, overrides))


def recipe_arguments(path: str | os.PathLike, overrides: Mapping[str, Any] | None = None) -> list[str]:
    """`["--config", path, "--key", "value", ...]`: a recipe with overrides as the recipes' command line takes it
    (None values skipped; dicts as JSON, e.g. `lr_scheduler_kwargs`).

    Example:
        ```python
        >>> recipe_arguments("r.yaml", {"seed": 1, "max_steps": None, "lr_scheduler_kwargs": {"min_lr_rate": 0.1}})
        ['--config', 'r.yaml', '--seed', '1', '--lr_scheduler_kwargs', '{"min_lr_rate": 0.1}']
        ```
    """
    args = ["--config", str(path)]
    for key, value in (overrides or {}).items():
        if value is not None:
            args += [f"--{key}", json.dumps(value) if isinstance(value, dict) else str(value)]
    return args


def parse_recipe(path: str | os.PathLike, config_cls: type, overrides: Mapping[str, Any] | None = None) -> tuple:
    """A training recipe as `(DataArguments, config_cls instance, TemporalModelConfig)`, with overrides (see
    `parse_config`): what `recipes/grpo.py` and `recipes/sft.py` read, for the jobs that run several recipes."""
    from temporal_rl.models.loading import TemporalModelConfig

    return parse_config(path, (DataArguments, config_cls, TemporalModelConfig), overrides)
