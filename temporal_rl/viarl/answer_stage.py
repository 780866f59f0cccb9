"""ViaRL's answer-model stage and the evaluation of an answer model on chosen frames.

Stage 2 of ViaRL (arXiv 2505.15447) tunes the answer model on the frames the current selector picks: the selector
samples one selection per training item (temperature 1) from its labelled candidates, and the answer model is
instruction-tuned on those high-resolution frames, in time order, with the loss on the answer tokens only.

- `sample_selections(selector_model, processor, records, output_file, spec, cache)`: one selection per record,
  written to a JSONL file as it goes (`{"id", "indices", "valid", "parsed", "num_candidates", "completion"}`);
  an invalid index list falls back to uniform indices (`temporal_rl.viarl.selector.fallback_indices`, as ViaRL) and is
  counted. Started again on the same file, it samples only the records that are not in it yet.
- `SelectedFrames(selections, spec, cache)`: the frame source (`temporal_rl.sft.VideoSFTCollator`) that
  hands each row the frames its selection names; `OracleFrames` the frames that show a record's evidence window
  (the needle), for a warm start and as the oracle of an experiment.
- `train_answer(data_args, config, model_args, frames, adapter=None, target="letter")`: the SFT (LoRA) of the answer
  model on those frames, continuing a previous cycle's adapter when given; the target is the gold option's letter
  or its text (`answer_completion`), through the one SFT engine (`temporal_rl.training.train_sft`, which the
  selector's format warm start uses too).
- `evaluate_answers(answer_model, processor, records, selection, spec, cache)`: greedy answers from frames chosen
  uniformly, by a selector (greedy), by CLIP (`temporal_rl.viarl.frame_baselines`), by the oracle, or given per record;
  accuracy and per-record results.

Where T, N and the two resolutions come from: `CandidateSpec`, built from the selector's config
(`CandidateSpec.from_config`), so the answer stage sees exactly the candidates the selector chose among.

This module owns the answer stage's data flow (selections file, frame sources, answer prompts, scoring). Training
loops are TRL's, candidate frames `temporal_rl.viarl.candidates`', the selector's text `temporal_rl.viarl.selector`'s.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from temporal_rl.data import record_meta
from temporal_rl.generation import GenerationOptions, PreparedPrompt, generate_batch
from temporal_rl.prompts import VIDEO_POSITIONS, PromptOptions
from temporal_rl.resumable import append_jsonl, batch_seed, complete_lines, drop_torn_tail
from temporal_rl.rewards.scoring import choice_score
from temporal_rl.rewards.selector import is_valid_selection, parse_indices
from temporal_rl.viarl.candidates import (
    DEFAULT_ANSWER_LONG_SIDE,
    DEFAULT_NUM_CANDIDATES,
    DEFAULT_SELECTOR_LONG_SIDE,
    CandidateFrames,
    candidate_frames,
    select_frames,
)
from temporal_rl.viarl.selector import DEFAULT_LABEL_DESCRIPTION, build_selector_messages, fallback_indices
from temporal_rl.video.cache import FrameCache
from temporal_rl.video.inputs import model_inputs
from temporal_rl.video.labels import LabelStyle
from temporal_rl.video.sampling import SampledVideo, uniform_indices

logger = logging.getLogger(__name__)

SELECTIONS = ("uniform", "selector", "clip", "oracle", "outside")
# What the answer model is tuned to write inside <answer>: the option's letter (the prompt's instruction), or the
# option's text. The selector's answer reward and `evaluate_answers` score both (`choice_score` reads an option's
# exact text as that option); a tiny random model learns the text far more easily than the colour -> letter binding.
ANSWER_TARGETS = ("letter", "option")
DEFAULT_SELECTOR_TOKENS = 512  # ViaRL's selector generation limit


@dataclass(frozen=True)
class CandidateSpec:
    """The candidates a selector chooses among and the frames an answer model gets.

    Args:
        num_candidates: T, candidate frames sampled uniformly over the video (even; ViaRL 128).
        num_select: N, frames the selector picks and the answer model sees (ViaRL 8).
        selector_long_side: long side of the labelled selector frames (ViaRL 112 px).
        answer_long_side: long side of the answer model's frames (ViaRL 896 px).
        label_style: how the index is drawn on the selector's frames.
        label: how the selector's prompt names the drawn index (matches `label_style`).
        video_position: where the selector's prompt puts the video ("first" or "last", `build_selector_messages`).
    """

    num_candidates: int = DEFAULT_NUM_CANDIDATES
    num_select: int = 8
    selector_long_side: int = DEFAULT_SELECTOR_LONG_SIDE
    answer_long_side: int = DEFAULT_ANSWER_LONG_SIDE
    label_style: LabelStyle = field(default_factory=LabelStyle)
    label: str = DEFAULT_LABEL_DESCRIPTION
    video_position: str = "first"

    def __post_init__(self):
        for name in ("num_candidates", "num_select", "selector_long_side", "answer_long_side"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"CandidateSpec: {name} must be a positive integer, got {value!r}")
        if self.num_select > self.num_candidates:
            raise ValueError(f"CandidateSpec: cannot select {self.num_select} of {self.num_candidates} candidates")
        if self.video_position not in VIDEO_POSITIONS:
            raise ValueError(f"CandidateSpec: video_position must be first or last, got {self.video_position!r}")
        if self.num_candidates % 2:
            raise ValueError(
                f"CandidateSpec: num_candidates must be even (Qwen's frame pairs), got {self.num_candidates}"
            )

    @classmethod
    def from_config(cls, config: Any) -> CandidateSpec:
        """The spec of a `temporal_rl.viarl.config.ViaRLSelectorConfig`: its T, N, sizes, label and prompt order."""
        return cls(
            num_candidates=int(config.num_candidates),
            num_select=int(config.num_frames_to_select),
            selector_long_side=int(config.selector_long_side),
            answer_long_side=int(config.answer_long_side),
            label_style=config.label_style(),
            label=config.selector_label(),
            video_position=config.selector_video_position,
        )

    def candidates(self, path: str | os.PathLike, cache: FrameCache | None, selector: bool = True) -> CandidateFrames:
        """The candidates of one video (`temporal_rl.viarl.candidates.candidate_frames`); `selector=False`: the answer
        side only (no labelled selector copy)."""
        return candidate_frames(
            path,
            self.num_candidates,
            self.selector_long_side,
            self.answer_long_side,
            cache,
            label_style=self.label_style,
            selector=selector,
        )


# ----------------------------------------------------------------------------------------------------------------
# Oracle frames (the evidence window of a record)


def evidence_window(record: Mapping[str, Any]) -> tuple[int, int] | None:
    """The half-open source-frame window `[f0, f1)` that holds a record's evidence, or None if it has none.

    Synthetic needle records carry it as `meta.needle_frames`, synthetic mcq records as `meta.evidence_frames`.
    """
    meta = record_meta(record) if record.get("meta") is not None else {}
    for key in ("needle_frames", "evidence_frames"):
        window = meta.get(key)
        if window is not None:
            start, end = int(window[0]), int(window[1])
            if end <= start:
                raise ValueError(f"record {record.get('id')!r}: empty {key} {window!r}")
            return start, end
    return None


def window_candidates(source_indices: Sequence[int] | np.ndarray, window: tuple[int, int]) -> list[int]:
    """The candidate indices whose source frame lies in the half-open `window` (increasing).

    Example:
        ```python
        >>> window_candidates([0, 4, 8, 12, 16], (5, 13))
        [2, 3]
        ```
    """
    start, end = window
    return [i for i, source in enumerate(np.asarray(source_indices).tolist()) if start <= source < end]


def oracle_indices(source_indices: Sequence[int] | np.ndarray, window: tuple[int, int], num_select: int) -> list[int]:
    """N candidate indices that show as much of the evidence window as possible, increasing.

    With k candidates inside the window: k >= N picks N of them spread uniformly (`uniform_indices(k, N, "center")`
    positions among them); k < N takes all k and fills the rest with the other candidates spread uniformly.

    Example:
        ```python
        >>> oracle_indices(range(0, 32, 2), (10, 14), 4)  # candidates 5 and 6, and 2 of the 14 others
        [3, 5, 6, 12]
        >>> oracle_indices(range(16), (2, 10), 2)  # 2 of the 8 inside (2..9), segment centres
        [4, 8]
        ```
    """
    count = len(source_indices)
    if not 1 <= num_select <= count:
        raise ValueError(f"cannot pick {num_select} of {count} candidates")
    inside = window_candidates(source_indices, window)
    if len(inside) >= num_select:
        return [inside[i] for i in uniform_indices(len(inside), num_select, "center")]
    outside = [i for i in range(count) if i not in set(inside)]
    fill = [outside[i] for i in uniform_indices(len(outside), num_select - len(inside), "center")]
    return sorted(inside + fill)


def outside_indices(source_indices: Sequence[int] | np.ndarray, window: tuple[int, int], num_select: int) -> list[int]:
    """N candidate indices that do NOT show the evidence window, spread uniformly over the others (increasing): what
    an answer model makes of the clip without the evidence (it should be near chance there).

    Example:
        ```python
        >>> outside_indices(range(0, 32, 2), (10, 14), 2)  # candidates 5 and 6 show the window
        [3, 12]
        ```
    """
    inside = set(window_candidates(source_indices, window))
    outside = [i for i in range(len(source_indices)) if i not in inside]
    if not 1 <= num_select <= len(outside):
        raise ValueError(f"cannot pick {num_select} of the {len(outside)} candidates outside the evidence window")
    return [outside[i] for i in uniform_indices(len(outside), num_select, "center")]


# ----------------------------------------------------------------------------------------------------------------
# Frame sources for the answer model


def answer_video(candidates: CandidateFrames, indices: Sequence[int]) -> SampledVideo:
    """The answer model's video: the chosen candidates at the answer resolution, in time order."""
    return select_frames(candidates, [int(i) for i in indices])


