"""ViaRL's answer stage and iterated amplification: selections, answer SFT batches, the resumable stage machine.

- The answer SFT batch of a row holds the prompt with the selected frames (compared with an independent decode and
  processor call) and labels on the answer tokens only (decoded by hand).
- `sample_selections` resumes from a partial JSONL (a line cut short by a kill included) and samples only what is
  missing, drawing the same completions as an uninterrupted run.
- The stage machine: a tiny 1-cycle run with warm starts (1-2 steps per stage) fails inside its answer stage after a
  checkpoint, is started again, redoes none of the finished stages (runner calls counted, adapter files untouched),
  resumes the answer stage from its checkpoint and leaves adapters that PEFT loads; a changed config is refused
  unless `overwrite`; the state file is replaced atomically.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from transformers import AutoProcessor, TrainerCallback

from data_tools.synth import generate_dataset
from temporal_rl.data import read_records
from temporal_rl.generation import GenerationOptions
from temporal_rl.prompts import build_messages
from temporal_rl.resumable import write_json_atomic
from temporal_rl.rewards.selector import check_selector_format, is_valid_selection
from temporal_rl.sft import IGNORE_INDEX, VideoSFTCollator
from temporal_rl.viarl import amplification as viarl
from temporal_rl.viarl.answer_stage import (
    CandidateSpec,
    SelectedFrames,
    oracle_indices,
    read_selections,
    sample_selections,
)
from temporal_rl.video.cache import FrameCache
from temporal_rl.video.decode import decode_video
from temporal_rl.video.inputs import processor_video_kwargs
from temporal_rl.video.sampling import FrameSampling

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "recipes" / "tiny"
SPEC = CandidateSpec(num_candidates=8, num_select=2, selector_long_side=56, answer_long_side=56)


@pytest.fixture(scope="module")
def needle_jsonl(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("viarl_needle")
    generate_dataset("needle", "train", 4, "viarl-test", root, difficulty="tiny", workers=1, progress=False)
    return root / "data.jsonl"


# ----------------------------------------------------------------------------------------------------------------
# Answer SFT batches


def test_answer_sft_batch_has_the_selected_frames_and_labels_only_the_answer(tiny_model_dir, needle_jsonl, tmp_path):
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    records = read_records(needle_jsonl)[:2]
    selections = {records[0]["id"]: [6, 1], records[1]["id"]: {"indices": [0, 7]}}
    collator = VideoSFTCollator(processor, frames=SelectedFrames(selections, SPEC, FrameCache(tmp_path)))
    batch = collator(records)
    tokenizer = processor.tokenizer
    start = 0
    for i, (record, indices) in enumerate(zip(records, ([1, 6], [0, 7]), strict=True)):
        # Independent: decode the 8 uniform candidates afresh, keep the selected ones in time order, run the processor.
        decoded = decode_video(record["video"], FrameSampling(num_frames=8, min_pixels=784, max_pixels=56 * 56))
        frames = decoded.frames[indices]
        assert (
            decoded.indices[indices].tolist() == np.linspace(0, decoded.total_frames - 1, 8).round()[indices].tolist()
        )
        text = processor.apply_chat_template(build_messages(record), add_generation_prompt=True, tokenize=False)
        selected = type(decoded)(
            frames=frames,
            timestamps=decoded.timestamps[indices],
            indices=decoded.indices[indices],
            source_fps=decoded.source_fps,
            total_frames=decoded.total_frames,
            duration=decoded.duration,
            path=decoded.path,
        )
        prompt = processor(text=[text], return_tensors="pt", **processor_video_kwargs([selected]))
        prompt_ids = prompt["input_ids"][0]
        patches = prompt["pixel_values_videos"]
        assert torch.equal(batch["input_ids"][i, : len(prompt_ids)], prompt_ids)
        assert torch.allclose(batch["pixel_values_videos"][start : start + len(patches)], patches)
        assert batch["second_per_grid_ts"][i].item() == pytest.approx(float(prompt["second_per_grid_ts"][0]))
        start += len(patches)
        # The labelled tokens, decoded by hand, are the gold answer and the end of turn; nothing else is labelled.
        labelled = batch["labels"][i][batch["labels"][i] != IGNORE_INDEX]
        assert tokenizer.decode(labelled) == f"<answer>{record['answer']}</answer><|im_end|>"
        assert (batch["labels"][i, : len(prompt_ids)] == IGNORE_INDEX).all()
        positions = (batch["labels"][i] != IGNORE_INDEX).nonzero().flatten()
        assert positions.tolist() == list(range(len(prompt_ids), len(prompt_ids) + len(labelled)))
    assert start == len(batch["pixel_values_videos"])


def test_selections_missing_a_record_fail_clearly(tiny_model_dir, needle_jsonl, tmp_path):
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    record = read_records(needle_jsonl)[0]
    collator = VideoSFTCollator(processor, frames=SelectedFrames({}, SPEC, FrameCache(tmp_path)))
    with pytest.raises(KeyError, match="has no selection"):
        collator([record])


def test_oracle_indices_hand_worked():
    # candidates at source frames 0, 5, ..., 35; the needle shows in frames [12, 22): candidates 3 (15) and 4 (20)
    sources = list(range(0, 40, 5))
    assert oracle_indices(sources, (12, 22), 2) == [3, 4]
    assert oracle_indices(sources, (12, 22), 1) == [4]  # the centre of the 2 inside, floor((2*0+1)*2/2) = 1
    # only candidate 3 (frame 15) is inside; 2 more from the 7 others [0, 1, 2, 4, 5, 6, 7] at positions 1 and 5
    assert oracle_indices(sources, (12, 17), 3) == [1, 3, 6]
    with pytest.raises(ValueError):
        oracle_indices(sources, (0, 5), 9)


def test_oracle_frames_show_the_needle(needle_jsonl, tmp_path):
    from temporal_rl.viarl.answer_stage import OracleFrames

    for record in read_records(needle_jsonl):
        f0, f1 = record["meta"]["needle_frames"]
        dense = OracleFrames(CandidateSpec(8, 4, 56, 56), FrameCache(tmp_path), every_frame=True)(record)
        assert len(dense.indices) == 4 and all(f0 <= i < f1 for i in dense.indices)  # a needle lasts >= 4 frames
        assert np.all(np.diff(dense.timestamps) > 0)
        # among the 8 candidates (by hand: linspace, rounded): as many in the window as fit, then others
        sources = np.linspace(0, record["meta"]["num_frames"] - 1, 8).round()
        inside = {int(s) for s in sources if f0 <= s < f1}
        chosen = OracleFrames(CandidateSpec(8, 2, 56, 56), FrameCache(tmp_path))(record)
        assert len(chosen.indices) == 2
        assert len(inside & set(chosen.indices.tolist())) == min(2, len(inside))


# ----------------------------------------------------------------------------------------------------------------
# Selections


def test_sample_selections_resumes_from_a_partial_file(tiny_model_dir, needle_jsonl, tmp_path):
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir).eval()
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    records = read_records(needle_jsonl)
    cache = FrameCache(tmp_path / "frames")
    options = GenerationOptions(do_sample=True, temperature=1.0, max_new_tokens=12, batch_size=2)

    full = tmp_path / "full.jsonl"
    summary = sample_selections(model, processor, records, full, SPEC, cache, generation=options, seed=3)
    assert (summary.total, summary.sampled) == (4, 4)
    rows = read_selections(full)
    assert list(rows) == [r["id"] for r in records]
    for row in rows.values():
        assert is_valid_selection(row["indices"], 8, 2)  # valid or the uniform fallback
        assert row["valid"] == is_valid_selection(row["parsed"], 8, 2)
        assert row["valid"] or row["indices"] == [0, 4]
    assert summary.fallback == sum(not row["valid"] for row in rows.values())

    # Killed after the first batch, in the middle of writing the next line.
    lines = full.read_text().splitlines(keepends=True)
    partial = tmp_path / "partial.jsonl"
    partial.write_text("".join(lines[:2]) + lines[2][:15])
    assert list(read_selections(partial)) == [records[0]["id"], records[1]["id"]]
    resumed = sample_selections(model, processor, records, partial, SPEC, cache, generation=options, seed=3)
    assert (resumed.total, resumed.sampled) == (4, 2)
    assert partial.read_text() == full.read_text()  # same batches, same seeds, same draws; no broken line left

    again = sample_selections(model, processor, records, partial, SPEC, cache, generation=options, seed=3)
    assert again.sampled == 0 and partial.read_text() == full.read_text()


def test_read_selections_rejects_a_corrupt_middle_line(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"id": "a", "indices": [1]}\nnot json\n{"id": "b", "indices": [2]}\n')
    with pytest.raises(ValueError, match="s.jsonl:2"):
        read_selections(path)


# ----------------------------------------------------------------------------------------------------------------
# Pure pieces of the stage machine


def test_model_lineage_continues_adapters_across_cycles():
    stages = viarl.plan_stages(2, answer_warmstart=True, selector_warmstart=True)
    assert [s.name for s in stages] == [
        "warmstart/answer", "warmstart/selector",
        "cycle_1/selector", "cycle_1/selections", "cycle_1/answer",
        "cycle_2/selector", "cycle_2/selections", "cycle_2/answer",
    ]  # fmt: skip
    use_peft = {"answer_warmstart": False, "selector_warmstart": False, "selector": True, "answer": True}
    lineage = viarl.model_lineage(stages, "o", viarl.ModelRef("S"), viarl.ModelRef("A"), use_peft)
    ref = viarl.ModelRef
    assert lineage["cycle_1/selector"] == (ref("o/warmstart/selector"), ref("o/warmstart/answer"))
    assert lineage["cycle_1/answer"] == (ref("o/warmstart/selector", "o/cycle_1/selector"), ref("o/warmstart/answer"))
    assert lineage["cycle_2/selector"] == (
        ref("o/warmstart/selector", "o/cycle_1/selector"),
        ref("o/warmstart/answer", "o/cycle_1/answer"),
    )
    assert lineage["cycle_2/answer"][1] == ref("o/warmstart/answer", "o/cycle_1/answer")
    assert lineage[viarl.FINAL] == (
        ref("o/warmstart/selector", "o/cycle_2/selector"),
        ref("o/warmstart/answer", "o/cycle_2/answer"),
    )
    with pytest.raises(ValueError, match="cannot continue the LoRA adapter"):
        viarl.model_lineage(stages, "o", ref("S"), ref("A"), {**use_peft, "answer_warmstart": True, "answer": False})


def test_state_file_is_replaced_atomically(tmp_path):
    path = tmp_path / "state.json"
    write_json_atomic(path, {"stages": {"a": 1}})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"stages": {"a": 2}, "bad": {(1, 2): 0}})  # fails halfway through writing
    assert json.loads(path.read_text()) == {"stages": {"a": 1}}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left


def test_selector_format_examples_are_valid_and_random(tiny_model_dir, needle_jsonl, tmp_path):
    records = read_records(needle_jsonl)
    examples = viarl.SelectorFormatExamples(SPEC, FrameCache(tmp_path), seed=0)
    texts = [examples.completion(r) for r in records for _ in range(50)]
    assert all(check_selector_format(t) for t in texts)
    lists = [[int(i) for i in t.split("<index>")[1].split("</index>")[0].split(", ")] for t in texts]
    assert all(is_valid_selection(indices, 8, 2) for indices in lists)
    # drawn afresh at every call, uniformly: each of the 8 candidates in about N/T = 1/4 of the 200 lists
    counts = [sum(i in indices for indices in lists) for i in range(8)]
    assert all(30 <= count <= 70 for count in counts), counts
    again = viarl.SelectorFormatExamples(SPEC, FrameCache(tmp_path), seed=0)
    assert [again.completion(r) for r in records for _ in range(50)] == texts  # the seed fixes the sequence
    assert examples.frames(records[0]).frames.shape == (8, 56, 56, 3)
    assert "8 frames" in examples.messages(records[0])[0]["content"][0]["text"]
    assert [block["type"] for block in examples.messages(records[0])[1]["content"]] == ["video", "text"]
    last = viarl.SelectorFormatExamples(dataclasses.replace(SPEC, video_position="last"), FrameCache(tmp_path))
    assert [block["type"] for block in last.messages(records[0])[1]["content"]] == ["text", "video"]


def test_selector_prompt_order_follows_the_recipe(needle_jsonl, tmp_path):
    """`selector_video_position` of a selector recipe reaches every selector prompt: the spec (warm start,
    selections, evaluation) and the trainer's prompt column. The tiny needle recipe puts the video last."""
    import datasets

    from temporal_rl.configs import parse_recipe
    from temporal_rl.viarl.config import ViaRLSelectorConfig
    from temporal_rl.viarl.selector_trainer import add_selector_prompts

    rows = datasets.Dataset.from_list([dict(read_records(needle_jsonl)[0], meta="-")])
    for position, order in (("first", ["video", "text"]), ("last", ["text", "video"])):
        config = parse_recipe(
            "recipes/tiny/viarl_needle_selector.yaml", ViaRLSelectorConfig,
            {"output_dir": str(tmp_path), "selector_video_position": position},
        )[1]  # fmt: skip
        assert CandidateSpec.from_config(config).video_position == position
        prompt = add_selector_prompts(rows, config)[0]["prompt"]
        assert [block["type"] for block in prompt[1]["content"]] == order
    tiny = parse_recipe("recipes/tiny/viarl_needle_selector.yaml", ViaRLSelectorConfig, {"output_dir": str(tmp_path)})
    assert tiny[1].selector_video_position == "last"
    with pytest.raises(ValueError, match="selector_video_position must be one of first, last"):
        ViaRLSelectorConfig(
            output_dir=str(tmp_path),
            answer_model_name_or_path="/m",
            report_to="none",
            use_cpu=True,
            bf16=False,
            selector_video_position="mid",
        )


