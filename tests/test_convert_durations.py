"""`python -m data_tools.convert.durations`: a folder of videos -> the durations file the converters read.

Real (tiny) mp4 clips, a damaged file and an empty one; the durations are the clips' lengths. Resuming is checked
on a file an interrupted run left: its complete lines are kept as they are (not probed again) and its torn last
line is cut.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from data_tools.convert.__main__ import main as convert_main
from data_tools.convert.durations import main as durations_main
from data_tools.convert.durations import read_done
from data_tools.synth import encode_mp4

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "convert"


def write_clip(path, seconds, fps=2):
    path.parent.mkdir(parents=True, exist_ok=True)
    encode_mp4(np.zeros((seconds * fps, 56, 56, 3), dtype=np.uint8), fps, path)


@pytest.fixture
def videos(tmp_path):
    root = tmp_path / "videos"
    write_clip(root / "a" / "one.mp4", seconds=4)
    write_clip(root / "a" / "b" / "two.mkv", seconds=3)  # any video extension, in any subfolder
    write_clip(root / "three.MP4", seconds=5)
    (root / "broken.mp4").write_bytes(b"not a video at all" * 8)
    (root / "empty.webm").write_bytes(b"")
    (root / "notes.txt").write_text("not a video")
    return root


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_durations_probes_every_video_in_parallel_and_names_the_unreadable(videos, tmp_path, capsys):
    out = tmp_path / "durations.jsonl"
    assert durations_main(["--video-root", str(videos), "--out", str(out), "--workers", "2"]) == 0
    assert sorted(lines(out), key=lambda line: line["video"]) == [
        {"video": "a/b/two.mkv", "duration": 3.0},
        {"video": "a/one.mp4", "duration": 4.0},
        {"video": "three.MP4", "duration": 5.0},
    ]
    captured = capsys.readouterr()
    assert "probing" in captured.err  # the progress bar
    summary = captured.out
    assert "durations: 5 videos found, 0 already in" in summary and "3 probed now, 2 unreadable" in summary
    assert "  unreadable: broken.mp4: not a readable video file (Invalid data found" in summary
    assert "  unreadable: empty.webm: the file is empty (0 bytes)" in summary

    # Started again: nothing left to probe but the unreadable ones, which are tried again.
    assert durations_main(["--video-root", str(videos), "--out", str(out), "--no-progress"]) == 0
    assert "3 already in" in capsys.readouterr().out and len(lines(out)) == 3


def test_durations_resume_an_interrupted_file(videos, tmp_path, capsys):
    out = tmp_path / "durations.jsonl"
    # What a killed run leaves: one complete line (a value no probe would give, to see it is kept) and a torn one.
    out.write_text('{"video": "a/one.mp4", "duration": 99.0}\n{"video": "a/b/tw')
    assert durations_main(["--video-root", str(videos), "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    assert lines(out) == [
        {"video": "a/one.mp4", "duration": 99.0},
        {"video": "a/b/two.mkv", "duration": 3.0},
        {"video": "three.MP4", "duration": 5.0},
    ]
    assert "5 videos found, 1 already in" in capsys.readouterr().out


def test_durations_refuse_a_file_that_is_not_theirs(videos, tmp_path, capsys):
    out = tmp_path / "durations.jsonl"
    out.write_text('{"video": "a/one.mp4", "duration": 4.0}\n{"not": "a durations line"}\n{"video": "x.mp4", ')
    assert durations_main(["--video-root", str(videos), "--out", str(out), "--no-progress"]) == 2
    assert f"error: {out}, line 2: not a durations line" in capsys.readouterr().err
    assert durations_main(["--video-root", str(tmp_path / "absent"), "--out", str(out)]) == 2
    assert "absent: no such folder (--video-root)" in capsys.readouterr().err


def test_read_done_cuts_only_a_torn_last_line(tmp_path):
    out = tmp_path / "d.jsonl"
    out.write_text('{"video": "x.mp4", "duration": 1.5}\n')
    assert read_done(out) == {"x.mp4"} and out.read_text() == '{"video": "x.mp4", "duration": 1.5}\n'
    out.write_text('{"video": "x.mp4", "duration": 1.5}\n{"video": "y.mp4", "duration": 2.5}')  # no newline: torn
    assert read_done(out) == {"x.mp4"} and out.read_text() == '{"video": "x.mp4", "duration": 1.5}\n'


def test_videomme_converts_without_the_videos_from_the_durations_file(tmp_path, capsys):
    """The issue's case: Video-MME gives no seconds; the durations file, written where the videos are, suffices."""
    root = tmp_path / "videomme" / "data"
    write_clip(root / "AbCdEfGhIjK.mp4", seconds=4)
    write_clip(root / "LmNoPqRsTuV.mkv", seconds=6)
    durations = tmp_path / "videomme_durations.jsonl"
    assert durations_main(["--video-root", str(root), "--out", str(durations), "--no-progress"]) == 0
    shutil.rmtree(root)

    out = tmp_path / "videomme.jsonl"
    argv = ["videomme", "--annotations", str(FIXTURES / "videomme" / "rows.json"), "--durations", str(durations)]
    assert convert_main([*argv, "--video-root", str(root), "--out", str(out), "--skip-bad"]) == 0
    assert [(r["id"], r["video"], r["duration"]) for r in lines(out)] == [
        ("801-1", "videomme/data/AbCdEfGhIjK.mp4", 4.0),
        ("802-3", "videomme/data/LmNoPqRsTuV.mkv", 6.0),  # named as the file is, which the durations file knows
    ]
    assert "none of 2 records' video files exist" in capsys.readouterr().out
