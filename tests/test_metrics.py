"""Metric maths on hand-worked tables, per-record scoring, the per-source split, missing predictions, the
predictions reader and the printed table."""

import json

import pytest

from temporal_rl.data import RecordError
from temporal_rl.eval.metrics import (
    accuracy,
    evaluate,
    format_report,
    grounded_qa_metrics,
    grounding_metrics,
    mean_percent,
    rate_at,
    read_predictions,
    score_record,
)

# ----------------------------------------------------------------------------------------------------------------
# Pure aggregates


def test_grounding_metrics_hand_worked():
    # 5 queries with IoUs 0.8, 0.6, 0.4, 0.2, 0.0:
    # >=0.3: 3 of 5 = 60 %; >=0.5: 2 of 5 = 40 %; >=0.7: 1 of 5 = 20 %; mean 2.0 / 5 = 40 %
    metrics = grounding_metrics([0.8, 0.6, 0.4, 0.2, 0.0])
    assert metrics == pytest.approx({"R@0.3": 60.0, "R@0.5": 40.0, "R@0.7": 20.0, "mIoU": 40.0})
    assert list(metrics) == ["R@0.3", "R@0.5", "R@0.7", "mIoU"]


def test_thresholds_are_inclusive_and_tolerate_float_noise():
    assert rate_at([0.5], 0.5) == 100.0
    assert rate_at([0.7 - 0.4], 0.3) == 100.0  # 0.29999999999999993, a tie in real numbers
    assert rate_at([0.2999], 0.3) == 0.0
    assert grounding_metrics([0.3, 0.5, 0.7]) == pytest.approx(
        {"R@0.3": 100.0, "R@0.5": 200 / 3, "R@0.7": 100 / 3, "mIoU": 50.0}
    )


def test_empty_lists_give_zero():
    assert mean_percent([]) == 0.0
    assert rate_at([], 0.5) == 0.0
    assert accuracy([]) == 0.0


def test_accuracy():
    assert accuracy([True, False, False, True, True]) == pytest.approx(60.0)


def test_grounded_qa_metrics_hand_worked():
    correct = [True, True, False, True]
    ious = [0.5, 0.2, 0.9, 0.3]
    iops = [0.6, 0.4, 0.9, 0.5]
    metrics = grounded_qa_metrics(correct, ious, iops)
    assert metrics == pytest.approx(
        {
            "Acc@QA": 75.0,  # 3 of 4 correct
            "Acc@GQA": 50.0,  # correct and IoP >= 0.5: questions 1 (0.6) and 4 (0.5); 3 has IoP 0.9 but is wrong
            "mIoU": 47.5,  # (0.5 + 0.2 + 0.9 + 0.3) / 4
            "R@0.3": 75.0,  # 0.5, 0.9, 0.3
            "R@0.5": 50.0,  # 0.5, 0.9
            "mIoP": 60.0,  # (0.6 + 0.4 + 0.9 + 0.5) / 4
            "IoP@0.3": 100.0,
            "IoP@0.5": 75.0,  # 0.6, 0.9, 0.5
        }
    )


def test_grounded_qa_metrics_rejects_ragged_lists():
    with pytest.raises(ValueError, match="differ in length"):
        grounded_qa_metrics([True], [0.1, 0.2], [0.1])


# ----------------------------------------------------------------------------------------------------------------
# Per-record scores and the report


def record(id_, task, source="charades", **fields):
    base = {
        "id": id_,
        "video": f"{id_}.mp4",
        "duration": 20.0,
        "task": task,
        "question": "q",
        "options": None,
        "answer": None,
        "spans": None,
        "source": source,
        "meta": {},
    }
    return {**base, **fields}


