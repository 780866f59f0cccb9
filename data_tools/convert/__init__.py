"""Converters from the benchmarks' own annotation files to canonical JSONL (`temporal_rl.data`).

`python -m data_tools.convert <benchmark> --annotations ... --video-root DIR --out OUT.jsonl [--skip-bad]
[--check-videos] [--absolute-videos] [--source NAME]`, one subcommand per benchmark:

| subcommand     | input                                                    | task        |
|----------------|----------------------------------------------------------|-------------|
| `charades-sta` | txt `vid s e##sentence` + durations csv/json, or ANet-style JSON | grounding |
| `activitynet`  | ActivityNet Captions JSON                                | grounding   |
| `nextgqa`      | csv + gsub json + map_vid_vidorID json                   | grounded_qa |
| `mlvu`         | dev task JSONs (Needle QA included)                      | mcq         |
| `videomme`     | parquet                                                  | mcq         |
| `lvbench`      | video_info.meta.jsonl                                    | mcq         |
| `mvbench`      | task JSONs                                               | mcq         |
| `temporal-r1`  | Temporal-R1 JSON (normalised solution)                   | grounding   |
| `video-r1`     | Video-R1 JSON (video multiple-choice rows)               | mcq         |

`common.py` holds what they share (row errors, the output sink, durations, spans, options) and `videos.py` how a
record's video file is found and its duration read; each benchmark module holds its format. `durations.py` is the
command that writes a `--durations` file from a folder of videos (`python -m data_tools.convert.durations
--video-root DIR --out FILE`). This package never imports trainers.
"""

from data_tools.convert import (
    activitynet,
    charades_sta,
    lvbench,
    mlvu,
    mvbench,
    nextgqa,
    temporal_r1,
    video_r1,
    videomme,
)
from data_tools.convert.common import BadRow, ConvertError, FilteredRow, Sink

CONVERTERS = {
    module.NAME: module
    for module in (charades_sta, activitynet, nextgqa, mlvu, videomme, lvbench, mvbench, temporal_r1, video_r1)
}

__all__ = ["CONVERTERS", "BadRow", "ConvertError", "FilteredRow", "Sink"]
