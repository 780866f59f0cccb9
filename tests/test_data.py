"""The canonical record: valid files load as a datasets.Dataset; each kind of bad line names file, line, field."""

import json

import pytest

from temporal_rl.data import RecordError, load_dataset, read_records, record_meta, write_jsonl


def _record(**overrides):
    record = {
        "id": "q1",
        "video": "videos/a.mp4",
        "duration": 10.0,
        "task": "grounding",
        "question": "When is the red circle visible?",
        "options": None,
        "answer": None,
        "spans": [[2.0, 4.5]],
        "source": "synth/grounding",
        "meta": {"fps": 2},
    }
    record.update(overrides)
    return record


@pytest.fixture
def data_dir(tmp_path):
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "a.mp4").write_bytes(b"\x00")
    return tmp_path


def _write(path, lines):
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def test_valid_file_loads_with_absolute_videos(data_dir):
    mcq = _record(id="q2", task="mcq", spans=None, options=["red", "blue", "green"], answer="C", meta={"k": [1]})
    path = _write(data_dir / "data.jsonl", [_record(), "", mcq])
    records = read_records(path)
    assert [r["id"] for r in records] == ["q1", "q2"]
    assert records[0]["video"] == str(data_dir / "videos" / "a.mp4")
    dataset = load_dataset(path)
    assert dataset.column_names == [
        "id",
        "video",
        "duration",
        "task",
        "question",
        "options",
        "answer",
        "spans",
        "source",
        "meta",
    ]
    assert dataset[0]["spans"] == [[2.0, 4.5]] and dataset[1]["spans"] is None
    assert dataset[1]["options"] == ["red", "blue", "green"]
    assert record_meta(dataset[1]) == {"k": [1]} and record_meta(records[0]) == {"fps": 2}


@pytest.mark.parametrize(
    ("bad", "field", "words"),
    [
        (_record(spans=[[5.0, 3.0]]), "spans", "ends at or before its start"),
        (_record(spans=[[5.0, 12.0]]), "spans", "past the duration"),
        (_record(spans=[[-1.0, 3.0]]), "spans", "before 0"),
        (_record(spans=[[1.0]]), "spans", "[start, end] pair"),
        (_record(spans=None), "spans", "needs at least one gold span"),
        (_record(task="captioning"), "task", "unknown task 'captioning'"),
        (_record(video="videos/missing.mp4"), "video", "not found"),
        (_record(duration=0), "duration", "positive"),
        (_record(task="mcq", options=["a", "b"], answer="C"), "answer", "one of the option letters A, B"),
        (_record(task="mcq", options=None, answer="A"), "options", "needs its options"),
        (_record(extra=1), "extra", "unknown field"),
        ({k: v for k, v in _record().items() if k != "question"}, "question", "missing"),
    ],
)
def test_bad_line_names_file_line_and_field(data_dir, bad, field, words):
    path = _write(data_dir / "data.jsonl", [_record(id="ok"), bad])
    with pytest.raises(RecordError) as info:
        read_records(path)
    error = info.value
    assert (error.path, error.line, error.field) == (path, 2, field)
    assert str(path) in str(error) and "line 2" in str(error) and words in str(error)


def test_span_a_hair_past_the_end_is_clipped(data_dir):
    path = _write(data_dir / "data.jsonl", [_record(spans=[[8.0, 10.03]])])
    assert read_records(path)[0]["spans"] == [[8.0, 10.0]]


def test_invalid_json_and_duplicate_ids(data_dir):
    path = _write(data_dir / "bad.jsonl", [_record(), "{not json"])
    with pytest.raises(RecordError, match=r"bad.jsonl, line 2: invalid JSON"):
        read_records(path)
    path = _write(data_dir / "dup.jsonl", [_record(), _record()])
    with pytest.raises(RecordError, match=r"line 2, field 'id': duplicate id 'q1' \(first on line 1\)"):
        read_records(path)
    with pytest.raises(RecordError, match="file not found"):
        read_records(data_dir / "nope.jsonl")


def test_write_jsonl_is_atomic_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "out" / "rows.jsonl"
    write_jsonl(path, [{"a": 1}, {"b": "é"}])
    with pytest.raises(TypeError):
        write_jsonl(path, [{"c": 2}, {"d": object()}])
    assert path.read_text(encoding="utf-8") == '{"a": 1}\n{"b": "é"}\n'
    assert sorted(p.name for p in path.parent.iterdir()) == ["rows.jsonl"]
