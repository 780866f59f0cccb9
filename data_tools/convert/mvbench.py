"""MVBench (`OpenGVLab/MVBench` `json/<task>.json`) -> canonical multiple-choice records.

Each task file is a JSON list of `{"video", "question", "candidates", "answer", "start"?, "end"?}`; `answer` is
the TEXT of the right candidate, turned into its letter. The task name (the file stem) goes to `meta["task"]`
(the evaluator's MVBench average is the mean over tasks). `start`/`end`, present for the "bound" tasks, are the
segment of the video the question is about: kept as `meta["bound"]` (seconds), not as a gold span.

Videos are `<video root>/<task's folder>/<video>`, the folders of the release (`TASK_VIDEO_DIRS`; a file with
another stem needs `--video-subdir`). Episodic reasoning's videos are folders of TVQA frames, which
`temporal_rl.video` does not read: its rows are skipped and counted. The durations come from `--durations`
(`{video: seconds}`, keyed by the `video` field, or the durations command's file) or from the video files'
containers. Ids: `<task>_<item index>`.

The letter is the one MVBench's official evaluation gives (the same exact-text loop as MLVU's, see `mlvu.py`): the
last candidate equal to the answer; an answer equal to no candidate is left out by design and counted.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from data_tools.convert.common import (
    BadRow,
    ConvertError,
    FilteredRow,
    Sink,
    answer_letter,
    field,
    json_items,
    number,
)

NAME = "mvbench"
SOURCE = "mvbench"
HELP = "MVBench task JSONs (candidates + answer text; start/end bounds)"

TASK_VIDEO_DIRS = {
    "action_sequence": "star/Charades_v1_480",
    "action_prediction": "star/Charades_v1_480",
    "object_interaction": "star/Charades_v1_480",
    "action_antonym": "ssv2_video",
    "fine_grained_action": "Moments_in_Time_Raw/videos",
    "unexpected_action": "FunQA_test/test",
    "object_existence": "clevrer/video_validation",
    "moving_direction": "clevrer/video_validation",
    "moving_count": "clevrer/video_validation",
    "moving_attribute": "clevrer/video_validation",
    "counterfactual_inference": "clevrer/video_validation",
    "object_shuffle": "perception/videos",
    "action_count": "perception/videos",
    "state_change": "perception/videos",
    "character_order": "perception/videos",
    "action_localization": "sta/sta_video",
    "scene_transition": "scene_qa/video",
    "fine_grained_pose": "nturgbd",
    "egocentric_navigation": "vlnqa",
    "episodic_reasoning": "tvqa/frames_fps3_hq",
}
FRAME_FOLDER_TASKS = ("episodic_reasoning",)
# The official `qa_template` loop (`if c == answer: answer_idx = idx`, no break) keeps the last match.
OFFICIAL_TWIN = "last"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--annotations", required=True, nargs="+", help="task files, e.g. json/*.json")
    parser.add_argument(
        "--durations", default=None, help="JSON {video: seconds} or the durations command's JSONL (else the videos)"
    )
    parser.add_argument("--video-subdir", default=None, help="video folder for task files not in the release")


def convert_item(item, task: str, index: int, video_dir: str, durations, sink: Sink, source: str) -> None:
    if task in FRAME_FOLDER_TASKS:
        raise FilteredRow("frame-folder video (not a video file)", f"task {task} reads TVQA frame folders")
    candidates = field(item, "candidates", list)
    if len(candidates) < 2 or not all(isinstance(c, str) for c in candidates):
        raise BadRow("malformed options", f"candidates must be at least two strings, got {candidates!r}")
    video = field(item, "video")
    file = sink.video(f"{video_dir}/{video}")
    meta = {"task": task}
    if item.get("start") is not None and item.get("end") is not None:
        meta["bound"] = [number(item["start"], "start"), number(item["end"], "end")]
    sink.add(
        {
            "id": f"{task}_{index}",
            "video": sink.video_field(file),
            "duration": sink.duration_of(video, file, durations),
            "task": "mcq",
            "question": field(item, "question").strip(),
            "options": [c.strip() for c in candidates],
            "answer": answer_letter(field(item, "answer", empty_ok=True), candidates, twin=OFFICIAL_TWIN),
            "spans": None,
            "source": source,
            "meta": meta,
        }
    )


def convert(args: argparse.Namespace, sink: Sink) -> None:
    durations = sink.load_durations(args.durations)
    for path in args.annotations:
        task = Path(path).stem
        video_dir = args.video_subdir or TASK_VIDEO_DIRS.get(task)
        if video_dir is None:
            raise ConvertError(f"unknown MVBench task {task!r}: pass --video-subdir for its videos", path=path)
        for index, (where, item) in enumerate(json_items(path)):
            with sink.row(path, where):
                if isinstance(item, BadRow):
                    raise item
                convert_item(item, task, index, video_dir, durations, sink, args.source or SOURCE)
