"""The canonical record: one JSONL line per sample, the format every part of temporal_rl speaks.

Fields (rewards, the filter, the converters and the evaluator read exactly these names):

| field      | type                       | meaning                                                              |
|------------|----------------------------|----------------------------------------------------------------------|
| `id`       | str                        | unique within the file                                               |
| `video`    | str                        | path, relative to the JSONL file or absolute                        |
| `duration` | float                      | seconds, > 0                                                         |
| `task`     | str                        | one of `TASKS`                                                       |
| `question` | str                        | the question; for grounding, the query sentence                      |
| `options`  | list[str] or null          | option texts (mcq, grounded_qa); the letters are implied: A, B, ...   |
| `answer`   | str or null                | gold option letter (mcq, grounded_qa) or free text (open_qa)         |
| `spans`    | list[[start, end]] or null | gold spans in seconds (grounding, grounded_qa)                        |
| `source`   | str                        | data set of origin, for per-source metrics                           |
| `meta`     | dict                       | anything else (difficulty, question type, ...)                       |

This module owns the schema, its validation (errors name the file, the line and the field) and
JSONL reading and writing. It does not decode videos.
"""

from __future__ import annotations

import json
import math
import os
import string
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from temporal_rl.resumable import atomic_open

TASKS = ("grounding", "mcq", "grounded_qa", "open_qa")
FIELDS = ("id", "video", "duration", "task", "question", "options", "answer", "spans", "source", "meta")
OPTION_LETTERS = string.ascii_uppercase

# A span may end this far past the duration and is then clipped, not rejected: annotation tools round
# durations (Charades-STA and ActivityNet both carry spans a few hundredths past the end).
SPAN_END_TOLERANCE_S = 0.05
# The longest duration a record may claim (a week): 1e12 or 1e308 seconds is a broken field, not a video.
MAX_DURATION_S = 7 * 24 * 3600.0
# How far a record's duration may be from its decoded video's (`check_video_duration`): the larger of these.
# Annotations round durations and re-encoded downloads lose or gain a little; a wrong field is off by far more.
DURATION_TOLERANCE_S = 2.0
DURATION_TOLERANCE_FRACTION = 0.1


class RecordError(ValueError):
    """A canonical record is invalid. The message names the file, the line and the field."""

    def __init__(
        self, message: str, *, path: str | os.PathLike | None = None, line: int | None = None, field: str | None = None
    ):
        self.path, self.line, self.field, self.reason = path, line, field, message
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


