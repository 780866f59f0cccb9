"""The bad-input corpus, made here: broken records and videos beside good ones, through every reader.

Each item must come out as a clear error naming the file and line or the record id, or as a counted, listed skip;
never a raw traceback, and the good samples beside it come out exactly as they do alone. Run with `-s` to print the
handling table (docs/reliability.md).
"""

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from transformers import AutoModelForImageTextToText, AutoProcessor

from data_tools.synth import generate_dataset
from temporal_rl.data import RecordError, load_dataset, read_records
from temporal_rl.generation import GenerationOptions, iter_generations
from temporal_rl.sft import PathFrames
from temporal_rl.viarl.candidates import candidate_frames
from temporal_rl.video.decode import VideoError, decode_video
from temporal_rl.video.sampling import FrameSampling

SAMPLING = FrameSampling(fps=2.0, min_pixels=28 * 28, max_pixels=56 * 56)

# line text (bytes) of each bad record kind, given a good record dict `r` to start from
BAD_LINES = {
    "not UTF-8": lambda r: json.dumps({**r, "id": "bad-utf8"}).encode().replace(b"bad-utf8", b"bad-\xff"),
    "invalid JSON": lambda r: b'{"id": "cut", "video": ',
    "not an object": lambda r: b"[1, 2, 3]",
    "missing question": lambda r: json.dumps({k: v for k, v in {**r, "id": "no-q"}.items() if k != "question"}),
    "unknown task": lambda r: json.dumps({**r, "id": "task", "task": "dance"}),
    "negative duration": lambda r: json.dumps({**r, "id": "neg", "duration": -3.0}),
    "duration 1e12 s": lambda r: json.dumps({**r, "id": "1e12", "duration": 1e12}),
    "duration 1e308 s, span to match": lambda r: json.dumps(
        {**r, "id": "1e308", "duration": 1e308, "spans": [[1e307, 1e308]]}
    ),  # fmt: skip
    "NaN duration": lambda r: json.dumps({**r, "id": "nan", "duration": float("nan")}),
    "span end before start": lambda r: json.dumps({**r, "id": "span", "spans": [[4.0, 2.0]]}),
    "duplicate id": lambda r: json.dumps(r),
}


