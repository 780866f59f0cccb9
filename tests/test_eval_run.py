"""`python -m temporal_rl.eval.run` end to end on synthetic grounding clips with the tiny model (and a LoRA adapter).

The model is the tiny one with its weights shaken (seeded), so that completions differ between records and a
resumed run that lost or repeated a record could not pass for an uninterrupted one.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from data_tools.synth import generate_dataset
from temporal_rl.data import read_records, write_jsonl
from temporal_rl.eval.run import benchmark_breakdowns, breakdown, group_scores, macro_mean, parse_args
from temporal_rl.eval.run import main as run_main
from temporal_rl.resumable import drop_torn_tail
from temporal_rl.video.sampling import FrameSampling

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("shaken_tiny")
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() >= 2:
                parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.1)
    model.save_pretrained(out)
    AutoProcessor.from_pretrained(tiny_model_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def adapter_dir(model_dir, tmp_path_factory):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    base = AutoModelForImageTextToText.from_pretrained(model_dir)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    out = tmp_path_factory.mktemp("lora")
    get_peft_model(base, config).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    """Six synthetic grounding clips and a seventh record whose video does not exist."""
    out = tmp_path_factory.mktemp("eval_run_data")
    records = generate_dataset("grounding", "test", 6, "eval-run-test", out, workers=1, progress=False)
    absent = {**records[2], "id": "video-gone", "video": "videos/never-rendered.mp4"}
    path = out / "with_missing.jsonl"
    write_jsonl(path, records[:3] + [absent] + records[3:])
    return path


def run(model_dir, data_file, out, *extra):
    argv = ["--model", str(model_dir), "--data", str(data_file), "--out", str(out), "--batch-size", "2"]
    argv += ["--max-new-tokens", "8", "--video-min-pixels", str(28 * 28), "--video-max-pixels", str(56 * 56)]
    argv += ["--frame-cache-dir", str(Path(out).parent / "frames"), "--no-progress", *extra]
    return run_main(argv)


def prediction_lines(out):
    return (Path(out) / "predictions.jsonl").read_text(encoding="utf-8").splitlines()


@pytest.mark.slow
def test_end_to_end_with_a_missing_video(model_dir, data_file, tmp_path, capsys):
    out = tmp_path / "base"
    assert run(model_dir, data_file, out) == 0
    printed = capsys.readouterr().out

    rows = [json.loads(line) for line in prediction_lines(out)]
    ids = [r["id"] for r in read_records(data_file, check_video=False) if r["id"] != "video-gone"]
    assert [row["id"] for row in rows] == ids
    assert all(1 <= row["completion_tokens"] <= 8 and row["prompt_tokens"] > 100 for row in rows)
    assert len({row["completion"] for row in rows}) > 2

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["counts"]["queries"] == 7 and metrics["counts"]["missing"] == 1  # skipped = unanswered
    assert metrics["tasks"]["grounding"]["n"] == 7
    assert [row["id"] for row in metrics["skipped"]] == ["video-gone"]
    assert "never-rendered.mp4: video file not found" in metrics["skipped"][0]["reason"]
    assert metrics["run"]["generated"] == 6 and metrics["run"]["samples_per_second"] > 0
    assert metrics["breakdowns"]["synth/grounding"]["question_type"]["appear"]["n"] == 7
    assert len((out / "samples.jsonl").read_text().splitlines()) == 7
    assert (out / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert "R@0.3" in printed and "queries 7, predictions 6, missing 1" in printed
    assert "skipped 1 record(s), counted as unanswered:\n  video-gone: " in printed


def test_a_lora_adapter_changes_the_predictions(model_dir, adapter_dir, data_file, tmp_path):
    base, adapted = tmp_path / "base", tmp_path / "adapted"
    assert run(model_dir, data_file, base, "--max-samples", "3") == 0
    assert run(model_dir, data_file, adapted, "--max-samples", "3", "--adapter", str(adapter_dir)) == 0
    base_rows = [json.loads(line) for line in prediction_lines(base)]
    adapted_rows = [json.loads(line) for line in prediction_lines(adapted)]
    assert [r["id"] for r in adapted_rows] == [r["id"] for r in base_rows] and len(base_rows) == 3
    assert [r["completion"] for r in adapted_rows] != [r["completion"] for r in base_rows]
    metrics = json.loads((adapted / "metrics.json").read_text())
    assert metrics["adapter"] == str(adapter_dir) and metrics["counts"]["queries"] == 3


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_uninterrupted_result(model_dir, data_file, tmp_path, capsys):
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    assert run(model_dir, data_file, whole) == 0
    assert run(model_dir, data_file, resumed) == 0

    # The kill: three complete lines and half of the fourth survive.
    lines = prediction_lines(resumed)
    torn = "\n".join(lines[:3]) + "\n" + lines[3][: len(lines[3]) // 2]
    (resumed / "predictions.jsonl").write_text(torn, encoding="utf-8")
    capsys.readouterr()

    assert run(model_dir, data_file, resumed) == 0
    err = capsys.readouterr().err
    assert "dropped a torn last line" in err and "resuming: 3 of 7 records already predicted" in err
    assert prediction_lines(resumed) == prediction_lines(whole)
    ids = [json.loads(line)["id"] for line in prediction_lines(resumed)]
    assert len(ids) == len(set(ids)) == 6
    metrics = json.loads((resumed / "metrics.json").read_text())
    assert metrics["run"]["generated"] == 3  # only the lost records were generated again
    whole_metrics = json.loads((whole / "metrics.json").read_text())
    assert metrics["tasks"] == whole_metrics["tasks"]


def test_resume_refuses_other_settings_and_a_corrupt_file(model_dir, data_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(model_dir, data_file, out, "--max-samples", "2") == 0
    assert run(model_dir, data_file, out, "--max-samples", "2", "--think") == 2
    assert "made with other settings (think: False -> True)" in capsys.readouterr().err

    lines = prediction_lines(out)
    (out / "predictions.jsonl").write_text(lines[0][:20] + "\n" + lines[1] + "\n", encoding="utf-8")
    assert run(model_dir, data_file, out, "--max-samples", "2") == 2
    assert "predictions.jsonl, line 1: invalid JSON" in capsys.readouterr().err


def test_drop_torn_tail(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "a"}\n{"id": "b"}\n{"id"', encoding="utf-8")
    assert drop_torn_tail(path) and path.read_text() == '{"id": "a"}\n{"id": "b"}\n'
    assert not drop_torn_tail(path) and not drop_torn_tail(tmp_path / "absent.jsonl")
    path.write_text('{"id": "a"}', encoding="utf-8")
    assert drop_torn_tail(path) and path.read_text() == ""


def test_evaluation_reads_the_training_recipe_video_and_prompt_settings(model_dir, data_file, tmp_path):
    """`--config` takes the frame budget and the prompt from the training recipe, parsed as training parses it: the
    predictions are made on the frames and with the prompt the model was trained on."""
    from temporal_rl.configs import parse_recipe
    from temporal_rl.generation import prepare_prompt
    from temporal_rl.grpo.config import TemporalGRPOConfig

    recipe = ROOT / "recipes" / "tiny" / "grpo_grounding.yaml"
    _, trained, _ = parse_recipe(recipe, TemporalGRPOConfig, {"model_name_or_path": model_dir, "output_dir": tmp_path})
    out = tmp_path / "out"
    argv = ["--config", str(recipe), "--model", str(model_dir), "--data", str(data_file), "--out", str(out)]
    argv += ["--frame_cache_dir", str(tmp_path / "frames")]
    assert run_main([*argv, "--max_samples", "2", "--max_new_tokens", "4", "--no_progress"]) == 0

    settings = json.loads((out / "run_config.json").read_text())
    assert settings["sampling"] == trained.frame_sampling().to_dict()
    # the tiny recipes put the video after the question (not the default): read from the recipe, not defaulted
    assert (settings["think"], settings["span_format"], settings["video_position"]) == (False, "plain", "last")
    assert settings["sampling"] != FrameSampling().to_dict()  # the recipe's 56 px budget, not Qwen's default
    # the prompts the model got: those of the training recipe's frames and wording, token for token
    processor = AutoProcessor.from_pretrained(model_dir)
    for line, record in zip(prediction_lines(out), read_records(data_file, check_video=False), strict=False):
        expected = prepare_prompt(record, processor, trained.frame_sampling(), None, trained.prompt_options())
        assert json.loads(line)["prompt_tokens"] == expected.num_tokens
    # a setting given on the command line wins over the recipe's
    args, video = parse_args([*argv, "--video_max_pixels", "1568", "--think"])
    assert (video.video_max_pixels, video.think, video.video_min_pixels) == (1568, True, trained.video_min_pixels)


@pytest.mark.slow
def test_module_help_runs_without_loading_a_model():
    result = subprocess.run(
        [sys.executable, "-m", "temporal_rl.eval.run", "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "--adapter" in result.stdout and "--span-format" in result.stdout


# ----------------------------------------------------------------------------------------------------------------
# Benchmark conventions


def qa(id_, source, correct, **meta):
    record = {"id": id_, "source": source, "meta": meta}
    return record, {"id": id_, "correct": correct, "iou": None}


def test_mlvu_m_avg_is_the_macro_mean_over_question_types():
    # count: 1/1 right; order: 1/3 right. Micro accuracy 50 %, M-Avg (100 + 33.3) / 2.
    pairs = [qa("c1", "mlvu", True, question_type="count")]
    pairs += [qa(f"o{i}", "mlvu", i == 0, question_type="order") for i in range(3)]
    records, samples = zip(*pairs, strict=True)
    result = benchmark_breakdowns(records, samples)["mlvu"]
    assert result["question_type"]["count"] == {"n": 1, "accuracy": 100.0}
    assert result["question_type"]["order"]["accuracy"] == pytest.approx(100 / 3)
    assert result["M-Avg"] == pytest.approx((100 + 100 / 3) / 2)


def test_videomme_by_duration_bucket_and_lvbench_multi_label_types():
    pairs = [
        qa("v1", "videomme", True, duration_bucket="short", task_type="OCR Problems", domain="Knowledge"),
        qa("v2", "videomme", False, duration_bucket="short", task_type="OCR Problems", domain="Knowledge"),
        qa("v3", "videomme", True, duration_bucket="long", task_type="Counting Problem", domain="Sports"),
        qa("l1", "lvbench", True, question_type=["reasoning", "temporal grounding"]),
        qa("l2", "lvbench", False, question_type=["reasoning"]),
    ]
    records, samples = zip(*pairs, strict=True)
    result = benchmark_breakdowns(records, samples)
    assert result["videomme"]["duration_bucket"] == {
        "long": {"n": 1, "accuracy": 100.0},
        "short": {"n": 2, "accuracy": 50.0},
    }
    assert result["videomme"]["domain"]["Sports"]["n"] == 1
    assert result["lvbench"]["question_type"] == {
        "reasoning": {"n": 2, "accuracy": 50.0},
        "temporal grounding": {"n": 1, "accuracy": 100.0},
    }


def test_group_scores_and_macro_mean_on_span_tasks():
    samples = [{"correct": None, "iou": 0.5}, {"correct": None, "iou": 0.0}]
    assert group_scores(samples) == {"n": 2, "mIoU": 25.0}
    records = [{"meta": {"question_type": "appear"}}, {"meta": {}}]
    assert breakdown(records, samples, "question_type") == {"appear": {"n": 1, "mIoU": 50.0}}
    assert macro_mean({}) == 0.0
