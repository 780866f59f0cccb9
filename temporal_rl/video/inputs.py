"""Model inputs: chat messages plus a video's frames -> one processor call, the frames kept as they are.

`model_inputs(processor, messages, frames)` is the one way a prompt with a video becomes model inputs: generation,
evaluation, the filter, the GRPO and selector trainers, the SFT collator and ViaRL's answer stage all call it. Where
the frames come from is the caller's choice (a frame source): the row's own video through the frame cache
(`temporal_rl.video.cache.load_video`), a selector's labelled candidates, the frames a selector picked, ...

What differs between model families (frame sizes, the processor arguments, the time signal) is asked of the model
family seam (`temporal_rl.families.video_format(processor)`): `processor_video_kwargs` turns a batch of
`SampledVideo`s into the arguments of a processor call, so the processor keeps our frames, our size and our fps (and
hence the time signal temporal grounding depends on: Qwen2.5-VL's `second_per_grid_ts`, the `<t seconds>` texts of
Qwen3-VL and Qwen3.5). `strip_none`, `video_blocks` and `prompt_video_path` read chat messages; `mm_token_type_ids`
marks video tokens.

This module owns the hand-over to the processor. It does not decode nor word prompts (`temporal_rl.prompts`).
"""

from __future__ import annotations

from typing import Any

import torch

from temporal_rl.families import shared_processor_kwargs, video_format
from temporal_rl.video.sampling import SampledVideo

# mm_token_type_ids convention of Qwen's processors (and TRL): 0 text, 1 image, 2 video.
IMAGE_TOKEN_TYPE, VIDEO_TOKEN_TYPE = 1, 2


def processor_video_kwargs(videos: list[SampledVideo], processor: Any | None = None) -> dict[str, Any]:
    """Arguments for a processor call (next to `text=`) that make it use these frames as they are.

    `processor(text=texts, **processor_video_kwargs(videos, processor))`: with the processor, its family's arguments
    (`temporal_rl.families.VideoFormat.processor_kwargs`); without, the ones every family shares. The frames go in
    unsampled (`do_sample_frames=False`) and unresized (`do_resize=False`: they already have the budget size), with
    metadata carrying their real fps and source frame indices. The settings sit in `videos_kwargs` so they cannot
    reach images in the same call: a flat `do_resize=False` would switch off image resizing too, and unresized
    images break patchification. For a bare video processor: `video_processor(videos=kw["videos"],
    **kw["videos_kwargs"])`.
    """
    if processor is not None:
        return video_format(processor).processor_kwargs(videos)
    return shared_processor_kwargs(videos)


def strip_none(value):
    """A copy of a message structure without None-valued keys (Arrow adds them to stored prompts)."""
    if isinstance(value, dict):
        return {k: strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_none(v) for v in value]
    return value


def video_blocks(messages: list[dict]) -> list[dict]:
    """The `{"type": "video", ...}` blocks of chat messages, in order."""
    return [
        part
        for message in messages
        if isinstance(message.get("content"), list)
        for part in message["content"]
        if isinstance(part, dict) and part.get("type") == "video"
    ]


def prompt_video_path(prompt: list[dict]) -> str:
    """The path of the one video block of a conversational prompt.

    Raises:
        ValueError: the prompt has no video block with a path, or more than one video.
    """
    paths = [block.get("video") for block in video_blocks(prompt)]
    if len(paths) != 1 or not isinstance(paths[0], str):
        raise ValueError(
            f"a video prompt needs exactly one {{'type': 'video', 'video': <path>}} block, found {paths!r}; "
            "build prompts with temporal_rl.prompts.build_messages(record, video=path)"
        )
    return paths[0]


def model_inputs(
    processor: Any, messages: list[dict], frames: SampledVideo, chat_template_kwargs: dict | None = None
) -> dict[str, torch.Tensor]:
    """One prompt's model inputs: its chat template and one processor call, its one video block showing `frames`.

    Args:
        processor: the model's processor (chat template, tokenizer, video processor) of a supported family.
        messages: chat messages with exactly one video block (a path in the block is ignored: the frames are
            `frames`); None-valued keys are dropped first (`strip_none`).
        frames: the frames the model sees, with their real times (from any frame source); fitted to the family's
            frame sides first (`VideoFormat.fit`: as they are when sampled with its `frame_sampling`).
        chat_template_kwargs: extra arguments of `apply_chat_template`.

    Returns:
        The processor's tensors, batch dimension 1: `input_ids`, `attention_mask`, `mm_token_type_ids` (1, L),
        `pixel_values_videos` (P, D), `video_grid_thw` (1, 3), and the family's per-video tensors
        (`VideoFormat.row_tensors`: Qwen2.5-VL's `second_per_grid_ts` (1,)).

    Raises:
        ValueError: the messages do not hold exactly one video block.
    """
    messages = strip_none(messages)
    count = len(video_blocks(messages))
    if count != 1:
        raise ValueError(
            f"a video prompt needs exactly one video block, found {count}; build the messages with "
            "temporal_rl.prompts.build_messages (or the selector's build_selector_messages)"
        )
    text = processor.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True, **(chat_template_kwargs or {})
    )
    fmt = video_format(processor)
    inputs = processor(text=[text], return_tensors="pt", **fmt.processor_kwargs([fmt.fit(frames)]))
    return {key: value for key, value in inputs.items() if hasattr(value, "shape")}


def mm_token_type_ids(input_ids: torch.Tensor, image_token_id: int | None, video_token_id: int) -> torch.Tensor:
    """(B, L) token types of `input_ids` (B, L): 2 on video placeholders, 1 on image placeholders, else 0."""
    types = torch.zeros_like(input_ids)
    types[input_ids == video_token_id] = VIDEO_TOKEN_TYPE
    if image_token_id is not None:
        types[input_ids == image_token_id] = IMAGE_TOKEN_TYPE
    return types
