"""MLVU dev set (`JUNJIE99/MLVU` `data/*.json`, Needle QA included) -> canonical multiple-choice records.

Each task file is a JSON list of `{"video", "duration", "question", "candidates", "answer", "question_type"}`;
`answer` is the TEXT of the right candidate, turned into its letter. `question_type` (plotQA, findNeedle, ego,
count, order, anomaly_reco, topic_reasoning) goes to `meta`, where the evaluator's M-Avg (the macro mean over
question types) reads it. Rows without candidates (the generation tasks sub_scene and summary, scored by an LLM
judge) are skipped and counted.

The letter is the one MLVU's official multiple-choice evaluation (`choice_bench.py`) gives, case by case:

- it compares each candidate with the answer exactly (`c == answer`), so an empty answer names the empty
  candidate (real ego questions have one as their gold) and empty candidates are kept (`meta.empty_options`);
- its loop keeps the LAST matching candidate, so when the gold text is in two candidates the later one is the
  gold (`meta.duplicate_gold` lists both);
- an answer equal to no candidate gets the letter before "A" there, which no model can give: the question counts
  wrong for every model. Such rows are left out by design, counted and listed (`answer not among the options`);
  to report on the official denominator, count them as wrong.

Ids are `<file stem>_<item index>` (`2_needle_3`). Videos: `<video root>/<file stem>/<video>`, the per-task
folders of the release, or `<video root>/<video>` (whichever exists; `--flat-videos` names the second when
neither does).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from data_tools.convert.common import BadRow, FilteredRow, Sink, answer_letter, field, json_items, number

NAME = "mlvu"
SOURCE = "mlvu"
HELP = "MLVU dev task JSONs (candidates + answer text; question_type)"
# choice_bench.py's `for idx, c in enumerate(candidates): if c == answer: answer_idx = idx` keeps the last match.
OFFICIAL_TWIN = "last"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--annotations", required=True, nargs="+", help="task files, e.g. data/*.json")
    parser.add_argument("--flat-videos", action="store_true", help="videos sit directly under the video root")


def convert_item(item, stem: str, index: int, flat_videos: bool, sink: Sink, source: str) -> None:
    if isinstance(item, dict) and item.get("candidates") in (None, []):
        raise FilteredRow("generation question (no candidates)", f"question_type {item.get('question_type')!r}")
    candidates = field(item, "candidates", list)
    if len(candidates) < 2 or not all(isinstance(c, str) for c in candidates):
        raise BadRow("malformed options", f"candidates must be at least two strings, got {candidates!r}")
    duration = number(field(item, "duration", (int, float)), "duration")
    video = field(item, "video")
    names = (video, f"{stem}/{video}") if flat_videos else (f"{stem}/{video}", video)
    sink.add(
        {
            "id": f"{stem}_{index}",
            "video": sink.video_field(sink.video(*names)),
            "duration": duration,
            "task": "mcq",
            "question": field(item, "question").strip(),
            "options": [c.strip() for c in candidates],
            "answer": answer_letter(field(item, "answer", empty_ok=True), candidates, twin=OFFICIAL_TWIN),
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
                convert_item(item, stem, index, args.flat_videos, sink, args.source or SOURCE)
