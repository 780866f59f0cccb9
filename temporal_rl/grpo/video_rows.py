"""Video prompts as model inputs: one processor call per distinct (prompt, video), per-row tensors that share it.

A GRPO batch holds each prompt G times. Each distinct (prompt, video) is run through the processor once
(`temporal_rl.video.inputs.model_inputs`, with the frames of a pluggable frame source), and all rows showing one video
hold references to the same `pixel_values_videos` tensor, never copies, and never a `repeat_interleave` over flattened
patches (which reorders patches across frames).

`VideoRows` keeps, per row: the video's patches, its grid `(t, h, w)`, `second_per_grid_ts` and, when the rollout's
vision-tower outputs are cached, the row's cache key (`temporal_rl.grpo.vision_sharing`). Rows can be permuted
and split like any per-sample list or tensor (TRL's `shuffle_sequence_dict` / `split_tensor_dict`);
`model_kwargs(start, end)` assembles what Qwen2.5-VL's forward needs for a slice of rows from pixels, and
`layout_kwargs` the part it needs besides the encoder outputs (grids and times, for the 3D positions).

This module owns that bookkeeping; it does not decode nor render prompts (see `temporal_rl.video`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import torch

from temporal_rl.video.inputs import model_inputs, prompt_video_path, strip_none
from temporal_rl.video.sampling import SampledVideo

VIDEO_KEYS = ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts")
FEATURE_KEYS_KEY = "video_feature_keys"  # batch key of `VideoRows.feature_keys`


@dataclass
class VideoRows:
    """Per-row video inputs of a batch.

    Attributes:
        pixel_values_videos: B tensors, row i of shape (t_i * h_i * w_i, C * T_patch * P * P); rows of one video
            share one tensor.
        video_grid_thw: (B, 3) int64, the patch grid of each row's video.
        second_per_grid_ts: (B,) float32, seconds per temporal patch of each row's video.
        feature_keys: B keys of the rows' vision-tower outputs in the trainer's `VisionFeatureCache`, or None
            when the outputs are not cached (rows of one video share a key).
    """

    pixel_values_videos: list[torch.Tensor]
    video_grid_thw: torch.Tensor
    second_per_grid_ts: torch.Tensor
    feature_keys: list[int] | None = None

    def __len__(self) -> int:
        return len(self.pixel_values_videos)

    @classmethod
    def from_batch(cls, batch: dict) -> VideoRows:
        """The rows stored under `VIDEO_KEYS` (and `FEATURE_KEYS_KEY`, if present) in a (shuffled, split) batch."""
        missing = [key for key in VIDEO_KEYS if key not in batch]
        if missing:
            raise KeyError(f"the batch has no {', '.join(missing)}: it did not come from a video rollout")
        return cls(*(batch[key] for key in VIDEO_KEYS), feature_keys=batch.get(FEATURE_KEYS_KEY))

    def as_batch(self) -> dict:
        batch = {
            "pixel_values_videos": self.pixel_values_videos,
            "video_grid_thw": self.video_grid_thw,
            "second_per_grid_ts": self.second_per_grid_ts,
        }
        if self.feature_keys is not None:
            batch[FEATURE_KEYS_KEY] = self.feature_keys
        return batch

    def select(self, start: int, end: int) -> VideoRows:
        """Rows [start, end) (references, no copies)."""
        keys = None if self.feature_keys is None else self.feature_keys[start:end]
        return VideoRows(
            self.pixel_values_videos[start:end],
            self.video_grid_thw[start:end],
            self.second_per_grid_ts[start:end],
            keys,
        )

    def layout_kwargs(self, start: int, end: int, device: torch.device | None = None) -> dict:
        """The grids and times of rows [start, end): what the forward needs besides the encoder's input or output."""
        kwargs = {
            "video_grid_thw": self.video_grid_thw[start:end],
            "second_per_grid_ts": self.second_per_grid_ts[start:end],
        }
        return {k: v.to(device) for k, v in kwargs.items()} if device is not None else kwargs

    def model_kwargs(self, start: int, end: int, device: torch.device | None = None) -> dict:
        """Qwen2.5-VL forward arguments for rows [start, end): their patches concatenated in row order (a copy per
        row: the vision tower then encodes every row)."""
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
        processor: a Qwen2.5-VL processor.
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
        second_per_grid_ts=torch.cat([torch.as_tensor(encoded[key]["second_per_grid_ts"]) for key in keys]).float(),
    )
    return prompt_ids, rows, videos
