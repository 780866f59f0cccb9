"""Charades-STA -> canonical grounding records, from the original txt release or the ActivityNet-style JSON.

- txt (`charades_sta_{train,test}.txt`): one query per line, `<video id> <start> <end>##<sentence>`. The txt
  holds no duration: `--durations` gives it, either Charades' own `Charades_v1_{train,test}.csv` (columns `id`
  and `length`) or a JSON object `{video id: seconds}`.
- JSON (`.json`, TimeZero's / VideoChat-R1's `{vid: {duration, timestamps, sentences}}`): converted as in
  `activitynet.py`; `--durations` is not needed.

Ids are `<video id>_<n>`, n counting the video's queries in file order (the same ids from either variant when
the queries come in the same order). Spans are sorted and clipped to the duration. Videos:
`<video root>/<video id>.mp4` (`Charades_v1_480/`).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from data_tools.convert.activitynet import convert_anet_style
from data_tools.convert.common import BadRow, ConvertError, Sink, clean_span, load_durations, number

NAME = "charades-sta"
SOURCE = "charades_sta"
HELP = "Charades-STA txt ('vid s e##sentence' + durations csv/json) or its ActivityNet-style JSON"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--annotations", required=True, help="charades_sta_{train,test}.txt, or the .json variant")
    parser.add_argument(
        "--durations", default=None, help="for the txt: Charades_v1_{train,test}.csv (id, length) or {vid: seconds}"
    )
    parser.add_argument("--video-ext", default=".mp4", help="video file extension (default .mp4)")


def parse_line(text: str) -> tuple[str, float, float, str]:
    """`"3MSZA 24.3 30.4##person turn a light on."` -> ("3MSZA", 24.3, 30.4, "person turn a light on.")."""
    if "##" not in text:
        raise BadRow("malformed line", f"expected '<video id> <start> <end>##<sentence>', got {text.strip()!r}")
    info, sentence = text.split("##", 1)
    parts = info.split()
    if len(parts) != 3:
        raise BadRow("malformed line", f"expected '<video id> <start> <end>' before '##', got {info.strip()!r}")
    if not sentence.strip():
        raise BadRow("empty sentence", "nothing after '##'")
    return parts[0], number(parts[1], "start"), number(parts[2], "end"), sentence


def convert_txt(path: Path, durations: dict[str, float], sink: Sink, *, source: str, video_ext: str) -> None:
    queries_of = Counter()
    with open(path, encoding="utf-8") as f:
        for number_, text in enumerate(f, start=1):
            if not text.strip():
                continue
            with sink.row(path, f"line {number_}"):
                video_id, start, end, sentence = parse_line(text)
                index = queries_of[video_id]  # counted before any check, so a skipped line never shifts ids
                queries_of[video_id] += 1
                if video_id not in durations:
                    raise BadRow("no duration", f"video {video_id!r} is not in the durations file")
                gold, repairs = clean_span([start, end], durations[video_id])
                sink.repaired(*repairs)
                sink.add(
                    {
                        "id": f"{video_id}_{index}",
                        "video": sink.video_field(sink.video(f"{video_id}{video_ext}")),
                        "duration": durations[video_id],
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
    path = Path(args.annotations)
    source = args.source or SOURCE
    if path.suffix == ".json":
        convert_anet_style(path, sink, source=source, video_ext=args.video_ext)
        return
    if args.durations is None:
        raise ConvertError("the txt release has no durations: pass --durations (Charades csv or JSON)", path=path)
    if not path.is_file():
        raise ConvertError("file not found", path=path)
    convert_txt(path, load_durations(args.durations), sink, source=source, video_ext=args.video_ext)
