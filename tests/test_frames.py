"""Candidate frames: factor-28 sizes, index labels checked by pixels, one decode per video, selection and times."""

import numpy as np
import pytest

from data_tools.synth.encode import encode_mp4
from temporal_rl.viarl import candidates as frames_module
from temporal_rl.viarl.candidates import (
    answer_sampling,
    candidate_frames,
    long_side_size,
    resize_frames,
    select_frames,
)
from temporal_rl.video.cache import FrameCache
from temporal_rl.video.decode import VideoError
from temporal_rl.video.inputs import processor_video_kwargs
from temporal_rl.video.labels import DIGIT_GLYPHS, LabelStyle, draw_index_labels, label_box, label_mask
from temporal_rl.video.sampling import frame_size, uniform_indices

RED = (255, 0, 0)
CLIP_FPS = 10
CLIP_FRAMES = 40
T = 16


def clip_content(num_frames: int, height: int, width: int) -> np.ndarray:
    """Blue-grey frames with a moving ramp: no pixel comes near pure red, so red pixels are label ink."""
    yy, xx = np.mgrid[0:height, 0:width]
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for i in range(num_frames):
        frames[i, ..., 0] = 40 + (xx + 3 * i) % 90
        frames[i, ..., 1] = 60 + (yy + i) % 80
        frames[i, ..., 2] = 150 + (i % 10) * 5
    return frames


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("frames") / "clip.mp4"
    encode_mp4(clip_content(CLIP_FRAMES, 180, 320), CLIP_FPS, path)
    return path


def _crop_to_ink(ink: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(ink)
    return ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def read_label(frame: np.ndarray, colour=RED, scale: int = 2, max_label: int = 200) -> str:
    """The number drawn in `colour` on `frame`: the one label in [0, max_label) whose rendered ink matches exactly."""
    ink = np.all(frame == np.array(colour, dtype=np.uint8), axis=-1)
    assert ink.any(), "no label ink on the frame"
    drawn = _crop_to_ink(ink)
    matches = [
        str(label) for label in range(max_label) if np.array_equal(_crop_to_ink(label_mask(str(label), scale)), drawn)
    ]
    assert len(matches) == 1, f"the ink matches labels {matches}"
    return matches[0]


# ----------------------------------------------------------------------------------------------------------------
# Sizes


@pytest.mark.parametrize(
    ("height", "width", "long_side", "expected"),
    [
        (720, 1280, 112, (56, 112)),  # 63 -> 56 (nearest multiple of 28)
        (720, 1280, 896, (504, 896)),
        (1080, 1920, 896, (504, 896)),
        (1280, 720, 896, (896, 504)),  # portrait
        (480, 640, 112, (84, 112)),
        (480, 640, 896, (476, 644)),  # not enlarged: 480 -> 476, 640 -> 644 (rounding only)
        (500, 500, 112, (112, 112)),
        (20, 30, 896, (28, 28)),  # never below one 28-px step
        (180, 320, 224, (112, 224)),  # 126 -> 112 (4.5 rounds half to even)
    ],
)
def test_long_side_size(height, width, long_side, expected):
    assert long_side_size(height, width, long_side) == expected
    assert all(side % 28 == 0 for side in expected)


@pytest.mark.parametrize(
    ("height", "width", "long_side"),
    [(720, 1280, 896), (1080, 1920, 896), (480, 640, 896), (360, 640, 448), (500, 500, 448), (1280, 720, 896)],
)
def test_the_decoder_produces_the_answer_size_for_common_aspect_ratios(height, width, long_side):
    sampling = answer_sampling(height, width, 128, long_side)
    assert frame_size(height, width, 128, sampling) == long_side_size(height, width, long_side)


# ----------------------------------------------------------------------------------------------------------------
# Labels


def test_glyphs_are_5x7_and_distinct():
    masks = {char: label_mask(char) for char in DIGIT_GLYPHS}
    assert sorted(masks) == list("0123456789")
    assert all(mask.shape == (7, 5) and mask.any() for mask in masks.values())
    assert len({mask.tobytes() for mask in masks.values()}) == 10
    assert label_mask("127", 2).shape == (14, (3 * 6 - 1) * 2)
    with pytest.raises(ValueError, match="digits"):
        label_mask("1a")


@pytest.mark.parametrize(
    "style",
    [
        LabelStyle(),
        LabelStyle(colour=(0, 255, 0), position="top-left", scale=1, margin=0),
        LabelStyle(colour=(255, 255, 0), position="top-right", scale=3, margin=4),
        LabelStyle(position="bottom-left", scale=2, margin=1),
    ],
)
def test_overlay_by_pixels(style):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 200, (12, 56, 112, 3), dtype=np.uint8)  # never 255: ink is recognisable
    labels = [0, 1, 7, 9, 10, 42, 99, 100, 111, 127, 58, 36]
    labelled = draw_index_labels(frames, labels, style)
    assert labelled.shape == frames.shape and labelled.dtype == np.uint8
    assert not np.shares_memory(labelled, frames)
    scale = style.scale_for(56, 112)
    for frame, before, label in zip(labelled, frames, labels, strict=True):
        top, left, bottom, right = label_box(56, 112, str(label), style)
        changed = np.any(frame != before, axis=-1)
        outside = np.ones_like(changed)
        outside[top:bottom, left:right] = False
        assert not changed[outside].any(), "pixels outside the label box changed"
        ink = np.zeros_like(changed)
        ink[top:bottom, left:right] = label_mask(str(label), scale)
        assert np.all(frame[ink] == np.array(style.colour)), "ink pixels must have exactly the label colour"
        assert np.array_equal(frame[~ink], before[~ink]), "non-ink pixels must be untouched"
        assert read_label(frame, style.colour, scale) == str(label)
    # The corner: the box touches the margin on the chosen sides.
    top, left, bottom, right = label_box(56, 112, "5", style)
    margin = style.margin_for(56, 112)
    assert (top == margin) == style.position.startswith("top")
    assert (bottom == 56 - margin) == style.position.startswith("bottom")
    assert (left == margin) == style.position.endswith("left")
    assert (right == 112 - margin) == style.position.endswith("right")