GOLD = [[0.0, 10.0]]
OPTS = ["red", "blue", "green", "white"]
RECORDS = [
    # grounding, gold (0,10), duration 20
    record("g1", "grounding", spans=GOLD),  # (0,8): 8/10 = 0.8
    record("g2", "grounding", spans=GOLD),  # (2,8): 6/10 = 0.6
    record("g3", "grounding", "anet", spans=GOLD),  # (6,10): 4/10 = 0.4
    record("g4", "grounding", "anet", spans=GOLD),  # (8,20) clipped: inter 2, union 20 -> 0.1
    record("g5", "grounding", "anet", spans=GOLD),  # missing -> 0
    record("g6", "grounding", "anet", spans=GOLD),  # unparseable -> 0
    # mcq
    record("m1", "mcq", options=OPTS, answer="B"),  # right
    record("m2", "mcq", options=OPTS, answer="B"),  # wrong
    record("m3", "mcq", "anet", options=OPTS, answer="C"),  # unparseable
    # grounded QA, gold (10,20), duration 30
    record("q1", "grounded_qa", "nextgqa", options=OPTS, answer="A", spans=[[10.0, 20.0]], duration=30.0),
    record("q2", "grounded_qa", "nextgqa", options=OPTS, answer="A", spans=[[10.0, 20.0]], duration=30.0),
    record("q3", "grounded_qa", "nextgqa", options=OPTS, answer="A", spans=[[10.0, 20.0]], duration=30.0),
    # open QA
    record("o1", "open_qa", "synth", answer="red circle"),
    record("o2", "open_qa", "synth", answer="red circle"),
]
COMPLETIONS = {
    "g1": "<answer>0 - 8</answer>",
    "g2": [{"role": "assistant", "content": "<answer>2.0 - 8.0</answer>"}],
    "g3": '<answer>{"start_time": "6", "end_time": "10"}</answer>',
    "g4": "<answer>8 - 40</answer>",
    "g6": "<answer>I cannot tell</answer>",
    "m1": "<answer>B</answer>",
    "m2": "<answer>D</answer>",
    "m3": "<answer>?</answer>",
    # (15,25) vs (10,20): IoU 5/15, IoP 5/10 = 0.5 -> grounded and right
    "q1": "<answer>A</answer><time>15 - 25</time>",
    # (18,28): IoU 2/18, IoP 2/10 = 0.2 -> right but not grounded
    "q2": "<answer>A</answer><time>18 - 28</time>",
    # wrong letter, exact span: IoU 1, IoP 1
    "q3": "<answer>B</answer><time>10 - 20</time>",
    "o1": "<answer>The red circle.</answer>",
    "o2": "<answer></answer>",
}


def test_score_record_fields():
    sample = score_record(RECORDS[3], COMPLETIONS["g4"])
    assert sample["span"] == [8.0, 20.0] and sample["iou"] == pytest.approx(0.1) and sample["iop"] == 2 / 12
    assert sample["answer"] is None and sample["correct"] is None and sample["missing"] is False
    missing = score_record(RECORDS[9], None)
    assert missing["missing"] is True and missing["iou"] == 0.0 and missing["correct"] is False
    assert score_record(RECORDS[12], "<answer>RED circle</answer>")["correct"] is True


def test_evaluate_hand_worked():
    report, samples = evaluate(RECORDS, COMPLETIONS)
    assert [s["id"] for s in samples] == [r["id"] for r in RECORDS]

    # grounding IoUs over all 6 queries: 0.8, 0.6, 0.4, 0.1, 0 (missing), 0 (unparseable)
    grounding = report["tasks"]["grounding"]
    assert grounding == pytest.approx(
        {
            "n": 6,
            "missing": 1,
            "unparsed_span": 1,
            "R@0.3": 50.0,  # 3 of 6
            "R@0.5": 100 / 3,  # 2 of 6
            "R@0.7": 100 / 6,  # 1 of 6
            "mIoU": 100 * 1.9 / 6,
        }
    )
    assert report["tasks"]["mcq"] == pytest.approx({"n": 3, "missing": 0, "unparsed_answer": 1, "accuracy": 100 / 3})
    # grounded QA: correct T, T, F; IoU 1/3, 1/9, 1; IoP 0.5, 0.2, 1
    assert report["tasks"]["grounded_qa"] == pytest.approx(
        {
            "n": 3,
            "missing": 0,
            "unparsed_answer": 0,
            "unparsed_span": 0,
            "Acc@QA": 200 / 3,
            "Acc@GQA": 100 / 3,  # only q1: right and IoP 0.5
            "mIoU": 100 * (1 / 3 + 1 / 9 + 1) / 3,
            "R@0.3": 200 / 3,  # 1/3 and 1
            "R@0.5": 100 / 3,
            "mIoP": 100 * (0.5 + 0.2 + 1.0) / 3,
            "IoP@0.3": 200 / 3,
            "IoP@0.5": 200 / 3,
        }
    )
    assert report["tasks"]["open_qa"] == pytest.approx({"n": 2, "missing": 0, "unparsed_answer": 1, "accuracy": 50.0})
    assert list(report["tasks"]) == ["grounding", "mcq", "grounded_qa", "open_qa"]

    # per source: charades has g1, g2 (0.8, 0.6) and m1, m2; anet has g3..g6 (0.4, 0.1, 0, 0) and m3
    by_source = report["by_source"]
    assert list(by_source) == ["anet", "charades", "nextgqa", "synth"]
    assert by_source["charades"]["grounding"] == pytest.approx(
        {"n": 2, "missing": 0, "unparsed_span": 0, "R@0.3": 100.0, "R@0.5": 100.0, "R@0.7": 50.0, "mIoU": 70.0}
    )
    assert by_source["anet"]["grounding"] == pytest.approx(
        {"n": 4, "missing": 1, "unparsed_span": 1, "R@0.3": 25.0, "R@0.5": 0.0, "R@0.7": 0.0, "mIoU": 12.5}
    )
    assert by_source["charades"]["mcq"]["accuracy"] == pytest.approx(50.0)
    assert by_source["anet"]["mcq"] == pytest.approx({"n": 1, "missing": 0, "unparsed_answer": 1, "accuracy": 0.0})
    assert set(by_source["nextgqa"]) == {"grounded_qa"} and set(by_source["synth"]) == {"open_qa"}

    assert report["counts"] == {
        "queries": 14,
        "predictions": 13,
        "missing": 1,
        "unparsed_span": 1,
        "unparsed_answer": 2,
        "by_task": {"grounding": 6, "mcq": 3, "grounded_qa": 3, "open_qa": 2},
    }
    json.dumps(report)  # serialisable


