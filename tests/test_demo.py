"""A few-step smoke of the main job (`make demo`): every stage runs, and the report's numbers are what an
independent scoring of the saved predictions gives."""

import json

import pytest

from temporal_rl.data import read_records
from temporal_rl.demo import BLIND, CONTROL, GRPO, SWAPPED, WARM_START, DemoConfig, directory_name, run_demo
from temporal_rl.rewards.parsing import parse_span


def independent_miou(records: list[dict], predictions: dict[str, str]) -> float:
    """Mean IoU (%) of predicted spans clipped to the video against the best gold span, written out by hand."""
    total = 0.0
    for record in records:
        span = parse_span(predictions.get(record["id"], ""))
        best = 0.0
        if span is not None:
            start, end = max(0.0, span[0]), min(record["duration"], span[1])
            for gold_start, gold_end in record["spans"]:
                overlap = max(0.0, min(end, gold_end) - max(start, gold_start))
                union = max(end, gold_end) - min(start, gold_start)
                if end > start and union > 0:
                    best = max(best, overlap / union)
        total += best
    return 100 * total / len(records)


@pytest.mark.slow
def test_demo_runs_end_to_end_in_miniature(tmp_path):
    out = tmp_path / "demo"
    config = DemoConfig(
        output_dir=str(out),
        num_train=8,
        num_test=6,
        sft_steps=4,
        rl_seconds=3.0,
        curve_every=3,
        curve_samples=3,
        kl_samples=3,
        eval_batch_size=4,
    )
    report = run_demo(config)
    saved = json.loads((out / "report.json").read_text())
    assert list(saved["table"]) == [BLIND, WARM_START, CONTROL, GRPO]
    assert set(saved["table"][BLIND]) == {"mIoU", "R@0.3", "R@0.5", "R@0.7"}
    records = read_records(out / "data" / "test" / "data.jsonl")
    for name in (WARM_START, CONTROL, GRPO):
        row = saved["table"][name]
        assert set(row) == {"mIoU", "R@0.3", "R@0.5", "R@0.7", SWAPPED}
        lines = (out / f"predictions-{directory_name(name)}.jsonl").read_text().splitlines()
        predictions = {entry["id"]: entry["completion"] for entry in map(json.loads, lines)}
        assert set(predictions) == {r["id"] for r in records}
        assert row["mIoU"] == pytest.approx(independent_miou(records, predictions), abs=0.01)
        assert saved["video_dependence"][name]["zeroed_pixel_kl"] >= 0
    # the blind row: the whole video as the answer, scored by hand
    whole = {r["id"]: f"0 - {r['duration']}" for r in records}
    assert saved["table"][BLIND]["mIoU"] == pytest.approx(independent_miou(records, whole), abs=0.01)
    for name in (GRPO, CONTROL):
        budget = saved["equal_compute"][name]
        assert budget["train_seconds"] >= config.rl_seconds and budget["optimizer_steps"] >= 1
    assert [p["step"] for p in saved["warm_start_curve"]] == [3, 4]
    assert (out / "report.png").stat().st_size > 10_000
    assert report["test_queries"] == 6
