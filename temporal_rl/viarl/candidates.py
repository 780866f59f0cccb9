"""Candidate frames for a frame selector (ViaRL): T frames of a video, a labelled low-res copy and a high-res copy.

`candidate_frames(path, T, selector_long_side, answer_long_side, cache)` samples T frames uniformly over the video
(Qwen's rule, first and last frame included) and returns

- `selector_frames`: (T, h, w, 3) uint8, long side `selector_long_side` (ViaRL: 112 px), each frame with its
  candidate index 0..T-1 drawn on it (red digits in the bottom-right corner by default, `LabelStyle`);
- the high-resolution candidates for the answer model, long side `answer_long_side` (ViaRL: 896 px), of which
  `select_frames(candidates, indices)` hands the N chosen ones, in time order, as a `SampledVideo` with their
  timestamps and source frame indices (so `SampledVideo.video_metadata()` gives the answer model its fps);
- the timestamps (seconds) and source frame indices of the T candidates.

One decode serves both resolutions: the video is decoded once through the frame cache
(`temporal_rl.video.cache.load_video`) at the answer resolution, and the selector copy is downscaled from those frames
in memory. Measured on this machine (docs/viarl.md): the downscale of 128 frames from 504x896 to 56x112 costs ~0.1 s, a
second decode of a 720p clip several seconds; a second cache entry at the selector size would save only that 0.1 s on a
cache hit.

Sizes follow Qwen's factor-28 rule: each side is a multiple of 28 (patch 14 x merge 2). `long_side_size` scales the
long side to the target (never enlarging the video beyond rounding) and rounds each side to the nearest multiple
of 28, so a 16:9 video gives 56x112 for the selector and 504x896 for the answer model. The decoder resizes with
swscale to Qwen's `smart_resize` of that pixel budget, which equals the target for 16:9, 4:3 and square videos;
for other aspect ratios it can be one 28-px step off, and the chosen frames are then resized to the exact size.

The labels are drawn with the built-in bitmap font of `temporal_rl.video.labels` (exact pixels, no anti-aliasing).

`CandidateFrames.selector_video()` is the labelled copy as a `SampledVideo` (the candidates' times and fps): the frame
source of the selector's model inputs (`temporal_rl.video.inputs.model_inputs(processor, messages,
candidates.selector_video())`).

This module owns the candidate frames, the selector's inputs and the selection of high-resolution frames. It does
not decode (`temporal_rl.video`) nor parse the selector's output (`temporal_rl.rewards.selector`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import av
import numpy as np

from temporal_rl.video.cache import FrameCache, load_video
from temporal_rl.video.decode import VideoError, quarter_turns
from temporal_rl.video.labels import LabelStyle, draw_index_labels
from temporal_rl.video.sampling import FrameSampling, SampledVideo

if TYPE_CHECKING:
    pass

IMAGE_FACTOR = 28
DEFAULT_NUM_CANDIDATES = 128
DEFAULT_SELECTOR_LONG_SIDE = 112
DEFAULT_ANSWER_LONG_SIDE = 896


def long_side_size(height: int, width: int, long_side: int, factor: int = IMAGE_FACTOR) -> tuple[int, int]:
    """The (height, width) of a frame scaled to `long_side` on its long side, each side a multiple of `factor`.

    The scale is `min(1, long_side / max(height, width))` (a small video is not enlarged), then each side is rounded
    to the nearest multiple of `factor` (half to even, as Qwen's `smart_resize`), at least `factor`.

    Example:
        ```python
        >>> long_side_size(720, 1280, 112), long_side_size(720, 1280, 896), long_side_size(480, 640, 112)
        ((56, 112), (504, 896), (84, 112))
        ```
    """
    if min(height, width) < 1 or long_side < 1:
        raise ValueError(f"sizes must be positive, got a {height}x{width} frame and long side {long_side}")
    scale = min(1.0, long_side / max(height, width))
    return tuple(max(factor, round(side * scale / factor) * factor) for side in (height, width))


# ----------------------------------------------------------------------------------------------------------------
# Resizing and decoding


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, H, W, 3) uint8 frames resized to `size` = (height, width): PIL bicubic, antialiased when shrinking.

    Frames already of that size are returned as they are (no copy).
    """
    height, width = size
    if frames.shape[1:3] == (height, width):
        return frames
    from PIL import Image

    out = np.empty((len(frames), height, width, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        out[i] = np.asarray(Image.fromarray(frame).resize((width, height), Image.Resampling.BICUBIC, reducing_gap=2.0))
    return out


def _source_size(path: str) -> tuple[int, int]:
    """(height, width) of the first video stream as shown: the header's, swapped when the first frame's display
    matrix turns the picture a quarter (a phone video; `temporal_rl.video.decode` turns the frames upright).
    Remembered per file version (path, size, modification time), since opening a container costs about as much as
    reading a small clip's cached frames."""
    if not os.path.isfile(path):
        raise VideoError(path, "video file not found" if not os.path.exists(path) else "not a file")
    stat = os.stat(path)
    return _header_size(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=65536)
def _header_size(path: str, size: int, mtime_ns: int) -> tuple[int, int]:
    try:
        with av.open(path, mode="r") as container:
            if not container.streams.video:
                raise VideoError(path, "no video stream in the file")
            codec = container.streams.video[0].codec_context
            height, width = int(codec.height), int(codec.width)
            first = next(container.decode(video=0), None)
            if first is not None and quarter_turns(first, path) % 2:
                height, width = width, height
    except (av.error.FFmpegError, OSError) as err:
        raise VideoError(path, f"not a readable video file ({err})") from None
    if min(height, width) < 1:
        raise VideoError(path, f"the video stream declares a {width}x{height} frame size")
    return height, width


def answer_sampling(height: int, width: int, num_candidates: int, answer_long_side: int) -> FrameSampling:
    """The `FrameSampling` that decodes `num_candidates` frames of a `height` x `width` video near the answer size.

    Its per-frame budget is the pixels of `long_side_size(height, width, answer_long_side)` and the total budget
    never binds, so the decoder's `smart_resize` gives that size for the usual aspect ratios (see the module
    docstring). It is also the frame cache's key for the candidates.
    """
    target_height, target_width = long_side_size(height, width, answer_long_side)
    pixels = target_height * target_width
    return FrameSampling(
        num_frames=num_candidates,
        min_pixels=IMAGE_FACTOR * IMAGE_FACTOR,
        max_pixels=pixels,
        total_pixels=pixels * num_candidates,
        max_frames=max(768, num_candidates),
        image_factor=IMAGE_FACTOR,
    )


@dataclass
class CandidateFrames:
    """The T candidate frames of one video at the selector's and the answer model's resolution.

    Attributes:
        video: the decoded candidates (frames near the answer size, timestamps, source indices, fps, path).
        selector_frames: uint8 (T, h, w, 3), the labelled low-resolution copy for the selector (None when built
            for the answer side only, `candidate_frames(..., selector=False)`).
        answer_size: (H, W) of the frames `answer_frames` and `select_frames` hand to the answer model.
        label_style: how the labels were drawn.
    """

    video: SampledVideo
    selector_frames: np.ndarray | None
    answer_size: tuple[int, int]
    label_style: LabelStyle = field(default_factory=LabelStyle)

    @property
    def num_candidates(self) -> int:
        """T: the number of candidates (fewer than asked when the video has fewer frames)."""
        return self.video.num_frames

    @property
    def timestamps(self) -> np.ndarray:
        """float64 (T,) seconds of each candidate."""
        return self.video.timestamps

    @property
    def source_indices(self) -> np.ndarray:
        """int64 (T,) source frame index of each candidate."""
        return self.video.indices

    @property
    def decoded_frames(self) -> int:
        """Frames decoded to build these candidates (0 when they came from the frame cache)."""
        return self.video.decoded_frames

    @property
    def selector_size(self) -> tuple[int, int]:
        return tuple(self._selector_frames().shape[1:3])

    def _selector_frames(self) -> np.ndarray:
        if self.selector_frames is None:
            raise ValueError(
                f"{self.video.path}: these candidates were built for the answer side only (selector=False); build "
                "them with selector=True for the selector's labelled frames"
            )
        return self.selector_frames

    def answer_frames(self, indices: Sequence[int] | None = None) -> np.ndarray:
        """uint8 (n, H, W, 3): the candidates at `indices` (all when None) at the answer size."""
        frames = self.video.frames if indices is None else self.video.frames[np.asarray(indices, dtype=np.int64)]
        return resize_frames(frames, self.answer_size)

    def selector_video(self) -> SampledVideo:
        """The labelled low-resolution candidates as a video for the selector: (T, h, w, 3) uint8 frames.

        Timestamps, source indices, fps, frame count and duration are the candidates', so
        `processor_video_kwargs([candidates.selector_video()])` gives the selector the candidates' real times.
        """
        video = self.video
        return SampledVideo(
            frames=self._selector_frames(),
            timestamps=video.timestamps,
            indices=video.indices,
            source_fps=video.source_fps,
            total_frames=video.total_frames,
            duration=video.duration,
            path=video.path,
            decoded_frames=0,
        )


def candidate_frames(
    path: str | os.PathLike,
    num_candidates: int = DEFAULT_NUM_CANDIDATES,
    selector_long_side: int = DEFAULT_SELECTOR_LONG_SIDE,
    answer_long_side: int = DEFAULT_ANSWER_LONG_SIDE,
    cache: FrameCache | None = None,
    *,
    label_style: LabelStyle | None = None,
    threads: int = 0,
    selector: bool = True,
) -> CandidateFrames:
    """The T candidate frames of the video at `path`: one decode (or cache hit), two resolutions, labelled.

    Args:
        path: the video file.
        num_candidates: T, even (Qwen encodes frames in pairs; ViaRL: 128). A video with fewer frames gives fewer
            candidates (`CandidateFrames.num_candidates`).
        selector_long_side: long side of the selector's frames (ViaRL: 112).
        answer_long_side: long side of the answer model's frames (ViaRL: 896).
        cache: the frame cache; the candidates are decoded once per video and sampling, then read from it.
        label_style: how the indices are drawn (`LabelStyle()`: red, bottom-right).
        threads: decoder threads (0: FFmpeg chooses).
        selector: build the labelled selector copy (False: the answer side only, `selector_frames` None; the answer
            model's frame sources need no labels, and drawing T labels per row slowed their SFT batches).

    Raises:
        VideoError: the video cannot be read (see `temporal_rl.video.decode.decode_video`).
        ValueError: a size is not positive, `num_candidates` is odd, or the labels do not fit the selector frames.
    """
    path = os.fspath(path)
    if selector_long_side < IMAGE_FACTOR or answer_long_side < IMAGE_FACTOR:
        raise ValueError(
            f"long sides must be at least {IMAGE_FACTOR} px, got selector {selector_long_side}, "
            f"answer {answer_long_side}"
        )
    style = label_style or LabelStyle()
    height, width = _source_size(path)
    video = load_video(path, answer_sampling(height, width, num_candidates, answer_long_side), cache, threads=threads)
    labelled = None
    if selector:
        labelled = resize_frames(video.frames, long_side_size(height, width, selector_long_side))
        labelled = draw_index_labels(labelled, range(video.num_frames), style)
    return CandidateFrames(
        video=video,
        selector_frames=labelled,
        answer_size=long_side_size(height, width, answer_long_side),
        label_style=style,
    )


# ----------------------------------------------------------------------------------------------------------------
# Selection


def select_frames(candidates: CandidateFrames, indices: Sequence[int]) -> SampledVideo:
    """The chosen candidates at the answer resolution, in time order, as a video for the answer model.

    The result's `timestamps` and `indices` (source frame indices) are those of the chosen frames, so
    `processor_video_kwargs([selected])` hands the answer model their real times: transformers derives
    `sampled_fps = N / total_frames * fps`, i.e. `second_per_grid_ts` from the mean spacing of the N frames (Qwen2.5-VL
    has one time step per temporal patch; a non-uniform selection cannot be encoded more exactly). ViaRL's code drops
    `second_per_grid_ts` instead (1 s per patch).

    Args:
        candidates: from `candidate_frames`.
        indices: N distinct candidate indices in [0, T), any order (use
            `temporal_rl.viarl.selector.fallback_indices` to turn a selector's output into such a list).

    Raises:
        ValueError: an index is not an integer, out of range, or repeated.
    """
    count = candidates.num_candidates
    chosen = []
    for index in indices:
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool) or not 0 <= index < count:
            raise ValueError(f"candidate index {index!r} is not an integer in [0, {count})")
        chosen.append(int(index))
    if not chosen or len(set(chosen)) != len(chosen):
        raise ValueError(f"indices must be a non-empty list of distinct candidates, got {list(indices)!r}")
    order = np.array(sorted(chosen), dtype=np.int64)
    video = candidates.video
    return SampledVideo(
        frames=candidates.answer_frames(order),
        timestamps=video.timestamps[order],
        indices=video.indices[order],
        source_fps=video.source_fps,
        total_frames=video.total_frames,
        duration=video.duration,
        path=video.path,
        decoded_frames=0,
    )