def test_every_query_counts_when_no_prediction_exists():
    report, _ = evaluate(RECORDS, {})
    assert report["counts"]["missing"] == 14 and report["counts"]["predictions"] == 0
    assert report["tasks"]["grounding"]["mIoU"] == 0.0 and report["tasks"]["grounding"]["missing"] == 6
    assert report["tasks"]["grounding"]["unparsed_span"] == 0  # missing is counted apart from unparseable
    assert report["tasks"]["grounded_qa"]["Acc@GQA"] == 0.0


def test_format_report_is_an_aligned_table():
    report, _ = evaluate(RECORDS, COMPLETIONS)
    text = format_report(report)
    blocks = text.split("\n\n")
    assert blocks[0].splitlines()[0] == "grounding"
    for block in blocks[:-1]:
        table = block.splitlines()[1:]
        assert len({len(line) for line in table}) == 1  # every row as wide as the header
        header = table[0].split()
        assert header[:2] == ["source", "n"]
    grounding_rows = {line.split()[0]: line.split() for line in blocks[0].splitlines()[2:]}
    assert grounding_rows["all"] == ["all", "6", "1", "1", "50.00", "33.33", "16.67", "31.67"]
    assert grounding_rows["charades"][-1] == "70.00"
    assert "queries 14, predictions 13, missing 1" in blocks[-1]


# ----------------------------------------------------------------------------------------------------------------
# Reading predictions


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_read_predictions(tmp_path):
    path = write_lines(
        tmp_path / "p.jsonl",
        [
            json.dumps({"id": "a", "completion": "<answer>B</answer>", "extra": 1}),
            "",
            json.dumps({"id": "b", "completion": [{"role": "assistant", "content": "x"}]}),
        ],
    )
    assert read_predictions(path, ["a", "b", "c"]) == {
        "a": "<answer>B</answer>",
        "b": [{"role": "assistant", "content": "x"}],
    }


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"id": "a", "completion": "x"}', '{"id": "zz", "completion": "x"}'], r"line 2, field 'id': id 'zz' is not"),
        (['{"id": "a", "completion": "x"}', '{"id": "a", "completion": "y"}'], r"line 2.*duplicate id 'a'.*line 1"),
        (['{"id": "a", "completion": "x"}', "{not json"], r"line 2: invalid JSON"),
        (['["a", "x"]'], r"line 1: expected a JSON object"),
        (['{"id": "a"}'], r"line 1, field 'completion': missing"),
        (['{"completion": "x"}'], r"line 1, field 'id': missing"),
        (['{"id": 3, "completion": "x"}'], r"line 1, field 'id': must be a non-empty string"),
        (['{"id": "a", "completion": 3}'], r"line 1, field 'completion': must be a string or a list"),
    ],
)
def test_read_predictions_errors_name_file_and_line(tmp_path, lines, message):
    path = write_lines(tmp_path / "preds.jsonl", lines)
    with pytest.raises(RecordError, match=message) as info:
        read_predictions(path, ["a", "b"])
    assert str(info.value).startswith(str(path))


def test_read_predictions_missing_file(tmp_path):
    with pytest.raises(RecordError, match="file not found"):
        read_predictions(tmp_path / "nope.jsonl")