def test_default_label_is_red_in_the_bottom_right_corner():
    labelled = draw_index_labels(np.zeros((1, 56, 112, 3), np.uint8), [127])
    rows, cols = np.nonzero(np.all(labelled[0] == RED, axis=-1))
    assert rows.min() >= 56 // 2 and cols.min() >= 112 // 2
    assert rows.max() == 56 - 2 - 1 and cols.max() == 112 - 2 - 1  # scale 2, margin 2
    assert LabelStyle().scale_for(56, 112) == 2 and LabelStyle().scale_for(112, 112) == 3


def test_label_that_does_not_fit_and_bad_styles():
    with pytest.raises(ValueError, match="does not fit"):
        draw_index_labels(np.zeros((1, 28, 28, 3), np.uint8), [127], LabelStyle(scale=3))
    with pytest.raises(ValueError, match="colour"):
        LabelStyle(colour=(256, 0, 0))
    with pytest.raises(ValueError, match="position"):
        LabelStyle(position="center")
    with pytest.raises(ValueError, match="scale"):
        LabelStyle(scale=0)
    with pytest.raises(ValueError, match="labels for"):
        draw_index_labels(np.zeros((2, 56, 56, 3), np.uint8), [1])


# ----------------------------------------------------------------------------------------------------------------
# Candidate frames from a video


def test_candidate_frames(clip, tmp_path, monkeypatch):
    calls = []
    real_load_video = frames_module.load_video

    def counting_load_video(*args, **kwargs):
        video = real_load_video(*args, **kwargs)
        calls.append(video.decoded_frames)
        return video

    monkeypatch.setattr(frames_module, "load_video", counting_load_video)
    cache = FrameCache(tmp_path / "cache")
    candidates = candidate_frames(clip, T, 112, 224, cache)

    # One decode serves both resolutions: one load_video call, which decoded the clip up to its last frame.
    assert calls == [CLIP_FRAMES]
    assert candidates.decoded_frames == CLIP_FRAMES
    assert candidates.num_candidates == T
    # Sizes: 180x320 -> 56x112 for the selector, 112x224 for the answer model (factor 28).
    assert candidates.selector_frames.shape == (T, 56, 112, 3)
    assert candidates.selector_size == (56, 112)
    assert candidates.answer_size == (112, 224)
    assert candidates.answer_frames().shape == (T, 112, 224, 3)
    assert candidates.answer_frames([3, 1]).shape == (2, 112, 224, 3)
    # Uniform over the clip, first and last frame included; timestamps are the frames' times (index / fps).
    expected_indices = np.linspace(0, CLIP_FRAMES - 1, T).round().astype(np.int64)
    assert np.array_equal(candidates.source_indices, expected_indices)
    np.testing.assert_allclose(candidates.timestamps, expected_indices / CLIP_FPS, atol=1e-9)

    # Every selector frame carries its own candidate index, in red; everything else is the downscaled frame.
    plain = resize_frames(candidates.video.frames, (56, 112))
    for index, (frame, before) in enumerate(zip(candidates.selector_frames, plain, strict=True)):
        assert read_label(frame) == str(index)
        ink = np.zeros(frame.shape[:2], dtype=bool)
        top, left, bottom, right = label_box(56, 112, str(index), candidates.label_style)
        ink[top:bottom, left:right] = label_mask(str(index), 2)
        assert np.all(frame[ink] == RED)
        assert np.array_equal(frame[~ink], before[~ink])

    # The second call reads the cache: nothing decoded, same frames.
    again = candidate_frames(clip, T, 112, 224, cache)
    assert calls == [CLIP_FRAMES, 0] and again.decoded_frames == 0
    assert np.array_equal(again.selector_frames, candidates.selector_frames)
    assert np.array_equal(again.answer_frames(), candidates.answer_frames())


