"""End to end: synthetic clips through the video pipeline, the prompts and the tiny model.

The timestamp check is by pixels: the target's colour is looked for in each decoded frame, so it does not trust
the generator's event table, only the gold spans written to data.jsonl.
"""

import numpy as np
import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from data_tools.synth import COLOURS, generate_dataset
from temporal_rl.data import read_records
from temporal_rl.prompts import build_messages
from temporal_rl.video.cache import FrameCache, load_video
from temporal_rl.video.inputs import processor_video_kwargs
from temporal_rl.video.sampling import FrameSampling

# The tiny preset's 56 px frames stay 56 px: at most one 56x56 frame's pixels, at least one patch.
NATIVE_56 = FrameSampling(fps=2.0, min_pixels=28 * 28, max_pixels=56 * 56)


@pytest.fixture(scope="module")
def grounding_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_grounding")
    generate_dataset("grounding", "val", 6, "pipeline-test", out, workers=1, progress=False)
    return read_records(out / "data.jsonl")


def _target_visible(frame: np.ndarray, colour: tuple[int, int, int], min_pixels: int = 6) -> bool:
    distance = np.abs(frame.astype(np.int16) - np.array(colour, dtype=np.int16)).sum(axis=-1)
    return int((distance < 60).sum()) >= min_pixels


@pytest.mark.parametrize("fps", [2.0, 1.0])
def test_decoded_timestamps_match_the_gold_spans_by_pixels(grounding_set, tmp_path, fps):
    cache = FrameCache(tmp_path / "cache")
    sampling = FrameSampling(fps=fps, min_pixels=28 * 28, max_pixels=56 * 56)
    for record in grounding_set:
        video = load_video(record["video"], sampling, cache)
        assert video.frames.shape[1:] == (56, 56, 3)
        (start, end), colour = record["spans"][0], COLOURS[record["meta"]["target"]["colour"]]
        visible = np.array([_target_visible(frame, colour) for frame in video.frames])
        inside = (video.timestamps >= start - 1e-9) & (video.timestamps < end - 1e-9)
        assert inside.any(), (record["id"], video.timestamps, start, end)
        assert (visible == inside).all(), (record["id"], video.timestamps[visible], (start, end))
        if fps == 2.0:  # every source frame is sampled: the first visible frame sits exactly at the span start
            assert video.timestamps[visible][0] == pytest.approx(start)
            assert video.timestamps[visible][-1] == pytest.approx(end - 0.5)
        cached = load_video(record["video"], sampling, cache)
        assert cached.decoded_frames == 0 and np.array_equal(cached.frames, video.frames)


def test_tiny_model_runs_on_a_synthetic_video_prompt(grounding_set, tiny_model_dir, tmp_path):
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir).eval()
    records = grounding_set[:2]
    videos = [load_video(r["video"], NATIVE_56, FrameCache(tmp_path)) for r in records]
    texts = [
        processor.apply_chat_template(build_messages(r), add_generation_prompt=True, tokenize=False) for r in records
    ]
    inputs = processor(text=texts, padding=True, return_tensors="pt", **processor_video_kwargs(videos))

    # Independent count of what the processor must produce: 2 frames per temporal patch, 14 px patches,
    # 2x2 merge; a temporal patch spans 2 sampled frames, and N frames sampled from a clip of F frames at
    # 2 fps come at N / F * 2 fps (an odd F loses one frame to the even count: 1.04 s instead of 1 s).
    expected_grid = [[v.num_frames // 2, 56 // 14, 56 // 14] for v in videos]
    assert inputs["video_grid_thw"].tolist() == expected_grid
    tokens_per_video = [t * h * w // 4 for t, h, w in expected_grid]
    assert (inputs["input_ids"] == model.config.video_token_id).sum(dim=1).tolist() == tokens_per_video
    expected_seconds = [
        2 / (v.num_frames / r["meta"]["num_frames"] * r["meta"]["fps"]) for v, r in zip(videos, records, strict=True)
    ]
    assert inputs["second_per_grid_ts"].tolist() == pytest.approx(expected_seconds)

    with torch.no_grad():
        logits = model(**inputs).logits
        assert torch.isfinite(logits).all()
        # The pixels reach the model: blank frames give other next-token logits.
        blank = processor(
            text=texts,
            padding=True,
            return_tensors="pt",
            **processor_video_kwargs([type(v)(**{**v.__dict__, "frames": np.zeros_like(v.frames)}) for v in videos]),
        )
        assert not torch.allclose(model(**blank).logits[:, -1], logits[:, -1], atol=1e-6)