# ----------------------------------------------------------------------------------------------------------------
# The stage machine on tiny models


def _write_recipe(source: Path, target: Path, **changes) -> str:
    raw = yaml.safe_load(source.read_text())
    raw.update(changes)
    target.write_text(yaml.safe_dump(raw))
    return str(target)


@pytest.fixture
def tiny_run(tiny_model_dir, needle_jsonl, tmp_path):
    """A 1-cycle config with both warm starts, 1-2 steps per stage, on the tiny recipes cut down."""
    small_sft = dict(per_device_train_batch_size=2, logging_steps=1, save_strategy="no", warmup_steps=0)
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    lora = dict(lora_r=4, lora_alpha=8)
    selector = _write_recipe(
        TINY / "viarl_needle_selector.yaml", recipes / "selector.yaml", **lora,
        per_device_train_batch_size=4, num_generations=4, max_completion_length=8, save_strategy="no",
        answer_max_new_tokens=4, num_candidates=8, num_frames_to_select=2, logging_steps=1,
        answer_model_name_or_path=str(tiny_model_dir),
    )  # fmt: skip
    answer = _write_recipe(
        TINY / "viarl_needle_answer.yaml", recipes / "answer.yaml", **lora, **small_sft,
        model_name_or_path=str(tiny_model_dir),
    )  # fmt: skip
    answer = _write_recipe(Path(answer), Path(answer), save_strategy="steps", save_steps=1)
    warm_answer = _write_recipe(TINY / "viarl_needle_answer_warmstart.yaml", recipes / "warm_answer.yaml", **small_sft)
    warm_selector = _write_recipe(
        TINY / "viarl_needle_selector_warmstart.yaml", recipes / "warm_selector.yaml", **small_sft
    )
    return viarl.ViaRLConfig(
        output_dir=str(tmp_path / "run"),
        selector_recipe=selector,
        answer_recipe=answer,
        answer_warmstart_recipe=warm_answer,
        selector_warmstart_recipe=warm_selector,
        num_cycles=1,
        train_file=str(needle_jsonl),
        selector_model=str(tiny_model_dir),
        answer_model=str(tiny_model_dir),
        frame_cache_dir=str(tmp_path / "frames"),
        seed=0,
        selector_steps=1,
        answer_steps=2,
        answer_warmstart_steps=1,
        selector_warmstart_steps=1,
        selection_batch_size=4,
    )


