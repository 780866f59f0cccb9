"""ActivityNet Captions (and every file in its layout) -> canonical grounding records.

The layout, `{video id: {"duration", "timestamps": [[s, e], ...], "sentences": [...]}}`, is the official
`train.json` / `val_1.json` / `val_2.json` and also the Charades-STA JSON of TimeZero and VideoChat-R1
(`charades_sta.py` reuses `convert_anet_style`). One record per sentence: id `<video id>_<sentence index>`,
question the sentence with its leading space stripped, one gold span sorted and clipped to the duration.

The video: downloads name the file `<video id>` or by the YouTube id (`vid[2:]`, no `v_`) and mix `.mp4`,
`.mkv` and `.webm`, so the first that exists under the video root among `<video id><ext>`, `<YouTube id><ext>`
and the other extensions is written (`--strip-v-prefix` puts the YouTube id first, `--video-ext` the extension
named when none exists).

An entry whose sentences cannot be paired with their spans (no duration, lists of different lengths) is skipped
whole: one row per sentence.
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
    parser.add_argument(
        "--video-ext", default=".mp4", help="extension tried first, named when no file exists (default .mp4)"
    )
    parser.add_argument(
        "--strip-v-prefix", action="store_true", help="prefer files named by YouTube id (no v_) when none exists"
    )


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


def entry_questions(entry, where: str) -> list[str]:
    """The locations of an entry's questions (one per sentence, else per span) for an entry rejected whole."""
    items = entry.get("sentences") if isinstance(entry, dict) else None
    if not isinstance(items, list) or not items:
        items = entry.get("timestamps") if isinstance(entry, dict) else None
    return [f"{where}, sentence {i}" for i in range(len(items))] if isinstance(items, list) else []


def video_names(video_id: str, ext: str, youtube_first: bool) -> list[str]:
    """The names a video's file can have, in order of preference.

    Example:

    ```python
    >>> video_names("v_Qx3Lmn0pRsT", ".mp4", youtube_first=False)
    ['v_Qx3Lmn0pRsT.mp4', 'Qx3Lmn0pRsT.mp4']

    ```
    """
    if not video_id.startswith("v_"):
        return [f"{video_id}{ext}"]
    names = [f"{video_id}{ext}", f"{video_id[2:]}{ext}"]
    return names[::-1] if youtube_first else names


def convert_anet_style(
    path: str | Path, sink: Sink, *, source: str, video_ext: str = ".mp4", strip_v_prefix: bool = False
) -> None:
    """One grounding record per sentence of an ActivityNet-style JSON file."""
    for video_id, entry in json_object(path).items():
        try:
            duration, timestamps, sentences = _entry_pairs(entry)
        except BadRow as err:  # the whole entry: its sentences cannot be paired with their spans
            where = f"key {video_id!r}"
            sink.reject_entry(path, where, err, entry_questions(entry, where))
            continue
        file = sink.video(*video_names(video_id, video_ext, strip_v_prefix))
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
