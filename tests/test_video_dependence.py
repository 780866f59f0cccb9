"""The seeing checks: swapped videos and the KL between predictions with real and with zeroed pixels."""

import math

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from data_tools.synth import generate_dataset
from temporal_rl.data import load_dataset
from temporal_rl.eval.video_dependence import completion_token_kl, swap_videos, zeroed_video_kl
from temporal_rl.prompts import PromptOptions
from temporal_rl.sft import VideoSFTCollator
from temporal_rl.video.cache import FrameCache
from temporal_rl.video.sampling import FrameSampling

SAMPLING = FrameSampling(fps=2.0, min_pixels=28 * 28, max_pixels=56 * 56)


def test_swap_videos_is_a_derangement():
    records = [{"id": str(i), "video": f"v{i}.mp4", "spans": [[i, i + 1]]} for i in range(7)]
    swapped = swap_videos(records, seed=3)
    assert [r["id"] for r in swapped] == [r["id"] for r in records]
    assert [r["spans"] for r in swapped] == [r["spans"] for r in records]
    assert sorted(r["video"] for r in swapped) == sorted(r["video"] for r in records)
    assert all(s["video"] != r["video"] for s, r in zip(swapped, records, strict=True))


def test_completion_token_kl_matches_a_hand_computation():
    real = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]]])
    other = torch.tensor([[[5.0, 5.0], [0.0, 0.0], [0.0, 0.0]]])
    labels = torch.tensor([[-100, 1, 0]])  # positions 0 and 1 predict a label; position 2 predicts nothing

    def kl(p_logits, q_logits):
        p = [math.exp(x) / sum(math.exp(y) for y in p_logits) for x in p_logits]
        q = [math.exp(x) / sum(math.exp(y) for y in q_logits) for x in q_logits]
        return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))

    expected = [kl([0.0, 0.0], [5.0, 5.0]), kl([1.0, 0.0], [0.0, 0.0])]
    assert completion_token_kl(real, other, labels).tolist() == pytest.approx(expected, abs=1e-12)


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    root = tmp_path_factory.mktemp("dependence_data")
    generate_dataset("grounding", "test", 5, "dependence", root, workers=1, progress=False)
    dataset = load_dataset(root / "data.jsonl")
    return [dataset[i] for i in range(len(dataset))]


def test_zeroed_video_kl_is_zero_without_a_visual_path_and_positive_with_one(tiny_model_dir, rows, tmp_path):
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    collator = VideoSFTCollator(processor, SAMPLING, FrameCache(tmp_path), PromptOptions(span_format="plain"))
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.float32)

    # Independent: one forward per row with its own pixels and with zeros, KL summed by hand over the label positions.
    total, count = 0.0, 0
    for row in rows:
        batch = collator([row])
        labels = batch.pop("labels")[0]
        with torch.no_grad():
            real = model(**batch).logits[0].double().log_softmax(-1)
            zeroed = batch | {"pixel_values_videos": torch.zeros_like(batch["pixel_values_videos"])}
            blind = model(**zeroed).logits[0].double().log_softmax(-1)
        for position in range(len(labels) - 1):
            if labels[position + 1] != -100:
                total += float((real[position].exp() * (real[position] - blind[position])).sum())
                count += 1
    measured = zeroed_video_kl(model, collator, rows, batch_size=2)
    assert measured > 0
    assert measured == pytest.approx(total / count, rel=1e-5)

    # Cut the visual path (the merger's last layer outputs zeros whatever the pixels): the answers cannot depend on
    # the video, and the check must say so exactly.
    with torch.no_grad():
        last = model.model.visual.merger.mlp[-1]
        last.weight.zero_()
        last.bias.zero_()
    assert zeroed_video_kl(model, collator, rows, batch_size=2) == pytest.approx(0.0, abs=1e-12)
