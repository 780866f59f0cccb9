"""The canonical record: valid files load as a datasets.Dataset; each kind of bad line names file, line, field."""

import json
import re

import pytest

from temporal_rl.data import (
    RecordError,
    check_video_duration,
    load_dataset,
    read_records,
    record_meta,
    resolve_video_path,
    validate_record,
    write_jsonl,
)


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


def test_a_line_that_is_not_utf8_names_file_and_line(data_dir):
    """A byte that is not UTF-8 used to escape as a raw UnicodeDecodeError without file or line."""
    path = data_dir / "data.jsonl"
    good = json.dumps(_record()).encode()
    path.write_bytes(good + b"\n" + good.replace(b"red circle", b"red \xff circle") + b"\n")
    with pytest.raises(RecordError) as info:
        read_records(path)
    assert (info.value.path, info.value.line) == (path, 2)
    assert "line 2: not UTF-8 text (byte 0xff at column" in str(info.value)


@pytest.mark.parametrize(("content", "words"), [(b"", "empty (0 bytes)"), (b"\n  \n\t\n", "only blank lines")])
def test_an_empty_or_blank_file_is_refused_plainly(data_dir, content, words):
    path = data_dir / "data.jsonl"
    path.write_bytes(content)
    with pytest.raises(RecordError, match=rf"data.jsonl: the file .*{re.escape(words)}"):
        read_records(path)


@pytest.mark.parametrize(
    ("duration", "spans"), [(1e12, [[2.0, 4.5]]), (1e308, [[1e307, 1e308]]), (604800.5, [[1.0, 2.0]])]
)
def test_an_absurd_duration_is_refused(data_dir, duration, spans):
    path = _write(data_dir / "data.jsonl", [_record(duration=duration, spans=spans)])
    with pytest.raises(RecordError, match=r"line 1, field 'duration': .* longer than a week"):
        read_records(path)


def test_a_long_but_real_duration_passes(data_dir):
    path = _write(data_dir / "data.jsonl", [_record(duration=36000.0, spans=[[100.0, 200.0]])])
    assert read_records(path)[0]["duration"] == 36000.0


def test_check_video_duration_allows_rounding_and_refuses_a_wrong_field():
    check_video_duration(12.0, 12.04)
    check_video_duration(13.9, 12.0)  # within 2 s
    check_video_duration(110.0, 100.0)  # within 10 %
    with pytest.raises(RecordError, match=r"field 'duration': the record says 1e\+12 s but its video lasts 12.00 s"):
        check_video_duration(1e12, 12.0, path="d.jsonl", line=3)
    with pytest.raises(RecordError, match="the record says 30 s but its video lasts 12.00 s"):
        check_video_duration(30.0, 12.0)


def test_a_video_path_with_dotdot_resolves_when_the_jsonl_folder_does_not_exist_yet(tmp_path):
    """A converter checks `../videos/a.mp4` against an output file in a folder it has not created yet: the OS cannot
    walk through `out/new/..`, so the path is resolved before it is used (every record was rejected before)."""
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "a.mp4").write_bytes(b"\x00")
    out = tmp_path / "out" / "new" / "data.jsonl"
    resolved = resolve_video_path("../../videos/a.mp4", out)
    assert resolved == tmp_path.resolve() / "videos" / "a.mp4" and resolved.is_file()
    record = validate_record(_record(video="../../videos/a.mp4"), path=out, check_video=True)
    assert record["video"] == "../../videos/a.mp4"
    # without `..` the path is the folder joined with it, as before (a symlinked video folder is not resolved)
    assert resolve_video_path("videos/a.mp4", tmp_path / "d.jsonl") == tmp_path.resolve() / "videos" / "a.mp4"
