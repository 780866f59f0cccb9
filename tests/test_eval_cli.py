"""`python -m temporal_rl.eval` and `python -m temporal_rl.eval.baselines` end to end on small files.

The data files name videos that do not exist: the evaluator reads them with check_video=False.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from temporal_rl.data import write_jsonl
from temporal_rl.eval.__main__ import main as eval_main
from temporal_rl.eval.baselines import main as baselines_main

ROOT = Path(__file__).resolve().parents[1]


def make_record(id_, task, source="synth", duration=20.0, **fields):
    return {
        "id": id_,
        "video": f"videos/{id_}.mp4",
        "duration": duration,
        "task": task,
        "question": "what happens?",
        "options": fields.get("options"),
        "answer": fields.get("answer"),
        "spans": fields.get("spans"),
        "source": source,
        "meta": {},
    }


OPTS = ["red", "blue", "green", "white"]
DATA = [
    make_record("g1", "grounding", "charades", spans=[[5.0, 10.0]]),
    make_record("g2", "grounding", "charades", spans=[[0.0, 10.0]]),
    make_record("g3", "grounding", "anet", duration=40.0, spans=[[4.0, 20.0]]),
    make_record("m1", "mcq", options=OPTS, answer="A"),
    make_record("m2", "mcq", options=OPTS, answer="B"),
    make_record("q1", "grounded_qa", duration=30.0, options=OPTS, answer="A", spans=[[10.0, 25.0]]),
    make_record("o1", "open_qa", answer="a red circle"),
]


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "data.jsonl"
    write_jsonl(path, DATA)
    return path


def write_predictions(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def run_eval(data, predictions, out, *extra):
    return eval_main(["--data", str(data), "--predictions", str(predictions), "--out", str(out), *extra])


def test_eval_cli_end_to_end(tmp_path, data_file, capsys):
    predictions = write_predictions(
        tmp_path / "preds.jsonl",
        [
            {"id": "g1", "completion": "<answer>5 - 10</answer>"},  # IoU 1
            {
                "id": "g2",
                "completion": '<think>hm</think><answer>{"start_time": "0", "end_time": "5"}</answer>',
            },  # 0.5
            {"id": "m1", "completion": "<answer>A</answer>"},
            {"id": "m2", "completion": [{"role": "assistant", "content": "<answer>C</answer>"}]},
            # right, (10,20) in (10,25): IoU 10/15, IoP 1
            {"id": "q1", "completion": "<answer>A</answer><time>10 - 20</time>"},
            {"id": "o1", "completion": "<answer>Red circle</answer>"},
        ],  # g3 has no prediction
    )
    out = tmp_path / "metrics" / "m.json"
    samples = tmp_path / "samples.jsonl"
    assert run_eval(data_file, predictions, out, "--samples", str(samples)) == 0
    metrics = json.loads(out.read_text())
    assert metrics["data"] == str(data_file) and metrics["predictions"] == str(predictions)
    # grounding IoUs 1, 0.5, 0 (missing)
    assert metrics["tasks"]["grounding"] == pytest.approx(
        {"n": 3, "missing": 1, "unparsed_span": 0, "R@0.3": 200 / 3, "R@0.5": 200 / 3, "R@0.7": 100 / 3, "mIoU": 50.0}
    )
    assert metrics["tasks"]["mcq"]["accuracy"] == pytest.approx(50.0)
    assert metrics["tasks"]["grounded_qa"]["Acc@GQA"] == pytest.approx(100.0)
    assert metrics["tasks"]["grounded_qa"]["mIoU"] == pytest.approx(100 * 10 / 15)
    assert metrics["tasks"]["open_qa"]["accuracy"] == pytest.approx(100.0)
    assert metrics["by_source"]["charades"]["grounding"]["mIoU"] == pytest.approx(75.0)
    assert metrics["by_source"]["anet"]["grounding"]["missing"] == 1
    assert metrics["counts"]["queries"] == 7 and metrics["counts"]["missing"] == 1
    assert len(samples.read_text().splitlines()) == 7

    printed = capsys.readouterr().out
    assert printed.splitlines()[0] == "grounding"
    assert "R@0.3" in printed and "Acc@GQA" in printed and "queries 7, predictions 6, missing 1" in printed


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"id": "g1", "completion": "x"}, {"id": "nope", "completion": "x"}], "line 2, field 'id': id 'nope'"),
        ([{"id": "g1", "completion": "x"}, {"id": "g1", "completion": "y"}], "line 2, field 'id': duplicate id"),
        ([{"id": "g1"}], "line 1, field 'completion': missing"),
    ],
)
def test_eval_cli_rejects_bad_predictions(tmp_path, data_file, capsys, rows, message):
    predictions = write_predictions(tmp_path / "preds.jsonl", rows)
    out = tmp_path / "m.json"
    assert run_eval(data_file, predictions, out) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {predictions}") and message in error
    assert not out.exists()


def test_eval_cli_rejects_a_malformed_line(tmp_path, data_file, capsys):
    predictions = tmp_path / "preds.jsonl"
    predictions.write_text('{"id": "g1", "completion": "x"}\n{"id": "g2", "completion": \n', encoding="utf-8")
    assert run_eval(data_file, predictions, tmp_path / "m.json") == 2
    assert f"{predictions}, line 2: invalid JSON" in capsys.readouterr().err


def test_eval_cli_rejects_invalid_data(tmp_path, capsys):
    data = tmp_path / "data.jsonl"
    write_jsonl(data, [DATA[0], {**DATA[1], "task": "captioning"}])
    predictions = write_predictions(tmp_path / "preds.jsonl", [])
    assert run_eval(data, predictions, tmp_path / "m.json") == 2
    assert f"{data}, line 2, field 'task'" in capsys.readouterr().err


def test_eval_cli_missing_files(tmp_path, data_file, capsys):
    assert run_eval(data_file, tmp_path / "none.jsonl", tmp_path / "m.json") == 2
    assert "file not found" in capsys.readouterr().err
    assert run_eval(tmp_path / "none.jsonl", data_file, tmp_path / "m.json") == 2


# ----------------------------------------------------------------------------------------------------------------
# Baselines


def run_baselines(data, out, *extra):
    return baselines_main(["--data", str(data), "--out", str(out), *extra])


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def test_whole_video_baseline_scores_the_expected_iou(tmp_path, data_file):
    preds = tmp_path / "whole.jsonl"
    assert run_baselines(data_file, preds, "--kind", "whole_video") == 0
    rows = {row["id"]: row["completion"] for row in read_jsonl(preds)}
    assert rows["g1"] == '<answer>{"start_time": "0.0", "end_time": "20.0"}</answer>'
    assert rows["q1"] == '<time>{"start_time": "0.0", "end_time": "30.0"}</time>'
    assert set(rows) == {"g1", "g2", "g3", "q1"}  # mcq and open_qa are not answered
    out = tmp_path / "m.json"
    assert run_eval(data_file, preds, out) == 0
    metrics = json.loads(out.read_text())
    # [0,20] vs [5,10]: 5/20; vs [0,10]: 10/20; [0,40] vs [4,20]: 16/40
    assert metrics["tasks"]["grounding"]["mIoU"] == pytest.approx(100 * (0.25 + 0.5 + 0.4) / 3)
    assert metrics["tasks"]["grounding"]["R@0.3"] == pytest.approx(200 / 3)
    # grounded QA: [0,30] vs [10,25]: IoU 15/30, IoP 15/30; no letter -> unparsed answer, wrong
    assert metrics["tasks"]["grounded_qa"]["mIoU"] == pytest.approx(50.0)
    assert metrics["tasks"]["grounded_qa"]["mIoP"] == pytest.approx(50.0)
    assert metrics["tasks"]["grounded_qa"]["unparsed_answer"] == 1
    assert metrics["counts"]["missing"] == 3


def test_mean_span_baseline(tmp_path, data_file):
    train = tmp_path / "train.jsonl"
    # normalised spans (2/10, 4/10) and (0/20, 12/20): mean start 0.1, mean end 0.5; the mcq record is skipped
    write_jsonl(
        train,
        [
            make_record("t1", "grounding", duration=10.0, spans=[[2.0, 4.0]]),
            make_record("t2", "grounded_qa", duration=20.0, spans=[[0.0, 12.0]], options=OPTS, answer="A"),
            make_record("t3", "mcq", options=OPTS, answer="A"),
        ],
    )
    preds = tmp_path / "mean.jsonl"
    assert run_baselines(data_file, preds, "--kind", "mean_span", "--train", str(train), "--span-format", "plain") == 0
    rows = {row["id"]: row["completion"] for row in read_jsonl(preds)}
    assert rows["g3"] == "<answer>4.0 - 20.0</answer>"  # 0.1 * 40, 0.5 * 40: exactly the gold span
    assert rows["g1"] == "<answer>2.0 - 10.0</answer>"
    out = tmp_path / "m.json"
    assert run_eval(data_file, preds, out) == 0
    metrics = json.loads(out.read_text())
    assert metrics["by_source"]["anet"]["grounding"]["mIoU"] == pytest.approx(100.0)


def test_first_option_combined_with_whole_video(tmp_path, data_file):
    preds = tmp_path / "combo.jsonl"
    assert run_baselines(data_file, preds, "--kind", "whole_video", "first_option") == 0
    rows = {row["id"]: row["completion"] for row in read_jsonl(preds)}
    assert rows["m1"] == rows["m2"] == "<answer>A</answer>"
    assert rows["q1"] == '<answer>A</answer><time>{"start_time": "0.0", "end_time": "30.0"}</time>'
    out = tmp_path / "m.json"
    assert run_eval(data_file, preds, out) == 0
    metrics = json.loads(out.read_text())
    assert metrics["tasks"]["mcq"]["accuracy"] == pytest.approx(50.0)  # m1's answer is A, m2's is B
    assert metrics["tasks"]["grounded_qa"]["Acc@QA"] == pytest.approx(100.0)
    assert metrics["tasks"]["grounded_qa"]["Acc@GQA"] == pytest.approx(100.0)  # IoP 0.5 reaches the threshold


def test_baseline_errors(tmp_path, data_file, capsys):
    with pytest.raises(SystemExit):
        run_baselines(data_file, tmp_path / "p.jsonl", "--kind", "mean_span")  # needs --train
    assert "needs --train" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_baselines(data_file, tmp_path / "p.jsonl", "--kind", "random")
    with pytest.raises(SystemExit):
        run_baselines(data_file, tmp_path / "p.jsonl", "--kind", "whole_video", "mean_span", "--train", "t.jsonl")
    assert "at most one span baseline" in capsys.readouterr().err
    train = tmp_path / "train.jsonl"
    write_jsonl(train, [make_record("t3", "mcq", options=OPTS, answer="A")])
    assert run_baselines(data_file, tmp_path / "p.jsonl", "--kind", "mean_span", "--train", str(train)) == 2
    assert "no gold span" in capsys.readouterr().err


def test_modules_run_with_python_dash_m(tmp_path, data_file):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "error::RuntimeWarning"}
    preds, out = tmp_path / "p.jsonl", tmp_path / "m.json"
    subprocess.run(
        [sys.executable, "-m", "temporal_rl.eval.baselines", "--kind", "whole_video", "first_option",
         "--data", str(data_file), "--out", str(preds)],
        check=True, cwd=tmp_path, env=env, capture_output=True, text=True,
    )  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "temporal_rl.eval", "--data", str(data_file), "--predictions", str(preds),
         "--out", str(out)],
        check=True, cwd=tmp_path, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert result.stdout.startswith("grounding\n")
    assert json.loads(out.read_text())["counts"]["predictions"] == 6


def test_baseline_predictions_validates_kinds():
    from temporal_rl.eval.baselines import baseline_predictions

    with pytest.raises(ValueError, match="at most one span baseline"):
        baseline_predictions(DATA, ["whole_video", "mean_span"], mean_span=(0.1, 0.5))
    with pytest.raises(ValueError, match="unknown baseline 'random'"):
        baseline_predictions(DATA, ["random"])
    with pytest.raises(ValueError, match="needs the train set"):
        baseline_predictions(DATA, ["mean_span"])
