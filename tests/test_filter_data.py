"""The variance-aware data filter end to end (`recipes/filter_data.py`, `temporal_rl.filtering.run`) on the tiny model.

Data: 6 synthetic grounding and 3 mcq clips, a record whose video does not exist, a line of broken JSON and a record
that fails validation. The untrained tiny model never produces a parseable answer, so its IoU and accuracy are
always 0 and nothing would vary; the rewards that decide here are the test's own (dotted paths, see
`REWARD_MODULE`): a continuous one that is constant on even-numbered grounding clips (always dropped) and follows
the completion's text on odd ones, and a 0/1 one on mcq clips that follows the text.

1. One run: the outputs exist and agree (filtered is the kept part of scored, counts add up per rule, task and
   source, the statistics are those of the stored reward matrix, bad samples are listed with their reasons), and
   `filtered.jsonl` loads as a GRPO train file.
2. A second run in the same directory with other thresholds re-selects without loading the model; a run with other
   sampling settings is refused.
3. The recipe's CLI killed with SIGKILL part-way (and a torn line appended to its shard) and started again ends with
   the same bytes as the uninterrupted run.
4. `accelerate launch` with two CPU processes writes the same bytes as one process.
5. The shipped recipes parse; invalid settings fail with a message that says how to fix them.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from trl import TrlParser

from data_tools.synth import generate_dataset
from temporal_rl.data import RecordError, read_records
from temporal_rl.environment import child_environment
from temporal_rl.families import DEFAULT_FAMILY, FAMILIES
from temporal_rl.filtering.config import FilterConfig
from temporal_rl.filtering.run import (
    FIGURE_FILE,
    FILTERED_FILE,
    REPORT_FILE,
    SCORED_FILE,
    SEED_NAMESPACE,
    read_shards,
    run_filter,
    shard_path,
)
from temporal_rl.resumable import SettingsChanged, batch_seed

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
CONTINUOUS = "filter_test_rewards.spread_reward"
DISCRETE = "filter_test_rewards.coin_reward"
NUM_BATCHES = 5  # 10 valid records, batch_size 2

REWARD_MODULE = '''
from temporal_rl.rewards.parsing import completion_text


def _text_value(completion):
    return sum(map(ord, completion_text(completion))) % 101 / 100


def spread_reward(completions, task, id, **kwargs):
    """Grounding only: 0.5 on even-numbered clips (no spread: always dropped), else a value of the text."""
    return [
        None if t != "grounding" else 0.5 if int(i[-1]) % 2 == 0 else _text_value(c)
        for c, t, i in zip(completions, task, id, strict=True)
    ]


def coin_reward(completions, task, **kwargs):
    """Mcq only: 1 or 0 by the text."""
    return [None if t != "mcq" else float(_text_value(c) >= 0.5) for c, t in zip(completions, task, strict=True)]
'''

# The settings of every run here; `_cli_args` spells the same ones for the recipe's command line.
SETTINGS = dict(
    num_samples=4,
    batch_size=2,
    max_new_tokens=16,
    dtype="float32",
    span_format="plain",
    video_position="last",
    video_min_pixels=784,
    video_max_pixels=3136,
    reward_funcs=["format", CONTINUOUS, DISCRETE],
    discrete_rewards=[DISCRETE],
    continuous_rewards=[CONTINUOUS],
    progress=False,
)


@pytest.fixture(scope="module")
def reward_path(tmp_path_factory):
    folder = tmp_path_factory.mktemp("filter_rewards")
    (folder / "filter_test_rewards.py").write_text(REWARD_MODULE)
    sys.path.insert(0, str(folder))
    yield folder
    sys.path.remove(str(folder))


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("filter_data")
    lines = []
    for task, n, folder in (("grounding", 6, "g"), ("mcq", 3, "m")):
        for record in generate_dataset(task, "train", n, "filter-test", root / folder, workers=1, progress=False):
            lines.append(json.dumps({**record, "video": f"{folder}/{record['video']}"}))
    missing = {**json.loads(lines[1]), "id": "video-gone", "video": "g/videos/never-rendered.mp4"}
    invalid = {**json.loads(lines[7]), "id": "no-options", "options": None}  # an mcq record needs its options
    lines[3:3] = [json.dumps(missing), '{"id": "torn", "video": ']
    lines.append(json.dumps(invalid))
    path = root / "data.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _config(model_dir, data_file, out, **overrides) -> FilterConfig:
    settings = {**SETTINGS, **overrides}
    return FilterConfig(
        model_name_or_path=str(model_dir),
        data_file=str(data_file),
        output_dir=str(out),
        frame_cache_dir=str(Path(out).parent / "frames"),
        **settings,
    )


def _run(config):
    """run_filter in this process, leaving accelerate's process state as it was."""
    from accelerate import PartialState

    fresh = not PartialState._shared_state
    try:
        return run_filter(config)
    finally:
        if fresh:
            PartialState._reset_state()


