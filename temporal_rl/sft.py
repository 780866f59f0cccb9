"""Supervised fine-tuning on video rows: the collator that turns rows into a model batch, the loss on the answer.

TRL's SFTTrainer does the training (with `dataset_kwargs={"skip_prepare_dataset": True}` and
`remove_unused_columns=False`, so the raw rows reach the collator); this module only builds batches: each row's
prompt with its video, followed by its target completion and the end-of-turn token, with the loss on the
completion only.

Three things are pluggable, so one collator serves every supervised stage:

- `frames(row) -> SampledVideo`: the frames the model sees. Default `PathFrames(sampling, cache)`: the row's own
  video at the frame budget (with the model family's frame-side factor), as the GRPO trainer samples it (the SFT
  warm start). The ViaRL answer stage passes
  the frames its selector picked (`temporal_rl.viarl.answer_stage.SelectedFrames`).
- `messages(row) -> list[dict]`: the chat prompt (default `PromptOptions.messages`); its one video block gets the
  frames above.
- `completion(row) -> str`: the target text (default `PromptOptions.answer`, the gold answer).

What differs between model families (placeholder ids, per-video tensors, frame sizes) is asked of
`temporal_rl.families.video_format(processor)`. This module owns batch building for supervised training; it does not
decide which frames or which text.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from temporal_rl.data import RecordError, check_video_duration
from temporal_rl.families import video_format
from temporal_rl.prompts import PromptOptions
from temporal_rl.video.cache import FrameCache, load_video
from temporal_rl.video.inputs import mm_token_type_ids, model_inputs
from temporal_rl.video.sampling import FrameSampling, SampledVideo

IGNORE_INDEX = -100

FrameSource = Callable[[dict], SampledVideo]


class PathFrames:
    """The frame source of plain SFT: the row's own video (`row["video"]`) at a frame budget, through the cache.

    Args:
        sampling: the frame budget (`temporal_rl.video.sampling.FrameSampling`).
        cache: the frame cache (None: decode every time).
    """

    def __init__(self, sampling: FrameSampling, cache: FrameCache | None):
        self.sampling, self.cache = sampling, cache

    def __call__(self, row: dict) -> SampledVideo:
        video = load_video(row["video"], self.sampling, self.cache)
        if isinstance(row.get("duration"), (int, float)) and not isinstance(row.get("duration"), bool):
            try:
                check_video_duration(row["duration"], video.duration)
            except RecordError as err:
                raise RecordError(f"record {row.get('id')!r}: {err.reason}", field="duration") from None
        return video


class VideoSFTCollator:
    """Rows -> `input_ids`, `attention_mask`, `labels` (-100 outside the completion), `mm_token_type_ids` (B, L),
    and the video inputs `pixel_values_videos` (sum of patches, D), `video_grid_thw` (B, 3) and the family's
    per-video tensors (`VideoFormat.row_tensors`, e.g. Qwen2.5-VL's `second_per_grid_ts` (B,)).

    Sequences are right-padded; a row is `prompt + completion + <|im_end|>` with the loss on the last two.

    Args:
        processor: the model's processor (any supported family).
        sampling, cache: frame budget and cache of the default frame source (ignored when `frames` is given).
        prompt: the prompt wording and answer format of the default `messages` and `completion`.
        frames: `row -> SampledVideo`, the frames of the row's one video block (default `PathFrames`).
        messages: `row -> chat messages` with exactly one video block (default `prompt.messages(row)`).
        completion: `row -> target text`, without the end-of-turn token (default `prompt.answer(row)`).
    """

    def __init__(
        self,
        processor,
        sampling: FrameSampling | None = None,
        cache: FrameCache | None = None,
        prompt: PromptOptions | None = None,
        *,
        frames: FrameSource | None = None,
        messages: Callable[[dict], list[dict]] | None = None,
        completion: Callable[[dict], str] | None = None,
    ):
        if frames is None and sampling is None:
            raise ValueError("VideoSFTCollator needs a frame budget (sampling) or a frame source (frames=...)")
        self.processor = processor
        self.video_format = video_format(processor)
        self.prompt = prompt or PromptOptions()
        self.frames = frames or PathFrames(self.video_format.frame_sampling(sampling), cache)
        self.messages = messages or self.prompt.messages
        self.completion = completion or self.prompt.answer
        self.tokenizer = processor.tokenizer
        self.image_token_id, self.video_token_id = self.video_format.placeholder_ids(processor)

    def completion_ids(self, row: dict) -> list[int]:
        """The token ids of the row's target completion followed by the end-of-turn token."""
        text = self.completion(row) + self.tokenizer.eos_token
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode_prompt(self, row: dict) -> dict[str, torch.Tensor]:
        """One row's prompt through the processor with its frames: `input_ids` (1, P) and the video tensors."""
        messages = self.messages(row)
        try:
            return model_inputs(self.processor, messages, self.frames(row))
        except ValueError as err:
            raise ValueError(f"row {row.get('id')!r}: {err}") from None

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        if not rows:
            raise ValueError("VideoSFTCollator got an empty batch")
        encoded = [self.encode_prompt(row) for row in rows]
        prompts = [e["input_ids"][0].tolist() for e in encoded]
        completions = [self.completion_ids(row) for row in rows]
        length = max(len(p) + len(c) for p, c in zip(prompts, completions, strict=True))
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(rows), length), pad, dtype=torch.long)
        labels = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
            sequence = prompt + completion
            input_ids[i, : len(sequence)] = torch.tensor(sequence)
            labels[i, len(prompt) : len(sequence)] = torch.tensor(completion)
            attention_mask[i, : len(sequence)] = 1
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": labels,
            "mm_token_type_ids": mm_token_type_ids(input_ids, self.image_token_id, self.video_token_id),
            "pixel_values_videos": torch.cat([e["pixel_values_videos"] for e in encoded]),
            "video_grid_thw": torch.cat([e["video_grid_thw"] for e in encoded]),
            **self.video_format.row_tensors_of(encoded),
        }
