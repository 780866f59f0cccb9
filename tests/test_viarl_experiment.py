"""The ViaRL needle experiment end to end, a few steps per stage: `report.json` holds, per seed and point, the
accuracies and the needle-hit rates in percent, each recomputed here from the saved per-record evaluations and the
needle's frames (not from the code's summaries); the oracle's frames always show the needle, the `outside` frames
never do. Also the answer warm start's rows without the evidence (`SometimesWithoutEvidence`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from data_tools.synth import generate_dataset
from temporal_rl.data import read_records
from temporal_rl.viarl.answer_stage import CandidateSpec, OracleFrames, SometimesWithoutEvidence
from temporal_rl.video.cache import FrameCache

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "recipes" / "tiny"


def _candidate_frames(record: dict, num_candidates: int) -> np.ndarray:
    """The source frame of each candidate, by hand: T frames spread evenly over the clip, rounded."""
    return np.linspace(0, record["meta"]["num_frames"] - 1, num_candidates).round().astype(int)


def _shows_needle(record: dict, indices: list[int], num_candidates: int) -> bool:
    first, end = record["meta"]["needle_frames"]
    frames = _candidate_frames(record, num_candidates)
    return any(first <= frames[i] < end for i in indices)


def _write(source: Path, target: Path, **changes) -> str:
    raw = yaml.safe_load(source.read_text())
    raw.update(changes)
    target.write_text(yaml.safe_dump(raw))
    return str(target)


def test_without_evidence_rows_never_show_the_needle_and_the_others_always_do(tmp_path):
    root = tmp_path / "data"
    generate_dataset("needle", "train", 6, "viarl-exp-test", root, difficulty="tiny", workers=1, progress=False)
    records = read_records(root / "data.jsonl")
    spec = CandidateSpec(num_candidates=8, num_select=2, selector_long_side=56, answer_long_side=56)
    cache = FrameCache(tmp_path / "frames")
    evidence = OracleFrames(spec, cache, every_frame=True)
    frames = SometimesWithoutEvidence(evidence, spec, cache, rate=0.5, seed=3)
    seen = {"with": 0, "without": 0}
    for _ in range(4):
        for record in records:
            video = frames(record)
            first, end = record["meta"]["needle_frames"]
            inside = [first <= int(i) < end for i in video.indices]
            assert len(inside) == 2
            if all(inside):  # every_frame evidence: both frames inside the needle
                seen["with"] += 1
            else:  # the rows without: no frame inside (candidates of the T=8 spread, by hand)
                assert not any(inside)
                assert {int(i) for i in video.indices} <= set(_candidate_frames(record, 8).tolist())
                seen["without"] += 1
    assert seen["with"] > 0 and seen["without"] > 0, seen
    with pytest.raises(ValueError, match="rate"):
        SometimesWithoutEvidence(evidence, spec, cache, rate=1.0)


@pytest.mark.slow
def test_experiment_smoke_writes_the_report_per_seed_and_point(tiny_model_dir, tmp_path):
    from temporal_rl.experiments.viarl_experiment import ViaRLExperimentConfig, run_experiment

    recipes = tmp_path / "recipes"
    recipes.mkdir()
    small = dict(per_device_train_batch_size=2, logging_steps=1, save_strategy="no", warmup_steps=0)
    lora = dict(lora_r=4, lora_alpha=8)
    selector = _write(
        TINY / "viarl_needle_selector.yaml", recipes / "selector.yaml", **lora, per_device_train_batch_size=4,
        num_generations=4, max_completion_length=8, save_strategy="no", answer_max_new_tokens=4, num_candidates=8,
        logging_steps=1,
    )  # fmt: skip
    answer = _write(TINY / "viarl_needle_answer.yaml", recipes / "answer.yaml", **lora, **small)
    warm_answer = _write(TINY / "viarl_needle_answer_warmstart.yaml", recipes / "warm_answer.yaml", **small)
    warm_selector = _write(TINY / "viarl_needle_selector_warmstart.yaml", recipes / "warm_selector.yaml", **small)
    viarl_recipe = _write(
        TINY / "viarl_needle.yaml", recipes / "viarl.yaml", selector_recipe=selector, answer_recipe=answer,
        answer_warmstart_recipe=warm_answer, selector_warmstart_recipe=warm_selector, selection_batch_size=4,
    )  # fmt: skip
    config = ViaRLExperimentConfig(
        output_dir=str(tmp_path / "exp"), viarl_recipe=viarl_recipe, seeds=[0], num_train=16, num_test=16,
        num_cycles=1, selector_steps=1, answer_steps=1, answer_warmstart_steps=2, selector_warmstart_steps=1,
        eval_batch_size=4, data_workers=1,
    )  # fmt: skip
    run_experiment(config, log=lambda message: None)

    out = Path(config.output_dir)
    report = json.loads((out / "report.json").read_text())
    test = {r["id"]: r for r in read_records(out / "data" / "val" / "kept.jsonl")}
    assert test and all(r["meta"]["needle"]["kind"] == "star" for r in test.values())
    keys = ("uniform_accuracy", "selector_accuracy", "oracle_accuracy", "selector_needle_hit_rate")
    for point, row_prefix in (("warm start", "warm start"), ("cycle 1", "cycle 1")):
        table = report["per_seed"]["0"][point]
        assert set(keys) <= set(table)
        for selection, accuracy_key, hit_key in (
            ("uniform", "uniform_accuracy", "uniform_needle_hit_rate"),
            ("selector", "selector_accuracy", "selector_needle_hit_rate"),
            ("oracle", "oracle_accuracy", None),
            ("outside", "outside_accuracy", None),
        ):
            saved = [json.loads(p.read_text()) for p in sorted((out / "seed0" / "eval").glob("*.json"))]
            match = [s for s in saved if s["row"]["name"] == f"{row_prefix}: {selection}"]
            if point == "warm start" and selection == "selector":
                assert not match and table[accuracy_key] is None  # no selector at the warm start
                continue
            assert len(match) == 1, [s["row"]["name"] for s in saved]
            results = match[0]["results"]
            assert sorted(r["id"] for r in results) == sorted(test)
            # by hand: accuracy = share of predicted letters equal to the gold one; hits from the needle's frames
            correct = [r["predicted"] == test[r["id"]]["answer"] for r in results]
            assert table[accuracy_key] == pytest.approx(100 * sum(correct) / len(correct), abs=0.01)
            hits = [_shows_needle(test[r["id"]], r["indices"], 8) for r in results]
            if hit_key is not None:
                assert table[hit_key] == pytest.approx(100 * sum(hits) / len(hits), abs=0.01)
            if selection == "oracle":
                assert all(hits)
            if selection == "outside":
                assert not any(hits)
        mean = report["mean"][point]
        for key in keys:
            if table[key] is not None:
                assert mean[key]["mean"] == pytest.approx(table[key]) and mean[key]["seeds"] == 1
    stages = report["stage_summaries"]["0"]
    assert report["amplification_seconds_per_seed"]["0"] == pytest.approx(
        sum(stage["seconds"] for stage in stages.values()), abs=0.1
    )
    assert report["amplification_seconds_per_seed"]["0"] > 0