@pytest.fixture(scope="module")
def reference(tiny_model_dir, data_file, reward_path, tmp_path_factory):
    """One uninterrupted run: (output directory, report)."""
    out = tmp_path_factory.mktemp("filter_reference") / "out"
    return out, _run(_config(tiny_model_dir, data_file, out))


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ---------------------------------------------------------------------------------------------------------------
# 1-2. In-process runs


def test_outputs_exist_and_agree(reference, data_file):
    _check_outputs(*reference)


@pytest.mark.slow
@pytest.mark.parametrize("family", [f for f in FAMILIES if f != DEFAULT_FAMILY])
def test_other_families_filter_the_same_way(family, tiny_family_dir, data_file, reward_path, tmp_path):
    """The whole run on another family's tiny model (the default's is `reference`), 64 px frames (sides x 32)."""
    out = tmp_path / "out"
    report = _run(_config(tiny_family_dir(family), data_file, out, video_max_pixels=64 * 64))
    _check_outputs(out, report)


def _check_outputs(out, report):
    for name in (SCORED_FILE, FILTERED_FILE, REPORT_FILE, FIGURE_FILE):
        assert (out / name).is_file(), name
    assert (out / FIGURE_FILE).read_bytes().startswith(b"\x89PNG")
    assert json.loads((out / REPORT_FILE).read_text()) == report

    scored, filtered = _lines(out / SCORED_FILE), _lines(out / FILTERED_FILE)
    # 12 samples offered: 9 scored, 3 bad (broken JSON, invalid record, missing video)
    counts = report["counts"]
    assert (counts["samples"], counts["scored"], counts["bad"]) == (12, 9, 3)
    assert counts["kept"] + counts["dropped"] == counts["scored"] == len(scored)
    assert counts["scored"] + counts["bad"] == counts["samples"]
    assert sum(report["by_rule"].values()) == len(scored)
    for key in ("by_task", "by_source"):
        assert sum(block["kept"] for block in report[key].values()) == counts["kept"]
        assert sum(block["scored"] for block in report[key].values()) == counts["scored"]
        for block in report[key].values():
            assert block["kept"] + block["dropped"] == block["scored"] == sum(block["by_rule"].values())

    # bad samples: listed by line with their reasons; the run went on
    bad = {row["line"]: row for row in report["bad_samples"]}
    assert sorted(bad) == [4, 5, 12]
    assert bad[4]["id"] == "video-gone" and "never-rendered.mp4" in bad[4]["reason"]
    assert "invalid JSON" in bad[5]["reason"]
    assert bad[12]["id"] == "no-options" and "field 'options'" in bad[12]["reason"]

    # filtered = the kept rows of scored, canonical, in data order, and a GRPO train file as it is
    assert [row["id"] for row in filtered] == [row["id"] for row in scored if row["keep"]]
    assert [row["line"] for row in scored] == sorted(row["line"] for row in scored)
    canonical = read_records(out / FILTERED_FILE)  # validates every field and that the videos exist
    assert all(Path(record["video"]).is_file() for record in canonical)
    from temporal_rl.configs import DataArguments
    from temporal_rl.training import load_splits

    train, _ = load_splits(DataArguments(train_file=str(out / FILTERED_FILE)))
    assert len(train) == len(filtered) > 0

    # the decisions: even grounding clips never vary; the kept ones pass their rule; mcq decided by pass rate
    for row in scored:
        assert row["reward_names"] == SETTINGS["reward_funcs"]
        matrix = np.array([[np.nan if v is None else v for v in r] for r in row["rewards"]], dtype=float)
        assert matrix.shape == (4, 3)
        for j, name in enumerate(row["reward_names"]):
            column = matrix[:, j][~np.isnan(matrix[:, j])]
            stats = row["stats"][name]
            assert stats["n"] == len(column)
            if len(column):
                assert stats["mean"] == pytest.approx(column.mean()) and stats["std"] == pytest.approx(column.std())
        if row["task"] == "grounding":
            assert row["stats"][DISCRETE]["n"] == 0
            if int(row["id"][-1]) % 2 == 0:
                assert not row["keep"] and row["rule"] == f"{CONTINUOUS}:low_std"
            else:
                assert row["keep"] == (row["stats"][CONTINUOUS]["std"] > 0.05)
        else:
            pass_rate = row["stats"][DISCRETE]["pass_rate"]
            assert row["keep"] == (0 < pass_rate < 1)
            assert row["rule"] in ("kept", f"{DISCRETE}:too_hard", f"{DISCRETE}:too_easy")
    assert 0 < counts["kept"] < counts["scored"]  # the decisions are not trivial