def option_letter(index: int) -> str:
    """The letter of the option at `index` (0 -> 'A')."""
    return OPTION_LETTERS[index]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate_record(
    record: Any, *, path: str | os.PathLike | None = None, line: int | None = None, check_video: bool = True
) -> dict:
    """Check one record and return it normalised (spans as float pairs, clipped by the small tolerance).

    Raises:
        RecordError: naming `path`, `line` and the offending field.
    """

    def fail(field: str | None, message: str) -> RecordError:
        return RecordError(message, path=path, line=line, field=field)

    if not isinstance(record, dict):
        raise fail(None, f"expected a JSON object, got {type(record).__name__}")
    missing = [name for name in FIELDS if name not in record]
    if missing:
        raise fail(missing[0], f"missing (a record needs all of {', '.join(FIELDS)})")
    unknown = sorted(set(record) - set(FIELDS))
    if unknown:
        raise fail(unknown[0], "unknown field (put extra information under 'meta')")

    out = dict(record)
    for name in ("id", "video", "question", "source"):
        if not isinstance(record[name], str) or not record[name].strip():
            raise fail(name, f"must be a non-empty string, got {record[name]!r}")
    task = record["task"]
    if task not in TASKS:
        raise fail("task", f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    duration = record["duration"]
    if not _is_number(duration) or duration <= 0:
        raise fail("duration", f"must be a positive number of seconds, got {duration!r}")
    if duration > MAX_DURATION_S:
        raise fail("duration", f"{duration!r} s is longer than a week ({MAX_DURATION_S:.0f} s); a broken field?")
    out["duration"] = float(duration)
    if not isinstance(record["meta"], dict):
        raise fail("meta", f"must be an object, got {type(record['meta']).__name__}")

    options = record["options"]
    if options is not None:
        if not isinstance(options, list) or len(options) < 2 or not all(isinstance(o, str) for o in options):
            raise fail("options", "must be a list of at least two option texts, or null")
        if len(options) > len(OPTION_LETTERS):
            raise fail("options", f"at most {len(OPTION_LETTERS)} options are supported")
    answer = record["answer"]
    if answer is not None and not isinstance(answer, str):
        raise fail("answer", f"must be a string or null, got {type(answer).__name__}")

    if task in ("mcq", "grounded_qa"):
        if options is None:
            raise fail("options", f"a {task} record needs its options")
        letters = OPTION_LETTERS[: len(options)]
        if answer not in tuple(letters):
            raise fail("answer", f"must be one of the option letters {', '.join(letters)}, got {answer!r}")
    if task == "open_qa" and (answer is None or not answer.strip()):
        raise fail("answer", "an open_qa record needs a non-empty text answer")

    spans = record["spans"]
    if task in ("grounding", "grounded_qa") and not spans:
        raise fail("spans", f"a {task} record needs at least one gold span")
    if spans is not None:
        out["spans"] = _validated_spans(spans, out["duration"], fail)

    if check_video:
        video = resolve_video_path(record["video"], path)
        if not video.is_file():
            raise fail("video", f"video file not found: {video}")
    return out


def _validated_spans(spans: Any, duration: float, fail) -> list[list[float]]:
    if not isinstance(spans, list):
        raise fail("spans", f"must be a list of [start, end] pairs, got {type(spans).__name__}")
    result = []
    for i, span in enumerate(spans):
        if not isinstance(span, (list, tuple)) or len(span) != 2 or not all(_is_number(t) for t in span):
            raise fail("spans", f"span {i} must be a [start, end] pair of numbers, got {span!r}")
        start, end = float(span[0]), float(span[1])
        if start < 0:
            raise fail("spans", f"span {i} starts before 0: {span!r}")
        if end <= start:
            raise fail("spans", f"span {i} ends at or before its start: {span!r}")
        if start >= duration:
            raise fail("spans", f"span {i} starts at or past the duration {duration}: {span!r}")
        if end > duration + SPAN_END_TOLERANCE_S:
            raise fail("spans", f"span {i} ends past the duration {duration}: {span!r}")
        result.append([start, min(end, duration)])
    return result


def resolve_video_path(video: str, jsonl_path: str | os.PathLike | None) -> Path:
    """A record's video path: absolute as given, else relative to the JSONL file's folder.

    `..` in the video path is resolved here (the folders it crosses included), so the path is right even when the
    JSONL's folder does not exist yet: a converter checks `../videos/x.mp4` against the output file it is about to
    write, and the operating system cannot walk through a folder that is not there.
    """
    video_path = Path(video)
    if video_path.is_absolute() or jsonl_path is None:
        return video_path
    joined = Path(jsonl_path).resolve().parent / video_path
    if ".." in video_path.parts:
        return joined.parent.resolve() / joined.name
    return joined


def check_video_duration(
    duration: float, video_duration: float, *, path: str | os.PathLike | None = None, line: int | None = None
) -> None:
    """Refuse a record whose `duration` disagrees with its decoded video's, beyond the tolerance (the larger of
    `DURATION_TOLERANCE_S` and `DURATION_TOLERANCE_FRACTION` of the video's length).

    Raises:
        RecordError: on field `duration`, with both durations.
    """
    tolerance = max(DURATION_TOLERANCE_S, DURATION_TOLERANCE_FRACTION * video_duration)
    if not abs(float(duration) - float(video_duration)) <= tolerance:
        raise RecordError(
            f"the record says {duration:g} s but its video lasts {video_duration:.2f} s (tolerance {tolerance:.1f} s)",
            path=path,
            line=line,
            field="duration",
        )


def decode_line(raw: bytes, path: str | os.PathLike, number: int) -> str:
    """One line of a JSONL file as text; bytes that are not UTF-8 raise a `RecordError` naming the file and line."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RecordError(
            f"not UTF-8 text (byte {raw[err.start]:#04x} at column {err.start + 1})", path=path, line=number
        ) from None


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, str | RecordError]]:
    """(line number, text) for each non-blank line of a text file; a line that is not UTF-8 comes as a `RecordError`
    (naming the file and line) in place of its text, so a reader may skip it like any bad line."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = decode_line(raw, path, number)
            except RecordError as err:
                yield number, err
                continue
            if text.strip():
                yield number, text


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
    """Yield (line number, parsed object) for each non-blank line; bad JSON or a line that is not UTF-8 raises
    RecordError naming the file and the line."""
    for number, text in iter_lines(path):
        if isinstance(text, RecordError):
            raise text
        try:
            yield number, json.loads(text)
        except json.JSONDecodeError as err:
            raise RecordError(f"invalid JSON: {err.msg} (column {err.colno})", path=path, line=number) from None


def check_not_empty(path: str | os.PathLike, count: int) -> None:
    """Refuse a data file without a single record, saying whether it is empty or blank."""
    if count:
        return
    size = os.path.getsize(path)
    raise RecordError(
        "the file is empty (0 bytes): no records" if size == 0 else "the file holds no records (only blank lines)",
        path=path,
    )


def read_records(path: str | os.PathLike, *, check_video: bool = True, absolute_video: bool = True) -> list[dict]:
    """Read and validate a canonical JSONL file.

    Args:
        path: the JSONL file.
        check_video: fail if a record's video file does not exist.
        absolute_video: rewrite each `video` to an absolute path, so the records can move away from the file.

    Raises:
        RecordError: on the first invalid line or a duplicate id, naming the file, the line and the field; on a file
            that holds no record (empty or blank).
    """
    if not Path(path).is_file():
        raise RecordError("file not found", path=path)
    records, first_line_of_id = [], {}
    for number, raw in iter_jsonl(path):
        record = validate_record(raw, path=path, line=number, check_video=check_video)
        if record["id"] in first_line_of_id:
            raise RecordError(
                f"duplicate id {record['id']!r} (first on line {first_line_of_id[record['id']]})",
                path=path,
                line=number,
                field="id",
            )
        first_line_of_id[record["id"]] = number
        if absolute_video:
            record["video"] = str(resolve_video_path(record["video"], path))
        records.append(record)
    check_not_empty(path, len(records))
    return records


def load_dataset(path: str | os.PathLike, *, check_video: bool = True):
    """A canonical JSONL file as a `datasets.Dataset`, video paths made absolute.

    Arrow needs one schema per column, and `meta` dicts differ between sources, so `meta` is kept as JSON text;
    `record_meta` decodes it.
    """
    import datasets

    records = read_records(path, check_video=check_video)
    rows = [{**r, "meta": json.dumps(r["meta"], sort_keys=True)} for r in records]
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "video": datasets.Value("string"),
            "duration": datasets.Value("float64"),
            "task": datasets.Value("string"),
            "question": datasets.Value("string"),
            "options": datasets.Sequence(datasets.Value("string")),
            "answer": datasets.Value("string"),
            "spans": datasets.Sequence(datasets.Sequence(datasets.Value("float64"), length=2)),
            "source": datasets.Value("string"),
            "meta": datasets.Value("string"),
        }
    )
    return datasets.Dataset.from_list(rows, features=features)


def record_meta(row: dict) -> dict:
    """The `meta` dict of a row, whether it comes from `read_records` (dict) or `load_dataset` (JSON text)."""
    meta = row["meta"]
    return json.loads(meta) if isinstance(meta, str) else meta


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Write rows as JSONL atomically: a reader sees the old file or the whole new one, never a part."""
    with atomic_open(path) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
