"""`make bench` (benchmarks/suite.py): the quick suite on decode and filter writes sane files; goals and table.

The GRPO benchmark is left out here (tests/test_vision_sharing.py runs its quick mode).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import suite  # noqa: E402
from benchmarks.decode_vs_fetch import compare_outputs  # noqa: E402
from temporal_rl.video.sampling import SampledVideo  # noqa: E402


@pytest.mark.parametrize(
    ("op", "value", "ratio", "met"),
    [
        (">=", 2.0, 2.0, True),
        (">=", 2.0, 1.99, False),
        ("<=", 0.6, 0.59, True),
        ("<=", 0.6, 0.61, False),
        ("<=", 0.125, 1 / 8, True),
        (">=", 2.0, None, None),
        (">=", 2.0, float("nan"), None),
    ],
)
def test_goal_met(op, value, ratio, met):
    assert suite.goal_met({"op": op, "value": value}, ratio) is met


def test_goals_from_rows_and_defaults():
    decode = [
        {
            "benchmark": "decode",
            "metric": "cold s",
            "ours": 1.0,
            "baseline": 3.0,
            "ratio": 3.0,
            "goal": {"op": ">=", "value": 2.0},
        },
    ]
    grpo = [
        {"benchmark": "grpo_step", "metric": "step time (s, median)", "ours": 0.7, "baseline": 1.0, "ratio": 0.7},
        {"benchmark": "grpo_step", "metric": "vision-encoder patches / step", "ours": 10, "baseline": 80,
         "ratio": 0.125},
        {"benchmark": "grpo_step", "metric": "frames decoded / step", "ours": 9, "baseline": 72, "ratio": 0.125},
    ]  # fmt: skip
    out = suite.with_goals("decode", decode, {}) + suite.with_goals("grpo", grpo, {"config": {"generations": 8}})
    assert [row["met"] for row in out] == [True, False, True, None]
    assert out[1]["goal"] == {"op": "<=", "value": 0.6} and out[2]["goal"]["value"] == 1 / 8
    table = suite.markdown_table(out)
    assert table.splitlines()[0] == "| benchmark | metric | ours | baseline | ratio | goal | met? |"
    assert "| decode | cold s | 1.000 | 3.000 | 3.000x | ≥ 2x | yes |" in table
    assert "| grpo_step | vision-encoder patches / step | 10 | 80 | 0.125x | ≤ 1/G = 1/8 | yes |" in table
    with pytest.raises(ValueError, match="lacks"):
        suite.with_goals("filter", [{"benchmark": "x", "metric": "y"}], {})


def test_parse_only():
    assert suite.parse_only(None) == ["decode", "filter", "grpo"]
    assert suite.parse_only("filter, decode") == ["decode", "filter"]
    with pytest.raises(ValueError, match="subset of decode, filter, grpo"):
        suite.parse_only("decode,gpu")


def test_write_atomic_leaves_no_temporary(tmp_path):
    target = tmp_path / "out" / "results.md"
    suite.write_atomic(target, "a\n")
    suite.write_atomic(target, "b\n")
    assert target.read_text() == "b\n" and target.stat().st_mode & 0o644 == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["results.md"]


def test_compare_outputs_flags_a_shift():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 250, (4, 6, 8, 3), dtype=np.uint8)
    video = SampledVideo(frames, np.arange(4) / 2.0, np.array([0, 3, 6, 9]), 6.0, 12, 2.0, "x.mp4")
    same = compare_outputs(video, frames + 1, {"indices": [0, 3, 6, 9], "sample_fps": 2.0})
    assert same["same_count"] and same["same_size"] and same["same_indices"] and same["same_sample_fps"]
    assert same["mean_abs_diff"] == pytest.approx(1.0)
    expected_shift = np.abs(frames[1:].astype(int) - frames[:-1].astype(int) - 1).mean()
    assert same["neighbour_mean_abs_diff"] == pytest.approx(expected_shift)
    shifted = compare_outputs(video, frames, {"indices": [0, 3, 6, 10], "sample_fps": 2.5})
    assert not shifted["same_indices"] and not shifted["same_sample_fps"]
    fewer = compare_outputs(video, frames[:2], {"indices": [0, 9], "sample_fps": 1.0})
    assert not fewer["same_count"] and fewer["mean_abs_diff"] is None


@pytest.mark.slow
def test_quick_suite_on_decode_and_filter_writes_sane_results(tmp_path):
    pytest.importorskip("decord", reason="fetch_video's backend here (pip install decord==0.6.0)")
    out = tmp_path / "bench"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "decode,filter", "--out", str(out),
         "--work-dir", str(tmp_path / "work")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "results.json").read_text())
    assert report["quick"] is True and report["ran"] == ["decode", "filter"] and report["errors"] == {}
    assert report["machine"]["torch_threads"] == 1 and report["machine"]["cpu_count"] >= 1

    decode = report["results"]["decode"]
    assert decode["backend"] == "decord" and decode["clip"]["facts"]["frames"] == 240
    for case, n in zip(decode["cases"], (16, 32), strict=True):
        assert case["num_frames"] == case["frames_returned"] == case["fetch_frames_returned"] == n
        assert case["frame_size"] == case["fetch_frame_size"] == [280, 476]  # 480x270 at Qwen's budget
        check = case["check"]
        assert check["same_indices"] and check["same_sample_fps"]
        assert check["mean_abs_diff"] < 0.25 * check["neighbour_mean_abs_diff"]  # the same frames, not neighbours
        assert all(len(times) == 1 and times[0] > 0 for times in case["times_s"].values())

    filt = report["results"]["filter"]
    assert filt["work"]["engine"]["generate_calls"] < filt["work"]["naive"]["generate_calls"]

    rows = report["table"]
    assert {row["benchmark"] for row in rows} == {"decode", "filter"}
    assert len([row for row in rows if row["benchmark"] == "decode"]) == 4
    for row in rows:
        assert row["ours"] > 0 and row["baseline"] > 0 and row["ratio"] > 0, row
    for row in rows[:4]:
        assert row["ratio"] == pytest.approx(row["baseline"] / row["ours"])
        assert row["goal"]["op"] == ">=" and isinstance(row["met"], bool)

    markdown = (out / "results.md").read_text()
    assert "| benchmark | metric | ours | baseline | ratio | goal | met? |" in markdown
    assert all(row["metric"] in markdown for row in rows)
    assert "same frame count, frame size, source frame indices and sample fps" in markdown
    assert sorted(p.name for p in out.iterdir()) == ["results.json", "results.md"]
