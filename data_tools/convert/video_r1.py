"""Video-R1 (`Video-R1-260k.json`, `Video-R1-COT-165k.json`) -> canonical multiple-choice records.

Only video multiple-choice rows convert (`data_type` "video", `problem_type` "multiple choice"); image rows and
the other problem types (numerical, OCR, free-form, regression) are skipped and counted with the reason. Options
`["A. ...", ...]` lose their labels; the solution `<answer>B</answer>` gives the letter. The SFT file's `process`
(`<think>...</think>`) becomes `meta["reasoning"]`, the reasoning `temporal_rl.prompts.format_answer` writes for
think-style gold completions.

Videos: `path` (`./LLaVA-Video-178K/...`) under the video root (the `Video-R1-data` folder). Durations from
`--durations` (`{path as written: seconds}`, or the durations command's file) or the video files' containers.
Ids: `video_r1_<problem_id>`.
"""

from __future__ import annotations

import argparse

from data_tools.convert.common import (
    BadRow,
    FilteredRow,
    Sink,
    check_letter,
    field,
    json_items,
    strip_option_letters,
)
from temporal_rl.rewards.parsing import extract_tag

NAME = "video-r1"
SOURCE = "video_r1"
HELP = "Video-R1 JSON (video multiple-choice rows; 'A. x' options; <answer>B</answer>)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--annotations", required=True, help="Video-R1-260k.json or Video-R1-COT-165k.json")
    parser.add_argument(
        "--durations", default=None, help="JSON {path: seconds} or the durations command's JSONL (else the videos)"
    )


def convert_item(item, durations: dict[str, float], sink: Sink, source: str) -> None:
    data_type, problem_type = field(item, "data_type"), field(item, "problem_type")
    if data_type != "video":
        raise FilteredRow(f"not a video row (data_type {data_type})")
    if problem_type != "multiple choice":
        raise FilteredRow(f"not multiple choice (problem_type {problem_type})")
    options = strip_option_letters(field(item, "options", list))
    solution = field(item, "solution")
    letter = extract_tag(solution, "answer")
    if letter is None:
        raise BadRow("malformed solution", f"expected '<answer>X</answer>', got {solution!r}")
    path = field(item, "path")
    file = sink.video(path[2:] if path.startswith("./") else path.lstrip("/"))
    meta = {"problem_id": item.get("problem_id"), "data_source": item.get("data_source")}
    reasoning = extract_tag(item.get("process"), "think")
    if reasoning:
        meta["reasoning"] = reasoning
    sink.add(
        {
            "id": f"video_r1_{field(item, 'problem_id', (int, str))}",
            "video": sink.video_field(file),
            "duration": sink.duration_of(path, file, durations),
            "task": "mcq",
            "question": field(item, "problem").strip(),
            "options": options,
            "answer": check_letter(letter, options),
            "spans": None,
            "source": source,
            "meta": meta,
        }
    )


def convert(args: argparse.Namespace, sink: Sink) -> None:
    durations = sink.load_durations(args.durations)
    for where, item in json_items(args.annotations):
        with sink.row(args.annotations, where):
            if isinstance(item, BadRow):
                raise item
            convert_item(item, durations, sink, args.source or SOURCE)