class SelectedFrames:
    """Frame source: each row's selected candidates (`selections[row["id"]]`, a list of indices) at the answer size.

    Args:
        selections: record id -> candidate indices (or a selections row with an `indices` key).
        spec: the candidates the indices refer to.
        cache: the frame cache.
    """

    def __init__(self, selections: Mapping[str, Any], spec: CandidateSpec, cache: FrameCache | None):
        self.selections, self.spec, self.cache = selections, spec, cache

    def indices(self, row: Mapping[str, Any]) -> list[int]:
        selection = self.selections.get(row["id"])
        if selection is None:
            raise KeyError(f"record {row['id']!r} has no selection; sample selections for every training record")
        return list(selection["indices"] if isinstance(selection, Mapping) else selection)

    def __call__(self, row: Mapping[str, Any]) -> SampledVideo:
        return answer_video(self.spec.candidates(row["video"], self.cache, selector=False), self.indices(row))


class OracleFrames:
    """Frame source: the candidates that show the row's evidence window (`oracle_indices`); uniform without one.

    Args:
        spec: the candidates (T, N, sizes).
        cache: the frame cache.
        every_frame: choose among all the video's frames instead of the T candidates (T = the frame count, from
            `meta.num_frames`), so that all N frames lie inside a window of at least N frames: the densest view of
            the evidence, for teaching a model to read it.
    """

    def __init__(self, spec: CandidateSpec, cache: FrameCache | None, every_frame: bool = False):
        self.spec, self.cache, self.every_frame = spec, cache, every_frame

    def candidates(self, row: Mapping[str, Any]) -> CandidateFrames:
        if not self.every_frame:
            return self.spec.candidates(row["video"], self.cache, selector=False)
        count = int(record_meta(row).get("num_frames") or 0) // 2 * 2
        if count < self.spec.num_select:
            raise ValueError(f"record {row.get('id')!r}: every_frame needs meta.num_frames (the video's frame count)")
        spec = dataclasses.replace(self.spec, num_candidates=count)
        return spec.candidates(row["video"], self.cache, selector=False)

    def __call__(self, row: Mapping[str, Any]) -> SampledVideo:
        candidates = self.candidates(row)
        return answer_video(candidates, oracle_selection(row, candidates, self.spec.num_select))


