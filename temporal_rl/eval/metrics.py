"""Benchmark metrics: per-record scores of a predictions file against a canonical data file, and their aggregates.

This module owns the evaluation maths and the report. Completions are read with the same parsers and per-sample
scoring as the rewards (`temporal_rl.rewards.scoring`), so a number here means what the reward meant in training.

Every query of the data file counts: a query without a prediction is scored as unparseable (IoU 0, wrong
answer) and counted under `missing`. Metrics are percentages:

| task          | metrics                                                                      |
|---------------|------------------------------------------------------------------------------|
| `grounding`   | `R@0.3`, `R@0.5`, `R@0.7` (IoU >= m), `mIoU`                                 |
| `mcq`         | `accuracy`                                                                   |
| `grounded_qa` | `Acc@QA`, `Acc@GQA` (correct and IoP >= 0.5), `mIoU`, `R@0.3`, `R@0.5`,      |
|               | `mIoP`, `IoP@0.3`, `IoP@0.5`                                                 |
| `open_qa`     | `accuracy` (normalised exact match)                                          |

with the counts `n`, `missing`, `unparsed_span` (span tasks) and `unparsed_answer` (answer tasks), per task,
per source and task, and overall. The aggregate functions take plain lists of per-sample values.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from temporal_rl.data import TASKS, RecordError, iter_jsonl
from temporal_rl.rewards.parsing import completion_text
from temporal_rl.rewards.scoring import choice_score, free_answer_score, span_score

GROUNDING_THRESHOLDS = (0.3, 0.5, 0.7)
GROUNDED_QA_THRESHOLDS = (0.3, 0.5)
GQA_IOP_THRESHOLD = 0.5
# A value this close below a threshold counts as reaching it: IoUs that equal a threshold exactly in real numbers
# (e.g. 0.7 - 0.4 over 1.0) can land a few ulps below it in float64.
THRESHOLD_TOLERANCE = 1e-9

SPAN_TASKS = ("grounding", "grounded_qa")
ANSWER_TASKS = ("mcq", "grounded_qa", "open_qa")

# The metric columns of each task, in report order.
METRIC_NAMES = {
    "grounding": ("R@0.3", "R@0.5", "R@0.7", "mIoU"),
    "mcq": ("accuracy",),
    "grounded_qa": ("Acc@QA", "Acc@GQA", "mIoU", "R@0.3", "R@0.5", "mIoP", "IoP@0.3", "IoP@0.5"),
    "open_qa": ("accuracy",),
}
COUNT_NAMES = {
    "grounding": ("n", "missing", "unparsed_span"),
    "mcq": ("n", "missing", "unparsed_answer"),
    "grounded_qa": ("n", "missing", "unparsed_answer", "unparsed_span"),
    "open_qa": ("n", "missing", "unparsed_answer"),
}


# ---------------------------------------------------------------------------------------------------------------
# Aggregates over lists of per-sample values


def percent(count: float, total: int) -> float:
    """`100 * count / total`; 0 when `total` is 0."""
    return 100.0 * count / total if total else 0.0


def mean_percent(values: Sequence[float]) -> float:
    """`100 * mean(values)` (e.g. mIoU from IoUs in [0, 1]); 0 for an empty list.

    Example:
        ```python
        >>> mean_percent([0.5, 0.25, 0.0, 1.0])
        43.75
        ```
    """
    return percent(math.fsum(values), len(values))


def rate_at(values: Sequence[float], threshold: float) -> float:
    """Percentage of values `>= threshold` (R@m from IoUs, IoP@m from IoPs); 0 for an empty list.

    Example:
        ```python
        >>> rate_at([0.5, 0.25, 0.0, 1.0], 0.5)
        50.0
        ```
    """
    return percent(sum(1 for value in values if value >= threshold - THRESHOLD_TOLERANCE), len(values))


def accuracy(correct: Sequence[bool]) -> float:
    """Percentage of true values; 0 for an empty list."""
    return percent(sum(1 for value in correct if value), len(correct))


def grounding_metrics(ious: Sequence[float]) -> dict[str, float]:
    """R@0.3, R@0.5, R@0.7 and mIoU (percent) from one IoU per query (0 for unparseable or missing).

    Example:
        ```python
        >>> grounding_metrics([0.8, 0.6, 0.4, 0.2, 0.0])
        {'R@0.3': 60.0, 'R@0.5': 40.0, 'R@0.7': 20.0, 'mIoU': 40.0}
        ```
    """
    metrics = {f"R@{m}": rate_at(ious, m) for m in GROUNDING_THRESHOLDS}
    metrics["mIoU"] = mean_percent(ious)
    return metrics


def grounded_qa_metrics(correct: Sequence[bool], ious: Sequence[float], iops: Sequence[float]) -> dict[str, float]:
    """NExT-GQA's metrics (percent) from per-question answer correctness, best IoU and best IoP.

    `Acc@GQA` counts questions answered correctly AND grounded with IoP >= 0.5.

    Args:
        correct: whether each question's option letter is right.
        ious: each question's best IoU over its gold spans.
        iops: each question's best intersection over prediction over its gold spans.

    Returns:
        `Acc@QA`, `Acc@GQA`, `mIoU`, `R@0.3`, `R@0.5`, `mIoP`, `IoP@0.3`, `IoP@0.5`.
    """
    if not (len(correct) == len(ious) == len(iops)):
        raise ValueError(f"per-question lists differ in length: {len(correct)}, {len(ious)}, {len(iops)}")
    grounded_and_correct = [
        bool(ok) and iop >= GQA_IOP_THRESHOLD - THRESHOLD_TOLERANCE for ok, iop in zip(correct, iops, strict=True)
    ]
    metrics = {"Acc@QA": accuracy(correct), "Acc@GQA": accuracy(grounded_and_correct), "mIoU": mean_percent(ious)}
    metrics.update({f"R@{m}": rate_at(ious, m) for m in GROUNDED_QA_THRESHOLDS})
    metrics["mIoP"] = mean_percent(iops)
    metrics.update({f"IoP@{m}": rate_at(iops, m) for m in GROUNDED_QA_THRESHOLDS})
    return metrics


# ---------------------------------------------------------------------------------------------------------------
# Per-record scores


def score_record(record: Mapping[str, Any], completion: Any) -> dict[str, Any]:
    """Score one prediction of a record; `completion=None` means the prediction is missing.

    Args:
        record: a canonical record.
        completion: the completion (a string or a conversational list of messages), or `None`.

    Returns:
        `{"id", "task", "source", "missing", "span", "iou", "iop", "answer", "correct"}`: `span`, `iou`, `iop`
        for span tasks (else `None`); `answer` (parsed letter or text, `None` if unparseable) and `correct`
        for answer tasks (else `None`).
    """
    task = record["task"]
    text = None if completion is None else completion_text(completion)
    sample = {
        "id": record["id"],
        "task": task,
        "source": record["source"],
        "missing": completion is None,
        "span": None,
        "iou": None,
        "iop": None,
        "answer": None,
        "correct": None,
    }
    if task in SPAN_TASKS:
        scored = span_score(text, task, record["spans"], record["duration"])
        sample.update(span=None if scored.span is None else list(scored.span), iou=scored.iou, iop=scored.iop)
    if task in ("mcq", "grounded_qa"):
        sample["answer"], sample["correct"] = choice_score(text, record["answer"], record["options"])
    elif task == "open_qa":
        sample["answer"], sample["correct"] = free_answer_score(text, record["answer"])
    return sample


def task_metrics(task: str, samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts and metrics of one task from its per-record scores (`score_record`), in `COUNT_NAMES` +
    `METRIC_NAMES` order."""
    present = [s for s in samples if not s["missing"]]
    counts: dict[str, Any] = {"n": len(samples), "missing": len(samples) - len(present)}
    if task in SPAN_TASKS:
        counts["unparsed_span"] = sum(1 for s in present if s["span"] is None)
    if task in ANSWER_TASKS:
        counts["unparsed_answer"] = sum(1 for s in present if s["answer"] is None)
    if task == "grounding":
        metrics = grounding_metrics([s["iou"] for s in samples])
    elif task == "grounded_qa":
        metrics = grounded_qa_metrics(
            [s["correct"] for s in samples], [s["iou"] for s in samples], [s["iop"] for s in samples]
        )
    elif task in ("mcq", "open_qa"):
        metrics = {"accuracy": accuracy([s["correct"] for s in samples])}
    else:
        raise ValueError(f"unknown task {task!r}")
    ordered = {name: counts[name] for name in COUNT_NAMES[task]}
    ordered.update({name: metrics[name] for name in METRIC_NAMES[task]})
    return ordered


