"""NExT-GQA (official `doc-doc/NExT-GQA` release) -> canonical grounded-QA records.

Three files:
- `{val,test}.csv`: `video_id,frame_count,width,height,question,answer,qid,type,a0,a1,a2,a3,a4`; `answer` is
  the TEXT of the right option, turned into its letter as the official loader does (`choices.index(answer)`:
  exact text, the FIRST option when two carry it, marked in `meta.duplicate_gold`; an answer equal to no option
  counts wrong for every model there, and is left out by design here);
- `gsub_{val,test}.json`: `{video_id: {"duration", "location": {qid: [[s, e], ...]}, "fps"}}`, the gold
  segments (a question may have several; each is sorted and clipped, a degenerate one dropped while another is
  left);
- `map_vid_vidorID.json`: `{video_id: "0101/2909445186"}`, the video's path under the video root (+ `.mp4`).

The duration is the csv's `frame_count` / gsub's `fps`: gsub's `duration` is whole seconds (up to 0.5 s off). A
row without a usable frame count or fps falls back to gsub's `duration` (counted in the summary).

Ids are `<video_id>_<qid>` (VideoChat-R1's); `meta` keeps `type` (CW/CH/TN/TC/TP), `qid` and `video_id`.
"""

from __future__ import annotations

import argparse

from data_tools.convert.common import (
    BadRow,
    Sink,
    answer_letter,
    clean_span,
    csv_rows,
    field,
    json_object,
    number,
)

NAME = "nextgqa"
SOURCE = "nextgqa"
HELP = "NExT-GQA csv + gsub json + map_vid_vidorID json"
OPTION_COLUMNS = ("a0", "a1", "a2", "a3", "a4")
OFFICIAL_TWIN = "first"  # the official loader's `choices.index(ans)`
COLUMNS = ("video_id", "question", "answer", "qid", "type", *OPTION_COLUMNS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--annotations", required=True, help="val.csv or test.csv")
    parser.add_argument("--gsub", required=True, help="gsub_val.json or gsub_test.json (gold segments)")
    parser.add_argument("--map", required=True, help="map_vid_vidorID.json (video id -> folder/name)")


def video_duration(row: dict, grounding: dict, video_id: str, sink: Sink) -> float:
    """The video's duration: the csv's frame count over gsub's fps, else gsub's whole-second duration."""
    try:
        frames, fps = number(row.get("frame_count"), "frame_count"), number(grounding.get("fps"), "fps")
    except BadRow:
        frames = fps = 0.0
    if frames > 0 and fps > 0:
        return round(frames / fps, 3)
    duration = number(field(grounding, "duration", (int, float)), "duration")
    if duration <= 0:
        raise BadRow("no duration", f"gsub duration of video {video_id} must be positive, got {duration}")
    sink.noted("duration from gsub's whole seconds (no frame_count / fps)")
    return duration


def gold_segments(grounding: dict, duration: float, video_id: str, qid: str, sink: Sink) -> list[list[float]]:
    """The cleaned gold segments of a question, from its gsub entry."""
    location = field(grounding, "location", dict)
    if qid not in location:
        raise BadRow("no gold segment", f"gsub has no location for video {video_id} question {qid}")
    segments = location[qid]
    if not isinstance(segments, list) or not segments:
        raise BadRow("no gold segment", f"gsub location of video {video_id} question {qid} is {segments!r}")
    spans, dropped = [], 0
    for i, segment in enumerate(segments):
        try:
            span, repairs = clean_span(segment, duration, f"segment {i}")
        except BadRow as err:
            if err.reason != "empty span":
                raise
            dropped += 1
            continue
        sink.repaired(*repairs)
        spans.append(span)
    if not spans:
        raise BadRow("empty span", f"every gold segment of video {video_id} question {qid} is empty: {segments!r}")
    sink.repaired(*["degenerate gold segment dropped"] * dropped)
    return spans


def convert_row(row: dict, gsub: dict, paths: dict, sink: Sink, source: str) -> None:
    video_id, qid = field(row, "video_id").strip(), field(row, "qid").strip()
    options = [field(row, column, empty_ok=True) for column in OPTION_COLUMNS]
    letter = answer_letter(field(row, "answer", empty_ok=True), options, twin=OFFICIAL_TWIN)
    if video_id not in gsub:
        raise BadRow("no gold segment", f"video {video_id} is not in the gsub file")
    duration = video_duration(row, gsub[video_id], video_id, sink)
    spans = gold_segments(gsub[video_id], duration, video_id, qid, sink)
    if video_id not in paths:
        raise BadRow("no video path", f"video {video_id} is not in the map_vid_vidorID file")
    sink.add(
        {
            "id": f"{video_id}_{qid}",
            "video": sink.video_field(sink.video(f"{paths[video_id]}.mp4")),
            "duration": duration,
            "task": "grounded_qa",
            "question": field(row, "question").strip(),
            "options": [option.strip() for option in options],
            "answer": letter,
            "spans": spans,
            "source": source,
            "meta": {"type": field(row, "type").strip(), "qid": qid, "video_id": video_id},
        }
    )


def convert(args: argparse.Namespace, sink: Sink) -> None:
    gsub, paths = json_object(args.gsub), json_object(args.map)
    for where, row in csv_rows(args.annotations, COLUMNS):
        with sink.row(args.annotations, where):
            convert_row(row, gsub, paths, sink, args.source or SOURCE)
