"""What every converter shares: row errors, the output sink, video paths, durations, spans and options.

A converter reads its benchmark's files row by row and, for each row, either hands a canonical record to the
`Sink` or raises:

- `BadRow`: the row is malformed (missing field, answer not among the options, empty span, no duration...).
  By default the conversion stops with a `ConvertError` naming the file, the line / row / key and the reason;
  with `skip_bad` the row is skipped and counted under its reason.
- `FilteredRow`: the row is valid but not convertible by design (an image row of Video-R1, a generation task of
  MLVU). Always skipped and counted under its reason.

Nothing is dropped silently: the sink counts every row it opened and checks at the end that each one was written
or skipped. Repairs (a reversed span sorted, a span clipped to the duration, a leading space stripped) are counted
too and shown in the summary. Skipped rows are listed in a sidecar report next to the output,
`<out stem>.skipped.jsonl`: one `{"file", "where", "kind", "reason", "detail"}` per row.

Locations: text lines count from 1 (`line 7`), JSON list items and table rows from 0 (`item [3]`, `row 3`),
JSON objects by key (`key '3MSZA'`).

Video paths: the `video` field is the benchmark's file under `--video-root`, written relative to the output JSONL
file's folder (the canonical convention; moving the output and the videos together keeps it valid) or, with
`absolute_videos`, absolute.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from temporal_rl.data import OPTION_LETTERS, RecordError, validate_record, write_jsonl
from temporal_rl.rewards.temporal import clip_span


class ConvertError(ValueError):
    """A conversion stops: the message names the file, where in it, and what is wrong."""

    def __init__(self, reason: str, *, path: str | os.PathLike, where: str | None = None):
        self.path, self.where, self.reason = os.fspath(path), where, reason
        super().__init__(f"{self.path}, {where}: {reason}" if where else f"{self.path}: {reason}")


class BadRow(ValueError):
    """A malformed input row. `reason` is the category counted in the summary; `detail` the specifics."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class FilteredRow(BadRow):
    """A valid input row that this converter does not convert by design (counted, never an error)."""


# ---------------------------------------------------------------------------------------------------------------
# Reading the benchmarks' files


def _require_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ConvertError("file not found", path=path)
    return path