def _write_turned(path: Path, *, hflip: bool) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=4)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(-90, hflip=hflip)
        for i in range(8):
            picture = np.full((32, 64, 3), 30 * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _bad_videos(folder: Path, good_video: Path) -> dict[str, Path]:
    folder.mkdir()
    videos = {
        "empty file": folder / "empty.mp4",
        "text named .mp4": folder / "text.mp4",
        "truncated mp4": folder / "truncated.mp4",
        "missing file": folder / "absent.mp4",
        "a folder named .mp4": folder / "folder.mp4",
        "mirrored (display matrix)": folder / "mirrored.mp4",
    }
    videos["empty file"].write_bytes(b"")
    videos["text named .mp4"].write_text("hello, not a video\n")
    data = good_video.read_bytes()
    videos["truncated mp4"].write_bytes(data[: len(data) // 3])
    videos["a folder named .mp4"].mkdir()
    _write_turned(videos["mirrored (display matrix)"], hflip=True)
    return videos


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    generate_dataset("grounding", "val", 3, "corpus", root / "good", workers=1, progress=False)
    good = read_records(root / "good" / "data.jsonl")
    videos = _bad_videos(root / "videos", Path(good[0]["video"]))
    rotated = root / "videos" / "rotated.mp4"
    _write_turned(rotated, hflip=False)
    canonical = dict(good[0].items())
    lines, kinds = [], {}
    for record in good:
        lines.append(json.dumps(record).encode())
    for kind, make in BAD_LINES.items():
        made = make(canonical)
        lines.append(made if isinstance(made, bytes) else made.encode())
        kinds[len(lines)] = kind
    # valid records whose trouble shows only when the video or the prompt is prepared
    prepared_bad = {
        "1 MB question": {**canonical, "id": "huge", "question": "When does it happen? " * 50_000},
        "duration 10x the video's": {**canonical, "id": "long", "duration": canonical["duration"] * 10},
        **{f"video: {kind}": {**canonical, "id": f"video-{i}", "video": str(path)}
           for i, (kind, path) in enumerate(videos.items())},
    }  # fmt: skip
    odd_good = {
        "rotated phone video": {
            **canonical,
            "id": "rotated",
            "video": str(rotated),
            "duration": 2.0,
            "spans": [[0.5, 1.5]],
        }
    }
    for record in [*prepared_bad.values(), *odd_good.values()]:
        lines.append(json.dumps(record).encode())
    path = root / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return dict(root=root, good=good, path=path, kinds=kinds, prepared_bad=prepared_bad, odd_good=odd_good,
                videos=videos)  # fmt: skip


def test_validation_lists_every_bad_line_with_its_line_and_reads_the_rest(corpus):
    from temporal_rl.filtering.run import read_samples

    data = read_samples(corpus["path"])
    bad_lines = {entry["line"]: entry["reason"] for entry in data.bad}
    assert sorted(bad_lines) == sorted(corpus["kinds"]), (bad_lines, corpus["kinds"])
    for _line, reason in bad_lines.items():
        assert reason and "Traceback" not in reason
    expected_ids = [r["id"] for r in corpus["good"]] + [
        r["id"] for r in [*corpus["prepared_bad"].values(), *corpus["odd_good"].values()]
    ]
    assert [r["id"] for r in data.records] == expected_ids
    # the strict reader stops at the first bad line, naming the file and the line
    with pytest.raises(RecordError, match=rf"mixed.jsonl, line {min(corpus['kinds'])}: not UTF-8"):
        read_records(corpus["path"], check_video=False)
    # GRPO / SFT data loading checks the videos too: a missing one is named with its line
    only_missing = corpus["root"] / "missing.jsonl"
    only_missing.write_text(json.dumps(corpus["prepared_bad"]["video: missing file"]) + "\n")
    with pytest.raises(RecordError, match=r"missing.jsonl, line 1, field 'video'"):
        load_dataset(only_missing)


def test_every_bad_video_is_refused_naming_the_file_in_every_video_reader(corpus):
    for kind, path in corpus["videos"].items():
        for read in (
            lambda p: decode_video(p, SAMPLING),
            lambda p: PathFrames(SAMPLING, None)({"video": str(p)}),
            lambda p: candidate_frames(p, num_candidates=4, selector_long_side=56, answer_long_side=56),
        ):
            with pytest.raises(VideoError) as info:
                read(path)
            assert info.value.path == str(path) and str(path) in str(info.value), kind
    upright = decode_video(corpus["odd_good"]["rotated phone video"]["video"], SAMPLING)
    assert upright.frames.shape[1] > upright.frames.shape[2]  # stored 64x32, shown 32x64: portrait


def test_generation_skips_and_lists_each_bad_record_and_leaves_the_good_ones_unchanged(corpus, tiny_model_dir):
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir).eval()
    odd = list(corpus["odd_good"].values())
    mixed = []
    for good, bad in zip(corpus["good"] * 3, [*corpus["prepared_bad"].values(), *odd], strict=False):
        mixed += [good, bad]
    mixed += [r for r in [*corpus["prepared_bad"].values(), *odd] if r not in mixed]
    options = GenerationOptions(max_new_tokens=4, batch_size=3)
    skipped = {}
    with_bad = list(
        iter_generations(model, processor, mixed, SAMPLING, None, generation=options,
                         on_error=lambda r, e: skipped.setdefault(r["id"], e.reason))
    )  # fmt: skip
    alone = list(iter_generations(model, processor, corpus["good"] + odd, SAMPLING, None, generation=options))
    assert sorted(skipped) == sorted(r["id"] for r in corpus["prepared_bad"].values())
    rows = []
    for kind, record in corpus["prepared_bad"].items():
        reason = skipped[record["id"]]
        rows.append((kind, "generation (eval, filter)", f"skipped, listed: {reason[:90]}"))
        if kind.startswith("video: "):
            assert str(Path(record["video"]).name) in reason, reason
    by_id = {g.record_id: g.completion_ids for g in with_bad}
    by_id_alone = {g.record_id: g.completion_ids for g in alone}
    assert by_id == by_id_alone  # the good samples (and the odd good one) come out exactly as alone
    print("\n| item | stage | outcome |\n|---|---|---|")
    for kind in corpus["kinds"].values():
        print(f"| {kind} | validation (filter, eval, SFT/GRPO loading) | skipped or refused, file + line named |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"| good samples beside them ({len(by_id)}) | generation | completions identical to a run without them |")


def test_sft_frames_refuse_a_wrong_duration_naming_the_record(corpus):
    record = corpus["prepared_bad"]["duration 10x the video's"]
    with pytest.raises(RecordError, match=r"record 'long': the record says"):
        PathFrames(SAMPLING, None)(record)
    shutil.rmtree(corpus["root"] / "videos" / "folder.mp4")  # leave the folder tidy for tmp clean-up