def test_reselect_without_generating_and_refuse_other_settings(reference, tiny_model_dir, data_file, monkeypatch):
    """The raw results are reused: new thresholds cost no generation. Other sampling settings are refused."""
    import shutil

    out = reference[0].parent / "reselect"
    shutil.copytree(reference[0], out)

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded although every batch was done")

    monkeypatch.setattr("temporal_rl.models.loading.load_inference_model", no_model)
    report = _run(_config(tiny_model_dir, data_file, out, max_kept=1, min_std=0.0))
    assert report["counts"]["kept"] == 1 and report["counts"]["kept_before_cap"] >= reference[1]["counts"]["kept"]
    assert report["by_rule"]["cap"] == report["counts"]["kept_before_cap"] - 1
    assert len(_lines(out / FILTERED_FILE)) == 1
    assert report["timing"]["samples_generated"] == 0 and report["timing"]["batches_resumed"] == NUM_BATCHES

    with pytest.raises(SettingsChanged, match=r"other settings \(seed: 0 -> 1\)"):
        _run(_config(tiny_model_dir, data_file, out, seed=1))


def test_batch_seeds_depend_on_seed_and_batch_only():
    seeds = {batch_seed(SEED_NAMESPACE, s, b) for s in range(3) for b in range(50)}
    assert len(seeds) == 150 and all(0 <= s < 2**63 for s in seeds)
    assert batch_seed(SEED_NAMESPACE, 7, 3) == batch_seed(SEED_NAMESPACE, 7, 3)
    # the filter's seeds are those it has always drawn with: a run resumed across versions samples the same batches
    assert batch_seed(SEED_NAMESPACE, 0, 3) == 0x307932262356A102


# ---------------------------------------------------------------------------------------------------------------
# 3-4. Real processes


def _env(reward_path) -> dict[str, str]:
    return child_environment([reward_path])


def _cli_args(model_dir, data_file, out, frames) -> list[str]:
    args = [
        "--config", str(RECIPES / "tiny/filter_grounding.yaml"),
        "--model_name_or_path", str(model_dir),
        "--data_file", str(data_file),
        "--output_dir", str(out),
        "--frame_cache_dir", str(frames),
        "--reward_funcs", *SETTINGS["reward_funcs"],
        "--discrete_rewards", *SETTINGS["discrete_rewards"],
        "--continuous_rewards", *SETTINGS["continuous_rewards"],
    ]  # fmt: skip
    for name, value in SETTINGS.items():
        if not isinstance(value, list):
            args += [f"--{name}", str(value)]
    return args