def load_json(path: str | os.PathLike) -> Any:
    """A JSON file's content; a missing or invalid file is a `ConvertError` (with the line and column)."""
    path = _require_file(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConvertError(
            f"invalid JSON: {err.msg} (column {err.colno})", path=path, where=f"line {err.lineno}"
        ) from None


def json_object(path: str | os.PathLike) -> dict:
    data = load_json(path)
    if not isinstance(data, dict):
        raise ConvertError(f"expected a JSON object at the top, got {type(data).__name__}", path=path)
    return data


def json_items(path: str | os.PathLike) -> Iterator[tuple[str, Any]]:
    """(location, item) for each item of a JSON list file, or each line of a JSONL file (`.jsonl`)."""
    path = _require_file(path)
    if path.suffix == ".jsonl":
        yield from jsonl_lines(path)
        return
    data = load_json(path)
    if not isinstance(data, list):
        raise ConvertError(f"expected a JSON list at the top, got {type(data).__name__}", path=path)
    for index, item in enumerate(data):
        yield f"item [{index}]", item


def jsonl_lines(path: str | os.PathLike) -> Iterator[tuple[str, Any]]:
    """(location, object) per non-blank line; a line that is not JSON is yielded as a `BadRow` to raise."""
    path = _require_file(path)
    with open(path, encoding="utf-8") as f:
        for number, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                yield f"line {number}", json.loads(text)
            except json.JSONDecodeError as err:
                yield f"line {number}", BadRow("invalid JSON", f"{err.msg} (column {err.colno})")


def csv_rows(path: str | os.PathLike, required: Sequence[str]) -> Iterator[tuple[str, dict]]:
    """(location, row dict) per data row of a CSV file with a header; the header must hold `required`."""
    path = _require_file(path)
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = [name for name in required if name not in (reader.fieldnames or [])]
        if missing:
            raise ConvertError(f"the header lacks column(s) {', '.join(missing)}", path=path, where="line 1")
        for row in reader:
            yield f"line {reader.line_num}", row


def table_rows(path: str | os.PathLike) -> Iterator[tuple[str, Any]]:
    """(location, row dict) per row of a parquet file, or per item of a JSON / JSONL file with the same rows."""
    path = _require_file(path)
    if path.suffix != ".parquet":
        yield from json_items(path)
        return
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as err:  # pyarrow raises several types for damaged files
        raise ConvertError(f"not a readable parquet file ({err})", path=path) from None
    for index, row in enumerate(rows):
        yield f"row {index}", row


def field(row: Any, name: str, kind: type | tuple[type, ...] = str) -> Any:
    """`row[name]`, required and of type `kind` (a non-empty string for `str`); else `BadRow`."""
    if not isinstance(row, dict):
        raise BadRow("not an object", f"expected a JSON object, got {type(row).__name__}")
    if name not in row or row[name] is None:
        raise BadRow("missing field", f"field {name!r} is missing")
    value = row[name]
    if kind in (float, (int, float)):
        return number(value, name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BadRow("wrong field type", f"field {name!r} must be {_kind_name(kind)}, got {type(value).__name__}")
    if isinstance(value, str) and not value.strip():
        raise BadRow("empty field", f"field {name!r} is empty")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {"str": "a string", "list": "a list", "dict": "an object"}
    return " or ".join(names.get(k.__name__, k.__name__) for k in kinds)


def number(value: Any, name: str) -> float:
    """`value` as a finite float (numbers or numeric strings); else `BadRow` naming `name`."""
    try:
        result = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        raise BadRow("not a number", f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(result):
        raise BadRow("not a number", f"{name} must be a finite number, got {value!r}")
    return result


# ---------------------------------------------------------------------------------------------------------------
# Durations


def load_durations(path: str | os.PathLike | None) -> dict[str, float]:
    """Video durations in seconds from a JSON object `{video id: seconds}` or a Charades-style CSV (`id`, `length`).

    Returns {} for `path=None`.
    """
    if path is None:
        return {}
    path = Path(path)
    if path.suffix == ".csv":
        pairs = [(where, row["id"], row["length"]) for where, row in csv_rows(path, ("id", "length"))]
    else:
        pairs = [(f"key {key!r}", key, value) for key, value in json_object(path).items()]
    durations = {}
    for where, key, value in pairs:
        try:
            seconds = number(value, "the duration")
        except BadRow as err:
            raise ConvertError(err.detail, path=path, where=where) from None
        if seconds <= 0:
            raise ConvertError(f"the duration must be positive, got {value!r}", path=path, where=where)
        durations[str(key).strip()] = seconds
    return durations


def probe_duration(path: str | os.PathLike) -> float | None:
    """A video file's duration in seconds from its container (PyAV, no decoding); None if it cannot be read."""
    import av

    try:
        with av.open(os.fspath(path)) as container:
            if container.duration:
                return container.duration / 1_000_000
            stream = container.streams.video[0]
            if stream.duration and stream.time_base:
                return float(stream.duration * stream.time_base)
    except (av.error.FFmpegError, OSError, IndexError):
        return None
    return None


# ---------------------------------------------------------------------------------------------------------------
# Spans and options


def clean_span(span: Any, duration: float, name: str = "span") -> tuple[list[float], list[str]]:
    """A gold span sorted and clipped to `[0, duration]`, and the repairs that took.

    Returns:
        `([start, end], repairs)`, repairs among "reversed span sorted", "span clipped to the duration".

    Raises:
        BadRow: the span is not a pair of numbers, or is empty after clipping.
    """
    if not isinstance(span, (list, tuple)) or len(span) != 2:
        raise BadRow("malformed span", f"{name} must be a [start, end] pair, got {span!r}")
    start, end = number(span[0], f"{name} start"), number(span[1], f"{name} end")
    clipped = clip_span((start, end), duration)
    if clipped is None:
        raise BadRow("empty span", f"{name} {[start, end]} is empty within the video [0, {duration}]")
    repairs = []
    if start > end:
        repairs.append("reversed span sorted")
    if tuple(clipped) != (min(start, end), max(start, end)):
        repairs.append("span clipped to the duration")
    return [round(clipped[0], 4), round(clipped[1], 4)], repairs


_LETTER_PREFIX_RE = re.compile(r"^\s*\(?([A-Z])\s*[.):]\s*")


def strip_option_letters(options: Any, name: str = "options") -> list[str]:
    """Option texts from options labelled in order, `["A. x", "B. y"]` (or `"(A) x"`, `"A) x"`) -> `["x", "y"]`.

    Raises:
        BadRow: not a list of at least two strings, or a label is missing or out of order.
    """
    if not isinstance(options, list) or len(options) < 2 or not all(isinstance(o, str) for o in options):
        raise BadRow("malformed options", f"{name} must be a list of at least two strings, got {options!r}")
    texts = []
    for index, option in enumerate(options):
        match = _LETTER_PREFIX_RE.match(option)
        if match is None or match.group(1) != OPTION_LETTERS[index]:
            raise BadRow(
                "malformed options", f"option {index} should start with '{OPTION_LETTERS[index]}.', got {option!r}"
            )
        texts.append(option[match.end() :].strip())
    return texts


def answer_letter(answer: Any, options: Sequence[str]) -> str:
    """The letter of the option whose text is `answer` (exact, else ignoring case and surrounding space).

    Raises:
        BadRow: the answer is not one of the options.
    """
    if isinstance(answer, str):
        for normalise in (lambda s: s, lambda s: " ".join(s.split()).casefold()):
            matches = [i for i, option in enumerate(options) if normalise(option) == normalise(answer)]
            if matches:
                return OPTION_LETTERS[matches[0]]
    raise BadRow("answer not among the options", f"answer {answer!r} is none of {list(options)!r}")


def check_letter(letter: Any, options: Sequence[str]) -> str:
    """A gold letter (`"B"` or `"(B)"`) checked against the number of options."""
    text = letter.strip().strip("()").strip() if isinstance(letter, str) else None
    if not text or text not in OPTION_LETTERS[: len(options)]:
        letters = ", ".join(OPTION_LETTERS[: len(options)])
        raise BadRow("answer not among the options", f"answer {letter!r} is not one of the letters {letters}")
    return text


# ---------------------------------------------------------------------------------------------------------------
# The output


class Sink:
    """Collects a conversion's records, skipped rows and repairs; writes the output and the skipped-rows report.

    Args:
        out: the output JSONL file.
        video_root: the folder the benchmark's video paths are relative to.
        skip_bad: skip malformed rows (counted) instead of stopping at the first.
        check_videos: a record whose video file does not exist is a malformed row.
        absolute_videos: write absolute video paths instead of paths relative to the output's folder.
    """

    def __init__(
        self,
        out: str | os.PathLike,
        video_root: str | os.PathLike,
        *,
        skip_bad: bool = False,
        check_videos: bool = False,
        absolute_videos: bool = False,
    ):
        self.out = Path(out)
        self.video_root = Path(os.path.abspath(video_root))
        self.skip_bad, self.check_videos, self.absolute_videos = skip_bad, check_videos, absolute_videos
        self.records: list[dict] = []
        self.skipped: list[dict] = []
        self.repairs: Counter = Counter()
        self.rows = 0
        self._ids: set[str] = set()
        self._pending_repairs: list[str] = []

    # Video paths -----------------------------------------------------------------------------------------------

    def video_file(self, *parts: str) -> Path:
        """The absolute path of a video under the video root."""
        return self.video_root.joinpath(*parts)

    def video_field(self, file: Path) -> str:
        """The record's `video` value for `file`: relative to the output's folder, or absolute."""
        if self.absolute_videos:
            return str(file)
        return os.path.relpath(file, os.path.abspath(self.out.parent))

    def duration_of(self, key: str, file: Path, durations: dict[str, float]) -> float:
        """A video's duration: from `durations[key]`, else probed from the file; `BadRow` when neither has it."""
        if key in durations:
            return durations[key]
        if file.is_file():
            seconds = probe_duration(file)
            if seconds and seconds > 0:
                return seconds
            raise BadRow("no duration", f"{file} does not say its duration and {key!r} is not in --durations")
        raise BadRow("no duration", f"{key!r} is not in --durations and the video {file} is not there to probe")

    # Rows ------------------------------------------------------------------------------------------------------

    @contextmanager
    def row(self, path: str | os.PathLike, where: str):
        """One input row: the body adds one record (`add`) or raises `BadRow` / `FilteredRow`."""
        self.rows += 1
        self._pending_repairs = []
        before = len(self.records)
        try:
            yield
        except BadRow as err:
            self.reject(path, where, err, counted=True)
            return
        if len(self.records) != before + 1:
            raise RuntimeError(f"{path}, {where}: a row must give exactly one record or raise BadRow")
        self.repairs.update(self._pending_repairs)

    def reject(self, path: str | os.PathLike, where: str, err: BadRow, *, counted: bool = False) -> None:
        """Skip a row (a whole entry when not `counted` by `row` yet); a malformed one stops without `skip_bad`."""
        if not counted:
            self.rows += 1
        filtered = isinstance(err, FilteredRow)
        if not filtered and not self.skip_bad:
            raise ConvertError(str(err), path=path, where=where) from None
        self.skipped.append(
            {
                "file": os.fspath(path),
                "where": where,
                "kind": "filtered" if filtered else "bad",
                "reason": err.reason,
                "detail": err.detail,
            }
        )

    def repaired(self, *repairs: str) -> None:
        """Note repairs made to the current row (counted once the row is written)."""
        self._pending_repairs.extend(repairs)

    def add(self, record: dict) -> None:
        """Validate a record (`validate_record`; the video too with `check_videos`) and keep it."""
        try:
            record = validate_record(record, path=self.out, check_video=self.check_videos)
        except RecordError as err:
            reason = "video file not found" if err.field == "video" else "invalid record"
            raise BadRow(reason, f"field {err.field!r}: {err.reason}") from None
        if record["id"] in self._ids:
            raise BadRow("duplicate id", f"id {record['id']!r} was given to an earlier row")
        self._ids.add(record["id"])
        self.records.append(record)

    # Output ----------------------------------------------------------------------------------------------------

    @property
    def report_path(self) -> Path:
        return self.out.with_name(f"{self.out.stem}.skipped.jsonl")

    def finish(self) -> None:
        """Write the records (atomically) and the skipped-rows report (removed when nothing was skipped)."""
        if self.rows != len(self.records) + len(self.skipped):
            raise RuntimeError(f"{self.rows} rows read but {len(self.records)} written + {len(self.skipped)} skipped")
        write_jsonl(self.out, self.records)
        if self.skipped:
            write_jsonl(self.report_path, self.skipped)
        else:
            self.report_path.unlink(missing_ok=True)

    def summary(self, name: str) -> str:
        """What happened to every row: written, skipped per kind and reason, repairs."""
        lines = [
            f"{name}: {self.rows} rows read, {len(self.records)} records written to {self.out}, "
            f"{len(self.skipped)} skipped"
        ]
        reasons = Counter((row["kind"], row["reason"]) for row in self.skipped)
        for (kind, reason), count in sorted(reasons.items()):
            lines.append(f"  skipped ({kind}): {count} x {reason}")
        for repair, count in sorted(self.repairs.items()):
            lines.append(f"  repaired: {count} x {repair}")
        if self.skipped:
            lines.append(f"  skipped rows listed in {self.report_path}")
        return "\n".join(lines)
