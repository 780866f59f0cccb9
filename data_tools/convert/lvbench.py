"""LVBench (`THUDM/LVBench` `video_info.meta.jsonl`, one line per video) -> canonical multiple-choice records.

A line: `{"key": YouTube id, "type", "video_info": {"duration_minutes", ...}, "qa": [{"uid", "question",
"answer", "question_type": [...], "time_reference": "MM:SS-MM:SS"}]}`. The options are inline in the question,
one per line starting `(A) `; they are parsed out (they must run A, B, C, ... in order). `question_type` is a list
(a question counts toward each of its types in the evaluator's breakdown). `time_reference` (`MM:SS-MM:SS` or
`H:MM:SS-H:MM:SS`) becomes `meta["evidence_span"]` in seconds, sorted and clipped: weak grounding, not a gold
span of the multiple-choice record.

The duration: `video_info.duration_minutes` when positive, else `--durations` (`{key: seconds}`), else the video
file's container. Ids are the `uid`s; videos `<video root>/<key>.mp4`.
"""

from __future__ import annotations

import argparse
import re

from data_tools.convert.common import (
    BadRow,
    Sink,
    check_letter,
    clean_span,
    field,
    jsonl_lines,
    load_durations,
    number,
)
from temporal_rl.data import OPTION_LETTERS
from temporal_rl.rewards.parsing import parse_seconds

NAME = "lvbench"
SOURCE = "lvbench"
HELP = "LVBench jsonl (per-video qa lists; inline '(A) ...' options; time_reference)"
_OPTION_LINE_RE = re.compile(r"^\s*\(([A-Z])\)\s*(.*?)\s*$")
_TIME = r"\d{1,2}(?::\d{2}){1,2}(?:\.\d+)?"
_TIME_REFERENCE_RE = re.compile(rf"^\s*({_TIME})\s*-\s*({_TIME})\s*$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--annotations", required=True, help="video_info.meta.jsonl")
    parser.add_argument("--durations", default=None, help="JSON {key: seconds} for videos without duration_minutes")


def split_question(text: str) -> tuple[str, list[str]]:
    """`"What year?\\n(A) 1636\\n(B) 1366"` -> `("What year?", ["1636", "1366"])`.

    Raises:
        BadRow: fewer than two option lines, or labels out of order.
    """
    question_lines, options = [], []
    for line in text.splitlines():
        match = _OPTION_LINE_RE.match(line)
        if match is None:
            if options:
                raise BadRow("malformed options", f"text after the options: {line.strip()!r}")
            question_lines.append(line)
            continue
        expected = OPTION_LETTERS[len(options)]
        if match.group(1) != expected:
            raise BadRow("malformed options", f"option ({match.group(1)}) where ({expected}) was expected")
        options.append(match.group(2))
    question = "\n".join(question_lines).strip()
    if len(options) < 2:
        raise BadRow("malformed options", f"fewer than two '(A) ...' option lines in {text!r}")
    if not question:
        raise BadRow("empty field", "the question has no text before its options")
    return question, options


def parse_time_reference(text: str) -> tuple[float, float]:
    """`"00:15-00:19"` -> (15.0, 19.0); `"1:02:03-1:02:10"` -> (3723.0, 3730.0)."""
    match = _TIME_REFERENCE_RE.match(text)
    start = parse_seconds(match.group(1)) if match else None
    end = parse_seconds(match.group(2)) if match else None
    if start is None or end is None:
        raise BadRow("malformed time_reference", f"expected 'MM:SS-MM:SS' or 'H:MM:SS-H:MM:SS', got {text!r}")
    return start, end


def video_duration(video: dict, durations: dict[str, float], sink: Sink) -> float:
    info = video.get("video_info")
    minutes = info.get("duration_minutes") if isinstance(info, dict) else None
    if isinstance(minutes, (int, float)) and not isinstance(minutes, bool) and minutes > 0:
        return float(minutes) * 60.0
    key = field(video, "key")
    return sink.duration_of(key, sink.video_file(f"{key}.mp4"), durations)


def convert_qa(qa, video: dict, duration: float, sink: Sink, source: str) -> None:
    question, options = split_question(field(qa, "question"))
    types = qa.get("question_type") or []
    types = [types] if isinstance(types, str) else types
    meta = {"question_type": types, "video_type": video.get("type"), "key": video["key"]}
    reference = qa.get("time_reference")
    if isinstance(reference, str) and reference.strip():
        span, repairs = clean_span(list(parse_time_reference(reference)), duration, "time_reference")
        sink.repaired(*repairs)
        meta.update(time_reference=reference, evidence_span=span)
    sink.add(
        {
            "id": str(field(qa, "uid", (str, int))),
            "video": sink.video_field(sink.video_file(f"{video['key']}.mp4")),
            "duration": duration,
            "task": "mcq",
            "question": question,
            "options": options,
            "answer": check_letter(field(qa, "answer"), options),
            "spans": None,
            "source": source,
            "meta": meta,
        }
    )


def convert(args: argparse.Namespace, sink: Sink) -> None:
    durations = load_durations(args.durations)
    source = args.source or SOURCE
    for where, video in jsonl_lines(args.annotations):
        try:
            if isinstance(video, BadRow):
                raise video
            field(video, "key")
            questions = field(video, "qa", list)
            duration = video_duration(video, durations, sink)
            number(duration, "duration")
        except BadRow as err:  # the whole line: none of its questions can be converted
            sink.reject(args.annotations, where, err)
            continue
        for index, qa in enumerate(questions):
            with sink.row(args.annotations, f"{where}, qa[{index}]"):
                convert_qa(qa, video, duration, sink, source)