def _assert_same_outputs(out: Path, reference_out: Path) -> None:
    for name in (SCORED_FILE, FILTERED_FILE):
        assert (out / name).read_bytes() == (reference_out / name).read_bytes(), name
    report, expected = (json.loads((d / REPORT_FILE).read_text()) for d in (out, reference_out))
    for key in ("counts", "by_rule", "by_task", "by_source", "rewards", "bad_samples"):
        assert report[key] == expected[key], key


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-4000:] if path.exists() else "(no output)"


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_output(reference, tiny_model_dir, data_file, reward_path, tmp_path):
    """SIGKILL as soon as the first batch is in the shard (a batch takes ~0.4 s here with a cold frame cache, the
    poll 0.02 s), a torn line appended as a kill inside a write would leave, then the same command again."""
    out, frames, log = tmp_path / "out", tmp_path / "frames", tmp_path / "run.log"
    command = [sys.executable, str(RECIPES / "filter_data.py"), *_cli_args(tiny_model_dir, data_file, out, frames)]
    shard = shard_path(out, 0)
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=REPO, env=_env(reward_path), stdout=output, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 240
        while process.poll() is None and time.monotonic() < deadline:
            if shard.is_file() and shard.read_bytes().count(b"\n") >= 1:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, f"the run ended before it could be killed:\n{_tail(log)}"
    done = len(read_shards(out))
    assert 0 < done < NUM_BATCHES, done
    assert not (out / SCORED_FILE).exists()
    with shard.open("ab") as handle:
        handle.write(b'{"batch": 4, "samples": [{"index": 8, "id": "synth-filt')

    with log.open("w") as output:
        result = subprocess.run(
            command, cwd=REPO, env=_env(reward_path), stdout=output, stderr=subprocess.STDOUT, timeout=300
        )
    assert result.returncode == 0, _tail(log)
    _assert_same_outputs(out, reference[0])
    report = json.loads((out / REPORT_FILE).read_text())
    assert report["timing"]["batches_resumed"] == done
    assert sorted(read_shards(out)) == list(range(NUM_BATCHES))  # each batch once, the torn line gone
    lines = shard.read_bytes().splitlines()
    assert len(lines) == NUM_BATCHES and all(json.loads(line)["batch"] in range(NUM_BATCHES) for line in lines)


@pytest.mark.slow
def test_two_processes_write_what_one_process_writes(reference, tiny_model_dir, data_file, reward_path, tmp_path):
    out, log = tmp_path / "out", tmp_path / "launch.log"
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(RECIPES / "accelerate_configs/cpu_2proc.yaml"),
        str(RECIPES / "filter_data.py"),
        *_cli_args(tiny_model_dir, data_file, out, tmp_path / "frames"),
    ]  # fmt: skip
    with log.open("w") as output:
        result = subprocess.run(
            command, cwd=REPO, env=_env(reward_path), stdout=output, stderr=subprocess.STDOUT, timeout=300
        )
    assert result.returncode == 0, _tail(log)
    # each process wrote its own shard: batches 0, 2, 4 and 1, 3
    for rank, batches in ((0, [0, 2, 4]), (1, [1, 3])):
        assert [json.loads(line)["batch"] for line in shard_path(out, rank).read_text().splitlines()] == batches
    _assert_same_outputs(out, reference[0])
    assert json.loads((out / REPORT_FILE).read_text())["timing"]["world_size"] == 2


# ---------------------------------------------------------------------------------------------------------------
# 5. Recipes and validation


@pytest.mark.parametrize(
    "path",
    [RECIPES / "tiny/filter_grounding.yaml", RECIPES / "Qwen2.5-VL-7B-Instruct/filter/charades_sta.yaml"],
    ids=lambda p: str(p.relative_to(RECIPES)),
)
def test_shipped_recipes_parse(path):
    (config,) = TrlParser((FilterConfig,)).parse_args_and_config(args=["--config", str(path)])
    assert config.num_samples == 8 and config.temperature == 1.0  # the paper's G and temperature
    assert config.continuous_rewards == ["iou"] and config.reward_kinds()[config.reward_funcs.index("iou")]
    config.frame_sampling()