class SometimesWithoutEvidence:
    """Frame source: `evidence`'s frames, except for a share `rate` of the rows, shown N random candidates outside
    the row's evidence window instead (increasing; the target stays the gold answer).

    Taught only on frames that show the needle, an answer model names whatever it sees when the needle is not there
    (a haystack colour, never an option): below chance on such frames. The rows without the evidence teach it to
    guess among the options instead (chance there), while the others teach it to read the evidence.

    Args:
        evidence: the frame source of the other rows (e.g. `OracleFrames`).
        spec: the candidates (T, N, sizes) the rows without evidence choose from.
        cache: the frame cache.
        rate: share of rows shown frames without the evidence, in [0, 1).
        seed: seeds the draws (which rows, which frames; new ones at each call, as the epochs go).
    """

    def __init__(self, evidence: Callable, spec: CandidateSpec, cache: FrameCache | None, rate: float, seed: int = 0):
        if not 0 <= rate < 1:
            raise ValueError(f"rate must be in [0, 1), got {rate}")
        self.evidence, self.spec, self.cache, self.rate = evidence, spec, cache, rate
        self.rng = random.Random(int(seed))

    def outside(self, row: Mapping[str, Any], candidates: CandidateFrames) -> list[int]:
        """N random candidate indices that do not show the evidence window, increasing."""
        window = evidence_window(row)
        inside = set(window_candidates(candidates.source_indices, window)) if window else set()
        outside = [i for i in range(candidates.num_candidates) if i not in inside]
        if len(outside) < self.spec.num_select:
            raise ValueError(f"record {row.get('id')!r}: fewer than N candidates lie outside the evidence window")
        return sorted(self.rng.sample(outside, self.spec.num_select))

    def __call__(self, row: Mapping[str, Any]) -> SampledVideo:
        if self.rng.random() >= self.rate:
            return self.evidence(row)
        candidates = self.spec.candidates(row["video"], self.cache, selector=False)
        return answer_video(candidates, self.outside(row, candidates))