class _FailAfterFirstSave(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        raise RuntimeError("injected failure after checkpoint-1")


@pytest.mark.slow
def test_interrupted_run_resumes_without_redoing_finished_stages(tiny_run, monkeypatch):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    real_train = viarl.train_sft
    resumed_from = []

    def failing_train(*args, **kwargs):
        return real_train(*args, **{**kwargs, "callbacks": [_FailAfterFirstSave()]})

    real_runners = dict(viarl.STAGE_RUNNERS)

    def failing_answer(run, stage):  # the answer stage fails right after its first checkpoint
        monkeypatch.setattr(viarl, "train_sft", failing_train)
        try:
            return real_runners["answer"](run, stage)
        finally:
            monkeypatch.setattr(viarl, "train_sft", real_train)

    monkeypatch.setitem(viarl.STAGE_RUNNERS, "answer", failing_answer)
    with pytest.raises(RuntimeError, match="injected failure"):
        viarl.run_viarl(tiny_run, log=lambda message: None)

    out = Path(tiny_run.output_dir)
    state = json.loads((out / viarl.STATE_FILE).read_text())
    finished = ["warmstart/answer", "warmstart/selector", "cycle_1/selector", "cycle_1/selections"]
    assert [name for name, s in state["stages"].items() if s["status"] == "done"] == finished
    assert state["current"] == "cycle_1/answer"
    assert (out / "cycle_1/answer/checkpoint-1/trainer_state.json").is_file()
    adapter = out / "cycle_1/selector/adapter_model.safetensors"
    first_mtime = adapter.stat().st_mtime_ns

    # Started again: count what runs; the answer stage resumes from its checkpoint.
    calls = []
    for kind, runner in real_runners.items():

        def counting(run, stage, runner=runner):
            calls.append(stage.name)
            return runner(run, stage)

        monkeypatch.setitem(viarl.STAGE_RUNNERS, kind, counting)

    def recording_train(data_args, config, model_args, **kwargs):
        resumed_from.append(config.resume_from_checkpoint)
        return real_train(data_args, config, model_args, **kwargs)

    monkeypatch.setattr(viarl, "train_sft", recording_train)
    state = viarl.run_viarl(tiny_run, log=lambda message: None)
    assert calls == ["cycle_1/answer"]
    assert resumed_from == [str(out / "cycle_1/answer/checkpoint-1")]
    assert all(s["status"] == "done" for s in state["stages"].values()) and len(state["stages"]) == 5
    assert state["stages"]["cycle_1/answer"]["summary"]["global_step"] == 2
    assert adapter.stat().st_mtime_ns == first_mtime
    assert json.loads((out / viarl.STATE_FILE).read_text()) == json.loads(json.dumps(state, default=str))

    # A third start finds everything done.
    calls.clear()
    viarl.run_viarl(tiny_run, log=lambda message: None)
    assert calls == []

    # Adapters load onto their bases: the selector's onto the format-warm-started selector, the answerer's onto the
    # warm-started answerer (both full fine-tunes).
    for stage, base in (("cycle_1/selector", "warmstart/selector"), ("cycle_1/answer", "warmstart/answer")):
        model = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(out / base), out / stage)
        assert any("lora_" in name for name, _ in model.named_parameters())
    selections = viarl.read_stage_selections(out / "cycle_1/selections")
    assert len(selections) == 4


