"""MLVU dev set (`JUNJIE99/MLVU` `data/*.json`, Needle QA included) -> canonical multiple-choice records.

Each task file is a JSON list of `{"video", "duration", "question", "candidates", "answer", "question_type"}`;
`answer` is the TEXT of the right candidate, turned into its letter. `question_type` (plotQA, findNeedle, ego,
count, order, anomaly_reco, topic_reasoning) goes to `meta`, where the evaluator's M-Avg (the macro mean over
question types) reads it. Rows without candidates (the generation tasks sub_scene and summary, scored by an LLM
judge) are skipped and counted.

Ids are `<file stem>_<item index>` (`2_needle_3`). Videos: `<video root>/<file stem>/<video>`, the per-task
folders of the release (`--flat-videos`: `<video root>/<video>`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from data_tools.convert.common import BadRow, FilteredRow, Sink, answer_letter, field, json_items, number

NAME = "mlvu"
SOURCE = "mlvu"
HELP = "MLVU dev task JSONs (candidates + answer text; question_type)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--annotations", required=True, nargs="+", help="task files, e.g. data/*.json")
    parser.add_argument("--flat-videos", action="store_true", help="videos sit directly under the video root")


def convert_item(item, record_id: str, video_dir: str | None, sink: Sink, source: str) -> None:
    if isinstance(item, dict) and item.get("candidates") in (None, []):
        raise FilteredRow("generation question (no candidates)", f"question_type {item.get('question_type')!r}")
    candidates = field(item, "candidates", list)
    if len(candidates) < 2 or not all(isinstance(c, str) for c in candidates):
        raise BadRow("malformed options", f"candidates must be at least two strings, got {candidates!r}")
    options = [c.strip() for c in candidates]
    duration = number(field(item, "duration", (int, float)), "duration")
    video = field(item, "video")
    file = sink.video_file(video_dir, video) if video_dir else sink.video_file(video)
    sink.add(
        {
            "id": record_id,
            "video": sink.video_field(file),
            "duration": duration,
            "task": "mcq",
            "question": field(item, "question").strip(),
            "options": options,
            "answer": answer_letter(field(item, "answer").strip(), options),
            "spans": None,
            "source": source,
            "meta": {"question_type": field(item, "question_type")},
        }
    )


def convert(args: argparse.Namespace, sink: Sink) -> None:
    for path in args.annotations:
        stem = Path(path).stem
        for index, (where, item) in enumerate(json_items(path)):
            with sink.row(path, where):
                if isinstance(item, BadRow):
                    raise item
                video_dir = None if args.flat_videos else stem
                convert_item(item, f"{stem}_{index}", video_dir, sink, args.source or SOURCE)
