"""Video frames for the models: Qwen's frame budget, PyAV decoding and an on-disk frame cache.

Everything that needs frames calls `load_video(path, sampling, cache)`; it returns a `SampledVideo`:
uint8 frames already resized to the budget size, their timestamps in seconds (from the decoded frames'
presentation times) and their source frame indices. `processor_video_kwargs` turns a batch of them into
the arguments of a Qwen2.5-VL processor call, so the processor keeps our frames, our size and our fps
(and hence the `second_per_grid_ts` that temporal grounding depends on).

The budget rules are those of qwen-vl-utils 0.0.14 (`smart_nframes`, `smart_resize` and the total pixel
budget of `fetch_video`); the tests compare against it. Two deliberate differences, both where
qwen-vl-utils fails: a fixed `num_frames` larger than the video is clamped to the video's frame count (it
raises), and a frame side never rounds down to 0 at extreme aspect ratios.

Decoding goes through the stream once, in order, keeping the wanted frames and stopping after the last
one: seeking per frame re-decodes a GOP for every target and was measured 4x slower. Frames are resized by
swscale while converting to RGB, so a full-size RGB frame is never materialised.

This module owns decoding, sampling, frame sizes and the frame cache. It does not build prompts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import numpy as np

if TYPE_CHECKING:
    from transformers.video_utils import VideoMetadata

logger = logging.getLogger(__name__)

# Bump whenever decoding or the stored layout changes, so old cache entries stop matching.
CACHE_VERSION = 1
CACHE_ENV_VAR = "TEMPORAL_RL_CACHE"
MAX_ASPECT_RATIO = 200
# swscale's bicubic widens its kernel when shrinking, so it antialiases like qwen-vl-utils'
# torchvision bicubic+antialias resize.
RESIZE_INTERPOLATION = "BICUBIC"


class VideoError(RuntimeError):
    """A video cannot be loaded. The message names the file and what is wrong with it."""

    def __init__(self, path: str | os.PathLike, message: str):
        self.path, self.reason = os.fspath(path), message
        super().__init__(f"{self.path}: {message}")


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
        decoded_frames: frames decoded to produce this (0 when it came from the cache).
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


# ----------------------------------------------------------------------------------------------------------
# Decoding


def _open_container(path: str):
    try:
        return av.open(path, mode="r")
    except av.error.FFmpegError as err:
        raise VideoError(path, f"not a readable video file ({_ffmpeg_reason(err)})") from None
    except OSError as err:
        raise VideoError(path, f"cannot be read ({err.strerror or err})") from None


def _ffmpeg_reason(err: Exception) -> str:
    return getattr(err, "strerror", None) or str(err) or type(err).__name__


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise VideoError(path, "video file not found")
    if not os.path.isfile(path):
        raise VideoError(path, "not a file")
    if os.path.getsize(path) == 0:
        raise VideoError(path, "the file is empty (0 bytes)")


def _video_stream(container, path: str):
    if not container.streams.video:
        found = ", ".join(sorted({stream.type for stream in container.streams})) or "none"
        raise VideoError(path, f"no video stream in the file (streams found: {found})")
    return container.streams.video[0]


def _stream_fps(stream, path: str) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate.denominator and float(rate) > 0 and math.isfinite(float(rate)):
            return float(rate)
    raise VideoError(path, "the video stream declares no frame rate")


def _count_packets(path: str) -> int:
    """Frames in the first video stream, counted from its packets (demuxing only, no decoding)."""
    count = 0
    with _open_container(path) as container:
        stream = _video_stream(container, path)
        try:
            for packet in container.demux(stream):
                if packet.size:
                    count += 1
        except av.error.FFmpegError as err:
            logger.warning("%s: demuxing stopped after %d packets (%s)", path, count, _ffmpeg_reason(err))
    return count


@dataclass
class _Decoded:
    frames: np.ndarray
    timestamps: np.ndarray
    kept: int
    decoded: int


def _decode_frames(path: str, indices: np.ndarray, sampling: FrameSampling, threads: int) -> _Decoded:
    """One sequential pass: decode up to the last wanted index and keep the wanted frames, resized."""
    num_frames = len(indices)
    frames: np.ndarray | None = None
    pts = np.zeros(num_frames, dtype=np.int64)
    kept = decoded = 0
    with _open_container(path) as container:
        stream = _video_stream(container, path)
        if threads != 1:
            stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        fps = _stream_fps(stream, path)
        time_base, start_pts = stream.time_base, stream.start_time
        previous_pts = None
        pts_valid = time_base is not None
        try:
            for frame in container.decode(stream):
                index = decoded
                decoded += 1
                if frame.pts is None or (previous_pts is not None and frame.pts <= previous_pts):
                    pts_valid = False
                previous_pts = frame.pts
                if start_pts is None:
                    start_pts = frame.pts
                if index != indices[kept]:
                    continue
                if frames is None:
                    try:
                        height, width = frame_size(frame.height, frame.width, num_frames, sampling)
                    except ValueError as err:
                        raise VideoError(path, str(err)) from None
                    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
                frames[kept] = frame.to_ndarray(
                    width=frames.shape[2], height=frames.shape[1], format="rgb24", interpolation=RESIZE_INTERPOLATION
                )
                pts[kept] = frame.pts if pts_valid else 0
                kept += 1
                if kept == num_frames:
                    break
        except av.error.FFmpegError as err:
            logger.warning("%s: decoding stopped after %d frames (%s)", path, decoded, _ffmpeg_reason(err))
    if frames is None:
        frames = np.empty((0, 0, 0, 3), dtype=np.uint8)
    if pts_valid and start_pts is not None:
        timestamps = (pts - start_pts) * float(time_base)
    else:
        # AVI with B-frames hands out decode-order pts; only the nominal frame times are left.
        logger.warning("%s: frame timestamps are missing or out of order; using frame index / fps", path)
        timestamps = indices / fps
    return _Decoded(frames, timestamps.astype(np.float64), kept, decoded)


def decode_video(path: str | os.PathLike, sampling: FrameSampling | None = None, *, threads: int = 0) -> SampledVideo:
    """Decode the frames `sampling` asks for from the video at `path`, resized to the frame budget.

    The frame count comes from the container (`stream.frames`) or, when it does not say, from counting
    packets. When fewer frames decode than that count, the frames are re-picked from the count that did
    decode (a second pass) and a warning is logged.

    Args:
        path: the video file.
        sampling: the frame budget; `FrameSampling()` (Qwen's defaults) when None.
        threads: decoder threads; 0 lets FFmpeg choose, 1 decodes single-threaded (one per DataLoader worker).

    Raises:
        VideoError: the file is missing, empty, not a video, has no video stream, or has too few frames.
    """
    sampling = sampling or FrameSampling()
    path = os.fspath(path)
    _check_file(path)
    with _open_container(path) as container:
        stream = _video_stream(container, path)
        fps = _stream_fps(stream, path)
        claimed_frames = stream.frames
    total_frames = claimed_frames if claimed_frames > 0 else _count_packets(path)
    if total_frames == 0:
        raise VideoError(path, "the video stream has no frames (zero-length video)")

    decoded_frames = 0
    for attempt in range(2):
        try:
            num_frames = sample_frame_count(total_frames, fps, sampling)
        except ValueError as err:
            raise VideoError(path, str(err)) from None
        indices = sample_frame_indices(total_frames, num_frames)
        result = _decode_frames(path, indices, sampling, threads)
        decoded_frames += result.decoded
        if result.kept == num_frames:
            return SampledVideo(
                frames=result.frames,
                timestamps=result.timestamps,
                indices=indices,
                source_fps=fps,
                total_frames=total_frames,
                duration=total_frames / fps,
                path=path,
                decoded_frames=decoded_frames,
            )
        if result.decoded == 0:
            raise VideoError(path, "no frame of the video stream could be decoded")
        if attempt == 0:
            logger.warning(
                "%s: the container counts %d frames but only %d decode; sampling from those",
                path,
                total_frames,
                result.decoded,
            )
        total_frames = result.decoded
    raise VideoError(path, f"decoding is not repeatable: frames ran out before frame {indices[-1]} twice")


# ----------------------------------------------------------------------------------------------------------
# Frame cache


def default_cache_root() -> Path:
    """`$TEMPORAL_RL_CACHE`, else `~/.cache/temporal_rl/frames`."""
    root = os.environ.get(CACHE_ENV_VAR)
    return Path(root) if root else Path.home() / ".cache" / "temporal_rl" / "frames"


class FrameCache:
    """Decoded frames on disk, one uncompressed .npz per (video file version, sampling parameters).

    The key hashes the absolute path, size and mtime of the video, the sampling parameters and
    `CACHE_VERSION`, so editing or touching a video, or changing the budget, misses. Entries are written
    to a temporary file and renamed into place: a killed process never leaves half an entry under a key.
    An unreadable entry counts as a miss (with a warning) and is overwritten.
    """

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_cache_root()

    def __repr__(self) -> str:
        return f"FrameCache({str(self.root)!r})"

    def key(self, path: str | os.PathLike, sampling: FrameSampling) -> str:
        """The cache key of the video file as it is now, sampled with `sampling`."""
        path = os.path.abspath(os.fspath(path))
        stat = os.stat(path)
        identity = {
            "path": path,
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "sampling": sampling.to_dict(),
            "cache_version": CACHE_VERSION,
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()

    def entry_path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def load(self, key: str) -> SampledVideo | None:
        """The cached video under `key`, or None on a miss (absent or unreadable entry)."""
        entry = self.entry_path(key)
        if not entry.is_file():
            return None
        try:
            with np.load(entry, allow_pickle=False) as stored:
                meta = json.loads(str(stored["meta"]))
                video = SampledVideo(
                    frames=stored["frames"],
                    timestamps=stored["timestamps"],
                    indices=stored["indices"],
                    source_fps=float(meta["source_fps"]),
                    total_frames=int(meta["total_frames"]),
                    duration=float(meta["duration"]),
                    path=str(meta["path"]),
                    decoded_frames=0,
                )
            _check_cached(video, meta)
        except Exception as err:  # any damage to the file is a miss; the caller re-decodes and rewrites
            logger.warning(
                "frame cache entry %s is unreadable (%s: %s); decoding again", entry, type(err).__name__, err
            )
            return None
        return video

    def store(self, key: str, video: SampledVideo) -> Path | None:
        """Write `video` under `key` atomically. Returns the entry, or None when it could not be written."""
        entry = self.entry_path(key)
        meta = {
            "source_fps": video.source_fps,
            "total_frames": video.total_frames,
            "duration": video.duration,
            "path": video.path,
            "cache_version": CACHE_VERSION,
        }
        temp_name = None
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            fd, temp_name = tempfile.mkstemp(dir=entry.parent, prefix=f".{key}.", suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                np.savez(
                    handle,
                    frames=video.frames,
                    timestamps=video.timestamps,
                    indices=video.indices,
                    meta=np.array(json.dumps(meta)),
                )
            os.replace(temp_name, entry)
        except OSError as err:  # a full or read-only disk costs speed, not the run
            logger.warning("could not write frame cache entry %s (%s)", entry, err)
            if temp_name is not None and os.path.exists(temp_name):
                os.unlink(temp_name)
            return None
        return entry


def _check_cached(video: SampledVideo, meta: dict) -> None:
    frames, timestamps, indices = video.frames, video.timestamps, video.indices
    if meta.get("cache_version") != CACHE_VERSION:
        raise ValueError(f"cache version {meta.get('cache_version')!r}, expected {CACHE_VERSION}")
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
        raise ValueError(f"frames of dtype {frames.dtype} and shape {frames.shape}")
    count = frames.shape[0]
    if timestamps.dtype != np.float64 or timestamps.shape != (count,):
        raise ValueError(f"timestamps of dtype {timestamps.dtype} and shape {timestamps.shape}")
    if indices.dtype != np.int64 or indices.shape != (count,):
        raise ValueError(f"indices of dtype {indices.dtype} and shape {indices.shape}")


def load_video(
    path: str | os.PathLike,
    sampling: FrameSampling | None = None,
    cache: FrameCache | None = None,
    *,
    threads: int = 0,
) -> SampledVideo:
    """The frames of the video at `path` under `sampling`: from `cache` when it has them, else decoded (and cached).

    The one entry point for frames. Without a cache, this is `decode_video`.

    Raises:
        VideoError: as `decode_video`.
    """
    sampling = sampling or FrameSampling()
    if cache is None:
        return decode_video(path, sampling, threads=threads)
    _check_file(os.fspath(path))
    key = cache.key(path, sampling)
    cached = cache.load(key)
    if cached is not None:
        cached.path = os.fspath(path)  # the same file (the key holds its absolute path), named as the caller names it
        return cached
    video = decode_video(path, sampling, threads=threads)
    cache.store(key, video)
    return video


# ----------------------------------------------------------------------------------------------------------
# Processor input


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
