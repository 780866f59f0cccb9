"""Video pipeline: Qwen's frame budget, PyAV decoding checked by pixels, the frame cache, errors, processor input.

The clips are written here with PyAV. Frame i of a clip carries its own index in its colour (red encodes
i % 16, green i // 16), so a decoded frame can be traced back to its source frame.
"""

import logging
import os
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from temporal_rl.video import decode as video_module
from temporal_rl.video.cache import CACHE_ENV_VAR, FrameCache, load_video
from temporal_rl.video.decode import VideoError, decode_video
from temporal_rl.video.inputs import processor_video_kwargs
from temporal_rl.video.sampling import (
    FrameSampling,
    SampledVideo,
    frame_size,
    sample_frame_count,
    sample_frame_indices,
)

# Small frames for most tests: Qwen's default min_pixels would upscale a 112 px clip to 336 px.
SMALL = FrameSampling(min_pixels=4 * 28 * 28)
CLIP_FRAMES = 40
CLIP_FPS = 2
CLIP_SIDE = 112


def encode_index(index: int, height: int, width: int) -> np.ndarray:
    frame = np.empty((height, width, 3), dtype=np.uint8)
    frame[..., 0] = 20 + 14 * (index % 16)
    frame[..., 1] = 20 + 14 * (index // 16 % 16)
    frame[..., 2] = 128
    return frame


def decode_index(frame: np.ndarray) -> int:
    """The source index a decoded frame carries, read from the bottom half (the top may hold noise)."""
    bottom = frame[frame.shape[0] // 2 :].reshape(-1, 3).mean(axis=0)
    return int(round((bottom[0] - 20) / 14)) + 16 * int(round((bottom[1] - 20) / 14))


def write_clip(
    path: Path,
    num_frames: int = CLIP_FRAMES,
    fps: int = CLIP_FPS,
    height: int = CLIP_SIDE,
    width: int = CLIP_SIDE,
    options: dict | None = None,
    container_options: dict | None = None,
    noisy_top: bool = False,
) -> Path:
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = options or {"crf": "18", "preset": "veryfast", "tune": "zerolatency"}
        for index in range(num_frames):
            image = encode_index(index, height, width)
            if noisy_top:  # incompressible pixels, so the file is large enough to cut in the middle of the frames
                image[: height // 2] = rng.integers(0, 256, (height // 2, width, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clips")
    bframes = {"crf": "18", "preset": "veryfast", "bf": "3", "g": "12"}
    clips = {
        "mp4": write_clip(root / "clip.mp4"),
        # Matroska does not store a frame count: the count comes from the packets.
        "mkv": write_clip(root / "clip.mkv"),
        "bframes_mp4": write_clip(root / "bframes.mp4", num_frames=60, fps=25, height=56, width=84, options=bframes),
        "bframes_avi": write_clip(root / "bframes.avi", num_frames=60, fps=25, height=56, width=84, options=bframes),
    }
    # moov atom first, then cut in half: the header claims 40 frames, about half of them decode.
    whole = write_clip(root / "faststart.mp4", container_options={"movflags": "faststart"}, noisy_top=True)
    clips["truncated"] = root / "truncated.mp4"
    clips["truncated"].write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    return clips


@pytest.fixture(scope="module")
def qwen_vision():
    """qwen-vl-utils (a dev dependency), the reference for the budget rules."""
    return pytest.importorskip("qwen_vl_utils.vision_process")


def assert_frames_are_sources(video: SampledVideo) -> None:
    assert [decode_index(frame) for frame in video.frames] == video.indices.tolist()


# ----------------------------------------------------------------------------------------------------------
# Budget rules against qwen-vl-utils


@pytest.mark.parametrize("video_fps", [1.0, 2.0, 23.976, 25.0, 30.0, 59.94])
def test_frame_count_matches_qwen_smart_nframes(qwen_vision, video_fps):
    for total_frames in [2, 3, 4, 5, 7, 10, 31, 60, 61, 100, 301, 1799, 1800, 9000, 54000]:
        for fps, min_frames, max_frames in [(2.0, 4, 768), (1.0, 4, 768), (0.5, 3, 64), (4.0, 8, 33), (2.0, 1, 2)]:
            sampling = FrameSampling(fps=fps, min_frames=min_frames, max_frames=max_frames)
            ours = sample_frame_count(total_frames, video_fps, sampling)
            reference = qwen_vision.smart_nframes(
                {"fps": fps, "min_frames": min_frames, "max_frames": max_frames},
                total_frames=total_frames,
                video_fps=video_fps,
            )
            assert ours == reference, (total_frames, video_fps, sampling)
        for num_frames in [2, 8, 32, 128]:
            if num_frames <= total_frames:
                reference = qwen_vision.smart_nframes({"nframes": num_frames}, total_frames, video_fps)
                assert sample_frame_count(total_frames, video_fps, FrameSampling(num_frames=num_frames)) == reference


def test_frame_count_edge_cases():
    # qwen-vl-utils raises when a fixed count exceeds the video; we clamp to the video's even frame count.
    assert sample_frame_count(37, 30.0, FrameSampling(num_frames=128)) == 36
    with pytest.raises(ValueError, match="1 frame"):
        sample_frame_count(1, 30.0, FrameSampling())
    with pytest.raises(ValueError, match="frame rate"):
        sample_frame_count(100, 0.0, FrameSampling())


def test_frame_indices_match_qwen_linspace():
    for total_frames in [2, 3, 10, 40, 99, 1800, 7201]:
        for num_frames in [2, 4, 8, 20, 64, 128, 768]:
            if num_frames <= total_frames:
                reference = torch.linspace(0, total_frames - 1, num_frames).round().long().numpy()
                ours = sample_frame_indices(total_frames, num_frames)
                assert ours.dtype == np.int64
                np.testing.assert_array_equal(ours, reference)


def qwen_frame_size(qwen_vision, height, width, num_frames, min_pixels, max_pixels, total_pixels):
    """qwen-vl-utils' fetch_video budget, restated from its source for sizes it never decodes."""
    factor = 28
    share = total_pixels / num_frames * qwen_vision.FRAME_FACTOR
    cap = max(min(qwen_vision.VIDEO_MAX_TOKEN_NUM * factor * factor, share), int(min_pixels * 1.05))
    return qwen_vision.smart_resize(
        height, width, factor=factor, min_pixels=min_pixels, max_pixels=min(max_pixels, cap)
    )


def test_frame_size_matches_qwen_budget(qwen_vision):
    sizes = [
        (56, 56),
        (112, 112),
        (144, 176),
        (240, 320),
        (272, 640),
        (360, 640),
        (480, 854),
        (720, 1280),
        (1080, 1920),
        (1920, 1080),
        (2160, 3840),
        (100, 3000),
    ]
    pixel_bounds = [
        (128 * 784, 768 * 784),
        (4 * 784, 768 * 784),
        (4 * 784, 64 * 784),
        (256 * 784, 512 * 784),
        (3136, 600 * 784),
    ]
    zero_sides = 0
    for height, width in sizes:
        for min_pixels, max_pixels in pixel_bounds:
            for total_pixels in [int(128000 * 784 * 0.9), 24576 * 784, 2048 * 784]:
                for num_frames in [2, 4, 16, 40, 128, 768]:
                    sampling = FrameSampling(min_pixels=min_pixels, max_pixels=max_pixels, total_pixels=total_pixels)
                    ours = frame_size(height, width, num_frames, sampling)
                    reference = qwen_frame_size(
                        qwen_vision, height, width, num_frames, min_pixels, max_pixels, total_pixels
                    )
                    if min(reference) == 0:  # qwen-vl-utils rounds a thin side to 0 px; we keep one patch row
                        assert ours == tuple(max(28, side) for side in reference)
                        zero_sides += 1
                        continue
                    assert ours == reference, (height, width, num_frames, sampling)
                    assert ours[0] % 28 == 0 and ours[1] % 28 == 0
    assert zero_sides  # the 100 x 3000 frame hits that difference


def test_frame_size_matches_qwen_fetch_video_itself(qwen_vision):
    """The restated budget agrees with fetch_video run on frames whose per-image resize is a no-op."""
    frames = [np.full((224, 336, 3), 100, dtype=np.uint8)] * 40
    options = {"min_pixels": 4 * 784, "max_pixels": 128 * 784, "total_pixels": 600 * 784}
    from PIL import Image

    video = qwen_vision.fetch_video({"video": [Image.fromarray(frame) for frame in frames], **options})
    sampling = FrameSampling(**options)
    assert tuple(video.shape[-2:]) == frame_size(224, 336, 40, sampling) != (224, 336)


def test_max_pixels_above_qwen_constant_is_honoured():
    """Deliberate: qwen-vl-utils silently caps a frame at 768 tokens; we honour a larger max_pixels."""
    sampling = FrameSampling(max_pixels=1024 * 784)
    height, width = frame_size(1080, 1920, 8, sampling)
    assert 768 * 784 < height * width <= 1024 * 784


def test_sampling_validation_says_how_to_fix():
    with pytest.raises(ValueError, match="use 128"):
        FrameSampling(num_frames=127)
    with pytest.raises(ValueError, match="min_pixels=.* > max_pixels"):
        FrameSampling(min_pixels=1000 * 784, max_pixels=100 * 784)
    with pytest.raises(ValueError, match="fps must be a positive"):
        FrameSampling(fps=0)
    with pytest.raises(ValueError, match="min_frames=.* > max_frames"):
        FrameSampling(min_frames=10, max_frames=8)
    with pytest.raises(ValueError, match="positive integer"):
        FrameSampling(max_pixels=1.5e6)
    sampling = FrameSampling(num_frames=128, min_pixels=4 * 784)
    assert FrameSampling(**sampling.to_dict()) == sampling
    assert FrameSampling(fps=2).to_dict() == FrameSampling(fps=2.0).to_dict()  # one cache key
    assert FrameSampling(num_frames=np.int64(8)).to_dict()["num_frames"].__class__ is int
    with pytest.raises(AttributeError):
        sampling.fps = 1.0


# ----------------------------------------------------------------------------------------------------------
# Decoding


def test_decoded_frames_are_the_sampled_source_frames(clips):
    video = decode_video(clips["mp4"], FrameSampling(fps=1.0, min_pixels=4 * 784))  # a 2 fps source at 1 fps
    assert video.num_frames == 20 and video.num_frames % 2 == 0
    np.testing.assert_array_equal(video.indices, sample_frame_indices(CLIP_FRAMES, 20))
    assert_frames_are_sources(video)
    np.testing.assert_allclose(video.timestamps, video.indices / CLIP_FPS)
    assert video.timestamps.dtype == np.float64 and video.indices.dtype == np.int64
    assert video.frames.dtype == np.uint8 and video.frames.shape == (20, 112, 112, 3)
    assert video.source_fps == CLIP_FPS and video.total_frames == CLIP_FRAMES
    assert video.duration == pytest.approx(CLIP_FRAMES / CLIP_FPS)
    assert video.sample_fps == pytest.approx(1.0)
    assert video.path == str(clips["mp4"])


def test_default_budget_size_and_fixed_frame_count(clips):
    video = decode_video(clips["mp4"], FrameSampling(num_frames=8))
    np.testing.assert_array_equal(video.indices, [0, 6, 11, 17, 22, 28, 33, 39])
    assert_frames_are_sources(video)
    # Qwen's default min_pixels upscales the 112 px clip; sides stay multiples of 28 within the budget.
    height, width = video.frames.shape[1:3]
    assert (height, width) == frame_size(CLIP_SIDE, CLIP_SIDE, 8, FrameSampling()) == (336, 336)
    assert FrameSampling().min_pixels <= height * width <= FrameSampling().max_pixels
    assert video.sample_fps == pytest.approx(8 / CLIP_FRAMES * CLIP_FPS)


def test_timestamps_come_from_presentation_times(clips):
    """B-frames reorder decoding; the frames still come out in presentation order with their pts."""
    video = decode_video(clips["bframes_mp4"], FrameSampling(fps=5.0, min_pixels=4 * 784))
    assert video.num_frames == 12
    assert_frames_are_sources(video)
    np.testing.assert_allclose(video.timestamps, video.indices / 25)
    assert video.frames.shape[1:3] == (56, 84)


def test_out_of_order_timestamps_fall_back_to_frame_times(clips, caplog):
    """AVI stores no presentation times; with B-frames PyAV hands out decode-order pts."""
    with caplog.at_level(logging.WARNING, logger="temporal_rl.video"):
        video = decode_video(clips["bframes_avi"], FrameSampling(fps=5.0, min_pixels=4 * 784))
    assert_frames_are_sources(video)
    np.testing.assert_allclose(video.timestamps, video.indices / 25)
    assert "out of order" in caplog.text


def test_frame_count_from_packets_when_container_has_none(clips):
    with av.open(str(clips["mkv"])) as container:
        assert container.streams.video[0].frames == 0
    video = decode_video(clips["mkv"], SMALL)
    assert video.total_frames == CLIP_FRAMES and video.num_frames == CLIP_FRAMES
    assert_frames_are_sources(video)
    np.testing.assert_allclose(video.timestamps, video.indices / CLIP_FPS)


class SeekCountingContainer:
    """Wraps a PyAV container and counts seek calls (PyAV's classes cannot be patched)."""

    seeks = 0

    def __init__(self, container):
        self._container = container

    def __getattr__(self, name):
        return getattr(self._container, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._container.__exit__(*exc)

    def seek(self, *args, **kwargs):
        SeekCountingContainer.seeks += 1
        return self._container.seek(*args, **kwargs)


def test_sequential_pass_stops_after_the_last_wanted_frame_and_seeking_skips_gops(clips, monkeypatch):
    real_open = av.open
    monkeypatch.setattr(video_module.av, "open", lambda *a, **k: SeekCountingContainer(real_open(*a, **k)))
    SeekCountingContainer.seeks = 0

    # Without a packet index: one forward pass from the first frame, stopping at the last wanted one.
    partial = video_module._decode_frames(str(clips["mp4"]), np.array([0, 3, 9]), SMALL, threads=0)
    assert partial.decoded == 10 and partial.kept == 3
    assert [decode_index(frame) for frame in partial.frames] == [0, 3, 9]
    assert SeekCountingContainer.seeks == 0

    # x264 puts keyframes where the green channel steps (frames 16 and 32; no B-frames here). Frames 0, 6, 11,
    # 17, 22, 28, 33 and 39 are wanted: the decoder goes 0-11, seeks to 16 and goes to 28, seeks to 32 and goes
    # to 39, skipping frames 12-15 and 29-31.
    with real_open(str(clips["mp4"])) as container:
        keyframes = [i for i, p in enumerate(container.demux(container.streams.video[0])) if p.size and p.is_keyframe]
    assert keyframes == [0, 16, 32]
    video = decode_video(clips["mp4"], FrameSampling(num_frames=8, min_pixels=4 * 784), threads=1)
    np.testing.assert_array_equal(video.indices, [0, 6, 11, 17, 22, 28, 33, 39])
    assert_frames_are_sources(video)
    assert video.decoded_frames == 12 + 13 + 8
    assert SeekCountingContainer.seeks == 2


def test_fewer_frames_than_the_container_claims(clips, caplog):
    with av.open(str(clips["truncated"])) as container:
        assert container.streams.video[0].frames == CLIP_FRAMES
    with caplog.at_level(logging.WARNING, logger="temporal_rl.video"):
        video = decode_video(clips["truncated"], SMALL)
    assert 4 <= video.total_frames < CLIP_FRAMES
    assert "only" in caplog.text
    np.testing.assert_array_equal(video.indices, sample_frame_indices(video.total_frames, video.num_frames))
    assert_frames_are_sources(video)
    assert video.decoded_frames > video.total_frames  # the short pass, then the real one


# ----------------------------------------------------------------------------------------------------------
# Errors


def write_zero_length_video(path: Path) -> Path:
    # MP4 and Matroska drop or refuse an empty track; AVI keeps a video stream with no frames.
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=2)
        stream.width, stream.height, stream.pix_fmt = 56, 56, "yuv420p"
        container.start_encoding()
    return path


def write_audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        stream.layout = "mono"
        for _ in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate = 16000
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("missing", "not found"),
        ("empty", "empty"),
        ("corrupt", "not a readable video"),
        ("zero_length", "no frames"),
        ("audio_only", "no video stream"),
        ("directory", "not a file"),
    ],
)
def test_unloadable_videos_raise_video_error_naming_the_file(tmp_path, case, reason):
    path = tmp_path / f"{case}.mp4"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "corrupt":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif case == "zero_length":
        path = write_zero_length_video(tmp_path / "zero_length.avi")
    elif case == "audio_only":
        write_audio_only(path)
    elif case == "directory":
        path.mkdir()
    for load in (lambda: decode_video(path), lambda: load_video(path, cache=FrameCache(tmp_path / "cache"))):
        with pytest.raises(VideoError, match=reason) as caught:
            load()
        assert str(path) in str(caught.value)
        assert caught.value.path == str(path)


def test_single_frame_video_is_an_error(tmp_path):
    path = write_clip(tmp_path / "one.mp4", num_frames=1)
    with pytest.raises(VideoError, match="one.mp4: the video has 1 frame"):
        decode_video(path)


# ----------------------------------------------------------------------------------------------------------
# Cache


def cache_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def assert_same_video(a: SampledVideo, b: SampledVideo) -> None:
    for name in ("frames", "timestamps", "indices"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert getattr(a, name).dtype == getattr(b, name).dtype
    assert (a.source_fps, a.total_frames, a.duration, a.path) == (b.source_fps, b.total_frames, b.duration, b.path)


def test_cache_hit_decodes_nothing_and_returns_the_same_arrays(tmp_path, clips):
    cache = FrameCache(tmp_path / "cache")
    cold = load_video(clips["mp4"], SMALL, cache)
    warm = load_video(clips["mp4"], SMALL, cache)
    assert cold.decoded_frames == CLIP_FRAMES and warm.decoded_frames == 0
    assert_same_video(cold, warm)
    assert warm.sample_fps == cold.sample_fps
    files = cache_files(cache.root)
    assert [path.suffix for path in files] == [".npz"]  # one entry, no temporary file left


def test_cache_misses_when_the_video_or_the_sampling_changes(tmp_path, clips):
    video_path = tmp_path / "clip.mp4"
    video_path.write_bytes(clips["mp4"].read_bytes())
    cache = FrameCache(tmp_path / "cache")
    assert load_video(video_path, SMALL, cache).decoded_frames > 0
    assert load_video(video_path, SMALL, cache).decoded_frames == 0

    stat = video_path.stat()
    os.utime(video_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # touched
    assert load_video(video_path, SMALL, cache).decoded_frames > 0
    video_path.write_bytes(clips["mp4"].read_bytes())  # rewritten, same bytes
    assert load_video(video_path, SMALL, cache).decoded_frames > 0
    assert load_video(video_path, FrameSampling(fps=1.0, min_pixels=SMALL.min_pixels), cache).decoded_frames > 0
    assert load_video(video_path, SMALL, cache).decoded_frames == 0
    assert len(cache_files(cache.root)) == 4


def test_damaged_cache_entry_is_a_miss_and_is_rewritten(tmp_path, clips, caplog):
    cache = FrameCache(tmp_path / "cache")
    cold = load_video(clips["mp4"], SMALL, cache)
    (entry,) = cache_files(cache.root)
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    with caplog.at_level(logging.WARNING, logger="temporal_rl.video"):
        again = load_video(clips["mp4"], SMALL, cache)
    assert again.decoded_frames == CLIP_FRAMES and "unreadable" in caplog.text
    warm = load_video(clips["mp4"], SMALL, cache)
    assert warm.decoded_frames == 0
    assert_same_video(cold, warm)
    assert cache_files(cache.root) == [entry]


def test_failed_cache_write_leaves_nothing_and_still_returns_frames(tmp_path, clips, monkeypatch, caplog):
    def savez_that_fails_halfway(handle, **arrays):
        handle.write(b"PK\x03\x04 partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(video_module.np, "savez", savez_that_fails_halfway)
    cache = FrameCache(tmp_path / "cache")
    with caplog.at_level(logging.WARNING, logger="temporal_rl.video"):
        video = load_video(clips["mp4"], SMALL, cache)
    assert video.decoded_frames == CLIP_FRAMES and "could not write" in caplog.text
    assert cache_files(cache.root) == []


def test_cache_root_defaults_to_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "frames"))
    assert FrameCache().root == tmp_path / "frames"
    monkeypatch.delenv(CACHE_ENV_VAR)
    assert FrameCache().root == Path.home() / ".cache" / "temporal_rl" / "frames"


# ----------------------------------------------------------------------------------------------------------
# Processor input


def frames_from_patches(pixel_values: torch.Tensor, grid_thw, processor) -> np.ndarray:
    """Undo Qwen2-VL's patchify and normalisation: (patches, C*T*P*P) -> uint8 (N, H, W, 3)."""
    t, h, w = (int(x) for x in grid_thw)
    m, p, tp = processor.merge_size, processor.patch_size, processor.temporal_patch_size
    patches = pixel_values.reshape(t, h // m, w // m, m, m, 3, tp, p, p)
    frames = patches.permute(0, 6, 1, 3, 7, 2, 4, 8, 5).reshape(t * tp, h * p, w * p, 3)
    frames = frames * torch.tensor(processor.image_std) + torch.tensor(processor.image_mean)
    return (frames * 255).round().clamp(0, 255).to(torch.uint8).numpy()


def test_processor_keeps_our_frames_and_fps(clips):
    from transformers import Qwen2VLVideoProcessor

    videos = [
        decode_video(clips["mp4"], FrameSampling(fps=1.0, min_pixels=4 * 784)),
        decode_video(clips["bframes_mp4"], FrameSampling(num_frames=6, min_pixels=4 * 784)),
    ]
    kwargs = processor_video_kwargs(videos)
    # Qwen's default processor size would upscale these small frames; do_resize=False keeps them.
    processor = Qwen2VLVideoProcessor(cap_pixels_per_frame=True)
    out = processor(videos=kwargs["videos"], return_metadata=True, return_tensors="pt", **kwargs["videos_kwargs"])
    offset = 0
    for video, grid, metadata in zip(videos, out["video_grid_thw"], out["video_metadata"], strict=True):
        count, height, width = video.frames.shape[:3]
        assert grid.tolist() == [count // 2, height // 14, width // 14]
        rows = int(grid.prod())
        assert rows * out["pixel_values_videos"].shape[1] == count * height * width * 3
        restored = frames_from_patches(out["pixel_values_videos"][offset : offset + rows], grid, processor)
        assert np.abs(restored.astype(int) - video.frames).max() <= 1
        offset += rows
        assert metadata.sampled_fps == pytest.approx(video.sample_fps)
        assert metadata.frames_indices == video.indices.tolist()
    resized = processor(
        videos=kwargs["videos"][:1],
        video_metadata=kwargs["videos_kwargs"]["video_metadata"][:1],
        do_sample_frames=False,
        return_tensors="pt",
    )
    assert resized["video_grid_thw"].tolist() != out["video_grid_thw"][:1].tolist()  # the flag matters


def test_qwen25_processor_routes_our_kwargs_to_videos_only(clips):
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    # Qwen2_5_VLProcessor.__init__ needs a tokenizer, which is not this module's business: the kwargs merge
    # and the video step run on an instance without one.
    processor = object.__new__(Qwen2_5_VLProcessor)
    processor.image_processor = Qwen2VLImageProcessor()
    processor.video_processor = Qwen2VLVideoProcessor(cap_pixels_per_frame=True)
    video = decode_video(clips["mp4"], FrameSampling(fps=1.0, min_pixels=4 * 784))
    kwargs = processor_video_kwargs([video])
    merged = processor._merge_kwargs(videos_kwargs=kwargs["videos_kwargs"])
    assert "do_resize" not in merged["images_kwargs"]  # images in the same call keep their resize
    processed, _ = processor._process_videos(kwargs["videos"], **merged["videos_kwargs"])
    assert processed["video_grid_thw"].tolist() == [[10, 8, 8]]
    # 2 frames per temporal patch at 1 sampled frame per second.
    assert processed["second_per_grid_ts"] == [pytest.approx(2 / video.sample_fps)] == [pytest.approx(2.0)]


def test_video_metadata_describes_the_sample(clips):
    video = decode_video(clips["mp4"], FrameSampling(num_frames=8, min_pixels=4 * 784))
    metadata = video.video_metadata()
    assert metadata.total_num_frames == CLIP_FRAMES and metadata.fps == CLIP_FPS
    assert metadata.frames_indices == video.indices.tolist()
    assert metadata.sampled_fps == pytest.approx(video.sample_fps)
    assert (metadata.height, metadata.width) == video.frames.shape[1:3]
    assert metadata.duration == pytest.approx(20.0)
    assert processor_video_kwargs([]) == {}


def _write_turned_clip(path: Path, degrees: int, *, hflip: bool = False) -> None:
    """A 64x32 (W x H) clip stored landscape: top half red, bottom-left quarter blue, bottom-right black; the
    display matrix says to show it turned by `degrees` counter-clockwise (and mirrored with hflip)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(degrees, hflip=hflip)
        picture = np.zeros((32, 64, 3), np.uint8)
        picture[:16] = (255, 0, 0)
        picture[16:, :32] = (0, 0, 255)
        for _ in range(10):
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _colour_grid(frame: np.ndarray, rows: int, cols: int) -> list[list[str]]:
    """The colour at the centre of each cell of a rows x cols grid: 'R', 'B' or 'K' (black)."""
    height, width = frame.shape[:2]
    names = []
    for r in range(rows):
        row = []
        for c in range(cols):
            pixel = frame[int((r + 0.5) * height / rows), int((c + 0.5) * width / cols)].astype(int)
            row.append("R" if pixel[0] > 150 > pixel[2] else "B" if pixel[2] > 150 > pixel[0] else "K")
        names.append(row)
    return names


@pytest.mark.parametrize(
    ("degrees", "shape", "grid"),
    [
        # a phone held upright records landscape with -90 (turn clockwise to show): red goes right, blue top-left
        (-90, (64, 32), [["B", "R"], ["K", "R"]]),
        (90, (64, 32), [["R", "K"], ["R", "B"]]),
        (180, (32, 64), [["K", "B"], ["R", "R"]]),
        (0, (32, 64), [["R", "R"], ["B", "K"]]),
    ],
)
def test_a_turned_phone_video_comes_back_upright(tmp_path, degrees, shape, grid):
    """A video with a display matrix used to come back sideways, silently. The expected pictures are worked by
    hand from the stored one (top half red, bottom-left blue) turned as FFmpeg's autorotate shows it."""
    path = tmp_path / f"turned_{degrees}.mp4"
    _write_turned_clip(path, degrees)
    video = decode_video(path, FrameSampling(fps=2.0, min_pixels=16 * 16, max_pixels=128 * 128))
    height, width = video.frames.shape[1:3]
    assert (height > width) == (shape[0] > shape[1])  # (the budget rounds each side to a multiple of 28)
    assert _colour_grid(video.frames[0], 2, 2) == grid


def test_a_mirrored_video_is_refused_with_the_reason(tmp_path):
    path = tmp_path / "mirrored.mp4"
    _write_turned_clip(path, 0, hflip=True)
    with pytest.raises(VideoError, match=r"mirrored.mp4: the display matrix mirrors the picture"):
        decode_video(path, FrameSampling(fps=2.0, min_pixels=16 * 16, max_pixels=128 * 128))
