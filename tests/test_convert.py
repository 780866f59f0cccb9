"""`python -m data_tools.convert`: each benchmark's fixture -> the expected canonical records.

The fixtures under tests/fixtures/convert/<benchmark>/ are invented rows in the benchmarks' real formats, with the
dirt the real files carry (leading spaces, reversed spans, spans past the end, several gold segments, the gold text
in two options, empty option texts and an empty gold text, answers among no option, whole-second durations, items
without a duration) and some malformed rows. The expected records are written out by hand.
"""

import doctest
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from data_tools.convert.__main__ import main as convert_main
from data_tools.convert.common import (
    BadRow,
    FilteredRow,
    answer_letter,
    clean_span,
    option_marks,
    strip_option_letters,
)
from data_tools.convert.lvbench import parse_time_reference, split_question
from data_tools.synth import encode_mp4
from temporal_rl.data import read_records

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "convert"


def fixture(benchmark, name):
    return str(FIXTURES / benchmark / name)


def convert(tmp_path, benchmark, *args, name="out.jsonl", expect=0):
    """Run the converter with the video root tmp_path/videos; returns the records written and the skipped rows."""
    out = tmp_path / "converted" / name
    argv = [benchmark, *args, "--video-root", str(tmp_path / "videos"), "--out", str(out)]
    assert convert_main(argv) == expect
    if expect:
        return None, None
    records = [json.loads(line) for line in out.read_text().splitlines()]
    report = out.with_name(out.stem + ".skipped.jsonl")
    skipped = [json.loads(line) for line in report.read_text().splitlines()] if report.exists() else []
    return records, skipped


def grounding(id_, video, duration, question, spans, source, **meta):
    return {
        "id": id_,
        "video": video,
        "duration": duration,
        "task": "grounding",
        "question": question,
        "options": None,
        "answer": None,
        "spans": spans,
        "source": source,
        "meta": meta,
    }


def mcq(id_, video, duration, question, options, answer, source, **meta):
    return {
        "id": id_,
        "video": video,
        "duration": duration,
        "task": "mcq",
        "question": question,
        "options": options,
        "answer": answer,
        "spans": None,
        "source": source,
        "meta": meta,
    }


def reasons(skipped):
    return sorted((row["where"], row["kind"], row["reason"]) for row in skipped)


def write_clip(path, seconds=4, fps=2):
    """A real (tiny) mp4 whose container says its duration."""
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    encode_mp4(np.zeros((seconds * fps, 56, 56, 3), dtype=np.uint8), fps, path)


# ----------------------------------------------------------------------------------------------------------------
# Grounding


CHARADES_EXPECTED = [
    grounding("AB12C_0", "../videos/AB12C.mp4", 30.12, "person opens the fridge.", [[2.4, 7.9]], "charades_sta",
              video_id="AB12C"),
    grounding("AB12C_1", "../videos/AB12C.mp4", 30.12, "a person sits on the couch.", [[9.5, 15.0]], "charades_sta",
              video_id="AB12C"),  # reversed in the file
    grounding("XY9Z0_0", "../videos/XY9Z0.mp4", 32.0, "person laughs at the phone", [[20.1, 32.0]], "charades_sta",
              video_id="XY9Z0"),  # ends at 33.7 in the file, past the 32 s video
    grounding("AB12C_2", "../videos/AB12C.mp4", 30.12, "person turns off the light.", [[28.0, 30.12]],
              "charades_sta", video_id="AB12C"),
]  # fmt: skip


@pytest.mark.parametrize("durations", ["Charades_v1_test.csv", "durations.json"])
def test_charades_sta_txt(tmp_path, durations, capsys):
    txt = fixture("charades_sta", "charades_sta_test.txt")
    args = ["--annotations", txt, "--durations", fixture("charades_sta", durations)]
    convert(tmp_path, "charades-sta", *args, expect=2)
    err = capsys.readouterr().err
    assert err.startswith(f"error: {txt}, line 4: malformed line: expected '<video id> <start>")
    assert err.endswith("(--skip-bad skips malformed rows and counts them)\n")

    records, skipped = convert(tmp_path, "charades-sta", *args, "--skip-bad")
    assert records == CHARADES_EXPECTED
    assert reasons(skipped) == [("line 4", "bad", "malformed line"), ("line 5", "bad", "no duration")]
    assert "video 'QQ000' is not in the durations file" in skipped[1]["detail"]
    summary = capsys.readouterr().out
    assert "6 rows read, 4 records written" in summary and "2 skipped" in summary
    assert "repaired: 1 x reversed span sorted" in summary and "repaired: 2 x span clipped to the duration" in summary


