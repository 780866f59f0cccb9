"""Temporal-R1 training JSON -> canonical grounding records.

Items (`.json` list or `.jsonl`): `{"dataset", "video", "problem", "solution": [s / duration, e / duration],
"video_length"}`. The solution is NORMALISED: the span in seconds is `solution * duration`, sorted and clipped.
A solution outside [0, 1] is a malformed row (seconds written where fractions belong).

The duration is `video_length`. Items may carry none (Temporal-R1's own loader computes it from the sampled
frames for `charades_train`): then `--durations` gives it (keyed by the `video` field or its stem: Charades'
`Charades_v1_train.csv` serves, or the durations command's file), else the video file's container, as for the
other converters.

The question is the query quoted in the problem (`Give the query: 'person turn a light on', when does ...`);
a problem without a quoted query is kept whole (counted as a repair). The original problem text stays in
`meta["problem"]`. Ids are `<dataset>_<item index>`; the video is `<video root>/<video>` (Temporal-R1's
`data_folder` of the item's dataset).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from data_tools.convert.common import BadRow, Sink, clean_span, field, json_items, number

NAME = "temporal-r1"
SOURCE = "temporal_r1"
HELP = "Temporal-R1 JSON (solution = normalised [s/dur, e/dur], video_length)"

# Tolerance on the normalised solution: 1.0 written as 1.0000001 is still a fraction.
NORMALISED_TOLERANCE = 1e-6
_QUOTED_QUERY_RE = re.compile(r"query\s*:\s*(['\"])(.+?)\1", re.IGNORECASE | re.DOTALL)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--annotations", required=True, help="Temporal-R1 .json (list) or .jsonl")
    parser.add_argument(
        "--durations",
        default=None,
        help="for items without video_length: JSON {video or stem: seconds}, Charades' csv or the durations command's "
        "JSONL (else the videos)",
    )


def query_of(problem: str) -> str | None:
    """The quoted query of a Temporal-R1 problem, or None."""
    match = _QUOTED_QUERY_RE.search(problem)
    return match.group(2).strip() if match and match.group(2).strip() else None


def item_duration(item: dict, video: str, file: Path, durations: dict[str, float], sink: Sink) -> float:
    """`video_length` when the item has one, else the duration from `--durations` or the video."""
    if item.get("video_length") is None:
        return sink.duration_of((video, Path(video).stem), file, durations)
    duration = number(item["video_length"], "video_length")
    if duration <= 0:
        raise BadRow("no duration", f"video_length must be positive, got {duration}")
    return duration


def convert_item(item, index: int, durations: dict[str, float], sink: Sink, source: str) -> None:
    dataset, video = field(item, "dataset"), field(item, "video")
    problem = field(item, "problem")
    file = sink.video(video)
    duration = item_duration(item, video, file, durations, sink)
    solution = field(item, "solution", list)
    if len(solution) != 2:
        raise BadRow("malformed span", f"solution must be [start, end], got {solution!r}")
    fractions = [number(value, "solution") for value in solution]
    if not all(-NORMALISED_TOLERANCE <= f <= 1 + NORMALISED_TOLERANCE for f in fractions):
        raise BadRow("solution not normalised", f"solution {solution!r} must be fractions of video_length in [0, 1]")
    gold, repairs = clean_span([f * duration for f in fractions], duration, "solution")
    sink.repaired(*repairs)
    query = query_of(problem)
    if query is None:
        sink.repaired("problem kept whole (no quoted query)")
    sink.add(
        {
            "id": f"{dataset}_{index}",
            "video": sink.video_field(file),
            "duration": duration,
            "task": "grounding",
            "question": query or problem.strip(),
            "options": None,
            "answer": None,
            "spans": [gold],
            "source": source,
            "meta": {"dataset": dataset, "problem": problem},
        }
    )


def convert(args: argparse.Namespace, sink: Sink) -> None:
    durations = sink.load_durations(args.durations)
    for index, (where, item) in enumerate(json_items(args.annotations)):
        with sink.row(args.annotations, where):
            if isinstance(item, BadRow):
                raise item
            convert_item(item, index, durations, sink, args.source or SOURCE)
