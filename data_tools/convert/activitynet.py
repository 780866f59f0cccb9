"""ActivityNet Captions (and every file in its layout) -> canonical grounding records.

The layout, `{video id: {"duration", "timestamps": [[s, e], ...], "sentences": [...]}}`, is the official
`train.json` / `val_1.json` / `val_2.json` and also the Charades-STA JSON of TimeZero and VideoChat-R1
(`charades_sta.py` reuses `convert_anet_style`). One record per sentence: id `<video id>_<sentence index>`,
question the sentence with its leading space stripped, one gold span sorted and clipped to the duration.

The video is `<video root>/<video id><ext>` (`--strip-v-prefix`: the YouTube id, `vid[2:]`, for downloads named
that way).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from data_tools.convert.common import BadRow, Sink, clean_span, field, json_object, number

NAME = "activitynet"
SOURCE = "activitynet_captions"
HELP = "ActivityNet Captions JSON ({vid: {duration, timestamps, sentences}})"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--annotations", required=True, help="train.json, val_1.json or val_2.json")
    parser.add_argument("--video-ext", default=".mp4", help="video file extension (default .mp4)")
    parser.add_argument("--strip-v-prefix", action="store_true", help="video files are named by YouTube id (no v_)")


def _entry_pairs(entry) -> tuple[float, list, list]:
    duration = number(field(entry, "duration", (int, float)), "duration")
    if duration <= 0:
        raise BadRow("no duration", f"duration must be positive, got {duration}")
    timestamps, sentences = field(entry, "timestamps", list), field(entry, "sentences", list)
    if len(timestamps) != len(sentences):
        raise BadRow(
            "timestamps and sentences differ in length", f"{len(timestamps)} timestamps, {len(sentences)} sentences"
        )
    return duration, timestamps, sentences


def convert_anet_style(
    path: str | Path, sink: Sink, *, source: str, video_ext: str = ".mp4", strip_v_prefix: bool = False
) -> None:
    """One grounding record per sentence of an ActivityNet-style JSON file."""
    for video_id, entry in json_object(path).items():
        try:
            duration, timestamps, sentences = _entry_pairs(entry)
        except BadRow as err:  # the whole entry: its sentences cannot be paired with their spans
            sink.reject(path, f"key {video_id!r}", err)
            continue
        name = video_id[2:] if strip_v_prefix and video_id.startswith("v_") else video_id
        file = sink.video_file(f"{name}{video_ext}")
        for index, (span, sentence) in enumerate(zip(timestamps, sentences, strict=True)):
            with sink.row(path, f"key {video_id!r}, sentence {index}"):
                if not isinstance(sentence, str) or not sentence.strip():
                    raise BadRow("empty sentence", f"sentence {index} is {sentence!r}")
                if sentence != sentence.strip():
                    sink.repaired("sentence whitespace stripped")
                gold, repairs = clean_span(span, duration, f"timestamps[{index}]")
                sink.repaired(*repairs)
                sink.add(
                    {
                        "id": f"{video_id}_{index}",
                        "video": sink.video_field(file),
                        "duration": duration,
                        "task": "grounding",
                        "question": sentence.strip(),
                        "options": None,
                        "answer": None,
                        "spans": [gold],
                        "source": source,
                        "meta": {"video_id": video_id},
                    }
                )


def convert(args: argparse.Namespace, sink: Sink) -> None:
    convert_anet_style(
        args.annotations,
        sink,
        source=args.source or SOURCE,
        video_ext=args.video_ext,
        strip_v_prefix=args.strip_v_prefix,
    )