def test_charades_sta_json_variant_gives_the_same_records(tmp_path):
    records, skipped = convert(
        tmp_path, "charades-sta", "--annotations", fixture("charades_sta", "charades_annotation_val.json")
    )
    assert records == CHARADES_EXPECTED[:3] and skipped == []


def test_charades_sta_txt_needs_durations(tmp_path, capsys):
    convert(tmp_path, "charades-sta", "--annotations", fixture("charades_sta", "charades_sta_test.txt"), expect=2)
    assert "pass --durations" in capsys.readouterr().err


def test_activitynet_captions(tmp_path, capsys):
    path = fixture("activitynet", "val_2.json")
    convert(tmp_path, "activitynet", "--annotations", path, expect=2)
    assert f"{path}, key 'v_Zk81abcDEfg', sentence 1: empty span: " in capsys.readouterr().err

    records, skipped = convert(tmp_path, "activitynet", "--annotations", path, "--skip-bad")
    source, first, second = "activitynet_captions", "../videos/v_Qx3Lmn0pRsT.mp4", "../videos/v_Zk81abcDEfg.mp4"
    assert records == [
        grounding("v_Qx3Lmn0pRsT_0", first, 60.25, "A woman ties her running shoes.", [[0.0, 12.5]], source,
                  video_id="v_Qx3Lmn0pRsT"),
        grounding("v_Qx3Lmn0pRsT_1", first, 60.25, "She jogs along a river path.", [[12.5, 41.0]], source,
                  video_id="v_Qx3Lmn0pRsT"),
        grounding("v_Qx3Lmn0pRsT_2", first, 60.25, "Finally she stretches beside a bench.", [[41.0, 60.25]], source,
                  video_id="v_Qx3Lmn0pRsT"),
        grounding("v_Zk81abcDEfg_0", second, 18.4, "Two kids build a sand castle.", [[3.2, 9.0]], source,
                  video_id="v_Zk81abcDEfg"),
    ]  # fmt: skip
    # An entry rejected whole is one skipped row per sentence: v_noLength00 holds three.
    assert reasons(skipped) == [
        ("key 'v_Zk81abcDEfg', sentence 1", "bad", "empty span"),  # [20, 25] lies past the 18.4 s video
        ("key 'v_broken00000', sentence 0", "bad", "timestamps and sentences differ in length"),
        ("key 'v_noLength00', sentence 0", "bad", "no duration"),
        ("key 'v_noLength00', sentence 1", "bad", "no duration"),
        ("key 'v_noLength00', sentence 2", "bad", "no duration"),
    ]
    summary = capsys.readouterr().out
    assert "9 rows read, 4 records written" in summary and "5 skipped" in summary
    assert "skipped (bad): 3 x no duration" in summary and "repaired: 3 x sentence whitespace stripped" in summary

    records, _ = convert(tmp_path, "activitynet", "--annotations", path, "--skip-bad", "--strip-v-prefix")
    assert records[0]["video"] == "../videos/Qx3Lmn0pRsT.mp4"


def test_activitynet_finds_the_downloaded_files_and_says_when_they_are_missing(tmp_path, capsys):
    args = ["--annotations", fixture("activitynet", "val_2.json"), "--skip-bad"]
    records, _ = convert(tmp_path, "activitynet", *args)
    assert {r["video"] for r in records} == {"../videos/v_Qx3Lmn0pRsT.mp4", "../videos/v_Zk81abcDEfg.mp4"}
    summary = capsys.readouterr().out
    assert "videos: none of 4 records' video files exist under" in summary
    assert "4 records point to files that do not exist" in summary

    # Downloads mix the naming (v_ id or YouTube id) and the container (.mkv, .webm): the real file is written.
    for name in ("v_Qx3Lmn0pRsT.mkv", "Zk81abcDEfg.webm", "unrelated.mp4"):
        (tmp_path / "videos").mkdir(exist_ok=True)
        (tmp_path / "videos" / name).write_bytes(b"")
    records, skipped = convert(tmp_path, "activitynet", *args, "--check-videos")
    assert [r["video"] for r in records] == ["../videos/v_Qx3Lmn0pRsT.mkv"] * 3 + ["../videos/Zk81abcDEfg.webm"]
    assert "video file not found" not in {row["reason"] for row in skipped}
    assert "videos: all 4 records' video files exist under" in capsys.readouterr().out


