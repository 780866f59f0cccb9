"""Blind baselines, written as predictions so `python -m temporal_rl.eval` scores them like any model.

This module owns answers that never look at the video:

| kind           | tasks                  | prediction                                                          |
|----------------|------------------------|---------------------------------------------------------------------|
| `whole_video`  | grounding, grounded_qa | the span `[0, duration]`                                            |
| `mean_span`    | grounding, grounded_qa | the train set's mean normalised start and end, times the duration  |
| `first_option` | mcq, grounded_qa       | the letter `A`                                                      |

Kinds combine: `--kind whole_video first_option` answers grounded QA with both parts. A record that no chosen
kind answers (e.g. mcq under `whole_video`, open_qa always) gets no prediction and is reported as missing; a
grounded QA record answered by one kind only lacks the other part, which then scores as unparseable.

Command line:

    python -m temporal_rl.eval.baselines --kind whole_video --data D.jsonl --out P.jsonl
    python -m temporal_rl.eval.baselines --kind mean_span --data D.jsonl --train T.jsonl --out P.jsonl
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from temporal_rl.data import read_records, write_jsonl
from temporal_rl.prompts import SPAN_FORMATS, format_span

SPAN_KINDS = ("whole_video", "mean_span")
LETTER_KINDS = ("first_option",)
KINDS = SPAN_KINDS + LETTER_KINDS
SPAN_TASKS = ("grounding", "grounded_qa")
CHOICE_TASKS = ("mcq", "grounded_qa")


def mean_normalised_span(train_records: Sequence[Mapping[str, Any]]) -> tuple[float, float]:
    """The mean start and mean end of the gold spans, each divided by its video's duration.

    Every gold span of the grounding and grounded-QA records counts once.

    Args:
        train_records: canonical records (other tasks are skipped).

    Returns:
        `(mean start / duration, mean end / duration)`, both in [0, 1].

    Raises:
        ValueError: no record has a gold span.

    Example:
        ```python
        >>> mean_normalised_span([{"task": "grounding", "duration": 10.0, "spans": [[2.0, 4.0]]},
        ...                       {"task": "grounding", "duration": 20.0, "spans": [[0.0, 12.0]]}])
        (0.1, 0.5)
        ```
    """
    starts, ends = [], []
    for record in train_records:
        if record.get("task") not in SPAN_TASKS:
            continue
        for start, end in record.get("spans") or []:
            starts.append(start / record["duration"])
            ends.append(end / record["duration"])
    if not starts:
        raise ValueError("the train records hold no gold span (no grounding or grounded_qa record)")
    return math.fsum(starts) / len(starts), math.fsum(ends) / len(ends)


def baseline_span(record: Mapping[str, Any], kind: str, mean_span: tuple[float, float] | None = None):
    """The span a span baseline predicts for a record, in seconds."""
    duration = float(record["duration"])
    if kind == "whole_video":
        return (0.0, duration)
    if kind == "mean_span":
        if mean_span is None:
            raise ValueError("mean_span needs the train set's mean normalised span")
        return (mean_span[0] * duration, mean_span[1] * duration)
    raise ValueError(f"{kind!r} is not a span baseline; expected one of {', '.join(SPAN_KINDS)}")


def baseline_predictions(
    records: Sequence[Mapping[str, Any]],
    kinds: Sequence[str],
    *,
    mean_span: tuple[float, float] | None = None,
    span_format: str = "json",
) -> list[dict[str, str]]:
    """Predictions `{"id", "completion"}` of the chosen baselines, in the answer format of `temporal_rl.prompts`.

    Args:
        records: the canonical records to answer.
        kinds: baseline kinds (`KINDS`), at most one span kind.
        mean_span: the train set's mean normalised span, for `mean_span`.
        span_format: `"json"` or `"plain"`.

    Returns:
        One prediction per record that a chosen kind answers.

    Example:
        ```python
        >>> baseline_predictions([{"id": "q1", "task": "grounding", "duration": 12.0}], ["whole_video"],
        ...                      span_format="plain")
        [{'id': 'q1', 'completion': '<answer>0.0 - 12.0</answer>'}]
        ```
    """
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        raise ValueError(f"unknown baseline {unknown[0]!r}; expected some of {', '.join(KINDS)}")
    span_kinds = [kind for kind in kinds if kind in SPAN_KINDS]
    if len(span_kinds) > 1:
        raise ValueError(f"choose at most one span baseline, got {', '.join(span_kinds)}")
    span_kind = span_kinds[0] if span_kinds else None
    letter = "A" if "first_option" in kinds else None
    predictions = []
    for record in records:
        task = record["task"]
        span = baseline_span(record, span_kind, mean_span) if span_kind and task in SPAN_TASKS else None
        chosen = letter if task in CHOICE_TASKS else None
        if task == "grounding" and span is not None:
            completion = f"<answer>{format_span(span, span_format)}</answer>"
        elif task == "mcq" and chosen is not None:
            completion = f"<answer>{chosen}</answer>"
        elif task == "grounded_qa" and (span is not None or chosen is not None):
            completion = f"<answer>{chosen}</answer>" if chosen is not None else ""
            completion += f"<time>{format_span(span, span_format)}</time>" if span is not None else ""
        else:
            continue
        predictions.append({"id": record["id"], "completion": completion})
    return predictions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m temporal_rl.eval.baselines", description="Write blind-baseline predictions."
    )
    parser.add_argument("--kind", required=True, nargs="+", choices=KINDS, help="baseline kinds (combinable)")
    parser.add_argument("--data", required=True, help="canonical JSONL file to answer")
    parser.add_argument("--train", default=None, help="canonical JSONL train file (for mean_span)")
    parser.add_argument("--out", required=True, help="predictions JSONL file to write")
    parser.add_argument("--span-format", default="json", choices=SPAN_FORMATS, help="span format of the answers")
    args = parser.parse_args(argv)
    kinds = list(dict.fromkeys(args.kind))
    span_kinds = [kind for kind in kinds if kind in SPAN_KINDS]
    if len(span_kinds) > 1:
        parser.error(f"choose at most one span baseline, got {', '.join(span_kinds)}")
    if "mean_span" in kinds and args.train is None:
        parser.error("--kind mean_span needs --train")
    try:
        records = read_records(args.data, check_video=False, absolute_video=False)
        mean_span = None
        if "mean_span" in kinds:
            mean_span = mean_normalised_span(read_records(args.train, check_video=False, absolute_video=False))
        predictions = baseline_predictions(records, kinds, mean_span=mean_span, span_format=args.span_format)
    except ValueError as err:  # RecordError is a ValueError
        sys.stderr.write(f"error: {err}\n")
        return 2
    write_jsonl(args.out, predictions)
    sys.stderr.write(f"wrote {len(predictions)} predictions for {len(records)} records to {args.out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
