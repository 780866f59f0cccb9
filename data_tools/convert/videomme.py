"""Video-MME (`lmms-lab/Video-MME` parquet, one row per question) -> canonical multiple-choice records.

Rows: `{"video_id", "duration": "short"|"medium"|"long", "domain", "sub_category", "url", "videoID",
"question_id", "task_type", "question", "options": ["A. ...", ...], "answer": "C"}`. The options lose their
`"A. "` labels (which must run A, B, C, ... in order); the answer letter is checked against them. `duration` is
a length BUCKET, kept as `meta["duration_bucket"]` (the evaluator's accuracy by duration); the record's duration
in seconds comes from `--durations` (`{videoID: seconds}`, or the file `python -m data_tools.convert.durations`
writes from the videos) or from the video file's container.

Ids are the `question_id`s; videos `<video root>/<videoID>.mp4` (any video extension). A `.json` / `.jsonl` file
with the same rows is read too.
"""

from __future__ import annotations

import argparse

from data_tools.convert.common import (
    BadRow,
    Sink,
    check_letter,
    field,
    strip_option_letters,
    table_rows,
)

NAME = "videomme"
SOURCE = "videomme"
HELP = "Video-MME parquet ('A. x' options, answer letter, duration bucket)"
DURATION_BUCKETS = ("short", "medium", "long")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--annotations", required=True, help="test-00000-of-00001.parquet (or the rows as JSON)")
    parser.add_argument(
        "--durations", default=None, help="JSON {videoID: seconds} or the durations command's JSONL (else the videos)"
    )


def convert_row(row, durations: dict[str, float], sink: Sink, source: str) -> None:
    youtube_id = field(row, "videoID").strip()
    bucket = field(row, "duration")
    if bucket not in DURATION_BUCKETS:
        raise BadRow("unknown duration bucket", f"duration {bucket!r} is none of {', '.join(DURATION_BUCKETS)}")
    options = strip_option_letters(field(row, "options", list))
    file = sink.video(f"{youtube_id}.mp4")
    sink.add(
        {
            "id": str(field(row, "question_id")),
            "video": sink.video_field(file),
            "duration": sink.duration_of(youtube_id, file, durations),
            "task": "mcq",
            "question": field(row, "question").strip(),
            "options": options,
            "answer": check_letter(field(row, "answer"), options),
            "spans": None,
            "source": source,
            "meta": {
                "duration_bucket": bucket,
                "domain": row.get("domain"),
                "sub_category": row.get("sub_category"),
                "task_type": row.get("task_type"),
                "video_id": row.get("video_id"),
                "youtube_id": youtube_id,
            },
        }
    )


def convert(args: argparse.Namespace, sink: Sink) -> None:
    durations = sink.load_durations(args.durations)
    for where, row in table_rows(args.annotations):
        with sink.row(args.annotations, where):
            if isinstance(row, BadRow):
                raise row
            convert_row(row, durations, sink, args.source or SOURCE)