def test_temporal_r1(tmp_path, capsys):
    path = fixture("temporal_r1", "charades_train.json")
    records, skipped = convert(tmp_path, "temporal-r1", "--annotations", path, "--skip-bad")
    first, second = json.loads(Path(path).read_text())[:2]
    assert records == [
        grounding("charades_train_0", "../videos/AB12C.mp4", 30.0, "person opens the fridge", [[2.4, 7.8]],
                  "temporal_r1", dataset="charades_train", problem=first["problem"]),
        grounding("charades_train_1", "../videos/XY9Z0.mp4", 32.0, "When does the person laugh at the phone?",
                  [[16.0, 28.8]], "temporal_r1", dataset="charades_train", problem=second["problem"]),
    ]  # fmt: skip
    assert reasons(skipped) == [("item [2]", "bad", "solution not normalised"), ("item [3]", "bad", "no duration")]
    summary = capsys.readouterr().out
    assert "repaired: 1 x problem kept whole (no quoted query)" in summary
    assert "to fix 'no duration': give the durations with --durations FILE" in summary


def test_temporal_r1_without_video_length_takes_durations_or_the_video(tmp_path):
    path = fixture("temporal_r1", "charades_train.json")
    problem = json.loads(Path(path).read_text())[3]["problem"]

    def expected(duration, span):
        return grounding("charades_train_3", "../videos/MN4OP.mp4", duration, "a person puts a book on the shelf",
                         [span], "temporal_r1", dataset="charades_train", problem=problem)  # fmt: skip

    # --durations keyed by the video's stem (Charades' own ids, as in Charades_v1_train.csv)
    durations = fixture("temporal_r1", "durations.json")
    records, _ = convert(tmp_path, "temporal-r1", "--annotations", path, "--durations", durations, "--skip-bad")
    assert records[-1] == expected(24.0, [6.0, 12.0])  # solution [0.25, 0.5] of 24 s

    write_clip(tmp_path / "videos" / "MN4OP.mp4", seconds=4)  # no durations file: the container says 4 s
    records, _ = convert(tmp_path, "temporal-r1", "--annotations", path, "--skip-bad")
    assert records[-1] == expected(4.0, [1.0, 2.0])


# ----------------------------------------------------------------------------------------------------------------
# Question answering


def test_nextgqa(tmp_path, capsys):
    csv_path = fixture("nextgqa", "val.csv")
    args = ["--annotations", csv_path, "--gsub", fixture("nextgqa", "gsub_val.json")]
    args += ["--map", fixture("nextgqa", "map_vid_vidorID.json")]
    convert(tmp_path, "nextgqa", *args, expect=2)
    assert f"{csv_path}, line 6: no gold segment: gsub has no location for video 7778889990 question 6" in (
        capsys.readouterr().err
    )

    records, skipped = convert(tmp_path, "nextgqa", *args, "--skip-bad")
    options_a = ["to chase a cat", "to greet the man", "to fetch a ball", "to hide", "to drink water"]
    options_b = ["sit down", "open the window", "hang it on a hook", "call someone", "turn on the tv"]
    options_c = ["lift it up", "push it with her feet", "roll it", "kick it away", "drag it by a rope"]
    options_d = ["once", "twice", "three times", "twice", ""]

    def gqa(id_, video, duration, question, options, answer, spans, type_, qid, video_id, **marks):
        meta = {"type": type_, "qid": qid, "video_id": video_id, **marks}
        return {**mcq(id_, video, duration, question, options, answer, "nextgqa", **meta), "task": "grounded_qa",
                "spans": spans}  # fmt: skip

    first, second = "../videos/0007/5551112223.mp4", "../videos/1010/7778889990.mp4"
    third = "../videos/0012/3334445556.mp4"
    # Durations are frame_count / fps (900 / 29.97, 1500 / 30, 1004 / 29.97), not gsub's whole seconds.
    assert records == [
        gqa("5551112223_2", first, 30.03, "why did the dog run to the door", options_a, "B", [[3.5, 8.0]], "CW", "2",
            "5551112223"),
        gqa("5551112223_4", first, 30.03, "what did the man do after taking off his coat", options_b, "C",
            [[12.0, 17.5], [22.25, 26.0]], "TN", "4", "5551112223"),  # two gold segments
        gqa("7778889990_1", second, 50.0, "how does the girl move the box", options_c, "B", [[40.0, 50.0]], "CH",
            "1", "7778889990"),  # [40, 52.5] clipped; the zero-length [10, 10] dropped
        gqa("3334445556_0", third, 33.5, "how many times does the boy clap", options_d, "B", [[30.2, 33.5]], "CH",
            "0", "3334445556", duplicate_gold=["B", "D"], empty_options=["E"]),  # gsub says 34 s; the first twin
    ]  # fmt: skip
    assert reasons(skipped) == [
        ("line 5", "filtered", "answer not among the options"),  # scored wrong for every model officially
        ("line 6", "bad", "no gold segment"),
    ]
    summary = capsys.readouterr().out
    assert "repaired: 1 x degenerate gold segment dropped" in summary
    assert "repaired: 2 x span clipped to the duration" in summary
    assert "noted: 1 x gold text in several options (meta.duplicate_gold)" in summary
    assert "noted: 1 x empty option text (meta.empty_options)" in summary