@pytest.mark.parametrize(
    ("filter_recipe", "grpo_recipe"),
    [
        ("tiny/filter_grounding.yaml", "tiny/grpo_grounding.yaml"),
        ("Qwen2.5-VL-7B-Instruct/filter/charades_sta.yaml", "Qwen2.5-VL-7B-Instruct/grpo/charades_sta.yaml"),
    ],
)
def test_filter_recipes_see_the_prompts_their_grpo_recipe_trains_on(filter_recipe, grpo_recipe):
    """Same frames, prompt wording, group size, temperature, completion length and rewards as the GRPO recipe the
    filtered file is for: otherwise the spread the filter measures is not the one GRPO will see."""
    from dataclasses import fields

    from temporal_rl.configs import DataArguments, VideoArguments
    from temporal_rl.grpo.config import TemporalGRPOConfig
    from temporal_rl.models.loading import TemporalModelConfig

    (config,) = TrlParser((FilterConfig,)).parse_args_and_config(args=["--config", str(RECIPES / filter_recipe)])
    _, grpo, model = TrlParser((DataArguments, TemporalGRPOConfig, TemporalModelConfig)).parse_args_and_config(
        args=["--config", str(RECIPES / grpo_recipe), "--bf16", "false", "--use_cpu", "true"]
    )
    for name in (f.name for f in fields(VideoArguments) if f.name != "frame_cache_dir"):
        assert getattr(config, name) == getattr(grpo, name), name
    assert (config.num_samples, config.temperature) == (grpo.num_generations, grpo.temperature)
    assert config.max_new_tokens == grpo.max_completion_length
    assert config.reward_funcs == grpo.reward_funcs
    assert config.model_name_or_path == model.model_name_or_path
    assert config.dtype == model.dtype


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(num_samples=1), "num_samples must be at least 2"),
        (dict(temperature=0.0), "temperature must be > 0"),
        (dict(reward_funcs=["iou", "iuo"], continuous_rewards=["iou"]), "unknown reward 'iuo'"),
        (dict(reward_funcs=["iou"], discrete_rewards=["accuracy"]), "add it to reward_funcs"),
        (dict(discrete_rewards=["iou"], continuous_rewards=["iou"]), "in both discrete_rewards and continuous"),
        (dict(discrete_rewards=[], continuous_rewards=[]), "no sample could be kept"),
        (dict(min_pass_rate=0.6, max_pass_rate=0.4), "fix min_pass_rate/max_pass_rate"),
        (dict(max_kept=0), "max_kept must be a positive count or null"),
        (dict(max_prompt_tokens=0), "max_prompt_tokens must be a positive integer"),
        (dict(stratify_by=["question_type"]), "use [] to draw the cap uniformly"),
        (dict(model_name_or_path=None), "model_name_or_path is required"),
        (dict(video_min_pixels=5000, video_max_pixels=4000), "check the video_* fields"),
    ],
)
def test_invalid_settings_fail_with_the_fix(overrides, message):
    settings = {**dict(model_name_or_path="m", data_file="d.jsonl", output_dir="o"), **overrides}
    with pytest.raises(ValueError) as error:
        FilterConfig(**settings)
    assert message in str(error.value)


def test_missing_data_file_is_an_error_naming_it(tiny_model_dir, tmp_path):
    with pytest.raises(RecordError, match="absent.jsonl: file not found"):
        _run(_config(tiny_model_dir, tmp_path / "absent.jsonl", tmp_path / "out"))


def test_a_line_that_is_not_utf8_is_a_listed_skip_and_the_rest_is_read(tmp_path):
    """One byte that is not UTF-8 used to kill the filter with a traceback and nothing written."""
    from temporal_rl.filtering.run import read_samples

    record = {"id": "a", "video": "v.mp4", "duration": 10.0, "task": "grounding", "question": "When?",
              "options": None, "answer": None, "spans": [[1.0, 2.0]], "source": "s", "meta": {}}  # fmt: skip
    good = json.dumps(record).encode()
    path = tmp_path / "data.jsonl"
    path.write_bytes(good + b"\n" + good.replace(b'"a"', b'"b\xc3"') + b"\n" + good.replace(b'"a"', b'"c"') + b"\n")
    data = read_samples(path)
    assert [r["id"] for r in data.records] == ["a", "c"] and data.lines == [1, 3]
    assert data.bad == [{"line": 2, "id": None, "stage": "read", "reason": "not UTF-8 text (byte 0xc3 at column 10)"}]


@pytest.mark.parametrize(("content", "words"), [(b"", "empty"), (b"\n \n", "only blank lines")])
def test_an_empty_data_file_is_an_error_naming_it(content, words, tmp_path):
    from temporal_rl.filtering.run import read_samples

    path = tmp_path / "data.jsonl"
    path.write_bytes(content)
    with pytest.raises(RecordError, match=f"data.jsonl: the file .*{words}"):
        read_samples(path)
