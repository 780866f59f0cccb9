"""PyAV decoding: the frames a `FrameSampling` asks for, resized to the budget size, with their real timestamps.

`decode_video(path, sampling)` is the decoder; callers go through `temporal_rl.video.cache.load_video`, which adds
the frame cache.

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

This module owns decoding. The budget rules are `temporal_rl.video.sampling`'s.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import queue
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from av.sidedata.sidedata import Type as SideDataType
from av.video.reformatter import VideoReformatter

from temporal_rl.video.sampling import (
    FrameSampling,
    SampledVideo,
    frame_size,
    sample_frame_count,
    sample_frame_indices,
)

logger = logging.getLogger(__name__)

# swscale's bicubic widens its kernel when shrinking, so it antialiases like qwen-vl-utils'
# torchvision bicubic+antialias resize.
RESIZE_INTERPOLATION = "BICUBIC"


class VideoError(RuntimeError):
    """A video cannot be loaded. The message names the file and what is wrong with it."""

    def __init__(self, path: str | os.PathLike, message: str):
        self.path, self.reason = os.fspath(path), message
        super().__init__(f"{self.path}: {message}")


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


def display_matrix_quarter_turns(matrix: tuple[int, ...], path: str) -> int:
    """Counter-clockwise quarter turns (0-3) that make a stored picture upright, from a display matrix.

    The matrix is FFmpeg's 3x3 row-major int32 one (16.16 fixed point in the 2x2 part [[a, b], [c, d]] read
    here). The turn is `av_display_rotation_get`'s, -atan2(b, a) in degrees (what `VideoFrame.rotation` gives);
    a picture turned by t degrees counter-clockwise is upright (FFmpeg's `autorotate`) and t / 90 mod 4 is the
    count `numpy.rot90` takes. A mirrored picture (negative determinant) or a turn that is not a multiple of 90
    degrees is refused with the reason.

    Example:
        ```python
        >>> display_matrix_quarter_turns((0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30), "v.mp4")  # phone portrait
        3
        >>> display_matrix_quarter_turns((65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30), "v.mp4")
        0
        ```
    """
    a, b, c, d = (value / 65536 for value in (matrix[0], matrix[1], matrix[3], matrix[4]))
    if a * d - b * c < 0:
        raise VideoError(path, "the display matrix mirrors the picture; mirrored videos are not supported")
    degrees = -math.degrees(math.atan2(b, a))
    quarters = round(degrees / 90)
    if abs(degrees - 90 * quarters) > 1:
        raise VideoError(path, f"the display matrix turns the picture by {degrees:.1f} degrees, not a multiple of 90")
    return quarters % 4


def quarter_turns(frame, path: str) -> int:
    """Counter-clockwise quarter turns (0-3) that make `frame` upright, from its display matrix (0 without one)."""
    for side_data in frame.side_data:
        if side_data.type == SideDataType.DISPLAYMATRIX:
            return display_matrix_quarter_turns(struct.unpack("<9i", bytes(side_data)), path)
    return 0


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
        self.quarters = 0
        self._lock = threading.Lock()

    def keep(self, slot: int, frame, pts: int, reformatter: VideoReformatter) -> None:
        """Convert `frame` into row `slot`, unless a frame is there already (two decoders passed it).

        The frame is turned upright as its display matrix says (`quarter_turns`): the budget size is that of the
        upright picture, the stored picture is resized to it turned back, then turned.
        """
        with self._lock:
            if self.filled[slot]:
                return
            self.filled[slot] = True
            if self.frames is None:
                self.quarters = quarter_turns(frame, self.path)
                upright = (frame.width, frame.height) if self.quarters % 2 else (frame.height, frame.width)
                try:
                    height, width = frame_size(*upright, self.num_frames, self.sampling)
                except ValueError as err:
                    raise VideoError(self.path, str(err)) from None
                self.frames = np.empty((self.num_frames, height, width, 3), dtype=np.uint8)
            self.kept += 1
        height, width = self.frames.shape[1:3]
        if self.quarters % 2:
            height, width = width, height
        rgb = reformatter.reformat(
            frame,
            width=width,
            height=height,
            format="rgb24",
            interpolation=RESIZE_INTERPOLATION,
            threads=self.threads,
        )
        self.frames[slot] = np.rot90(rgb.to_ndarray(), self.quarters) if self.quarters else rgb.to_ndarray()
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