def test_nextgqa_duration_falls_back_to_gsub_without_fps(tmp_path, capsys):
    gsub = json.loads(Path(fixture("nextgqa", "gsub_val.json")).read_text())
    del gsub["5551112223"]["fps"]
    (tmp_path / "gsub.json").write_text(json.dumps(gsub))
    args = ["--annotations", fixture("nextgqa", "val.csv"), "--gsub", str(tmp_path / "gsub.json")]
    records, _ = convert(tmp_path, "nextgqa", *args, "--map", fixture("nextgqa", "map_vid_vidorID.json"), "--skip-bad")
    assert [r["duration"] for r in records] == [30.0, 30.0, 50.0, 33.5]
    assert "noted: 2 x duration from gsub's whole seconds (no frame_count / fps)" in capsys.readouterr().out


def test_mlvu_converts_as_documented_and_as_the_official_evaluation_scores(tmp_path, capsys):
    needle, ego, count, summary_file = (
        fixture("mlvu", name) for name in ("2_needle.json", "3_ego.json", "4_count.json", "9_summary.json")
    )
    # The documented command (every task file, no --skip-bad) succeeds and says what it left out and why.
    records, skipped = convert(tmp_path, "mlvu", "--annotations", needle, ego, count, summary_file)
    assert records == [
        mcq("2_needle_0", "../videos/2_needle/needle_7.mp4", 312.5,
            "What does the cat in the short inserted clip knock over?",
            ["A vase", "A glass of milk", "A lamp", "A stack of books"], "B", "mlvu", question_type="findNeedle"),
        # The gold is the empty candidate: the official `c == answer` gives its letter.
        mcq("3_ego_0", "../videos/3_ego/ego_12.mp4", 240.5, "Where did I put the scissors after cutting the tape?",
            ["On the kitchen table", "In the top drawer", "", "Next to the sink"], "C", "mlvu", question_type="ego",
            empty_options=["C"]),
        mcq("3_ego_1", "../videos/3_ego/ego_15.mp4", 198.0, "What did I pick up before leaving the room?",
            ["A phone", "A set of keys", "A water bottle", ""], "D", "mlvu", question_type="ego",
            empty_options=["D"]),
        mcq("3_ego_2", "../videos/3_ego/ego_15.mp4", 198.0, "Which door did I open first?",
            ["The front door", "", "The garage door", "The closet door"], "C", "mlvu", question_type="ego",
            empty_options=["B"]),
        mcq("4_count_0", "../videos/4_count/count_3.mp4", 185.04, "How many times does the man jump into the pool?",
            ["1", "2", "3", "4"], "C", "mlvu", question_type="count"),
        # The gold text in two candidates: the official loop keeps the last match.
        mcq("4_count_1", "../videos/4_count/count_8.mp4", 301.2, "How many birds land on the fence?",
            ["Six", "Three", "Three", "Eight"], "C", "mlvu", question_type="count", duplicate_gold=["B", "C"]),
    ]  # fmt: skip
    assert [(row["file"], row["where"], row["kind"], row["reason"]) for row in skipped] == [
        (needle, "item [1]", "filtered", "answer not among the options"),
        (summary_file, "item [0]", "filtered", "generation question (no candidates)"),
    ]
    assert "counts this question wrong for every model" in skipped[0]["detail"]
    summary = capsys.readouterr().out
    assert "8 rows read, 6 records written" in summary and "2 skipped" in summary
    assert "skipped (filtered): 1 x answer not among the options" in summary
    assert "noted: 1 x gold text in several options (meta.duplicate_gold)" in summary
    assert "noted: 3 x empty option text (meta.empty_options)" in summary

    records, _ = convert(tmp_path, "mlvu", "--annotations", count, "--flat-videos")
    assert records[0]["video"] == "../videos/count_3.mp4"
    (tmp_path / "videos" / "4_count").mkdir(parents=True)
    (tmp_path / "videos" / "4_count" / "count_3.mp4").write_bytes(b"")
    records, _ = convert(tmp_path, "mlvu", "--annotations", count, "--flat-videos")
    assert records[0]["video"] == "../videos/4_count/count_3.mp4"  # the release's per-task folder, found


