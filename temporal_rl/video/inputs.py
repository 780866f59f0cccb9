"""Processor inputs: frames handed to a Qwen2.5-VL processor as they are, with their real fps.

`processor_video_kwargs` turns a batch of `SampledVideo`s into the arguments of a processor call, so the processor
keeps our frames, our size and our fps (and hence the `second_per_grid_ts` that temporal grounding depends on).

This module owns the hand-over to the processor. It does not decode nor build prompts.
"""

from __future__ import annotations

from typing import Any

from temporal_rl.video.sampling import SampledVideo


def processor_video_kwargs(videos: list[SampledVideo]) -> dict[str, Any]:
    """Arguments for a Qwen2.5-VL processor call (next to `text=`) that make it use these frames as they are.

    `processor(text=texts, **processor_video_kwargs(videos))`. The frames go in unsampled
    (`do_sample_frames=False`) and unresized (`do_resize=False`: they already have the budget size), with
    metadata carrying their real fps. The settings sit in `videos_kwargs` so they cannot reach images in the
    same call: a flat `do_resize=False` would switch off image resizing too, and unresized images break
    patchification. For a bare video processor: `video_processor(videos=kw["videos"], **kw["videos_kwargs"])`.
    """
    if not videos:
        return {}
    return {
        "videos": [video.frames for video in videos],
        "videos_kwargs": {
            "video_metadata": [video.video_metadata() for video in videos],
            "do_sample_frames": False,
            "do_resize": False,
        },
    }
