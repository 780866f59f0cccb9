"""`python -m data_tools.convert`: each benchmark's fixture -> the expected canonical records.

The fixtures under tests/fixtures/convert/<benchmark>/ are invented rows in the benchmarks' real formats, with the
dirt the real files carry (leading spaces, reversed spans, spans past the end, several gold segments) and some
malformed rows. The expected records are written out by hand.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from data_tools.convert.__main__ import main as convert_main
from data_tools.convert.common import BadRow, clean_span, strip_option_letters
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
    assert capsys.readouterr().err.startswith(f"error: {txt}, line 4: malformed line: expected '<video id> <start>")

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
    assert reasons(skipped) == [
        ("key 'v_Zk81abcDEfg', sentence 1", "bad", "empty span"),  # [20, 25] lies past the 18.4 s video
        ("key 'v_broken00000'", "bad", "timestamps and sentences differ in length"),
    ]
    summary = capsys.readouterr().out
    assert "6 rows read, 4 records written" in summary and "repaired: 3 x sentence whitespace stripped" in summary

    records, _ = convert(tmp_path, "activitynet", "--annotations", path, "--skip-bad", "--strip-v-prefix")
    assert records[0]["video"] == "../videos/Qx3Lmn0pRsT.mp4"


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
    assert reasons(skipped) == [("item [2]", "bad", "solution not normalised")]
    assert "repaired: 1 x problem kept whole (no quoted query)" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------------------------
# Question answering


def test_nextgqa(tmp_path, capsys):
    csv_path = fixture("nextgqa", "val.csv")
    args = ["--annotations", csv_path, "--gsub", fixture("nextgqa", "gsub_val.json")]
    args += ["--map", fixture("nextgqa", "map_vid_vidorID.json")]
    convert(tmp_path, "nextgqa", *args, expect=2)
    assert f"{csv_path}, line 5: answer not among the options: answer 'a red umbrella'" in capsys.readouterr().err

    records, skipped = convert(tmp_path, "nextgqa", *args, "--skip-bad")
    options_a = ["to chase a cat", "to greet the man", "to fetch a ball", "to hide", "to drink water"]
    options_b = ["sit down", "open the window", "hang it on a hook", "call someone", "turn on the tv"]
    options_c = ["lift it up", "push it with her feet", "roll it", "kick it away", "drag it by a rope"]

    def gqa(id_, video, duration, question, options, answer, spans, type_, qid, video_id):
        meta = {"type": type_, "qid": qid, "video_id": video_id}
        return {**mcq(id_, video, duration, question, options, answer, "nextgqa", **meta), "task": "grounded_qa",
                "spans": spans}  # fmt: skip

    first, second = "../videos/0007/5551112223.mp4", "../videos/1010/7778889990.mp4"
    assert records == [
        gqa("5551112223_2", first, 30.0, "why did the dog run to the door", options_a, "B", [[3.5, 8.0]], "CW", "2",
            "5551112223"),
        gqa("5551112223_4", first, 30.0, "what did the man do after taking off his coat", options_b, "C",
            [[12.0, 17.5], [22.25, 26.0]], "TN", "4", "5551112223"),  # two gold segments
        gqa("7778889990_1", second, 50.0, "how does the girl move the box", options_c, "B", [[40.0, 50.0]], "CH",
            "1", "7778889990"),  # [40, 52.5] clipped; the zero-length [10, 10] dropped
    ]  # fmt: skip
    assert reasons(skipped) == [
        ("line 5", "bad", "answer not among the options"),
        ("line 6", "bad", "no gold segment"),
    ]
    summary = capsys.readouterr().out
    assert "repaired: 1 x degenerate gold segment dropped" in summary
    assert "repaired: 1 x span clipped to the duration" in summary


def test_mlvu(tmp_path, capsys):
    needle, count, summary_file = (
        fixture("mlvu", name) for name in ("2_needle.json", "4_count.json", "9_summary.json")
    )
    convert(tmp_path, "mlvu", "--annotations", needle, count, summary_file, expect=2)
    assert f"{needle}, item [1]: answer not among the options: answer 'Purple'" in capsys.readouterr().err

    # A generation task's rows are skipped by design, even without --skip-bad.
    records, skipped = convert(tmp_path, "mlvu", "--annotations", count, summary_file)
    assert [r["id"] for r in records] == ["4_count_0"]
    assert reasons(skipped) == [("item [0]", "filtered", "generation question (no candidates)")]

    records, skipped = convert(tmp_path, "mlvu", "--annotations", needle, count, summary_file, "--skip-bad")
    assert records == [
        mcq("2_needle_0", "../videos/2_needle/needle_7.mp4", 312.5,
            "What does the cat in the short inserted clip knock over?",
            ["A vase", "A glass of milk", "A lamp", "A stack of books"], "B", "mlvu", question_type="findNeedle"),
        mcq("4_count_0", "../videos/4_count/count_3.mp4", 185.04, "How many times does the man jump into the pool?",
            ["1", "2", "3", "4"], "C", "mlvu", question_type="count"),
    ]  # fmt: skip
    assert [(row["file"], row["kind"]) for row in skipped] == [(needle, "bad"), (summary_file, "filtered")]


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
    assert reasons(skipped) == [("line 2, qa[0]", "bad", "malformed options")]


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
        ("item [1]", "bad", "answer not among the options"),
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
    assert "absent.json: file not found" in capsys.readouterr().err


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
