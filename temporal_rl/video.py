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

Frame i of a video is the i-th frame a decoder hands out reading the stream from the start, i.e. in
presentation order. Decoding first demuxes the stream once (packets only, no decoding) to rank the packets
by pts, which gives each packet's frame index, and to find the keyframes. In MP4/MOV and Matroska/WebM, with
a pts on every packet, the frames wanted are then grouped by the keyframe they must be decoded from (the
last one shown at or before them); a decoder seeks to that keyframe only when it lies past what it has
decoded, so GOPs holding no wanted frame are never decoded, and it tells H.264/VP8/VP9 decoders to skip
non-reference frames that are not wanted. Groups are shared by up to one decoder per core. Every frame
a decoder hands out is checked against the packet ranks; any departure (and any other container, or
packets that do not match the container's frame count) means one sequential pass through the stream
instead, which keeps the wanted frames and stops after the last one. Both ways give the same frames,
pixel for pixel, and the same timestamps (tests/test_video_seek.py). Frames are resized by swscale while
converting to RGB, so a full-size RGB frame is never materialised.

This module owns decoding, sampling, frame sizes and the frame cache. It does not build prompts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import queue
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import numpy as np
from av.video.reformatter import VideoReformatter

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


# Containers whose packets carry presentation timestamps and whose demuxers seek to a keyframe given its pts
# (test_video_seek.py checks each). Other containers (AVI, MPEG-TS, raw streams) decode sequentially.
SEEKABLE_FORMATS = frozenset({"mov", "mp4", "matroska", "webm"})
# Decoders that read `skip_frame` at every packet and skip under "NONREF" only frames that no other frame
# references, so the frames they do decode are unchanged.
NONREF_SKIP_CODECS = frozenset({"h264", "vp8", "vp9"})
# The most decoders that work on one video at once (each on its own GOPs).
MAX_DECODE_WORKERS = 8


def _configure_threads(stream, threads: int) -> None:
    if threads != 1:
        stream.thread_type = "AUTO"
    stream.codec_context.thread_count = threads


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _is_seekable_format(container) -> bool:
    return bool(set(container.format.name.split(",")) & SEEKABLE_FORMATS)


@dataclass(frozen=True)
class _PacketIndex:
    """What one demuxing pass over the video stream (no decoding) says about its frames.

    Attributes:
        count: packets that carry data: one per frame (the frame count when the container does not say).
        pts: int64 (count,) the packets' presentation timestamps in demux (= decode) order.
        position: int64 (count,) each packet's rank by pts: the index its frame has in a sequential decode,
            which hands out frames in presentation order.
        keyframes: int64 (K,) demux indices of the keyframe packets.
        problem: why the index cannot be used to seek (missing or repeated pts, ...); None when it can.
            `pts`, `position` and `keyframes` are empty then.
        start_pts: the pts of time 0: the stream's start time, else the first frame's pts.
        time_base: seconds per pts unit.
        codec: the name of the stream's decoder.
    """

    count: int
    pts: np.ndarray
    position: np.ndarray
    keyframes: np.ndarray
    problem: str | None = None
    start_pts: int = 0
    time_base: Fraction = Fraction(1)
    codec: str = ""


def _index_packets(pts: list[int | None], keyframe: list[bool], problem: str | None = None) -> _PacketIndex:
    """The `_PacketIndex` of packets with these pts and keyframe flags, listed in demux order.

    Seeking needs every packet to have its own pts, the first packet to be a keyframe that is also the first
    frame shown, and keyframes to be shown in the order they are decoded. Anything else (or a `problem`
    found while demuxing) gives an index with only a count.
    """
    count = len(pts)
    if problem is None:
        if count == 0:
            problem = "the stream has no packets"
        elif any(value is None for value in pts):
            problem = "a packet has no pts"
        elif len(set(pts)) != count:
            problem = "two packets share a pts"
        elif not keyframe[0]:
            problem = "the first packet is not a keyframe"
    if problem is None:
        demux_pts = np.asarray(pts, dtype=np.int64)
        position = np.empty(count, dtype=np.int64)
        position[np.argsort(demux_pts)] = np.arange(count)
        keyframes = np.flatnonzero(np.asarray(keyframe, dtype=bool))
        if position[0] != 0:
            problem = "frames are shown before the first keyframe"
        elif np.any(np.diff(position[keyframes]) <= 0):
            problem = "keyframes are shown in another order than they are decoded"
        else:
            return _PacketIndex(count, demux_pts, position, keyframes, start_pts=int(demux_pts.min()))
    empty = np.zeros(0, dtype=np.int64)
    return _PacketIndex(count, empty, empty, empty, problem)


def _scan_packets(container, stream, path: str) -> _PacketIndex:
    """Demux the video stream of an open container once (no decoding) and index its packets."""
    pts: list[int | None] = []
    keyframe: list[bool] = []
    problem = None
    if not _is_seekable_format(container):
        problem = f"seeking is not trusted in {container.format.name} files"
    elif stream.time_base is None:
        problem = "the stream has no time base"
    try:
        for packet in container.demux(stream):
            if packet.size:
                pts.append(packet.pts)
                keyframe.append(packet.is_keyframe)
                if packet.is_discard:
                    problem = problem or "the container discards some packets (edit list)"
    except av.error.FFmpegError as err:
        logger.warning("%s: demuxing stopped after %d packets (%s)", path, len(pts), _ffmpeg_reason(err))
        problem = problem or "demuxing failed"
    index = _index_packets(pts, keyframe, problem)
    if index.problem is not None:
        return index
    start_pts = stream.start_time if stream.start_time is not None else index.start_pts
    return dataclasses.replace(index, start_pts=start_pts, time_base=stream.time_base, codec=stream.codec_context.name)


@dataclass
class _Decoded:
    """What a decoding pass returns.

    Attributes:
        frames: uint8 (kept, H, W, 3) the wanted frames found, resized.
        timestamps: float64 (kept,) their times in seconds.
        kept: wanted frames found.
        decoded: frames the decoder handed out in the pass that produced `frames` (a sequential pass that
            runs out early counts the frames that do decode).
        abandoned: frames decoded by a seeking pass that gave way to the sequential one.
    """

    frames: np.ndarray
    timestamps: np.ndarray
    kept: int
    decoded: int
    abandoned: int = 0


class _Buffer:
    """The wanted frames as they arrive, converted to RGB and resized into one (N, H, W, 3) array, with their pts.

    Decoders in several threads may fill it, each with its own `VideoReformatter`. One reformatter (one
    swscale context) serves all of a decoder's frames: `VideoFrame.to_ndarray(width=...)` builds a new one
    per frame, which cost half the conversion time of a 720p frame; the pixels are the same.
    """

    def __init__(self, path: str, num_frames: int, sampling: FrameSampling, threads: int):
        self.path, self.num_frames, self.sampling, self.threads = path, num_frames, sampling, threads
        self.frames: np.ndarray | None = None
        self.pts = np.zeros(num_frames, dtype=np.int64)
        self.filled = np.zeros(num_frames, dtype=bool)
        self.kept = 0
        self._lock = threading.Lock()

    def keep(self, slot: int, frame, pts: int, reformatter: VideoReformatter) -> None:
        """Convert `frame` into row `slot`, unless a frame is there already (two decoders passed it)."""
        with self._lock:
            if self.filled[slot]:
                return
            self.filled[slot] = True
            if self.frames is None:
                try:
                    height, width = frame_size(frame.height, frame.width, self.num_frames, self.sampling)
                except ValueError as err:
                    raise VideoError(self.path, str(err)) from None
                self.frames = np.empty((self.num_frames, height, width, 3), dtype=np.uint8)
            self.kept += 1
        rgb = reformatter.reformat(
            frame,
            width=self.frames.shape[2],
            height=self.frames.shape[1],
            format="rgb24",
            interpolation=RESIZE_INTERPOLATION,
            threads=self.threads,
        )
        self.frames[slot] = rgb.to_ndarray()
        self.pts[slot] = pts

    def result(self, timestamps: np.ndarray, decoded: int) -> _Decoded:
        """The frames kept (the first `kept` rows) with their `timestamps`."""
        frames = self.frames if self.frames is not None else np.empty((0, 0, 0, 3), dtype=np.uint8)
        return _Decoded(frames[: self.kept], timestamps[: self.kept].astype(np.float64), self.kept, decoded)


def _decode_sequential(path: str, indices: np.ndarray, sampling: FrameSampling, threads: int) -> _Decoded:
    """One sequential pass: decode every frame up to the last wanted index and keep the wanted ones, resized.

    Frame i is the i-th frame the decoder hands out. Needs nothing from the container but the frames.
    """
    buffer = _Buffer(path, len(indices), sampling, threads)
    reformatter = VideoReformatter()
    decoded = 0
    with _open_container(path) as container:
        stream = _video_stream(container, path)
        _configure_threads(stream, threads)
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
                if index != indices[buffer.kept]:
                    continue
                buffer.keep(buffer.kept, frame, frame.pts if pts_valid else 0, reformatter)
                if buffer.kept == len(indices):
                    break
        except av.error.FFmpegError as err:
            logger.warning("%s: decoding stopped after %d frames (%s)", path, decoded, _ffmpeg_reason(err))
    if pts_valid and start_pts is not None:
        timestamps = (buffer.pts - start_pts) * float(time_base)
    else:
        # AVI with B-frames hands out decode-order pts; only the nominal frame times are left.
        logger.warning("%s: frame timestamps are missing or out of order; using frame index / fps", path)
        timestamps = indices / fps
    return buffer.result(timestamps, decoded)


class _NotAsIndexed(Exception):
    """The decoder's output departed from the packet index; the sequential pass takes over.

    Attributes:
        decoded: frames decoded before the departure was seen.
    """

    def __init__(self, message: str, decoded: int = 0):
        super().__init__(message)
        self.decoded = decoded


@dataclass(frozen=True)
class _SeekPlan:
    """The wanted frames of a seeking decode and what is known about them before decoding.

    Attributes:
        index: the stream's packet index.
        indices: int64 (N,) wanted positions, increasing.
        slot_of_position: each wanted position's slot in `indices`.
        keyframe: int64 (N,) per wanted frame, the demux index of the keyframe to start from: the last
            keyframe shown at or before it.
        skippable: bool (count,) per position: a frame the decoder may skip (not wanted, not a keyframe,
            and the codec skips only non-reference frames).
        position_of_pts: each packet's position, by pts.
    """

    index: _PacketIndex
    indices: np.ndarray
    slot_of_position: dict[int, int]
    keyframe: np.ndarray
    skippable: np.ndarray
    position_of_pts: dict[int, int]

    @classmethod
    def build(cls, index: _PacketIndex, indices: np.ndarray, can_skip: bool) -> _SeekPlan:
        shown = np.searchsorted(index.position[index.keyframes], indices, side="right") - 1
        skippable = np.zeros(index.count, dtype=bool)
        if can_skip:
            skippable[:] = True
            skippable[indices] = False
            skippable[index.position[index.keyframes]] = False
        position_of_pts = dict(zip(index.pts.tolist(), index.position.tolist(), strict=True))
        slot_of_position = {position: slot for slot, position in enumerate(indices.tolist())}
        return cls(index, indices, slot_of_position, index.keyframes[shown], skippable, position_of_pts)

    def groups(self) -> list[range]:
        """Runs of wanted frames (slots into `indices`) that start from the same keyframe, in order."""
        bounds = [0, *(np.flatnonzero(np.diff(self.keyframe)) + 1).tolist(), len(self.indices)]
        return [range(start, stop) for start, stop in zip(bounds[:-1], bounds[1:], strict=True)]


class _RunDecoder:
    """One container and decoder working through groups of wanted frames of a `_SeekPlan`, in order.

    For a group whose keyframe lies past the packets already sent, it seeks there; then it sends packets on,
    telling the decoder to skip the frames the plan calls skippable, until the group's last frame is out.
    Every wanted frame that comes out is kept, whichever group it belongs to.
    Frames are matched to positions by pts, and every frame the decoder hands out is checked: since the last
    seek, each must be the next position in presentation order after the one before (the first: after the
    keyframe's predecessor), leaving out only skippable positions; frames shown before the keyframe (the
    leading frames of an open GOP) are passed over. So each run is numbered as the sequential pass numbers it.
    """

    def __init__(self, container, path: str, plan: _SeekPlan, buffer: _Buffer, threads: int):
        self.container, self.plan, self.buffer = container, plan, buffer
        self.stream = _video_stream(container, path)
        _configure_threads(self.stream, threads)
        self.codec = self.stream.codec_context
        self.reformatter = VideoReformatter()
        self.packets = None
        self.sent = -1  # demux index of the last packet sent to the decoder
        self.run_start = self.last = -1  # positions of the keyframe of this run and of the last frame out
        self.skipping = False
        self.decoded = 0

    def close(self) -> None:
        if self.packets is not None:
            self.packets.close()
            self.packets = None

    def decode(self, slots: range) -> None:
        """Decode the wanted frames at `slots` of the plan into the buffer.

        Raises:
            _NotAsIndexed: a packet or a frame is not where the index puts it, or a seek lands elsewhere.
            av.error.FFmpegError: FFmpeg failed.
        """
        plan, index = self.plan, self.plan.index
        key, target = int(plan.keyframe[slots[0]]), int(plan.indices[slots[-1]])
        if self.packets is None or key > self.sent + 1:
            self.close()
            if self.sent >= 0 or key > 0:
                self.container.seek(int(index.pts[key]), stream=self.stream, backward=True)
            self.packets = self.container.demux(self.stream)
            self.sent, self.run_start = key - 1, int(index.position[key])
            self.last = self.run_start - 1
        while self.last < target:
            self._send_next(target)

    def _send_next(self, target: int) -> None:
        plan, index = self.plan, self.plan.index
        packet = next(self.packets, None)
        if packet is None:
            raise _NotAsIndexed(f"the packets ran out before frame {target}", self.decoded)
        if packet.size:
            self.sent += 1
            if self.sent >= index.count or packet.pts != index.pts[self.sent]:
                raise _NotAsIndexed(f"packet {self.sent} (pts {packet.pts}) is not the indexed one", self.decoded)
            skip = bool(plan.skippable[index.position[self.sent]])
            if skip != self.skipping:
                self.codec.skip_frame = "NONREF" if skip else "DEFAULT"
                self.skipping = skip
        for frame in self.codec.decode(packet):  # a packet without data is the end: it drains the decoder
            self.decoded += 1
            position = plan.position_of_pts.get(frame.pts)
            if position is None:
                raise _NotAsIndexed(f"a frame has pts {frame.pts}, which no packet has", self.decoded)
            if position < self.run_start:
                # Shown before the keyframe: a leading frame of an open GOP, decoded without its references.
                # FFmpeg's H.264 and HEVC decoders drop these after a seek; another decoder may hand them out.
                continue
            if position <= self.last or not plan.skippable[self.last + 1 : position].all():
                raise _NotAsIndexed(f"frame {position} came right after frame {self.last}", self.decoded)
            self.last = position
            slot = plan.slot_of_position.get(position)
            if slot is not None:
                self.buffer.keep(slot, frame, int(frame.pts), self.reformatter)


def _decode_groups(path: str, plan: _SeekPlan, buffer: _Buffer, groups, threads: int, stop: threading.Event) -> int:
    """Open the video and decode groups of the plan, taken from `groups` (a queue shared by workers) in turn.

    Returns the frames decoded. Raises as `_RunDecoder.decode`, with FFmpeg errors as `_NotAsIndexed`.
    """
    decoder = None
    try:
        with _open_container(path) as container:
            decoder = _RunDecoder(container, path, plan, buffer, threads)
            try:
                while not stop.is_set():
                    try:
                        slots = groups.get_nowait()
                    except queue.Empty:
                        break
                    decoder.decode(slots)
            finally:
                decoder.close()
    except av.error.FFmpegError as err:
        stop.set()
        raise _NotAsIndexed(f"FFmpeg failed ({_ffmpeg_reason(err)})", decoder.decoded if decoder else 0) from None
    except BaseException:
        stop.set()
        raise
    return decoder.decoded


def _decode_seeking(
    path: str, indices: np.ndarray, sampling: FrameSampling, threads: int, index: _PacketIndex
) -> _Decoded:
    """The frames at `indices` (increasing positions of `index`), decoding only the GOPs that hold them.

    The groups of wanted frames that share a keyframe go to up to `threads` decoders (0: one per CPU core),
    each single-threaded in its own thread on its own container; with one decoder, it gets `threads` FFmpeg
    threads instead. Each decoder takes the next group when done with one.

    Raises:
        _NotAsIndexed: a decoder's output departed from the index (see `_RunDecoder`) or FFmpeg failed; the
            caller falls back to the sequential pass.
    """
    plan = _SeekPlan.build(index, indices, can_skip=index.codec in NONREF_SKIP_CODECS)
    groups = plan.groups()
    workers = min(threads or _available_cpus(), len(groups), MAX_DECODE_WORKERS)
    buffer = _Buffer(path, len(indices), sampling, threads if workers == 1 else 1)
    work: queue.SimpleQueue[range] = queue.SimpleQueue()
    for slots in groups:
        work.put(slots)
    stop = threading.Event()
    decoder_threads = threads if workers == 1 else 1
    if workers == 1:
        decoded = _decode_groups(path, plan, buffer, work, decoder_threads, stop)
    else:
        with ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:
            futures = [
                pool.submit(_decode_groups, path, plan, buffer, work, decoder_threads, stop) for _ in range(workers)
            ]
        counts, errors = [], []
        for future in futures:
            error = future.exception()
            if error is None:
                counts.append(future.result())
            elif isinstance(error, _NotAsIndexed):
                counts.append(error.decoded)
                errors.append(error)
            else:
                raise error
        decoded = sum(counts)
        if errors:
            raise _NotAsIndexed(str(errors[0]), decoded)
    if buffer.kept != len(indices):  # cannot happen: each group ends on its last wanted frame
        raise _NotAsIndexed(f"{len(indices) - buffer.kept} wanted frames did not come out", decoded)
    return buffer.result((buffer.pts - index.start_pts) * float(index.time_base), decoded)


def _decode_frames(
    path: str, indices: np.ndarray, sampling: FrameSampling, threads: int, index: _PacketIndex | None = None
) -> _Decoded:
    """The frames at `indices` (strictly increasing), resized: by seeking when `index` allows, else sequentially.

    Both ways give the same frames and timestamps. In the seeking pass, GOPs seeked past and skipped
    non-reference frames are never decoded, so they do not count in `decoded`.
    """
    if index is not None and index.problem is None and indices[-1] < index.count:
        try:
            return _decode_seeking(path, indices, sampling, threads, index)
        except _NotAsIndexed as err:
            logger.info("%s: %s; decoding sequentially instead", path, err)
            result = _decode_sequential(path, indices, sampling, threads)
            result.abandoned = err.decoded
            return result
    return _decode_sequential(path, indices, sampling, threads)


def decode_video(path: str | os.PathLike, sampling: FrameSampling | None = None, *, threads: int = 0) -> SampledVideo:
    """Decode the frames `sampling` asks for from the video at `path`, resized to the frame budget.

    The frame count comes from the container (`stream.frames`) or, when it does not say, from counting
    packets. When fewer frames decode than that count, the frames are re-picked from the count that did
    decode (a second, sequential pass) and a warning is logged.

    Args:
        path: the video file.
        sampling: the frame budget; `FrameSampling()` (Qwen's defaults) when None.
        threads: decoding threads. 1 decodes single-threaded (one per DataLoader worker). Above 1, that many
            decoders share the GOPs to decode (each single-threaded); 0 means one per CPU core. Where there
            is one GOP to decode, or the file is decoded sequentially, the count goes to FFmpeg's decoder
            instead (0: FFmpeg chooses).

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
        scan = _is_seekable_format(container) or claimed_frames <= 0
        index = _scan_packets(container, stream, path) if scan else None
    total_frames = claimed_frames if claimed_frames > 0 else index.count
    if total_frames == 0:
        raise VideoError(path, "the video stream has no frames (zero-length video)")
    if index is not None and index.count != total_frames:
        index = None  # the container and its packets disagree: let the sequential pass find what decodes

    decoded_frames = 0
    for attempt in range(2):
        try:
            num_frames = sample_frame_count(total_frames, fps, sampling)
        except ValueError as err:
            raise VideoError(path, str(err)) from None
        indices = sample_frame_indices(total_frames, num_frames)
        result = _decode_frames(path, indices, sampling, threads, index if attempt == 0 else None)
        decoded_frames += result.decoded + result.abandoned
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
