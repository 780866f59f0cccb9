"""A few-step smoke of the main job (`make demo`): every stage runs and the report holds what it promises."""

import json

import pytest

from temporal_rl.experiments.demo import DemoConfig, run_demo


@pytest.mark.slow
def test_demo_runs_end_to_end_in_miniature(tmp_path):
    out = tmp_path / "demo"
    report = run_demo(
        DemoConfig(output_dir=str(out), num_train=8, num_test=6, sft_steps=2, grpo_steps=2, eval_batch_size=4)
    )
    saved = json.loads((out / "report.json").read_text())
    assert set(saved["table"]) == {"blind: whole video", "blind: mean train span", "SFT warm start", "SFT + GRPO"}
    for row in saved["table"].values():
        assert 0.0 <= row["mIoU"] <= 100.0 and row["R@0.7"] <= row["R@0.5"] <= row["R@0.3"]
    for name in ("SFT warm start", "SFT + GRPO"):
        row = saved["table"][name]
        assert saved["video_dependence_miou"][name] == pytest.approx(
            row["mIoU"] - row["mIoU, swapped video"], abs=0.02
        )
    assert saved["grpo_gain_miou"] == pytest.approx(
        saved["table"]["SFT + GRPO"]["mIoU"] - saved["table"]["SFT warm start"]["mIoU"], abs=0.02
    )
    assert saved["grpo_config"]["max_steps"] == 2 and saved["sft_config"]["max_steps"] == 2
    assert (out / "report.png").stat().st_size > 10_000
    assert report["test_queries"] == 6


def test_swap_videos_is_a_derangement():
    from temporal_rl.experiments.demo import swap_videos

    records = [{"id": str(i), "video": f"v{i}.mp4", "spans": [[i, i + 1]]} for i in range(7)]
    swapped = swap_videos(records, seed=3)
    assert [r["id"] for r in swapped] == [r["id"] for r in records]
    assert [r["spans"] for r in swapped] == [r["spans"] for r in records]
    assert sorted(r["video"] for r in swapped) == sorted(r["video"] for r in records)
    assert all(s["video"] != r["video"] for s, r in zip(swapped, records, strict=True))