def test_changed_config_is_refused_unless_overwrite(tiny_run, monkeypatch):
    calls = []

    def fake(run, stage):
        calls.append(stage.name)
        run.stage_dir(stage).mkdir(parents=True, exist_ok=True)
        return {"ok": 1}

    for kind in list(viarl.STAGE_RUNNERS):
        monkeypatch.setitem(viarl.STAGE_RUNNERS, kind, fake)
    viarl.run_viarl(tiny_run, log=lambda message: None)
    assert len(calls) == 5
    out = Path(tiny_run.output_dir)
    (out / "cycle_1/selections").rmdir()
    with pytest.raises(FileNotFoundError, match="cycle_1/selections is done but"):
        viarl.run_viarl(tiny_run, log=lambda message: None)
    (out / "cycle_1").mkdir(parents=True, exist_ok=True)
    (out / "cycle_1" / "marker").write_text("old run")

    changed = viarl.ViaRLConfig(**{**tiny_run.__dict__, "answer_steps": 3})
    with pytest.raises(ValueError, match=r"answer_steps: 2 -> 3.*--overwrite"):
        viarl.run_viarl(changed, log=lambda message: None)
    recipe = Path(tiny_run.answer_recipe)
    recipe.write_text(recipe.read_text() + "\n# edited\n")
    with pytest.raises(ValueError, match="answer_recipe file contents"):
        viarl.run_viarl(tiny_run, log=lambda message: None)

    calls.clear()
    viarl.run_viarl(viarl.ViaRLConfig(**{**changed.__dict__, "overwrite": True}), log=lambda message: None)
    assert len(calls) == 5 and not (out / "cycle_1" / "marker").exists()
    state = json.loads((out / viarl.STATE_FILE).read_text())
    assert state["fingerprint"]["config"]["answer_steps"] == 3


