"""What every converter shares: row errors, the output sink, video paths, durations, spans and options.

A converter reads its benchmark's files question by question (a row is one question, or one query of a grounding
benchmark) and, for each, either hands a canonical record to the `Sink` or raises:

- `BadRow`: the row is malformed (missing field, empty span, no duration...). By default the conversion stops
  with a `ConvertError` naming the file, the line / row / key and the reason (and, for a missing duration, how to
  get one); with `skip_bad` the row is skipped and counted under its reason.
- `FilteredRow`: the row is valid but not convertible by design (an image row of Video-R1, a generation task of
  MLVU, an answer the benchmark's official scorer finds among no option). Always skipped and counted.

An entry holding several questions that is rejected whole (an LVBench video without a duration, an ActivityNet
video whose sentences cannot be paired with their spans) is counted and listed once per question
(`Sink.reject_entry`).

Nothing is dropped silently: the sink counts every row it opened and checks at the end that each one was written
or skipped. Repairs (a reversed span sorted, a span clipped to the duration, a leading space stripped) are counted
and shown in the summary, and so are notes on written records that a user should know about (the gold text in
several options, an empty option text: marked in `meta`, see `option_marks`). Skipped rows are listed in a sidecar
report next to the output, `<out stem>.skipped.jsonl`: one `{"file", "where", "kind", "reason", "detail"}` per row.

Locations: text lines count from 1 (`line 7`), JSON list items and table rows from 0 (`item [3]`, `row 3`),
JSON objects by key (`key '3MSZA'`).

Video paths: a converter names the file a record's video can have under `--video-root` (`Sink.video`, which
resolves the real file when the videos are there: `videos.VideoFinder`); the `video` field is written relative to
the output JSONL file's folder (the canonical convention; moving the output and the videos together keeps it
valid) or, with `absolute_videos`, absolute. The summary says how many records point to files that do not exist.

Durations: from the benchmark's annotation, else `--durations` (a JSON `{key: seconds}`, a Charades-style CSV, or
the JSONL `python -m data_tools.convert.durations` writes, keyed by the video's path under the video root), else
the video file's container. A durations file read with `Sink.load_durations` also names the video files there are,
so that a conversion where the videos are not still names each file as it is.
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

from data_tools.convert.videos import ProbeError, VideoFinder, probe_duration
from temporal_rl.data import OPTION_LETTERS, RecordError, validate_record, write_jsonl
from temporal_rl.rewards.temporal import clip_span

DURATIONS_COMMAND = "python -m data_tools.convert.durations"


class ConvertError(ValueError):
    """A conversion stops: the message names the file, where in it, and what is wrong; `row`: at a malformed row
    (which `--skip-bad` would skip), not at a file that cannot be read."""

    def __init__(self, reason: str, *, path: str | os.PathLike, where: str | None = None, row: bool = False):
        self.path, self.where, self.reason, self.row = os.fspath(path), where, reason, row
        super().__init__(f"{self.path}, {where}: {reason}" if where else f"{self.path}: {reason}")


class BadRow(ValueError):
    """A malformed input row. `reason` is the category counted in the summary; `detail` the specifics; `hint`
    how to fix the cause (said once in the summary and in the error that stops a conversion)."""

    def __init__(self, reason: str, detail: str = "", *, hint: str | None = None):
        self.reason, self.detail, self.hint = reason, detail, hint
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


def field(row: Any, name: str, kind: type | tuple[type, ...] = str, *, empty_ok: bool = False) -> Any:
    """`row[name]`, required and of type `kind` (a non-empty string for `str`, unless `empty_ok`); else `BadRow`.

    `empty_ok` is for option and answer texts, where an empty text is a text like any other (see `answer_letter`).
    """
    if not isinstance(row, dict):
        raise BadRow("not an object", f"expected a JSON object, got {type(row).__name__}")
    if name not in row or row[name] is None:
        raise BadRow("missing field", f"field {name!r} is missing")
    value = row[name]
    if kind in (float, (int, float)):
        return number(value, name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BadRow("wrong field type", f"field {name!r} must be {_kind_name(kind)}, got {type(value).__name__}")
    if isinstance(value, str) and not value.strip() and not empty_ok:
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
    """Video durations in seconds, `{key: seconds}`, from one of:

    - a JSON object `{video id: seconds}`;
    - a Charades-style CSV (columns `id` and `length`);
    - the JSONL `python -m data_tools.convert.durations` writes (`.jsonl`, one `{"video", "duration"}` per line,
      `video` the file's path under the video root it probed).

    Returns {} for `path=None`.
    """
    if path is None:
        return {}
    path = Path(path)
    if path.suffix == ".csv":
        pairs = [(where, row["id"], row["length"]) for where, row in csv_rows(path, ("id", "length"))]
    elif path.suffix == ".jsonl":
        pairs = []
        for where, line in jsonl_lines(path):
            if isinstance(line, BadRow) or not isinstance(line, dict) or not isinstance(line.get("video"), str):
                detail = line.detail if isinstance(line, BadRow) else 'expected {"video": path, "duration": seconds}'
                raise ConvertError(f"not a durations line: {detail}", path=path, where=where)
            pairs.append((where, line["video"], line.get("duration")))
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


def _loose(text: str) -> str:
    return " ".join(text.split()).casefold()


def answer_letter(answer: str, options: Sequence[str], *, twin: str) -> str:
    """The letter a benchmark's official scorer gives a gold answer TEXT: the option equal to it, compared exactly
    as the scorers compare (no stripping, no case folding; an empty answer names an empty option).

    Args:
        answer: the gold text, as in the file.
        options: the option texts, as in the file.
        twin: which option wins when several carry the gold text, as the official scorer picks it: "first"
            (`list.index`, NExT-GQA) or "last" (a loop that keeps the last match: MLVU's and MVBench's).

    Raises:
        FilteredRow: no option equals the answer. The official scorers keep such a question and count it wrong
            for every model; no canonical record can say that, so it is left out, counted and listed (with the
            option it differs from only in case or spacing, if one does).
    """
    matches = [index for index, option in enumerate(options) if option == answer]
    if matches:
        return OPTION_LETTERS[matches[0] if twin == "first" else matches[-1]]
    near = [f"{OPTION_LETTERS[i]} {o!r}" for i, o in enumerate(options) if _loose(o) == _loose(answer)]
    detail = f"answer {answer!r} is none of {list(options)!r}"
    if near:
        detail += f" (it differs from option {', '.join(near)} only in case or spacing)"
    raise FilteredRow(
        "answer not among the options",
        f"{detail}; the official scorer matches the text exactly and counts this question wrong for every model",
    )


def check_letter(letter: Any, options: Sequence[str]) -> str:
    """A gold letter (`"B"` or `"(B)"`) checked against the number of options."""
    text = letter.strip().strip("()").strip() if isinstance(letter, str) else None
    if not text or text not in OPTION_LETTERS[: len(options)]:
        letters = ", ".join(OPTION_LETTERS[: len(options)])
        raise BadRow("answer not among the options", f"answer {letter!r} is not one of the letters {letters}")
    return text


def option_marks(options: Sequence[str], answer: str) -> dict[str, list[str]]:
    """What could misjudge a model on a multiple-choice record, as `meta` entries (absent when nothing):

    - `duplicate_gold`: the letters of every option whose text is the gold one (ignoring case and spacing) when
      there are several; the record's answer is the one the official scorer uses, a model choosing a twin is
      scored wrong;
    - `empty_options`: the letters of options with an empty text (kept: the official prompts show them too).

    Example:

    ```python
    >>> option_marks(["Six", "Three", "Three", "Eight"], "C")
    {'duplicate_gold': ['B', 'C']}
    >>> option_marks(["Turn left", ""], "B")
    {'empty_options': ['B']}

    ```
    """
    gold = _loose(options[OPTION_LETTERS.index(answer)])
    marks = {}
    twins = [OPTION_LETTERS[i] for i, option in enumerate(options) if _loose(option) == gold]
    if len(twins) > 1:
        marks["duplicate_gold"] = twins
    empty = [OPTION_LETTERS[i] for i, option in enumerate(options) if not option.strip()]
    if empty:
        marks["empty_options"] = empty
    return marks


MARK_NOTES = {
    "duplicate_gold": "gold text in several options (meta.duplicate_gold)",
    "empty_options": "empty option text (meta.empty_options)",
}


# ---------------------------------------------------------------------------------------------------------------
# The output


class Sink:
    """Collects a conversion's records, skipped rows, repairs and notes; writes the output and the report.

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
        self.videos = VideoFinder(video_root)
        self.video_root = self.videos.root
        self.skip_bad, self.check_videos, self.absolute_videos = skip_bad, check_videos, absolute_videos
        self.records: list[dict] = []
        self.skipped: list[dict] = []
        self.repairs: Counter = Counter()
        self.notes: Counter = Counter()
        self.hints: dict[str, str] = {}
        self.rows = 0
        self.missing_videos: list[str] = []
        self._ids: set[str] = set()
        self._pending: list[tuple[Counter, str]] = []

    # Video paths -----------------------------------------------------------------------------------------------

    def video(self, *candidates: str | None) -> Path:
        """The video file a record names: the first candidate name (relative to the video root, in order of
        preference, any video extension) that exists, else the first candidate as named."""
        found = self.videos.find(*candidates)
        return found if found is not None else self.videos.path(next(c for c in candidates if c))

    def video_field(self, file: Path) -> str:
        """The record's `video` value for `file`: relative to the output's folder, or absolute."""
        if self.absolute_videos:
            return str(file)
        return os.path.relpath(file, os.path.abspath(self.out.parent))

    def duration_of(self, keys: str | Sequence[str], file: Path, durations: dict[str, float]) -> float:
        """A video's duration: `durations[key]` for the first of `keys` there, else `durations[<file under the
        video root>]` (the durations command's keys), else probed from the file; `BadRow` ("no duration", with how
        to fix it) when none has it."""
        keys = [keys] if isinstance(keys, str) else list(keys)
        for name in (*keys, self.videos.relative(file)):
            if name in durations:
                return durations[name]
        if self.videos.exists(file):
            try:
                return probe_duration(file)
            except ProbeError as err:
                raise BadRow(
                    "no duration", f"{file} cannot be probed ({err}) and {keys[0]!r} is not in --durations"
                ) from None
        raise BadRow(
            "no duration",
            f"{keys[0]!r} is not in --durations and the video {file} is not there to probe",
            hint=self.no_duration_hint(),
        )

    def load_durations(self, path: str | os.PathLike | None) -> dict[str, float]:
        """`load_durations(path)`, its keys also taken as the video files there are (see `VideoFinder.add_manifest`:
        a durations file written from the videos names them as they are)."""
        durations = load_durations(path)
        self.videos.add_manifest(durations)
        return durations

    def no_duration_hint(self) -> str:
        return (
            f"give the durations with --durations FILE; `{DURATIONS_COMMAND} --video-root {self.video_root} "
            "--out FILE` writes it from the videos (on any machine that has them, with the same --video-root), "
            "or put the videos under --video-root to be probed"
        )

    # Rows ------------------------------------------------------------------------------------------------------

    @contextmanager
    def row(self, path: str | os.PathLike, where: str):
        """One input row: the body adds one record (`add`) or raises `BadRow` / `FilteredRow`."""
        self.rows += 1
        self._pending = []
        before = len(self.records)
        try:
            yield
        except BadRow as err:
            self.reject(path, where, err, counted=True)
            return
        if len(self.records) != before + 1:
            raise RuntimeError(f"{path}, {where}: a row must give exactly one record or raise BadRow")
        for counter, text in self._pending:
            counter[text] += 1

    def reject(self, path: str | os.PathLike, where: str, err: BadRow, *, counted: bool = False) -> None:
        """Skip a row (not yet `counted` by `row`: one read here); a malformed one stops without `skip_bad`."""
        if not counted:
            self.rows += 1
        filtered = isinstance(err, FilteredRow)
        if err.hint:
            self.hints[err.reason] = err.hint
        if not filtered and not self.skip_bad:
            hint = f". To fix: {err.hint}" if err.hint else ""
            raise ConvertError(f"{err}{hint}", path=path, where=where, row=True) from None
        self.skipped.append(
            {
                "file": os.fspath(path),
                "where": where,
                "kind": "filtered" if filtered else "bad",
                "reason": err.reason,
                "detail": err.detail,
            }
        )

    def reject_entry(self, path: str | os.PathLike, where: str, err: BadRow, questions: Sequence[str]) -> None:
        """Skip a whole entry: each of its questions (their locations, e.g. `line 3, qa[0]`) is a row read and
        skipped; an entry whose questions cannot be told apart counts as one (`questions` empty)."""
        if not isinstance(err, FilteredRow) and not self.skip_bad:
            count = f" (all {len(questions)} of its questions)" if len(questions) > 1 else ""
            self.reject(path, where, BadRow(err.reason, f"{err.detail}{count}", hint=err.hint))
        for question in questions or [where]:
            self.reject(path, question, err)

    def repaired(self, *repairs: str) -> None:
        """Note repairs made to the current row (counted once the row is written)."""
        self._pending.extend((self.repairs, repair) for repair in repairs)

    def noted(self, *notes: str) -> None:
        """Note facts about the current row a user should know (counted once the row is written)."""
        self._pending.extend((self.notes, note) for note in notes)

    def add(self, record: dict) -> None:
        """Validate a record (`validate_record`; the video too with `check_videos`), mark its options
        (`option_marks`) and keep it."""
        # Validated with the video's absolute path: the output's folder may not exist yet, and a relative
        # `../videos/x.mp4` does not resolve through a folder that does not exist.
        file = os.path.normpath(os.path.join(os.path.abspath(self.out.parent), record["video"]))
        try:
            record = {
                **validate_record({**record, "video": file}, path=self.out, check_video=self.check_videos),
                "video": record["video"],
            }
        except RecordError as err:
            reason = "video file not found" if err.field == "video" else "invalid record"
            raise BadRow(reason, f"field {err.field!r}: {err.reason}") from None
        if record["id"] in self._ids:
            raise BadRow("duplicate id", f"id {record['id']!r} was given to an earlier row")
        if record["options"] is not None and record["answer"] is not None:
            marks = option_marks(record["options"], record["answer"])
            record["meta"] = {**record["meta"], **marks}
            self.noted(*(MARK_NOTES[mark] for mark in marks))
        self._ids.add(record["id"])
        self.records.append(record)
        if not self.videos.exists(file):
            self.missing_videos.append(file)

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
        """What happened to every row: written, skipped per kind and reason (with how to fix), repairs, notes,
        and whether the records' video files exist."""
        lines = [
            f"{name}: {self.rows} rows read, {len(self.records)} records written to {self.out}, "
            f"{len(self.skipped)} skipped"
        ]
        reasons = Counter((row["kind"], row["reason"]) for row in self.skipped)
        for (kind, reason), count in sorted(reasons.items()):
            lines.append(f"  skipped ({kind}): {count} x {reason}")
        for repair, count in sorted(self.repairs.items()):
            lines.append(f"  repaired: {count} x {repair}")
        for note, count in sorted(self.notes.items()):
            lines.append(f"  noted: {count} x {note}")
        if self.records:
            lines.append(f"  videos: {self.video_summary()}")
        for reason, hint in sorted(self.hints.items()):
            lines.append(f"  to fix {reason!r}: {hint}")
        if self.skipped:
            lines.append(f"  skipped rows listed in {self.report_path}")
        return "\n".join(lines)

    def video_summary(self) -> str:
        missing, total = len(self.missing_videos), len(self.records)
        if not missing:
            return f"all {total} records' video files exist under {self.video_root}"
        which = "none" if missing == total else f"{total - missing}"
        return (
            f"{which} of {total} records' video files exist under {self.video_root}: {missing} records point to "
            f"files that do not exist there (first: {self.missing_videos[0]}). Converting with the videos under "
            "--video-root resolves each file (other extensions, the download's naming); --check-videos makes a "
            "missing video a malformed row"
        )