def _by_task(samples: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list] = {}
    for sample in samples:
        groups.setdefault(sample["task"], []).append(sample)
    return {task: task_metrics(task, groups[task]) for task in TASKS if task in groups}


def evaluate(
    records: Sequence[Mapping[str, Any]], completions: Mapping[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Score every record and aggregate.

    Args:
        records: the canonical records (every one is a query).
        completions: prediction id -> completion; records without an entry count as missing.

    Returns:
        `(report, samples)`: the report `{"counts", "tasks", "by_source"}` and the per-record scores.
        `counts` holds `queries`, `predictions` (records with one), `missing`, `unparsed_span`,
        `unparsed_answer` and `by_task` (queries per task); `tasks` maps task -> counts and metrics;
        `by_source` maps source -> task -> counts and metrics.
    """
    samples = [score_record(record, completions.get(record["id"])) for record in records]
    tasks = _by_task(samples)
    sources: dict[str, list] = {}
    for sample in samples:
        sources.setdefault(sample["source"], []).append(sample)
    counts = {
        "queries": len(samples),
        "predictions": sum(1 for s in samples if not s["missing"]),
        "missing": sum(1 for s in samples if s["missing"]),
        "unparsed_span": sum(metrics.get("unparsed_span", 0) for metrics in tasks.values()),
        "unparsed_answer": sum(metrics.get("unparsed_answer", 0) for metrics in tasks.values()),
        "by_task": {task: metrics["n"] for task, metrics in tasks.items()},
    }
    report = {
        "counts": counts,
        "tasks": tasks,
        "by_source": {source: _by_task(sources[source]) for source in sorted(sources)},
    }
    return report, samples


# ---------------------------------------------------------------------------------------------------------------
# Predictions file and the printed table


def read_predictions(path: str | os.PathLike, known_ids: Iterable[str] | None = None) -> dict[str, Any]:
    """Read a predictions JSONL file: one `{"id": str, "completion": str | list of messages}` per line.

    Args:
        path: the predictions file.
        known_ids: the data file's ids; a prediction for another id is an error.

    Returns:
        id -> completion.

    Raises:
        RecordError: naming the file and the line, for invalid JSON, a line that is not such an object, an id
            not in `known_ids`, or a duplicate id.
    """
    if not Path(path).is_file():
        raise RecordError("file not found", path=path)
    known = None if known_ids is None else set(known_ids)
    completions: dict[str, Any] = {}
    first_line: dict[str, int] = {}
    for number, row in iter_jsonl(path):
        if not isinstance(row, dict):
            raise RecordError(f"expected a JSON object, got {type(row).__name__}", path=path, line=number)
        for field in ("id", "completion"):
            if field not in row:
                raise RecordError(
                    "missing (a prediction is {'id': ..., 'completion': ...})", path=path, line=number, field=field
                )
        prediction_id, completion = row["id"], row["completion"]
        if not isinstance(prediction_id, str) or not prediction_id:
            raise RecordError(f"must be a non-empty string, got {prediction_id!r}", path=path, line=number, field="id")
        if not isinstance(completion, (str, list, dict)):
            raise RecordError(
                f"must be a string or a list of messages, got {type(completion).__name__}",
                path=path,
                line=number,
                field="completion",
            )
        if known is not None and prediction_id not in known:
            raise RecordError(f"id {prediction_id!r} is not in the data file", path=path, line=number, field="id")
        if prediction_id in first_line:
            raise RecordError(
                f"duplicate id {prediction_id!r} (first on line {first_line[prediction_id]})",
                path=path,
                line=number,
                field="id",
            )
        first_line[prediction_id] = number
        completions[prediction_id] = completion
    return completions


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def format_report(report: Mapping[str, Any]) -> str:
    """The report as aligned text tables: one per task, a row for all queries then one per source."""
    lines = []
    for task, overall in report["tasks"].items():
        columns = list(COUNT_NAMES[task]) + list(METRIC_NAMES[task])
        rows = [["all"] + [_cell(overall[c]) for c in columns]]
        for source, by_task in report["by_source"].items():
            if task in by_task:
                rows.append([source] + [_cell(by_task[task][c]) for c in columns])
        header = ["source"] + columns
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        lines.append(f"{task}")
        for row in [header, *rows]:
            cells = [row[0].ljust(widths[0])]
            cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
            lines.append("  " + "  ".join(cells))
        lines.append("")
    counts = report["counts"]
    lines.append(
        f"queries {counts['queries']}, predictions {counts['predictions']}, missing {counts['missing']}, "
        f"unparsed spans {counts['unparsed_span']}, unparsed answers {counts['unparsed_answer']}"
    )
    return "\n".join(lines)
