"""`python -m benchmarks.real_size` (`make bench-gpu`): the phase timer on hand-worked spans, the real-size models
kept at their real vocabulary, and a smoke run of both workloads on the CPU that writes sane files.

The figures of a smoke run are not the record (tiny models, a couple of steps); the smoke checks that every phase
is measured, that the phases of a step add up to its wall time, and that the work counted is the work the settings
imply.
"""

import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import phases, real_size  # noqa: E402


class _Clock:
    """A fake `time.perf_counter`: the test moves it."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = _Clock()
    monkeypatch.setattr(phases.time, "perf_counter", fake)
    return fake


def test_phase_times_are_exclusive_and_synchronised(clock):
    """outer [0, 7] around inner [2, 5], then inner again [8, 9] alone: outer 4 s, inner 3 + 1 s."""
    syncs = []
    timer = phases.PhaseTimer(synchronize=lambda: syncs.append(clock.now))
    with timer.phase("outer"):
        clock.now = 2.0
        with timer.phase("inner"):
            assert timer.current == "inner"
            clock.now = 5.0
        clock.now = 7.0
    clock.now = 8.0
    with timer.phase("inner"):
        clock.now = 9.0
    seconds, calls = timer.take()
    assert seconds == {"outer": 4.0, "inner": 4.0}
    assert calls == {"outer": 1, "inner": 2}
    assert syncs == [0.0, 2.0, 5.0, 7.0, 8.0, 9.0]  # every boundary waits for the device
    assert timer.take() == ({}, {})  # taken: reset


def test_take_inside_an_open_span_and_wrap_restore(clock):
    class Worker:
        def work(self, seconds):
            clock.now += seconds
            return seconds

    worker = Worker()
    timer = phases.PhaseTimer()
    timer.wrap(worker, "work", "busy")
    with timer.phase("step"):
        clock.now = 1.0
        assert worker.work(2.5) == 2.5  # [1, 3.5] is "busy"
        clock.now = 4.0
        assert timer.take()[0] == {"step": 1.5, "busy": 2.5}  # the open span counts up to now
        clock.now = 6.0
    assert timer.take()[0] == {"step": 2.0}
    timer.restore()
    assert "work" not in vars(worker)  # the class's method again
    worker.work(1.0)
    assert timer.take() == ({}, {})


def test_summary_is_the_median_after_the_first_step():
    def step(wall, generation, patches, peak):
        return {
            "wall_s": wall,
            "phases_s": {"generation": generation, "other": wall - generation},
            "work": {"vision patches": patches},
            "peak_allocated_gib": peak,
            "peak_reserved_gib": peak + 1,
        }

    run = {
        "steps": [step(30.0, 20.0, 9, 5.0), step(10.0, 4.0, 8, 7.0), step(14.0, 6.0, 8, 6.0), step(12.0, 5.0, 8, 6)]
    }
    summary = real_size.summarize(run)
    assert summary["step_s"] == 12.0  # median of 10, 14, 12: the first (warm-up) step left out
    assert summary["phases_s"]["generation"] == 5.0 and summary["phases_s"]["vision encoder"] == 0.0
    assert summary["work"] == {"vision patches": 8}
    assert summary["peak_allocated_gib"] == 7.0 and summary["peak_reserved_gib"] == 8.0  # peaks over every step
    assert summary["step_times_s"] == [30.0, 10.0, 14.0, 12.0]
    table = real_size.phase_table({"grpo/ours": summary})
    assert "| generation (s) | 5.000 |" in table and "| **step (s, median after the first)** | **12** |" in table


def test_real_size_model_keeps_the_real_vocabulary(tiny_model_dir):
    """The 7B architecture, built on the meta device (no memory): the real vocabulary and widths, the tokenizer's
    special-token ids."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = real_size.real_size_model("7B", tokenizer, torch.device("meta"))
    config = model.config
    assert config.text_config.vocab_size == 152064 and config.text_config.hidden_size == 3584  # Qwen2.5-VL-7B
    assert model.lm_head.weight.shape == (152064, 3584) and model.lm_head.weight.dtype == torch.bfloat16
    assert config.video_token_id == tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    assert torch.get_default_dtype() == torch.float32  # restored


@pytest.mark.slow
def test_smoke_run_of_both_workloads_writes_the_phase_table(tmp_path):
    code = real_size.main(["--scale", "smoke", "--steps", "1", "--trainers", "ours", "--out", str(tmp_path)])
    assert code == 0
    report = json.loads((tmp_path / "results.json").read_text())
    markdown = (tmp_path / "results.md").read_text()
    assert report["errors"] == {} and set(report["summaries"]) == {"grpo/ours", "viarl/ours"}
    assert report["device"]["type"] == "cpu" and "CPU (no CUDA device)" in markdown
    scale = real_size.SCALES["smoke"]
    for key, summary in report["summaries"].items():
        step = report["runs"][key]["steps"][0]
        assert sum(step["phases_s"].values()) == pytest.approx(step["wall_s"], rel=1e-6)  # "other" is the rest
        for phase in ("decode + processor (CPU)", "vision encoder", "generation", "old/ref log-probs"):
            assert summary["phases_s"][phase] > 0, (key, phase)
        assert summary["phases_s"]["policy forward+backward"] > 0, key
        assert "| generation (s) |" in markdown
    grpo, viarl = report["summaries"]["grpo/ours"]["work"], report["summaries"]["viarl/ours"]["work"]
    # GRPO: every row generates exactly max tokens (min_new_tokens = max), G rows per prompt.
    assert grpo["policy tokens generated"] == scale.grpo_prompts * scale.generations * scale.grpo_completion
    # Each distinct video encoded once per step: (frames / 2) x (side / 14)^2 patches (2-frame, 14 px patches).
    assert grpo["vision patches"] == scale.grpo_prompts * scale.grpo_frames // 2 * (scale.grpo_side // 14) ** 2
    assert viarl["policy tokens generated"] == scale.viarl_prompts * scale.generations * scale.selector_completion
    assert viarl["answer prompts"] == scale.viarl_prompts * scale.generations  # distinct indices: one per row
    assert report["runs"]["viarl/ours"]["steps"][0]["phases_s"]["answerer"] > 0
