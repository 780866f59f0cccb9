"""A few-step smoke of the main job (`make demo`): every stage runs, and every number of the report is what the
public commands give on the demo's saved data and models (not the report's own arithmetic)."""

import json

import pytest

from temporal_rl.experiments.demo import BLIND, CONTROL, GRPO, SWAPPED, WARM_START, DemoConfig, run_demo

GROUNDING = ("mIoU", "R@0.3", "R@0.5", "R@0.7")


def _rounded(metrics: dict) -> dict:
    return {name: round(metrics["tasks"]["grounding"][name], 2) for name in GROUNDING}


@pytest.mark.slow
def test_demo_runs_end_to_end_in_miniature(tmp_path):
    from temporal_rl.data import read_records, write_jsonl
    from temporal_rl.eval import __main__ as score_cli
    from temporal_rl.eval import baselines as baselines_cli
    from temporal_rl.eval import run as eval_run
    from temporal_rl.eval.video_dependence import swap_videos

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
    assert saved["table"] == report["table"] and list(saved["table"]) == [BLIND, WARM_START, CONTROL, GRPO]
    train, test = out / "data" / "train" / "data.jsonl", out / "data" / "test" / "data.jsonl"
    assert saved["test_queries"] == len(read_records(test)) == 6

    # The blind row: the whole video as the answer, written and scored by the public commands; no swapped column.
    predictions, metrics = tmp_path / "whole_video.jsonl", tmp_path / "whole_video.json"
    argv = ["--kind", "whole_video", "--data", str(test), "--train", str(train), "--out", str(predictions)]
    assert baselines_cli.main([*argv, "--span-format", "plain"]) == 0
    assert score_cli.main(["--data", str(test), "--predictions", str(predictions), "--out", str(metrics)]) == 0
    assert saved["table"][BLIND] == _rounded(json.loads(metrics.read_text()))

    # The models: each saved model evaluated with the GRPO recipe's video and prompt settings, on the test clips and
    # on the same questions asked of swapped clips.
    swapped = tmp_path / "swapped.jsonl"
    write_jsonl(swapped, swap_videos(read_records(test)))
    for row, model in ((WARM_START, out / "sft"), (CONTROL, out / "sft-continued"), (GRPO, out / "grpo")):
        assert set(saved["table"][row]) == {*GROUNDING, SWAPPED}
        for data, name in ((test, "own"), (swapped, "swapped")):
            result = tmp_path / f"{model.name}-{name}"
            argv = ["--config", "recipes/tiny/grpo_grounding.yaml", "--model", str(model), "--data", str(data)]
            argv += ["--out", str(result), "--frame_cache_dir", str(out / "frames"), "--batch_size", "4"]
            argv += ["--no_progress", "--max_new_tokens", "24"]
            argv += ["--check_durations", "false"] if name == "swapped" else []  # another clip's video, on purpose
            assert eval_run.main(argv) == 0
            scored = _rounded(json.loads((result / "metrics.json").read_text()))
            if name == "own":
                assert {k: saved["table"][row][k] for k in GROUNDING} == scored, row
            else:
                assert saved["table"][row][SWAPPED] == scored["mIoU"], row
        assert saved["video_dependence"][row]["zeroed_pixel_kl"] >= 0

    # Equal compute: both runs trained from the warm start until the same wall-clock budget ran out, and their logs
    # are the trainers' own.
    for row, directory in ((GRPO, "grpo"), (CONTROL, "sft-continued")):
        state = json.loads((out / directory / "trainer_state.json").read_text())
        assert saved["rl_logs"][row] == state["log_history"]
        budget = saved["equal_compute"][row]
        assert budget["optimizer_steps"] == state["global_step"] >= 1
        assert budget["train_seconds"] >= config.rl_seconds
    assert any("reward" in entry for entry in saved["rl_logs"][GRPO])
    assert [point["step"] for point in saved["warm_start_curve"]] == [3, 4]
    assert saved["sft_config"]["max_steps"] == 4
    for row, script in ((GRPO, "grpo.py"), (CONTROL, "sft.py")):  # the commands recorded are the ones that ran
        command = saved["equal_compute_commands"][row]
        assert command[1].endswith(script)
        assert command[command.index("--model_name_or_path") + 1] == str(out / "sft")
        assert float(command[command.index("--max_train_seconds") + 1]) == config.rl_seconds
    assert (out / "report.png").stat().st_size > 10_000


def test_frame_budget_keeps_the_recipe_frames_in_each_family_sides(tmp_path):
    from temporal_rl.experiments.demo import frame_budget

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("video_max_pixels: 3136\n")  # 56 x 56: 2 x 28, not a multiple of 32
    assert frame_budget("qwen2_5_vl", str(recipe)) == {}
    assert frame_budget("qwen3_vl", str(recipe)) == frame_budget("qwen3_5", str(recipe)) == {"video_max_pixels": 4096}
    recipe.write_text("video_max_pixels: 4096\n")  # 64 x 64: 2 x 32
    assert frame_budget("qwen3_vl", str(recipe)) == {}
    assert frame_budget("qwen2_5_vl", str(recipe)) == {"video_max_pixels": 84 * 84}
    with pytest.raises(ValueError, match="unknown model family 'qwen9'"):
        DemoConfig(family="qwen9")


def test_progress_line_reads_the_trainers_bar_not_the_weight_loading_bars():
    """A hand-written log: weight loading (69 tensors) and saving draw bars of their own before and after training."""
    from temporal_rl.experiments.demo import UNBOUNDED_STEPS, last_step

    loading = "Loading weights: 100%|##| 69/69 [00:00<00:00, 7194.35it/s]\n"
    assert last_step(loading) == "starting"
    training = f"  0%|  | 0/{UNBOUNDED_STEPS} [00:00<?, ?it/s]\r  0%|  | 12/{UNBOUNDED_STEPS} [00:09<1:01:53, 1.3it/s]"
    assert last_step(loading + training) == "step 12"
    assert last_step(loading + training + "\nWriting: 100%|##| 3/3 [00:00<00:00]\n") == "step 12"