class UniformFrames:
    """Frame source: N candidates spread uniformly (`uniform_indices(T, N, "center")`)."""

    def __init__(self, spec: CandidateSpec, cache: FrameCache | None):
        self.spec, self.cache = spec, cache

    def __call__(self, row: Mapping[str, Any]) -> SampledVideo:
        candidates = self.spec.candidates(row["video"], self.cache, selector=False)
        return answer_video(candidates, uniform_indices(candidates.num_candidates, self.spec.num_select, "center"))


def oracle_selection(record: Mapping[str, Any], candidates: CandidateFrames, num_select: int) -> list[int]:
    """`oracle_indices` for a record's evidence window over its candidates (uniform when it has no window)."""
    window = evidence_window(record)
    if window is None:
        return uniform_indices(candidates.num_candidates, num_select, "center")
    return oracle_indices(candidates.source_indices, window, num_select)


# ----------------------------------------------------------------------------------------------------------------
# The selections file


@dataclass
class SelectionSummary:
    """What `sample_selections` did.

    Attributes:
        path: the selections file.
        total: rows in the file for the records asked for.
        sampled: rows sampled by this call (the rest were already in the file).
        valid: rows whose index list was valid.
        fallback: rows that fell back to uniform indices (invalid index list).
    """

    path: str
    total: int
    sampled: int
    valid: int
    fallback: int

    @property
    def fallback_rate(self) -> float:
        return self.fallback / self.total if self.total else 0.0


