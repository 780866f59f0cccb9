"""Every command docs/benchmarks.md documents runs as written, on files shaped like the real releases.

tests/fixtures/convert/release/ holds invented files at the paths the documented commands name, shaped like the
benchmarks' real published files, including what those carry (MLVU's empty gold candidates, duplicate gold
texts and an answer among no candidate; NExT-GQA's whole-second gsub durations; LVBench videos without
`duration_minutes`; Temporal-R1 items without `video_length`) and no invented malformed rows. The videos are tiny
clips written here, laid out as the downloads lay them out (LVBench's numbered video2dataset files). The commands
are read from the document itself, so a command changed there is the command tested.
"""

import glob
import json
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest

from data_tools.convert.__main__ import main as convert_main
from data_tools.convert.durations import main as durations_main
from data_tools.synth import encode_mp4

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT / "tests" / "fixtures" / "convert" / "release"
DOC = ROOT / "docs" / "benchmarks.md"

CLIPS = {  # video file -> seconds
    "videomme/data/Gh5Jk7Lm9Np.mp4": 4,
    "videomme/data/Qr2St4Uv6Wx.webm": 5,
    "lvbench/videos/00000/000000000.mp4": 3,
    "lvbench/videos/00000/000000001.mp4": 6,
    "MVBench/video/star/Charades_v1_480/RS4TU.mp4": 12,
    "MVBench/video/perception/videos/video_1203.mp4": 3,
    "Video-R1-data/LLaVA-Video-178K/liwei_youtube_videos/videos/youtube_video_2024/ytb_Ab1Cd2Ef3Gh.mp4": 4,
    "Video-R1-data/STAR/Charades_v1_480/RS4TU.mp4": 12,
}
LVBENCH_URLS = {"000000000": "Lm3No5Pq7Rs", "000000001": "Tu9Vw1Xy3Za"}  # the json video2dataset writes beside


def documented_commands() -> list[str]:
    """The commands in the document's backticks, but the general forms (`<benchmark>`, `[--option]`)."""
    found = re.findall(r"`(python -m data_tools\.convert[^`]*)`", DOC.read_text())
    return [command for command in found if not re.search(r"[<\[]", command)]


@pytest.fixture
def release(tmp_path, monkeypatch):
    """A working folder laid out as the releases and downloads are, as the current directory."""
    shutil.copytree(RELEASE, tmp_path, dirs_exist_ok=True)
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = json.loads((tmp_path / "videomme" / "rows.json").read_text())
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "videomme" / "test-00000-of-00001.parquet")
    for name, seconds in CLIPS.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        encode_mp4(np.zeros((2 * seconds, 56, 56, 3), dtype=np.uint8), 2, tmp_path / name)
    for number, key in LVBENCH_URLS.items():
        meta = {"url": f"https://www.youtube.com/watch?v={key}", "key": number, "status": "success"}
        (tmp_path / "lvbench" / "videos" / "00000" / f"{number}.json").write_text(json.dumps(meta))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(command: str) -> int:
    words = shlex.split(command)
    assert words[:2] == ["python", "-m"], command
    argv = [match for word in words[3:] for match in (sorted(glob.glob(word)) if "*" in word else [word])]
    if words[2] == "data_tools.convert.durations":
        return durations_main([*argv, "--no-progress"])
    assert words[2] == "data_tools.convert", command
    return convert_main(argv)


def records(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_every_documented_command_runs_on_files_shaped_like_the_releases(release, capsys):
    commands = documented_commands()
    assert len(commands) == 13  # ten conversions, three of them after a durations command
    summaries = {}
    for command in commands:
        assert run(command) == 0, (command, capsys.readouterr())
        summaries[command.split("--out ")[1].split()[0]] = capsys.readouterr().out

    written = {out: re.search(r"(\d+) records written", text) for out, text in summaries.items()}
    assert {out: int(match.group(1)) for out, match in written.items() if match} == {
        "data/charades_sta_test.jsonl": 3,
        "data/charades_sta_val.jsonl": 3,
        "data/anet_val2.jsonl": 4,
        "data/nextgqa_test.jsonl": 3,
        "data/mlvu_dev.jsonl": 5,
        "data/videomme.jsonl": 2,
        "data/lvbench.jsonl": 3,
        "data/mvbench.jsonl": 2,
        "data/temporal_r1_charades_train.jsonl": 2,
        "data/video_r1_mcq.jsonl": 2,
    }
    assert "skipped (bad)" not in "".join(summaries.values())  # nothing these releases hold is malformed

    mlvu = {r["id"]: r for r in records("data/mlvu_dev.jsonl")}
    assert {key: (r["answer"], r["meta"]) for key, r in mlvu.items() if key[0] in "34"} == {
        "3_ego_0": ("B", {"question_type": "ego", "empty_options": ["B"]}),
        "3_ego_1": ("D", {"question_type": "ego", "empty_options": ["D"]}),
        "4_count_0": ("C", {"question_type": "count", "duplicate_gold": ["B", "C"]}),
    }
    assert "skipped (filtered): 1 x answer not among the options" in summaries["data/mlvu_dev.jsonl"]

    nextgqa = records("data/nextgqa_test.jsonl")
    assert [r["duration"] for r in nextgqa] == [45.012, 45.012, 66.767]  # frame_count / fps, not gsub's 45 and 67
    assert nextgqa[1]["answer"] == "B" and nextgqa[1]["meta"]["duplicate_gold"] == ["B", "D"]
    assert nextgqa[2]["spans"] == [[50.3, 66.767]]

    lvbench = records("data/lvbench.jsonl")
    assert [(r["video"], r["duration"]) for r in lvbench] == [
        ("../lvbench/videos/00000/000000000.mp4", 3675.0),
        ("../lvbench/videos/00000/000000001.mp4", 6.0),  # no duration_minutes: the numbered file's container
        ("../lvbench/videos/00000/000000001.mp4", 6.0),
    ]
    assert [r["duration"] for r in records("data/videomme.jsonl")] == [4.0, 5.0]
    assert [r["video"] for r in records("data/videomme.jsonl")][1] == "../videomme/data/Qr2St4Uv6Wx.webm"
    assert [r["duration"] for r in records("data/mvbench.jsonl")] == [12.0, 3.0]
    assert [r["spans"] for r in records("data/temporal_r1_charades_train.jsonl")] == [[[2.0, 7.0]], [[15.5, 24.8]]]
    assert [r["duration"] for r in records("data/video_r1_mcq.jsonl")] == [4.0, 12.0]
    for out in ("data/videomme.jsonl", "data/lvbench.jsonl", "data/mvbench.jsonl", "data/video_r1_mcq.jsonl"):
        assert "videos: all " in summaries[out]
