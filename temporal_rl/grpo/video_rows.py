"""Video prompts as model inputs: one processor call per distinct (prompt, video), per-row tensors that share it.

A GRPO batch holds each prompt G times. Each distinct (prompt, video) is run through the processor once
(`temporal_rl.video.inputs.model_inputs`, with the frames of a pluggable frame source), and all rows showing one video
hold references to the same `pixel_values_videos` tensor, never copies, and never a `repeat_interleave` over flattened
patches (which reorders patches across frames).

`VideoRows` keeps, per row: the video's patches, its grid `(t, h, w)`, the per-video tensors its model family
needs in every forward (`temporal_rl.families.VideoFormat.row_tensors`: Qwen2.5-VL's `second_per_grid_ts`, none for
Qwen3-VL and Qwen3.5) and, when the rollout's vision-tower outputs are cached, the row's cache key
(`temporal_rl.grpo.vision_sharing`). Rows can be permuted and split like any per-sample list or tensor (TRL's
`shuffle_sequence_dict` / `split_tensor_dict`); `model_kwargs(start, end)` assembles what the model's forward needs
for a slice of rows from pixels, and `layout_kwargs` the part it needs besides the encoder outputs (grids and the
per-video tensors, for the 3D positions).

This module owns that bookkeeping; it does not decode nor render prompts (see `temporal_rl.video`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from temporal_rl.families import video_format
from temporal_rl.video.inputs import model_inputs, prompt_video_path, strip_none
from temporal_rl.video.sampling import SampledVideo

VIDEO_KEYS = ("pixel_values_videos", "video_grid_thw")
ROW_TENSOR_PREFIX = "video_row/"  # batch keys of `VideoRows.row_tensors`: "video_row/second_per_grid_ts", ...
FEATURE_KEYS_KEY = "video_feature_keys"  # batch key of `VideoRows.feature_keys`


@dataclass
class VideoRows:
    """Per-row video inputs of a batch.

    Attributes:
        pixel_values_videos: B tensors, row i of shape (t_i * h_i * w_i, C * T_patch * P * P); rows of one video
            share one tensor.
        video_grid_thw: (B, 3) int64, the patch grid of each row's video.
        row_tensors: the family's per-video forward tensors by name, each (B, ...) (e.g. Qwen2.5-VL's
            `second_per_grid_ts` (B,) float32, seconds per temporal patch); empty for Qwen3-VL and Qwen3.5.
        feature_keys: B keys of the rows' vision-tower outputs in the trainer's `VisionFeatureCache`, or None
            when the outputs are not cached (rows of one video share a key).
    """

    pixel_values_videos: list[torch.Tensor]
    video_grid_thw: torch.Tensor
    row_tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    feature_keys: list[int] | None = None

    def __len__(self) -> int:
        return len(self.pixel_values_videos)

    @classmethod
    def from_batch(cls, batch: dict) -> VideoRows:
        """The rows stored under `VIDEO_KEYS`, `ROW_TENSOR_PREFIX` + name (and `FEATURE_KEYS_KEY`, if present) in a
        (shuffled, split) batch."""
        missing = [key for key in VIDEO_KEYS if key not in batch]
        if missing:
            raise KeyError(f"the batch has no {', '.join(missing)}: it did not come from a video rollout")
        prefix = ROW_TENSOR_PREFIX
        row_tensors = {k.removeprefix(prefix): v for k, v in batch.items() if k.startswith(prefix)}
        return cls(*(batch[key] for key in VIDEO_KEYS), row_tensors, feature_keys=batch.get(FEATURE_KEYS_KEY))

    @classmethod
    def concat(cls, parts: list[VideoRows]) -> VideoRows:
        """The rows of `parts`, in order (uncached: no feature keys)."""
        names = {name for part in parts for name in part.row_tensors}
        return cls(
            pixel_values_videos=[pixels for part in parts for pixels in part.pixel_values_videos],
            video_grid_thw=torch.cat([part.video_grid_thw for part in parts]),
            row_tensors={name: torch.cat([part.row_tensors[name] for part in parts]) for name in sorted(names)},
        )

    def as_batch(self) -> dict:
        batch = {"pixel_values_videos": self.pixel_values_videos, "video_grid_thw": self.video_grid_thw}
        batch.update({ROW_TENSOR_PREFIX + name: tensor for name, tensor in self.row_tensors.items()})
        if self.feature_keys is not None:
            batch[FEATURE_KEYS_KEY] = self.feature_keys
        return batch

    def select(self, start: int, end: int) -> VideoRows:
        """Rows [start, end) (references, no copies)."""
        keys = None if self.feature_keys is None else self.feature_keys[start:end]
        return VideoRows(
            self.pixel_values_videos[start:end],
            self.video_grid_thw[start:end],
            {name: tensor[start:end] for name, tensor in self.row_tensors.items()},
            keys,
        )

    def layout_kwargs(self, start: int, end: int, device: torch.device | None = None) -> dict:
        """The grids and per-video tensors of rows [start, end): what the forward needs besides the encoder's input
        or output."""
        kwargs = {"video_grid_thw": self.video_grid_thw[start:end]}
        kwargs.update({name: tensor[start:end] for name, tensor in self.row_tensors.items()})
        return {k: v.to(device) for k, v in kwargs.items()} if device is not None else kwargs

    def model_kwargs(self, start: int, end: int, device: torch.device | None = None) -> dict:
        """Forward arguments for rows [start, end): their patches concatenated in row order (a copy per row: the
        vision tower then encodes every row), grids and per-video tensors."""
        pixels = torch.cat(self.pixel_values_videos[start:end], dim=0)
        return {
            "pixel_values_videos": pixels if device is None else pixels.to(device),
            **self.layout_kwargs(start, end, device),
        }


def encode_video_prompts(
    processor,
    prompts: list[list[dict]],
    frames: Callable[[str], SampledVideo],
    chat_template_kwargs: dict | None = None,
) -> tuple[list[list[int]], VideoRows, dict[str, SampledVideo]]:
    """Tokenize video prompts with their frames (`model_inputs`), one processor call per distinct (prompt, video).

    Args:
        processor: the model's processor (any supported family).
        prompts: B conversational prompts, each with exactly one video block carrying a path.
        frames: the frame source: video path -> the frames the prompt shows (e.g. `load_video` through the frame
            cache, or a selector's labelled candidates); called once per distinct path, in first-seen order.
        chat_template_kwargs: extra arguments of `apply_chat_template`.

    Returns:
        prompt_ids: B lists of token ids (video placeholders expanded), unpadded.
        rows: the B rows' video inputs (rows of one video share its pixel tensor).
        videos: path -> the frames shown, the distinct videos in first-seen order (for counting the work).
    """
    prompts = [strip_none(prompt) for prompt in prompts]
    keys = [(prompt_video_path(prompt), json.dumps(prompt, sort_keys=True, default=str)) for prompt in prompts]
    videos = {path: frames(path) for path, _ in dict.fromkeys(keys)}
    encoded, pixels = {}, {}
    for prompt, key in zip(prompts, keys, strict=True):
        if key not in encoded:
            path = key[0]
            encoded[key] = model_inputs(processor, prompt, videos[path], chat_template_kwargs)
            # The pixels depend on the video only: prompts with other texts on the same video share the tensor.
            pixels.setdefault(path, encoded[key]["pixel_values_videos"])
    prompt_ids = [encoded[key]["input_ids"][0].tolist() for key in keys]
    rows = VideoRows(
        pixel_values_videos=[pixels[path] for path, _ in keys],
        video_grid_thw=torch.cat([encoded[key]["video_grid_thw"] for key in keys]),
        row_tensors=video_format(processor).row_tensors_of([encoded[key] for key in keys]),
    )
    return prompt_ids, rows, videos