def read_selections(path: str | os.PathLike) -> dict[str, dict]:
    """Record id -> selection row of a selections JSONL file ({} if it does not exist).

    A last line without its newline is a write cut short by a kill and is ignored; any other bad line raises.
    """
    path = Path(path)
    if not path.exists():
        return {}
    rows = {}
    for number, line in complete_lines(path):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not a selections row ({err.msg})") from None
        if not isinstance(row, dict) or "id" not in row or not isinstance(row.get("indices"), list):
            raise ValueError(f"{path}:{number}: a selections row needs 'id' and 'indices'")
        rows[str(row["id"])] = row
    return rows


SEED_NAMESPACE = "temporal_rl.viarl.selections"


def selector_prompt(
    processor: Any, record: Mapping[str, Any], spec: CandidateSpec, cache: FrameCache | None
) -> tuple[PreparedPrompt, CandidateFrames]:
    """One record's selector input (`build_selector_messages` on the labelled candidates) and its candidates.

    As the selector trainer builds it: the video's real T, and N clamped to it.
    """
    candidates = spec.candidates(record["video"], cache)
    count = candidates.num_candidates
    messages = build_selector_messages(
        dict(record), count, min(spec.num_select, count), label=spec.label, video_position=spec.video_position
    )
    inputs = model_inputs(processor, messages, candidates.selector_video())
    return PreparedPrompt(str(record["id"]), inputs), candidates


def generate_selections(
    selector_model: Any,
    processor: Any,
    records: Sequence[Mapping[str, Any]],
    spec: CandidateSpec,
    cache: FrameCache | None,
    generation: GenerationOptions,
) -> list[dict]:
    """One selection row per record from one `generate` call (the caller batches and seeds).

    Returns:
        Rows `{"id", "indices", "valid", "parsed", "num_candidates", "completion"}`; `indices` is the parsed list
        when valid, else uniform (`fallback_indices`).
    """
    if generation.num_return_sequences != 1:
        raise ValueError("a selection is one completion per record: use num_return_sequences=1")
    prepared = [selector_prompt(processor, record, spec, cache) for record in records]
    generations = generate_batch(selector_model, processor, [p for p, _ in prepared], generation)
    rows = []
    for (prompt, candidates), generated in zip(prepared, generations, strict=True):
        text = generated.completions[0]
        parsed = parse_indices(text)
        count = candidates.num_candidates
        select = min(spec.num_select, count)
        rows.append(
            {
                "id": prompt.record_id,
                "indices": fallback_indices(parsed, count, select),
                "valid": is_valid_selection(parsed, count, select),
                "parsed": parsed,
                "num_candidates": count,
                "completion": text,
            }
        )
    return rows


