"""Tests of data_tools.synth: determinism, the test-only combinations, record validity, gold spans checked on the
decoded pixels, the CLI, and lint of the package."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pytest

from data_tools.synth import (
    FAMILIES,
    PRESETS,
    QUESTION_TEMPLATES,
    RESERVED_PAIRS,
    RESERVED_TEMPLATE_IDS,
    HeldOutLeakError,
    encode_mp4,
    generate_dataset,
    generate_sample,
    plan_sample,
)
from data_tools.synth.__main__ import main
from data_tools.synth.dataset import RenderJob, render_to_disk
from data_tools.synth.heldout import check_split_allowed
from data_tools.synth.vocab import COLOURS, SHAPES
from temporal_rl.data import read_records

REPO = Path(__file__).resolve().parents[1]
OWN_FILES = ["data_tools/synth", "tests/test_synth.py"]


def _plans(task: str, split: str, count: int, namespace: str = "unit", difficulty: str = "tiny"):
    return [plan_sample(task, split, index, namespace, difficulty) for index in range(count)]


def _decode_rgb(path: Path) -> tuple[list[float], list[np.ndarray]]:
    """Frame times and RGB frames, decoded with PyAV alone."""
    times, frames = [], []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            times.append(frame.time)
            frames.append(frame.to_ndarray(format="rgb24"))
    return times, frames


def _template_regex(template: str) -> re.Pattern:
    parts = re.split(r"\{\w+\}", template)
    return re.compile("^" + r"\w+".join(re.escape(part) for part in parts) + "$")


@pytest.fixture(scope="module")
def tiny_grounding(tmp_path_factory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("tiny_grounding")
    return out, generate_dataset("grounding", "train", 10, "pix", out, workers=1, progress=False)


@pytest.fixture(scope="module")
def cli_outputs(tmp_path_factory) -> dict[str, Path]:
    """The CLI run once per task family (in-process), small n."""
    outputs = {}
    for task in FAMILIES:
        out = tmp_path_factory.mktemp(f"cli_{task}")
        argv = [
            "--task",
            task,
            "--split",
            "val",
            "--n",
            "4",
            "--namespace",
            "cli",
            "--out",
            str(out),
            "--workers",
            "1",
        ]
        assert main(argv) == 0
        outputs[task] = out
    return outputs


# ---- determinism
@pytest.mark.slow
def test_same_arguments_give_identical_records_and_video_bytes_whatever_the_workers(tmp_path):
    first = generate_dataset("mcq", "train", 6, "det", tmp_path / "a", workers=1, progress=False)
    second = generate_dataset("mcq", "train", 6, "det", tmp_path / "b", workers=2, progress=False)
    assert first == second
    assert [r["id"] for r in first] == [f"synth-det-mcq-train-{i:06d}" for i in range(6)]
    assert (tmp_path / "a/data.jsonl").read_bytes() == (tmp_path / "b/data.jsonl").read_bytes()
    for record in first:
        assert (tmp_path / "a" / record["video"]).read_bytes() == (tmp_path / "b" / record["video"]).read_bytes()


def test_one_index_regenerated_alone_equals_the_batch_sample(tiny_grounding, tmp_path):
    out, records = tiny_grounding
    record, frames = generate_sample("grounding", "train", 7, "pix", "tiny")
    assert record == records[7]
    assert frames.shape == (record["meta"]["num_frames"], 56, 56, 3) and frames.dtype == np.uint8
    encode_mp4(frames, record["meta"]["fps"], tmp_path / "alone.mp4")
    assert (tmp_path / "alone.mp4").read_bytes() == (out / records[7]["video"]).read_bytes()


def test_namespace_and_split_give_disjoint_ids_and_content():
    groups = {
        (namespace, split): _plans("grounding", split, 40, namespace)
        for namespace, split in [("a", "train"), ("b", "train"), ("a", "val"), ("a", "test")]
    }
    seen_ids, seen_seeds, seen_content = set(), set(), set()
    for plans in groups.values():
        ids = {p.record["id"] for p in plans}
        seeds = {p.record["meta"]["seed"] for p in plans}
        content = {(p.record["question"], str(p.record["spans"]), str(p.record["meta"]["background"])) for p in plans}
        assert len(ids) == len(seeds) == 40
        assert not ids & seen_ids and not seeds & seen_seeds and not content & seen_content
        seen_ids |= ids
        seen_seeds |= seeds
        seen_content |= content


# ---- test-only combinations
@pytest.mark.slow
@pytest.mark.parametrize("task", FAMILIES)
def test_train_and_val_never_use_test_only_pairs_or_templates(task):
    reserved_questions = [
        _template_regex(QUESTION_TEMPLATES[key][index]) for key, index in RESERVED_TEMPLATE_IDS.items()
    ]
    for difficulty in PRESETS:
        for split in ("train", "val"):
            for plan in _plans(task, split, 60, "guard", difficulty):
                meta = plan.record["meta"]
                assert not plan.scene.shown_pairs() & RESERVED_PAIRS
                assert not meta["heldout_combo"] and not meta["heldout_paraphrase"]
                assert not any(regex.match(plan.record["question"]) for regex in reserved_questions)


@pytest.mark.slow
@pytest.mark.parametrize("difficulty", PRESETS)
@pytest.mark.parametrize("task", FAMILIES)
def test_test_split_draws_test_only_combinations_often(task, difficulty):
    plans = _plans(task, "test", 200, "guard", difficulty)
    flagged = [p for p in plans if p.record["meta"]["heldout_combo"] or p.record["meta"]["heldout_paraphrase"]]
    assert len(flagged) >= 0.25 * len(plans)
    assert any(p.scene.shown_pairs() & RESERVED_PAIRS for p in plans)
    assert any(p.record["meta"]["heldout_paraphrase"] for p in plans)


@pytest.mark.parametrize("difficulty", ["tiny", "standard"])
def test_needle_star_options_are_colours_the_haystack_does_not_show(difficulty):
    # The star's colour is never a walker's, so a walker's colour among the options is ruled out by any frame without
    # the needle: offered, it made a model answering "a colour I see" wrong by construction (11.5% on a 4-way
    # question, far below chance) and one that eliminates seen colours right 38% of the time without the needle.
    plans = [
        p for p in _plans("needle", "train", 80, "options", difficulty) if p.record["meta"]["needle"]["kind"] == "star"
    ]
    assert len(plans) >= 20
    for plan in plans:
        record, meta = plan.record, plan.record["meta"]
        seen = {d["colour"] for d in meta["distractors"]}
        assert seen and record["options"][ord(record["answer"]) - ord("A")] == meta["needle"]["colour"]
        assert not seen & set(record["options"]), (seen, record["options"])
    golds = Counter(p.record["answer"] for p in plans)
    assert len(golds) >= 3, golds  # the gold still lands at varied positions


def test_guard_rejects_test_only_combinations_outside_the_test_split():
    reserved_pair = sorted(RESERVED_PAIRS)[0]
    with pytest.raises(HeldOutLeakError, match="pairs"):
        check_split_allowed("train", {reserved_pair}, "grounding/appear", 0)
    with pytest.raises(HeldOutLeakError, match="template"):
        check_split_allowed("val", set(), "grounding/appear", RESERVED_TEMPLATE_IDS["grounding/appear"])
    check_split_allowed("test", {reserved_pair}, "grounding/appear", RESERVED_TEMPLATE_IDS["grounding/appear"])
    assert 0.15 <= len(RESERVED_PAIRS) / (len(SHAPES) * len(COLOURS)) <= 0.25


# ---- records
@pytest.mark.parametrize("task", FAMILIES)
def test_cli_writes_jsonl_and_one_video_per_record(cli_outputs, task):
    out = cli_outputs[task]
    records = read_records(out / "data.jsonl")
    assert len(records) == 4 and len(list((out / "videos").glob("*.mp4"))) == 4
    assert {r["source"] for r in records} == {f"synth/{task}"}
    assert {r["task"] for r in records} == {"mcq" if task == "needle" else task}
    for record in records:
        assert Path(record["video"]).name == f"{record['id']}.mp4"


@pytest.mark.parametrize("task", FAMILIES)
def test_spans_are_whole_frames_inside_the_clip(cli_outputs, task):
    for record in read_records(cli_outputs[task] / "data.jsonl"):
        meta, fps = record["meta"], record["meta"]["fps"]
        assert record["duration"] * fps == meta["num_frames"]
        spans = list(record["spans"] or [])
        if task == "needle":
            spans.append(meta["needle_span"])
            assert 0.0 <= meta["depth"] <= 1.0 and meta["needle_visible_at_sample_fps"]
        if task == "mcq":
            spans.append(meta["evidence_span"])
        assert spans or task == "mcq"
        for start, end in spans:
            assert start * fps == round(start * fps) and end * fps == round(end * fps)
            assert 0 <= start < end <= record["duration"]
            assert 2 <= (end - start) * fps
        for start, end in record["spans"] or []:
            assert (end - start) <= 0.4 * record["duration"]


@pytest.mark.slow
@pytest.mark.parametrize("task", ["mcq", "needle", "grounded_qa"])
def test_answer_letters_are_balanced(task):
    letters = Counter(plan.record["answer"] for plan in _plans(task, "train", 400, "letters", "standard"))
    assert set(letters) == set("ABCD")
    assert all(0.18 <= count / 400 <= 0.32 for count in letters.values()), letters


# ---- pixels
def _named(words, question: str) -> str:
    (word,) = [w for w in words if re.search(rf"\b{w}\b", question)]
    return word


def _frames_showing(frames: list[np.ndarray], rgb: tuple[int, int, int]) -> list[int]:
    """Frames with a blob of the target colour: enough pixels within 40 of it on every channel."""
    min_pixels = 8 * (frames[0].shape[0] / 56) ** 2
    target = np.array(rgb, dtype=np.int16)
    return [
        t
        for t, frame in enumerate(frames)
        if (np.abs(frame.astype(np.int16) - target).max(-1) <= 40).sum() >= min_pixels
    ]


@pytest.mark.parametrize("difficulty", ["tiny", "standard"])
def test_gold_span_is_exactly_where_the_target_is_visible(difficulty, tmp_path):
    # Appear queries whose target colour no other object has (always so in tiny; standard adds motion).
    plans = _plans("grounding", "train", 40, "pix", difficulty)
    chosen = [
        p.record["meta"]["index"]
        for p in plans
        if p.record["meta"]["question_type"] == "appear"
        and all(d["colour"] != p.record["meta"]["target"]["colour"] for d in p.record["meta"]["distractors"])
    ][:6]
    assert len(chosen) == 6
    for index in chosen:
        record = render_to_disk(RenderJob("grounding", "train", index, "pix", difficulty, str(tmp_path)))
        colour = _named(COLOURS, record["question"])
        assert _named(SHAPES, record["question"]) == record["meta"]["target"]["shape"]
        times, frames = _decode_rgb(tmp_path / record["video"])
        fps = record["meta"]["fps"]
        assert len(frames) == record["duration"] * fps
        assert times == [t / fps for t in range(len(frames))]
        ((start, end),) = record["spans"]
        assert _frames_showing(frames, COLOURS[colour]) == list(range(round(start * fps), round(end * fps)))


# ---- CLI
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--task", "tracking"], "invalid choice: 'tracking'"),
        (["--split", "dev"], "invalid choice: 'dev'"),
        (["--n", "0"], "expected a positive integer, got 0"),
        (["--n", "many"], "expected a positive integer, got 'many'"),
        (["--namespace", "a|b"], "not a valid namespace"),
        (["--difficulty", "extreme"], "invalid choice: 'extreme'"),
        (["--workers", "-1"], "expected a positive integer"),
    ],
)
def test_cli_rejects_bad_arguments_with_a_clear_message(argv, message, tmp_path, capsys):
    base = {"--task": "grounding", "--split": "train", "--n": "2", "--namespace": "x", "--out": str(tmp_path)}
    base.update(dict(zip(argv[::2], argv[1::2], strict=True)))
    with pytest.raises(SystemExit) as exit_info:
        main([item for pair in base.items() for item in pair])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_module_entry_point_renders_with_a_process_pool(tmp_path):
    command = [sys.executable, "-m", "data_tools.synth", "--task", "needle", "--split", "test", "--n", "3"]
    command += ["--namespace", "entry", "--out", str(tmp_path), "--workers", "2"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "wrote 3 needle samples" in result.stdout
    assert len(read_records(tmp_path / "data.jsonl")) == 3


# ---- lint
def test_package_is_lint_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed")
    for command in ([ruff, "check", *OWN_FILES], [ruff, "format", "--check", *OWN_FILES]):
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