def test_a_short_video_gives_fewer_candidates(clip):
    candidates = candidate_frames(clip, 64, 112, 224)
    assert candidates.num_candidates == CLIP_FRAMES  # 40 frames, all of them
    assert read_label(candidates.selector_frames[-1]) == str(CLIP_FRAMES - 1)


def test_candidate_frames_errors(clip, tmp_path):
    with pytest.raises(VideoError, match="not found"):
        candidate_frames(tmp_path / "missing.mp4", T)
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all")
    with pytest.raises(VideoError, match="readable"):
        candidate_frames(tmp_path / "junk.mp4", T)
    with pytest.raises(ValueError, match="multiple of frame_factor"):
        candidate_frames(clip, 15)
    with pytest.raises(ValueError, match="at least 28"):
        candidate_frames(clip, T, selector_long_side=20)


# ----------------------------------------------------------------------------------------------------------------
# Selection


def test_select_frames_in_time_order_with_their_timestamps(clip):
    candidates = candidate_frames(clip, T, 112, 224)
    selected = select_frames(candidates, [9, 2, 15, 5])
    order = [2, 5, 9, 15]
    assert selected.frames.shape == (4, 112, 224, 3)
    assert np.array_equal(selected.frames, candidates.answer_frames(order))
    np.testing.assert_array_equal(selected.timestamps, candidates.timestamps[order])
    assert np.all(np.diff(selected.timestamps) > 0)
    np.testing.assert_array_equal(selected.indices, candidates.source_indices[order])
    assert selected.total_frames == CLIP_FRAMES and selected.source_fps == pytest.approx(CLIP_FPS)
    metadata = selected.video_metadata()
    assert metadata.frames_indices == [int(i) for i in candidates.source_indices[order]]
    assert (metadata.height, metadata.width) == (112, 224)
    assert processor_video_kwargs([selected])["videos"][0] is selected.frames
    # numpy integers are indices too
    assert np.array_equal(select_frames(candidates, np.array([5, 2])).timestamps, candidates.timestamps[[2, 5]])


@pytest.mark.parametrize("indices", [[1, 1], [16], [-1], [2.0], [True], []])
def test_select_frames_rejects_bad_indices(clip, indices):
    candidates = candidate_frames(clip, T, 112, 224)
    with pytest.raises(ValueError):
        select_frames(candidates, indices)


@pytest.mark.parametrize(
    ("num_candidates", "num_select", "placement", "expected"),
    [
        (128, 8, "start", [0, 16, 32, 48, 64, 80, 96, 112]),  # ViaRL's fallback: i * (128 // 8)
        (128, 8, "center", [8, 24, 40, 56, 72, 88, 104, 120]),
        (10, 4, "start", [0, 2, 5, 7]),  # floor(i * 10 / 4)
        (10, 4, "center", [1, 3, 6, 8]),  # floor((2i + 1) * 10 / 8)
        (5, 5, "start", [0, 1, 2, 3, 4]),
        (7, 1, "center", [3]),
    ],
)
def test_uniform_indices(num_candidates, num_select, placement, expected):
    assert uniform_indices(num_candidates, num_select, placement) == expected


def test_uniform_indices_errors():
    with pytest.raises(ValueError, match="cannot pick"):
        uniform_indices(4, 8)
    with pytest.raises(ValueError, match="cannot pick"):
        uniform_indices(4, 0)
    with pytest.raises(ValueError, match="placement"):
        uniform_indices(8, 4, "end")