# ----------------------------------------------------------------------------------------------------------------
# The experiment's pieces and the docstring examples


def test_experiment_keeps_needles_a_candidate_shows(needle_jsonl, tmp_path):
    from temporal_rl.experiments.viarl_experiment import chance_accuracy, keep_needles, markdown_table, summarise

    records = read_records(needle_jsonl)
    spec = CandidateSpec(num_candidates=4, num_select=2, selector_long_side=56, answer_long_side=56)
    cache = FrameCache(tmp_path)
    kept, counts = keep_needles(records, ["star", "digit"], spec, cache)
    for record in records:
        # by hand: the 4 candidates are linspace(0, n - 1, 4) rounded; the needle shows in [f0, f1)
        n = record["meta"]["num_frames"]
        f0, f1 = record["meta"]["needle_frames"]
        visible = any(f0 <= s < f1 for s in np.linspace(0, n - 1, 4).round())
        assert (record in kept) == visible
    assert counts["kept"] + counts["needle_not_on_a_candidate"] == len(records) == counts["generated"]
    kinds = {r["meta"]["needle"]["kind"] for r in records}
    only = sorted(kinds)[0]
    assert all(r["meta"]["needle"]["kind"] == only for r in keep_needles(records, [only], spec, cache)[0])
    assert chance_accuracy(records) == pytest.approx(0.25)  # four options each

    runs = {0: {"row": {"accuracy": 0.5, "evidence_rate": None}}, 1: {"row": {"accuracy": 0.25, "evidence_rate": 1.0}}}
    accuracy = summarise(runs, "accuracy")["row"]
    assert (accuracy["mean"], accuracy["std"], accuracy["seeds"]) == (0.375, 0.125, 2)
    assert summarise(runs, "evidence_rate")["row"]["seeds"] == 1  # None values are left out
    table = markdown_table(
        {m: summarise(runs, m) for m in ("accuracy", "evidence_rate", "valid_evidence_rate", "invalid_rate")}, 0.25, 2
    )
    assert "| row | 37.5 ± 12.5 | 100.0 ± 0.0 | - | - |" in table
