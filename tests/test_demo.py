"""A few-step smoke of the main job (`make demo`): every stage runs and the report holds what it promises."""

import json

import pytest

from temporal_rl.experiments.demo import DemoConfig, run_demo

GROUNDING = ("mIoU", "R@0.3", "R@0.5", "R@0.7")


def _rounded(metrics: dict) -> dict:
    return {name: round(metrics["tasks"]["grounding"][name], 2) for name in GROUNDING}


@pytest.mark.slow
def test_demo_runs_end_to_end_in_miniature(tmp_path):
    """Every number of the report, recomputed from the demo's saved data and models through the public commands (the
    blind baselines and the scorer, the evaluation run with the training recipe), not from the report's own arithmetic.
    """
    from temporal_rl.data import read_records, write_jsonl
    from temporal_rl.eval import __main__ as score_cli
    from temporal_rl.eval import baselines as baselines_cli
    from temporal_rl.eval import run as eval_run
    from temporal_rl.experiments.demo import swap_videos

    out = tmp_path / "demo"
    report = run_demo(
        DemoConfig(output_dir=str(out), num_train=8, num_test=6, sft_steps=2, grpo_steps=2, eval_batch_size=4)
    )
    saved = json.loads((out / "report.json").read_text())
    assert saved["table"] == report["table"] and set(saved["table"]) == {
        "blind: whole video",
        "blind: mean train span",
        "SFT warm start",
        "SFT + GRPO",
    }
    train, test = out / "data" / "train" / "data.jsonl", out / "data" / "test" / "data.jsonl"
    assert saved["test_queries"] == len(read_records(test)) == 6

    # The blind baselines: predictions written and scored by the public commands.
    for row, kind in (("blind: whole video", "whole_video"), ("blind: mean train span", "mean_span")):
        predictions, metrics = tmp_path / f"{kind}.jsonl", tmp_path / f"{kind}.json"
        argv = ["--kind", kind, "--data", str(test), "--train", str(train), "--out", str(predictions)]
        assert baselines_cli.main([*argv, "--span-format", "plain"]) == 0
        assert score_cli.main(["--data", str(test), "--predictions", str(predictions), "--out", str(metrics)]) == 0
        assert saved["table"][row] == _rounded(json.loads(metrics.read_text())), row

    # The models: the saved SFT and GRPO models evaluated with the GRPO recipe's video and prompt settings, on the
    # test clips and on the same questions asked of swapped clips.
    swapped = tmp_path / "swapped.jsonl"
    write_jsonl(swapped, swap_videos(read_records(test)))
    recipe = "recipes/tiny/grpo_grounding.yaml"
    for row, model in (("SFT warm start", out / "sft"), ("SFT + GRPO", out / "grpo")):
        for data, name in ((test, "own"), (swapped, "swapped")):
            result = tmp_path / f"{model.name}-{name}"
            argv = ["--config", recipe, "--model", str(model), "--data", str(data), "--out", str(result)]
            argv += ["--frame_cache_dir", str(out / "frames"), "--batch_size", "4", "--no_progress"]
            argv += ["--max_new_tokens", str(saved["grpo_config"]["max_completion_length"])]
            assert eval_run.main(argv) == 0
            metrics = _rounded(json.loads((result / "metrics.json").read_text()))
            if name == "own":
                assert {k: saved["table"][row][k] for k in GROUNDING} == metrics, row
            else:
                assert saved["table"][row]["mIoU, swapped video"] == metrics["mIoU"], row

    # GRPO's log is the trainer's own (trainer_state.json), and it trained the steps asked for from the SFT model.
    state = json.loads((out / "grpo" / "trainer_state.json").read_text())
    assert saved["grpo_log_history"] == state["log_history"] and state["global_step"] == 2
    assert any("reward" in entry for entry in saved["grpo_log_history"])
    assert saved["grpo_config"]["max_steps"] == 2 and saved["sft_config"]["max_steps"] == 2
    assert (out / "report.png").stat().st_size > 10_000


def test_swap_videos_is_a_derangement():
    from temporal_rl.experiments.demo import swap_videos

    records = [{"id": str(i), "video": f"v{i}.mp4", "spans": [[i, i + 1]]} for i in range(7)]
    swapped = swap_videos(records, seed=3)
    assert [r["id"] for r in swapped] == [r["id"] for r in records]
    assert [r["spans"] for r in swapped] == [r["spans"] for r in records]
    assert sorted(r["video"] for r in swapped) == sorted(r["video"] for r in records)
    assert all(s["video"] != r["video"] for s, r in zip(swapped, records, strict=True))
