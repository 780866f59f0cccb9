"""Qwen's frame budget: how many frames to take from a video, which ones, and how large to make them.

`FrameSampling` holds the budget; `sample_frame_count`, `sample_frame_indices`, `smart_resize` and `frame_size`
apply it; `SampledVideo` is what every frame source returns (uint8 frames already resized to the budget size, their
timestamps in seconds and their source frame indices).

The budget rules are those of qwen-vl-utils 0.0.14 (`smart_nframes`, `smart_resize` and the total pixel
budget of `fetch_video`); the tests compare against it. Two deliberate differences, both where
qwen-vl-utils fails: a fixed `num_frames` larger than the video is clamped to the video's frame count (it
raises), and a frame side never rounds down to 0 at extreme aspect ratios.

This module owns the budget rules and the `SampledVideo` type. numpy only: no decoder, no torch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from transformers.video_utils import VideoMetadata

MAX_ASPECT_RATIO = 200
PLACEMENTS = ("start", "center")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


_POSITIVE_INT_FIELDS = (
    "min_frames",
    "max_frames",
    "min_pixels",
    "max_pixels",
    "total_pixels",
    "image_factor",
    "frame_factor",
)


@dataclass(frozen=True)
class FrameSampling:
    """How many frames to take from a video and how large to make them (Qwen's frame budget).

    Defaults equal qwen-vl-utils 0.0.14's for video.

    Args:
        fps: frames to sample per second of video (ignored when `num_frames` is set).
        num_frames: a fixed, even number of frames sampled uniformly instead of `fps` (ViaRL: 128).
        min_frames, max_frames: bounds on the fps-derived frame count.
        min_pixels, max_pixels: bounds on the pixels of one frame.
        total_pixels: pixel budget of the whole video; long videos get smaller frames.
        image_factor: frame sides are multiples of this (patch size 14 x spatial merge 2).
        frame_factor: the frame count is a multiple of this (Qwen's temporal patch size).
    """

    fps: float = 2.0
    num_frames: int | None = None
    min_frames: int = 4
    max_frames: int = 768
    min_pixels: int = 128 * 28 * 28
    max_pixels: int = 768 * 28 * 28
    total_pixels: int = int(128000 * 28 * 28 * 0.9)
    image_factor: int = 28
    frame_factor: int = 2

    def __post_init__(self):
        def fail(message: str) -> ValueError:
            return ValueError(f"FrameSampling: {message}")

        for name in _POSITIVE_INT_FIELDS:
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise fail(f"{name} must be a positive integer, got {value!r}")
        if (
            isinstance(self.fps, bool)
            or not isinstance(self.fps, (int, float))
            or not math.isfinite(self.fps)
            or self.fps <= 0
        ):
            raise fail(f"fps must be a positive number of frames per second, got {self.fps!r}")
        if self.num_frames is not None:
            if not _is_int(self.num_frames) or self.num_frames < self.frame_factor:
                raise fail(
                    f"num_frames must be an integer >= frame_factor={self.frame_factor} or None (to sample "
                    f"by fps), got {self.num_frames!r}"
                )
            if self.num_frames % self.frame_factor:
                nearest = round(self.num_frames / self.frame_factor) * self.frame_factor
                raise fail(
                    f"num_frames={self.num_frames} must be a multiple of frame_factor={self.frame_factor} "
                    f"(Qwen encodes frames in groups of {self.frame_factor}); use {nearest}"
                )
        if self.min_frames > self.max_frames:
            raise fail(
                f"min_frames={self.min_frames} > max_frames={self.max_frames}; lower min_frames or raise max_frames"
            )
        if self.max_frames < self.frame_factor:
            raise fail(f"max_frames={self.max_frames} must be at least frame_factor={self.frame_factor}")
        if self.min_pixels > self.max_pixels:
            raise fail(
                f"min_pixels={self.min_pixels} > max_pixels={self.max_pixels}; lower min_pixels or raise max_pixels"
            )
        if self.max_pixels < self.image_factor**2:
            raise fail(
                f"max_pixels={self.max_pixels} is below one {self.image_factor}x{self.image_factor} patch "
                f"({self.image_factor**2} pixels)"
            )

        # FrameSampling(fps=2) equals FrameSampling(fps=2.0), so both must give the same cache key.
        object.__setattr__(self, "fps", float(self.fps))
        for name in (*_POSITIVE_INT_FIELDS, "num_frames"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, int(getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        """The parameters as a plain dict (JSON-serialisable; part of the frame cache key)."""
        return dataclasses.asdict(self)


def _round_by(number: float, factor: int) -> int:
    return round(number / factor) * factor


def _ceil_by(number: float, factor: int) -> int:
    return math.ceil(number / factor) * factor


def _floor_by(number: float, factor: int) -> int:
    return math.floor(number / factor) * factor


def sample_frame_count(total_frames: int, video_fps: float, sampling: FrameSampling) -> int:
    """The number of frames to sample: qwen-vl-utils' `smart_nframes`.

    With `sampling.num_frames` set, that count, clamped to the video's frame count (rounded down to
    `frame_factor`). Otherwise `duration * fps` clamped to [min_frames, max_frames] (rounded to
    `frame_factor`, inwards) and to `total_frames`, then rounded down to a multiple of `frame_factor`.

    Raises:
        ValueError: the video has fewer than `frame_factor` frames, or `video_fps` is not positive.
    """
    factor = sampling.frame_factor
    if total_frames < factor:
        raise ValueError(f"the video has {total_frames} frame(s); at least {factor} are needed")
    if sampling.num_frames is not None:
        return min(sampling.num_frames, _floor_by(total_frames, factor))
    if not (math.isfinite(video_fps) and video_fps > 0):
        raise ValueError(f"the video's frame rate must be positive, got {video_fps!r}")
    min_frames = _ceil_by(sampling.min_frames, factor)
    max_frames = _floor_by(sampling.max_frames, factor)
    wanted = total_frames / video_fps * sampling.fps
    return _floor_by(min(max(wanted, min_frames), max_frames, total_frames), factor)


def sample_frame_indices(total_frames: int, num_frames: int) -> np.ndarray:
    """`num_frames` source frame indices spread uniformly over the video, first and last frame included.

    Qwen's rule: `linspace(0, total_frames - 1, num_frames)` rounded (half to even). int64, increasing.
    """
    if not 1 <= num_frames <= total_frames:
        raise ValueError(f"cannot pick {num_frames} frame(s) out of {total_frames}")
    return np.linspace(0, total_frames - 1, num_frames).round().astype(np.int64)


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """qwen-vl-utils' `smart_resize`: sides that are multiples of `factor`, pixels within [min, max], aspect kept.

    Differs only where qwen-vl-utils returns a 0-pixel side: a side is never below `factor`.
    """
    if min(height, width) < 1:
        raise ValueError(f"frame size must be positive, got {height}x{width}")
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(
            f"aspect ratio {max(height, width) / min(height, width):.1f} of a {height}x{width} frame "
            f"is above {MAX_ASPECT_RATIO}"
        )
    h_bar = max(factor, _round_by(height, factor))
    w_bar = max(factor, _round_by(width, factor))
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, _floor_by(height / beta, factor))
        w_bar = max(factor, _floor_by(width / beta, factor))
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = _ceil_by(height * beta, factor)
        w_bar = _ceil_by(width * beta, factor)
    return h_bar, w_bar


def frame_max_pixels(num_frames: int, sampling: FrameSampling) -> int | float:
    """The pixel cap of one frame when `num_frames` frames share the total pixel budget (as `fetch_video`).

    An even share of `total_pixels` per temporal patch, floored at 1.05 x min_pixels and capped by
    max_pixels. (qwen-vl-utils caps at its 768-token constant rather than at a larger user max_pixels;
    at max_pixels <= 768*28*28, which includes the default, the two rules agree.)
    """
    share = sampling.total_pixels / num_frames * sampling.frame_factor
    return min(sampling.max_pixels, max(min(sampling.max_pixels, share), int(sampling.min_pixels * 1.05)))


def frame_size(height: int, width: int, num_frames: int, sampling: FrameSampling) -> tuple[int, int]:
    """The (height, width) each of `num_frames` frames of a `height` x `width` video is resized to."""
    return smart_resize(
        height, width, sampling.image_factor, sampling.min_pixels, frame_max_pixels(num_frames, sampling)
    )


@dataclass
class SampledVideo:
    """Frames sampled from one video, resized to the frame budget, with their times.

    Attributes:
        frames: uint8 (N, H, W, 3) RGB.
        timestamps: float64 (N,) seconds from the start of the stream (the frames' presentation times).
        indices: int64 (N,) source frame indices.
        source_fps: the video's average frame rate.
        total_frames: the video's frame count.
        duration: seconds covered by the frames of the video (total_frames / source_fps).
        path: the video file.
        decoded_frames: frames the decoder produced for this: GOPs seeked past and non-reference frames it
            skipped do not count (0 when it came from the cache).
    """

    frames: np.ndarray
    timestamps: np.ndarray
    indices: np.ndarray
    source_fps: float
    total_frames: int
    duration: float
    path: str
    decoded_frames: int = 0

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def sample_fps(self) -> float:
        """Frames per second of the sample as Qwen counts it: N / total_frames * source_fps."""
        return self.num_frames / self.total_frames * self.source_fps

    def video_metadata(self) -> VideoMetadata:
        """transformers' `VideoMetadata` for these frames.

        The processor derives `sampled_fps` (= `sample_fps`) from it, and from that the model's
        `second_per_grid_ts = temporal_patch_size / sampled_fps`. Width and height are those of the frames
        handed to the processor.
        """
        from transformers.video_utils import VideoMetadata

        return VideoMetadata(
            total_num_frames=self.total_frames,
            fps=self.source_fps,
            frames_indices=[int(i) for i in self.indices],
            duration=self.duration,
            width=int(self.frames.shape[2]),
            height=int(self.frames.shape[1]),
        )


def uniform_indices(num_candidates: int, num_select: int, placement: str = "start") -> list[int]:
    """`num_select` candidate indices spread uniformly over `range(num_candidates)`, increasing.

    Args:
        num_candidates: T.
        num_select: N, 1 <= N <= T.
        placement: `"start"`: `floor(i * T / N)`, the start of each of N equal segments (ViaRL's fallback, which is
            `i * (T // N)` when N divides T: 0, 16, ..., 112 for T=128, N=8); `"center"`: the middle of each
            segment, `floor((2i + 1) * T / (2N))` (8, 24, ..., 120).

    Example:
        ```python
        >>> uniform_indices(128, 8), uniform_indices(10, 4, "center")
        ([0, 16, 32, 48, 64, 80, 96, 112], [1, 3, 6, 8])
        ```
    """
    if placement not in PLACEMENTS:
        raise ValueError(f"unknown placement {placement!r}; expected one of {', '.join(PLACEMENTS)}")
    if not (isinstance(num_select, int) and isinstance(num_candidates, int) and 1 <= num_select <= num_candidates):
        raise ValueError(f"cannot pick {num_select!r} distinct frames out of {num_candidates!r}")
    if placement == "start":
        return [i * num_candidates // num_select for i in range(num_select)]
    return [(2 * i + 1) * num_candidates // (2 * num_select) for i in range(num_select)]