def test_videomme_from_parquet(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = tmp_path / "test-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist(json.loads(Path(fixture("videomme", "rows.json")).read_text())), parquet)
    args = ["--annotations", str(parquet), "--durations", fixture("videomme", "durations.json")]
    convert(tmp_path, "videomme", *args, expect=2)
    assert f"{parquet}, row 2: malformed options: option 0 should start with 'A.'" in capsys.readouterr().err

    records, skipped = convert(tmp_path, "videomme", *args, "--skip-bad")
    assert records == [
        mcq("801-1", "../videos/AbCdEfGhIjK.mp4", 95.5, "How many players wear white shirts?",
            ["Two.", "Three.", "Five.", "Seven."], "C", "videomme", duration_bucket="short",
            domain="Sports Competition", sub_category="Basketball", task_type="Counting Problem", video_id="801",
            youtube_id="AbCdEfGhIjK"),
        mcq("802-3", "../videos/LmNoPqRsTuV.mp4", 2410.0,
            "What does the narrator explain right after the telescope is shown?",
            ["The age of the universe.", "How lenses bend light.", "The phases of the moon.", "Why stars twinkle."],
            "B", "videomme", duration_bucket="long", domain="Knowledge", sub_category="Astronomy",
            task_type="Temporal Reasoning", video_id="802", youtube_id="LmNoPqRsTuV"),
    ]  # fmt: skip
    assert reasons(skipped) == [("row 2", "bad", "malformed options")]


def test_no_duration_says_how_to_get_one(tmp_path, capsys):
    rows = fixture("videomme", "rows.json")
    convert(tmp_path, "videomme", "--annotations", rows, expect=2)
    err = capsys.readouterr().err
    assert f"{rows}, item [0]: no duration: 'AbCdEfGhIjK' is not in --durations" in err
    assert "To fix: give the durations with --durations FILE; `python -m data_tools.convert.durations " in err

    _, skipped = convert(tmp_path, "videomme", "--annotations", rows, "--skip-bad")
    assert [row["reason"] for row in skipped] == ["no duration", "no duration", "malformed options"]
    summary = capsys.readouterr().out
    assert "0 records written" in summary and "skipped (bad): 2 x no duration" in summary
    hint = f"`python -m data_tools.convert.durations --video-root {tmp_path / 'videos'} --out FILE` writes it"
    assert f"to fix 'no duration': give the durations with --durations FILE; {hint}" in summary


def test_lvbench(tmp_path, capsys):
    path = fixture("lvbench", "video_info.meta.jsonl")
    args = ["--annotations", path, "--durations", fixture("lvbench", "durations.json")]
    convert(tmp_path, "lvbench", *args, expect=2)
    assert f"{path}, line 2, qa[0]: malformed options: option (C) where (B) was expected" in capsys.readouterr().err

    records, skipped = convert(tmp_path, "lvbench", *args, "--skip-bad")
    first, second = "../videos/Pq7Rs8Tu9Vw.mp4", "../videos/Ab1Cd2Ef3Gh.mp4"
    assert records == [
        mcq("901", first, 4530.0, "Which animal crosses the river first?",
            ["A zebra", "A wildebeest", "A gazelle", "An elephant"], "B", "lvbench",
            question_type=["entity recognition", "temporal grounding"], video_type="documentary", key="Pq7Rs8Tu9Vw",
            time_reference="12:05-12:40", evidence_span=[725.0, 760.0]),
        mcq("902", first, 4530.0, "What happens after the storm?",
            ["The herd scatters", "A rainbow appears", "The river floods", "Birds return"], "C", "lvbench",
            question_type=["event understanding"], video_type="documentary", key="Pq7Rs8Tu9Vw",
            time_reference="1:15:10-1:16:20", evidence_span=[4510.0, 4530.0]),  # clipped to the 75.5 min video
        mcq("904", second, 1860.0, "Why does the robot go back home?",
            ["It is raining", "It forgot its key", "Its battery is low", "A friend calls it"], "C", "lvbench",
            question_type=["reasoning"], video_type="cartoon", key="Ab1Cd2Ef3Gh"),
    ]  # fmt: skip
    # Line 3's video has no duration anywhere: both its questions are skipped and counted.
    assert reasons(skipped) == [
        ("line 2, qa[0]", "bad", "malformed options"),
        ("line 3, qa[0]", "bad", "no duration"),
        ("line 3, qa[1]", "bad", "no duration"),
    ]
    summary = capsys.readouterr().out
    assert "6 rows read, 3 records written" in summary and "skipped (bad): 2 x no duration" in summary
    assert "to fix 'no duration':" in summary


def test_lvbench_finds_the_files_its_download_script_numbers(tmp_path, capsys):
    """scripts/download.sh (video2dataset, `files` output) writes <shard>/<index>.mp4 and a .json with the url."""
    shard = tmp_path / "videos" / "00000"
    for index, key in enumerate(["Pq7Rs8Tu9Vw", "Ab1Cd2Ef3Gh", "Xy7Wv6Ut5Sr"]):
        write_clip(shard / f"{index:09d}.mp4", seconds=6)
        if index < 2:  # the third has lost its json: matched by its index in the URL list
            meta = {"url": f"https://www.youtube.com/watch?v={key}", "key": f"{index:09d}", "status": "success"}
            (shard / f"{index:09d}.json").write_text(json.dumps(meta))
    path = fixture("lvbench", "video_info.meta.jsonl")
    durations = fixture("lvbench", "durations.json")
    records, _ = convert(
        tmp_path, "lvbench", "--annotations", path, "--durations", durations, "--skip-bad", "--check-videos"
    )
    assert {r["id"]: (r["video"], r["duration"]) for r in records} == {
        "901": ("../videos/00000/000000000.mp4", 4530.0),
        "902": ("../videos/00000/000000000.mp4", 4530.0),
        "904": ("../videos/00000/000000001.mp4", 1860.0),
        "905": ("../videos/00000/000000002.mp4", 6.0),  # no duration_minutes: probed from the found file
        "906": ("../videos/00000/000000002.mp4", 6.0),
    }
    assert "videos: all 5 records' video files exist under" in capsys.readouterr().out


def test_mvbench(tmp_path, capsys):
    sequence, shuffle, episodic = (
        fixture("mvbench", name) for name in ("action_sequence.json", "object_shuffle.json", "episodic_reasoning.json")
    )
    args = ["--annotations", sequence, shuffle, episodic, "--durations", fixture("mvbench", "durations.json")]
    # object_shuffle's video is in no durations file: its duration is read from the video file's container
    write_clip(tmp_path / "videos" / "perception" / "videos" / "video_7781.mp4", seconds=4)

    records, skipped = convert(tmp_path, "mvbench", *args, "--skip-bad")
    assert records == [
        mcq("action_sequence_0", "../videos/star/Charades_v1_480/K9LMN.mp4", 31.2,
            "What did the person do first with the towel?",
            ["Threw the towel.", "Folded the towel.", "Washed the towel.", "Took the towel."], "D", "mvbench",
            task="action_sequence", bound=[3.2, 14.8]),
        mcq("object_shuffle_0", "../videos/perception/videos/video_7781.mp4", 4.0, "Where is the ball at the end?",
            ["Under the first cup.", "Under the second cup.", "Under the third cup."], "C", "mvbench",
            task="object_shuffle"),
    ]  # fmt: skip
    assert reasons(skipped) == [
        ("item [0]", "filtered", "frame-folder video (not a video file)"),
        ("item [1]", "filtered", "answer not among the options"),
    ]

    (tmp_path / "videos" / "perception" / "videos" / "video_7781.mp4").unlink()
    convert(
        tmp_path, "mvbench", "--annotations", shuffle, "--durations", fixture("mvbench", "durations.json"), expect=2
    )
    assert "no duration: 'video_7781.mp4' is not in --durations" in capsys.readouterr().err

    other = tmp_path / "my_task.json"
    other.write_text("[]")
    convert(tmp_path, "mvbench", "--annotations", str(other), expect=2)
    assert "unknown MVBench task 'my_task': pass --video-subdir" in capsys.readouterr().err


def test_video_r1(tmp_path, capsys):
    path = fixture("video_r1", "Video-R1-COT-165k.json")
    args = ["--annotations", path, "--durations", fixture("video_r1", "durations.json")]
    write_clip(tmp_path / "videos" / "LLaVA-Video-178K" / "sample_videos" / "clip_0011.mp4", seconds=3)
    convert(tmp_path, "video-r1", *args, expect=2)
    assert f"{path}, item [3]: malformed solution: expected '<answer>X</answer>', got 'B'" in capsys.readouterr().err

    records, skipped = convert(tmp_path, "video-r1", *args, "--skip-bad")
    assert records == [
        mcq("video_r1_11", "../videos/LLaVA-Video-178K/sample_videos/clip_0011.mp4", 3.0,
            "What is the man carrying when he enters the room?",
            ["A ladder", "A box of tools", "A bicycle", "A guitar"], "A", "video_r1", problem_id=11,
            data_source="LLaVA-Video-178K/0_30_s_academic_v0_1",
            reasoning="He walks in holding a wooden frame with rungs, so it is a ladder."),
        mcq("video_r1_15", "../videos/STAR/Charades_v1_480/Z1Y2X.mp4", 42.0, "What does the cook add last?",
            ["Salt", "Pepper", "Basil", "Oil"], "C", "video_r1", problem_id=15, data_source="STAR",
            reasoning="At the end a green leaf goes in: basil."),
    ]  # fmt: skip
    assert reasons(skipped) == [
        ("item [1]", "filtered", "not a video row (data_type image)"),
        ("item [2]", "filtered", "not multiple choice (problem_type numerical)"),
        ("item [3]", "bad", "malformed solution"),
    ]
    summary = capsys.readouterr().out
    assert "5 rows read, 2 records written" in summary and "3 skipped" in summary


# ----------------------------------------------------------------------------------------------------------------
# Video paths, video checks, the output


def test_video_paths_relative_absolute_and_checked(tmp_path, capsys):
    args = ["--annotations", fixture("charades_sta", "charades_annotation_val.json")]
    records, _ = convert(tmp_path, "charades-sta", *args, "--absolute-videos")
    assert records[0]["video"] == str(tmp_path / "videos" / "AB12C.mp4")

    # Relative paths resolve against the output file's folder: read_records finds the videos.
    write_clip(tmp_path / "videos" / "AB12C.mp4")
    records, skipped = convert(tmp_path, "charades-sta", *args, "--check-videos", "--skip-bad")
    assert [r["id"] for r in records] == ["AB12C_0", "AB12C_1"]
    assert reasons(skipped) == [("key 'XY9Z0', sentence 0", "bad", "video file not found")]
    loaded = read_records(tmp_path / "converted" / "out.jsonl", check_video=True)
    assert Path(loaded[0]["video"]).resolve() == (tmp_path / "videos" / "AB12C.mp4").resolve()

    convert(tmp_path, "charades-sta", *args, "--check-videos", expect=2)
    assert "key 'XY9Z0', sentence 0: video file not found: field 'video'" in capsys.readouterr().err


def test_a_clean_rerun_removes_the_old_skipped_report(tmp_path):
    txt, csv_file = fixture("charades_sta", "charades_sta_test.txt"), fixture("charades_sta", "Charades_v1_test.csv")
    convert(tmp_path, "charades-sta", "--annotations", txt, "--durations", csv_file, "--skip-bad")
    report = tmp_path / "converted" / "out.skipped.jsonl"
    assert report.exists()
    convert(tmp_path, "charades-sta", "--annotations", fixture("charades_sta", "charades_annotation_val.json"))
    assert not report.exists()


def test_unreadable_inputs_stop_with_the_file_named(tmp_path, capsys):
    broken = tmp_path / "broken.json"
    broken.write_text('{"AB12C": {"duration": 30.0,\n "timestamps": [[1, 2]],, }}')
    convert(tmp_path, "activitynet", "--annotations", str(broken), "--skip-bad", expect=2)
    assert f"error: {broken}, line 2: invalid JSON" in capsys.readouterr().err
    convert(tmp_path, "activitynet", "--annotations", str(tmp_path / "absent.json"), expect=2)
    err = capsys.readouterr().err
    assert "absent.json: file not found" in err and "--skip-bad" not in err  # no row to skip


def test_module_runs_with_python_dash_m(tmp_path):
    out = tmp_path / "out.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "data_tools.convert", "charades-sta", "--annotations",
         fixture("charades_sta", "charades_annotation_val.json"), "--video-root", str(tmp_path), "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "3 rows read, 3 records written" in result.stdout
    assert len(read_records(out, check_video=False)) == 3


# ----------------------------------------------------------------------------------------------------------------
# Helpers


def test_clean_span_sorts_clips_and_rejects_empty_spans():
    assert clean_span([9.0, 3.2], 18.4) == ([3.2, 9.0], ["reversed span sorted"])
    assert clean_span([41.0, 63.9], 60.25) == ([41.0, 60.25], ["span clipped to the duration"])
    with pytest.raises(BadRow, match="empty span"):
        clean_span([20.0, 25.0], 18.4)
    with pytest.raises(BadRow, match="malformed span"):
        clean_span([1.0], 18.4)


def test_option_and_question_parsers():
    assert strip_option_letters(["A. Apples.", "B. Candles."]) == ["Apples.", "Candles."]
    assert strip_option_letters(["(A) x", "(B) y"]) == ["x", "y"]
    with pytest.raises(BadRow, match="should start with 'B.'"):
        strip_option_letters(["A. x", "C. y"])
    assert split_question("What year?\n(A) 1636\n(B) 1366") == ("What year?", ["1636", "1366"])
    assert parse_time_reference("00:15-00:19") == (15.0, 19.0)
    assert parse_time_reference("1:02:03-1:02:10") == (3723.0, 3730.0)
    with pytest.raises(BadRow, match="malformed time_reference"):
        parse_time_reference("15s to 19s")


def test_answer_letter_compares_as_the_official_scorers():
    options = ["Six", "Three", "Three", "Eight"]
    assert answer_letter("Three", options, twin="first") == "B"  # NExT-GQA: choices.index(answer)
    assert answer_letter("Three", options, twin="last") == "C"  # MLVU / MVBench: the loop keeps the last match
    assert answer_letter("", ["In the sink", ""], twin="last") == "B"  # "" == "": the empty option is the gold
    with pytest.raises(FilteredRow, match="answer not among the options") as caught:
        answer_letter("three ", options, twin="last")  # exact compare, as the scorers: no case folding, no strip
    assert "differs from option B 'Three', C 'Three' only in case or spacing" in caught.value.detail
    with pytest.raises(FilteredRow, match="wrong for every model"):
        answer_letter("", options, twin="first")


def test_option_marks():
    assert option_marks(["a", "b"], "A") == {}
    assert option_marks(["Four", "four ", "Two", ""], "B") == {"duplicate_gold": ["A", "B"], "empty_options": ["D"]}


class _FencedDocTestParser(doctest.DocTestParser):
    """HF-style examples: the ``` fences around them are not part of the expected output."""

    def parse(self, string, name="<string>"):
        return super().parse(re.sub(r"^[ \t]*```.*$", "", string, flags=re.MULTILINE), name)


@pytest.mark.parametrize(
    "module", ["data_tools.convert.common", "data_tools.convert.videos", "data_tools.convert.activitynet"]
)
def test_docstring_examples(module):
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = doctest.DocTestFinder(parser=_FencedDocTestParser()).find(importlib.import_module(module))
    assert sum(len(test.examples) for test in tests) >= 1
    for test in tests:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
