"""LVBench (`THUDM/LVBench` `video_info.meta.jsonl`, one line per video) -> canonical multiple-choice records.

A line: `{"key": YouTube id, "type", "video_info": {"duration_minutes", ...}, "qa": [{"uid", "question",
"answer", "question_type": [...], "time_reference": "MM:SS-MM:SS"}]}`. The options are inline in the question,
one per line starting `(A) `; they are parsed out (they must run A, B, C, ... in order). `question_type` is a list
(a question counts toward each of its types in the evaluator's breakdown). `time_reference` (`MM:SS-MM:SS` or
`H:MM:SS-H:MM:SS`) becomes `meta["evidence_span"]` in seconds, sorted and clipped: weak grounding, not a gold
span of the multiple-choice record.

The duration: `video_info.duration_minutes` when positive, else `--durations` (`{key: seconds}`, or the durations
command's file), else the video file's container. A line that has no duration is skipped whole, one row per
question. Ids are the `uid`s.

Videos: `<video root>/<key>.mp4` (any video extension), or the files LVBench's own download script wrote there
(`scripts/download.sh`, video2dataset's `files` output), which are numbered, not named by key:
`<shard>/<number>.mp4`, the number being the video's index in the script's URL list (one URL per line that parses
and has a `key`), each with a `<number>.json` whose `url` names the YouTube video. The json's url decides; a
numbered file without its json is matched by the index.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from data_tools.convert.common import (
    BadRow,
    Sink,
    check_letter,
    clean_span,
    field,
    jsonl_lines,
    number,
)
from data_tools.convert.videos import VIDEO_EXTENSIONS, VideoFinder
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


def youtube_id(url: object) -> str | None:
    """`"https://www.youtube.com/watch?v=Cm73ma6Ibcs"` (or `https://youtu.be/Cm73ma6Ibcs`) -> `"Cm73ma6Ibcs"`."""
    if not isinstance(url, str):
        return None
    parsed = urlparse(url)
    if parsed.netloc.endswith("youtu.be"):
        return parsed.path.strip("/") or None
    return (parse_qs(parsed.query).get("v") or [None])[0]


def downloaded_files(finder: VideoFinder) -> tuple[dict[str, str], dict[int, str]]:
    """The numbered files of LVBench's download script under the video root (the root and its shard folders).

    Returns:
        `({YouTube id: file}, {index: file})`: the first from the json files' urls, the second for numbered
        files without a json; files relative to the root.
    """
    try:
        with os.scandir(finder.root) as entries:
            folders = [finder.root] + [finder.root / e.name for e in entries if e.is_dir()]
    except OSError:
        return {}, {}
    by_id, by_index = {}, {}
    for folder in folders:
        names = finder.names_in(folder)
        for name in names:
            stem, ext = os.path.splitext(name)
            if not stem.isdigit() or ext.lower() not in VIDEO_EXTENSIONS:
                continue
            file = finder.relative(folder / name)
            if f"{stem}.json" not in names:
                by_index[int(stem)] = file
                continue
            try:
                meta = json.loads((folder / f"{stem}.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            video_id = youtube_id(meta.get("url") if isinstance(meta, dict) else None)
            if video_id:
                by_id[video_id] = file
    return by_id, by_index


def video_file(key: str, url_index: int, downloads: tuple[dict[str, str], dict[int, str]], sink: Sink) -> Path:
    """`<key>.mp4`, else the download script's file for the key (by its json's url, else by its index)."""
    by_id, by_index = downloads
    return sink.video(f"{key}.mp4", by_id.get(key), by_index.get(url_index))


def video_duration(video: dict, file: Path, durations: dict[str, float], sink: Sink) -> float:
    info = video.get("video_info")
    minutes = info.get("duration_minutes") if isinstance(info, dict) else None
    if isinstance(minutes, (int, float)) and not isinstance(minutes, bool) and minutes > 0:
        return float(minutes) * 60.0
    return sink.duration_of(video["key"], file, durations)


def convert_qa(qa, video: dict, file: Path, duration: float, sink: Sink, source: str) -> None:
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
            "video": sink.video_field(file),
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


def line_questions(video, where: str) -> list[str]:
    """The locations of a line's questions, for a line rejected whole."""
    questions = video.get("qa") if isinstance(video, dict) else None
    return [f"{where}, qa[{index}]" for index in range(len(questions))] if isinstance(questions, list) else []


def convert(args: argparse.Namespace, sink: Sink) -> None:
    durations = sink.load_durations(args.durations)
    downloads = downloaded_files(sink.videos)
    source = args.source or SOURCE
    url_index = -1  # the line's index in the download script's URL list
    for where, video in jsonl_lines(args.annotations):
        if isinstance(video, dict) and "key" in video:
            url_index += 1
        try:
            if isinstance(video, BadRow):
                raise video
            key = field(video, "key")
            questions = field(video, "qa", list)
            if not questions:
                continue
            file = video_file(key, url_index, downloads, sink)
            duration = number(video_duration(video, file, durations, sink), "duration")
        except BadRow as err:  # the whole line: none of its questions can be converted
            sink.reject_entry(args.annotations, where, err, line_questions(video, where))
            continue
        for index, qa in enumerate(questions):
            with sink.row(args.annotations, f"{where}, qa[{index}]"):
                convert_qa(qa, video, file, duration, sink, source)