def sample_selections(
    selector_model: Any,
    processor: Any,
    records: Iterable[Mapping[str, Any]],
    output_file: str | os.PathLike,
    spec: CandidateSpec,
    cache: FrameCache | None,
    *,
    generation: GenerationOptions | None = None,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> SelectionSummary:
    """One sampled selection per record from the selector, appended to `output_file` batch by batch (resumable).

    Records whose id is already in the file are skipped, so a killed run continues where it stopped; each batch
    is seeded from `seed` and its record ids (`batch_seed`), so a batch draws the same completions however it is
    reached. The file is flushed and fsynced after every batch.

    Args:
        selector_model: the selector (a PEFT model or a plain one), in eval mode.
        processor: its processor.
        records: canonical records (`temporal_rl.data.read_records`, or rows of `load_dataset`).
        output_file: the selections JSONL file (created with its folder).
        spec: T, N and the resolutions of the candidates.
        cache: the frame cache.
        generation: decoding settings; default: sampled at temperature 1, 512 new tokens, 8 records per call.
        seed: the run's sampling seed.
        log: called with a progress line after each batch.

    Returns:
        The counts (`SelectionSummary`), over the whole file for the records asked for.
    """
    generation = generation or GenerationOptions(
        do_sample=True, temperature=1.0, max_new_tokens=DEFAULT_SELECTOR_TOKENS
    )
    path = Path(output_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    drop_torn_tail(path)
    records = list(records)
    wanted = {str(record["id"]) for record in records}
    done = read_selections(path)
    pending = [record for record in records if str(record["id"]) not in done]
    sampled = 0
    was_training = getattr(selector_model, "training", False)
    selector_model.eval()
    try:
        with path.open("a", encoding="utf-8") as handle:
            for start in range(0, len(pending), generation.batch_size):
                batch = pending[start : start + generation.batch_size]
                torch.manual_seed(batch_seed(SEED_NAMESPACE, seed, [str(r["id"]) for r in batch]))
                rows = generate_selections(selector_model, processor, batch, spec, cache, generation)
                append_jsonl(handle, rows)
                done.update((row["id"], row) for row in rows)
                sampled += len(rows)
                if log is not None:
                    log(f"selections: {len(wanted) - len(pending) + sampled}/{len(wanted)} records")
    finally:
        selector_model.train(was_training)
    rows = [done[i] for i in wanted if i in done]
    valid = sum(bool(row["valid"]) for row in rows)
    return SelectionSummary(str(path), total=len(rows), sampled=sampled, valid=valid, fallback=len(rows) - valid)


# ----------------------------------------------------------------------------------------------------------------
# Answer-model inputs and evaluation


def answer_completion(record: Mapping[str, Any], prompt: PromptOptions, target: str = "letter") -> str:
    """The answer model's SFT target for a multiple-choice record: the gold letter, or the gold option's text.

    Example:
        ```python
        >>> record = {"task": "mcq", "options": ["red", "blue"], "answer": "B"}
        >>> answer_completion(record, PromptOptions()), answer_completion(record, PromptOptions(), "option")
        ('<answer>B</answer>', '<answer>blue</answer>')
        ```
    """
    if target not in ANSWER_TARGETS:
        raise ValueError(f"unknown answer target {target!r}; expected one of {', '.join(ANSWER_TARGETS)}")
    if target == "letter":
        return prompt.answer(dict(record))
    options, letter = list(record.get("options") or []), str(record.get("answer", "")).strip().upper()
    index = ord(letter) - ord("A") if len(letter) == 1 else -1
    if not 0 <= index < len(options):
        raise ValueError(f"record {record.get('id')!r}: answer {letter!r} names none of its {len(options)} options")
    return prompt.answer({**record, "answer": str(options[index]).strip()})


def answer_prompt(
    processor: Any, record: Mapping[str, Any], video: SampledVideo, prompt: PromptOptions = PromptOptions()
) -> PreparedPrompt:
    """The answer model's input for one record on the given frames: the record's prompt, one processor call (the
    answer stage's evaluation and the selector trainer's answer reward ask the answer model the same way)."""
    return PreparedPrompt(str(record.get("id")), model_inputs(processor, prompt.messages(dict(record)), video))


@dataclass
class AnswerEvaluation:
    """Greedy answers of an answer model on chosen frames.

    Attributes:
        selection: how the frames were chosen (`uniform`, `selector`, `clip`, `oracle`, or `given`).
        accuracy: share of records answered right, in [0, 1].
        results: per record `{"id", "indices", "valid", "completion", "predicted", "answer", "correct",
            "shows_evidence"}` (`shows_evidence`: whether a chosen frame lies in the record's evidence window,
            None without one).
        invalid_selections: records whose selector output was invalid (uniform fallback); 0 for other selections.
    """

    selection: str
    accuracy: float
    results: list[dict] = field(repr=False)
    invalid_selections: int = 0

    @property
    def evidence_rate(self) -> float | None:
        """Share of records (with an evidence window) whose chosen frames show it."""
        shown = [r["shows_evidence"] for r in self.results if r["shows_evidence"] is not None]
        return sum(shown) / len(shown) if shown else None

    @property
    def valid_evidence_rate(self) -> float | None:
        """`evidence_rate` over the records whose selection was valid (a fallback's frames are uniform ones)."""
        shown = [r["shows_evidence"] for r in self.results if r["shows_evidence"] is not None and r["valid"]]
        return sum(shown) / len(shown) if shown else None

    def summary(self) -> dict[str, Any]:
        return {
            "selection": self.selection,
            "accuracy": self.accuracy,
            "records": len(self.results),
            "evidence_rate": self.evidence_rate,
            "valid_evidence_rate": self.valid_evidence_rate,
            "invalid_selections": self.invalid_selections,
            "invalid_rate": self.invalid_selections / len(self.results) if self.results else 0.0,
        }


def _choose(
    selection: str | Mapping[str, Sequence[int]],
    batch: Sequence[Mapping[str, Any]],
    candidates: Sequence[CandidateFrames],
    spec: CandidateSpec,
    cache: FrameCache | None,
    selector: tuple[Any, Any] | None,
    clip_scorer: Any,
    selector_max_new_tokens: int,
) -> list[tuple[list[int], bool]]:
    """(indices, valid) per record of a batch for the selection method (`evaluate_answers`)."""
    if isinstance(selection, Mapping):
        return [(list(selection[str(r["id"])]), True) for r in batch]
    if selection == "uniform":
        return [(uniform_indices(c.num_candidates, spec.num_select, "center"), True) for c in candidates]
    if selection == "oracle":
        return [(oracle_selection(r, c, spec.num_select), True) for r, c in zip(batch, candidates, strict=True)]
    if selection == "outside":
        return [
            (outside_indices(c.source_indices, evidence_window(r), spec.num_select), True)
            for r, c in zip(batch, candidates, strict=True)
        ]
    if selection == "clip":
        from temporal_rl.viarl.frame_baselines import clip_topk_selection

        return [
            (clip_topk_selection(clip_scorer, c, str(r["question"]), spec.num_select), True)
            for r, c in zip(batch, candidates, strict=True)
        ]
    model, processor = selector
    greedy = GenerationOptions(max_new_tokens=selector_max_new_tokens, batch_size=len(batch))
    return [
        (row["indices"], row["valid"]) for row in generate_selections(model, processor, batch, spec, cache, greedy)
    ]


def evaluate_answers(
    answer_model: Any,
    processor: Any,
    records: Sequence[Mapping[str, Any]],
    selection: str | Mapping[str, Sequence[int]],
    spec: CandidateSpec,
    cache: FrameCache | None,
    *,
    prompt: PromptOptions = PromptOptions(),
    selector: tuple[Any, Any] | None = None,
    clip_scorer: Any = None,
    batch_size: int = 16,
    max_new_tokens: int = 32,
    selector_max_new_tokens: int = DEFAULT_SELECTOR_TOKENS,
) -> AnswerEvaluation:
    """Accuracy of the answer model's greedy answers on multiple-choice records, from the chosen frames.

    An answer is read as the selector trainer's answer reward reads it (`temporal_rl.rewards.scoring.choice_score`:
    the option's letter, or its exact text).

    Args:
        answer_model: the answer model, in eval mode.
        processor: its processor.
        records: canonical multiple-choice records (with `options` and a gold letter `answer`).
        selection: `"uniform"` (N candidates spread uniformly, segment centres), `"selector"` (the greedy selection
            of `selector`, uniform fallback when invalid, as in training), `"clip"` (CLIP top-N of `clip_scorer`),
            `"oracle"` (the candidates in the record's evidence window, `oracle_indices`), `"outside"` (candidates
            that do not show it, `outside_indices`: the answer model without the evidence), or a mapping record id
            -> candidate indices.
        spec: T, N and the resolutions.
        cache: the frame cache.
        prompt: the answer model's prompt options (those it was tuned with).
        selector: `(selector_model, selector_processor)` for `"selection"`.
        clip_scorer: a `temporal_rl.viarl.frame_baselines.ClipFrameScorer` for `"clip"`.
        batch_size: records per `generate` call.
        max_new_tokens: the answer's token limit.
        selector_max_new_tokens: the selector's token limit.
    """
    if isinstance(selection, str) and selection not in SELECTIONS:
        raise ValueError(f"unknown selection {selection!r}; expected one of {', '.join(SELECTIONS)} or a mapping")
    if selection == "selector" and selector is None:
        raise ValueError("selection 'selector' needs selector=(selector_model, selector_processor)")
    if selection == "clip" and clip_scorer is None:
        raise ValueError("selection 'clip' needs a clip_scorer (temporal_rl.viarl.frame_baselines.ClipFrameScorer)")
    if isinstance(selection, Mapping):
        missing = [str(r["id"]) for r in records if str(r["id"]) not in selection]
        if missing:
            raise KeyError(f"no selection for {len(missing)} record(s), e.g. {missing[0]!r}")
    for record in records:
        if record.get("task") != "mcq" and record.get("task") != "grounded_qa":
            raise ValueError(
                f"record {record.get('id')!r}: evaluate_answers scores option letters, got {record.get('task')}"
            )
    answer = GenerationOptions(max_new_tokens=max_new_tokens, batch_size=batch_size)
    results, invalid = [], 0
    for start in range(0, len(records), batch_size):
        batch = records[start : start + batch_size]
        candidates = [spec.candidates(r["video"], cache, selector=False) for r in batch]
        chosen = _choose(selection, batch, candidates, spec, cache, selector, clip_scorer, selector_max_new_tokens)
        prompts = [
            answer_prompt(processor, r, answer_video(c, indices), prompt)
            for r, c, (indices, _) in zip(batch, candidates, chosen, strict=True)
        ]
        generations = generate_batch(answer_model, processor, prompts, answer)
        for record, cands, (indices, valid), generated in zip(batch, candidates, chosen, generations, strict=True):
            text = generated.completions[0]
            predicted, correct = choice_score(text, str(record["answer"]).strip().upper(), record.get("options"))
            window = evidence_window(record)
            shows = (
                None if window is None else bool(set(window_candidates(cands.source_indices, window)) & set(indices))
            )
            invalid += not valid
            results.append(
                {
                    "id": str(record["id"]),
                    "indices": [int(i) for i in sorted(indices)],
                    "valid": bool(valid),
                    "completion": text,
                    "predicted": predicted,
                    "answer": record["answer"],
                    "correct": correct,
                    "shows_evidence": shows,
                }
            )
    accuracy = sum(r["correct"] for r in results) / len(results) if results else 0.0
    name = selection if isinstance(selection, str) else "given"
    return AnswerEvaluation(name, accuracy, results, invalid)


# ----------------------------------------------------------------------------------------------------------------
# Training


def train_answer(
    data_args: Any,
    config: Any,
    model_args: Any,
    frames: Callable[[Mapping[str, Any]], SampledVideo],
    *,
    adapter: str | os.PathLike | None = None,
    target: str = "letter",
    callbacks: list | None = None,
):
    """ViaRL stage 2: instruction-tune the answer model on the given frames (e.g. `SelectedFrames`), the loss on the
    answer tokens only (`answer_completion(row, config.prompt_options(), target)`), continuing `adapter` when given.
    See `temporal_rl.training.train_sft`."""
    from temporal_rl.training import train_sft

    prompt = config.prompt_options()
    return train_sft(
        data_args,
        config,
        model_args,
        frames=frames,
        completion=lambda row: answer_completion(row, prompt, target),
        adapter=adapter,
        callbacks=callbacks,
    )
