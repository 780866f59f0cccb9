"""The variance-aware data filter as a run: sample K completions per sample, score them, decide, write the outputs.

    accelerate launch [--config_file recipes/accelerate_configs/ddp.yaml] recipes/filter_data.py \
        --config recipes/tiny/filter_grounding.yaml [--any_field value ...]

Writes into `output_dir`:

| file                 | content                                                                                    |
|----------------------|--------------------------------------------------------------------------------------------|
| `scored.jsonl`       | every scored sample: its record, K completions, the K x R reward matrix, per-reward stats, |
|                      | the keep decision and the rule that decided it                                             |
| `filtered.jsonl`     | the kept samples as canonical records (absolute video paths): a `train_file` as it is      |
| `report.json`        | counts kept and dropped per rule, task and source; reward distributions; bad samples with  |
|                      | their reasons; the config; timing and samples/s                                            |
| `report.png`         | histograms of pass rate (discrete rewards) and std (continuous rewards), kept vs dropped   |
| `shards/rank-*.jsonl` | the raw results, one line per finished batch, appended and fsynced (the resumable log)    |
| `filter_settings.json` | the settings the raw results were made with; a resumed run must use the same ones        |

**Work.** Batch b is the samples [b * batch_size, (b + 1) * batch_size) of the data file's valid records, in file
order; it goes through the generation engine (`temporal_rl.generation.iter_generations`) in one `generate` call:
each sample's prompt and video are prepared once (frames through the frame cache, one processor call) and its K
completions come from `num_return_sequences`. The batch is sampled with a seed derived from (seed, b) alone.

**Processes.** Under `accelerate launch`, process r of W handles the batches b with b % W == r and appends them to
its own shard file; after a barrier, process 0 reads every shard and writes the outputs in the data file's order.
Since a batch's content and seed do not depend on W, one process and several give the same outputs.

**Resuming.** A run killed at any moment (even SIGKILL) is started again with the same command: a torn last line
of a shard is cut, the batches already in the shards are skipped, and the others are generated exactly as an
uninterrupted run would have. The selection is computed from the raw results at the end of every run, so a run
with other thresholds (`min_std`, `max_kept`, ...) in the same `output_dir` re-selects without generating.

**Bad samples.** An invalid JSONL line (bad JSON, a record that fails validation, a duplicate id) and a record
whose prompt cannot be prepared (missing or undecodable video) are skipped, counted and listed in `report.json`;
the run goes on.

This module owns the filter run: data reading, batches, generation and scoring calls, the shard log, the merge,
the report and the figure. The keep/drop maths is `temporal_rl.filtering.selection`; the settings `FilterConfig`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from temporal_rl.data import (
    FIELDS,
    RecordError,
    check_not_empty,
    iter_lines,
    resolve_video_path,
    validate_record,
    write_jsonl,
)
from temporal_rl.filtering.config import FilterConfig
from temporal_rl.filtering.selection import CAP, DISCRETE, KEPT, select_by_reward_variance, stratified_cap
from temporal_rl.resumable import (
    append_jsonl,
    batch_seed,
    check_settings,
    complete_lines,
    drop_torn_tail,
    lock_output_dir,
    stop_with_launcher,
    write_json_atomic,
)

logger = logging.getLogger(__name__)

SCORED_FILE = "scored.jsonl"
FILTERED_FILE = "filtered.jsonl"
REPORT_FILE = "report.json"
FIGURE_FILE = "report.png"
SETTINGS_FILE = "filter_settings.json"
SHARD_DIR = "shards"

# Settings that change the raw results (completions and rewards): a resumed run must match them. The selection
# thresholds are not among them: the selection is recomputed from the raw results by every run.
RESUME_KEYS = (
    "model_name_or_path",
    "adapter",
    "dtype",
    "data_file",
    "data_sha256",
    "max_samples",
    "num_samples",
    "temperature",
    "top_p",
    "top_k",
    "max_new_tokens",
    "max_prompt_tokens",
    "batch_size",
    "seed",
    "reward_funcs",
    "sampling",
    "prompt",
)


# ---------------------------------------------------------------------------------------------------------------
# Data


@dataclass
class FilterData:
    """The data file as the filter sees it.

    Attributes:
        records: the valid records in file order, video paths made absolute.
        lines: the file line of each record.
        bad: one `{"line", "id", "stage": "read", "reason"}` per skipped line.
    """

    records: list[dict]
    lines: list[int]
    bad: list[dict]

    @property
    def num_samples(self) -> int:
        """Valid records plus skipped lines: every sample the file offered."""
        return len(self.records) + len(self.bad)


def read_samples(path: str | os.PathLike, max_samples: int | None = None) -> FilterData:
    """Read a canonical JSONL file line by line; an invalid line is a skipped sample, not an error.

    Args:
        path: the JSONL file.
        max_samples: stop after this many valid records.

    A line that is not UTF-8 is a skipped sample too, named by its line.

    Raises:
        RecordError: the file does not exist, or holds no line at all (empty or blank).
    """
    if not Path(path).is_file():
        raise RecordError("file not found", path=path)
    records, lines, bad, first_line = [], [], [], {}
    seen_lines = 0
    for number, text in iter_lines(path):
        if max_samples is not None and len(records) >= max_samples:
            break
        seen_lines += 1
        if isinstance(text, RecordError):
            bad.append({"line": number, "id": None, "stage": "read", "reason": text.reason})
            continue
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as err:
            bad.append({"line": number, "id": None, "stage": "read", "reason": f"invalid JSON: {err.msg}"})
            continue
        raw_id = raw.get("id") if isinstance(raw, dict) else None
        try:
            record = validate_record(raw, path=path, line=number, check_video=False)
        except RecordError as err:
            bad.append({"line": number, "id": raw_id, "stage": "read", "reason": str(err)})
            continue
        if record["id"] in first_line:
            reason = f"duplicate id {record['id']!r} (first on line {first_line[record['id']]})"
            bad.append({"line": number, "id": record["id"], "stage": "read", "reason": reason})
            continue
        first_line[record["id"]] = number
        record["video"] = str(resolve_video_path(record["video"], path))
        records.append(record)
        lines.append(number)
    if max_samples != 0:
        check_not_empty(path, seen_lines)
    return FilterData(records=records, lines=lines, bad=bad)


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def batch_ranges(num_records: int, batch_size: int) -> list[range]:
    """Record indices of each batch: batch b is [b * batch_size, (b + 1) * batch_size), the last one shorter."""
    return [range(start, min(start + batch_size, num_records)) for start in range(0, num_records, batch_size)]


SEED_NAMESPACE = "temporal_rl.filter"


def shard_batches(num_batches: int, rank: int, world_size: int) -> list[int]:
    """The batches process `rank` of `world_size` handles: b % world_size == rank."""
    return list(range(rank, num_batches, world_size))


# ---------------------------------------------------------------------------------------------------------------
# Generation and scoring of one batch


def _as_reward(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def reward_matrices(
    reward_funcs: Sequence[Callable[..., list]],
    records: Sequence[Mapping[str, Any]],
    completions: Sequence[Sequence[str]],
    completion_ids: Sequence[Sequence[Sequence[int]]] | None = None,
) -> list[list[list[float | None]]]:
    """Score the K completions of each record with every reward, one call per reward for the whole batch.

    The rewards get TRL's contract: `completions` (N * K texts, record-major) and every canonical column as a list
    of the same length (each record's value repeated K times), plus `completion_ids`.

    Args:
        reward_funcs: R reward functions.
        records: N canonical records.
        completions: N lists of K completion texts.
        completion_ids: N lists of K token id lists (optional).

    Returns:
        N matrices of shape (K, R): entry [k][r] is reward r of completion k (None where it does not apply).
    """
    if not records:
        return []
    k = len(completions[0])
    flat = [text for group in completions for text in group]
    columns = {name: [record.get(name) for record in records for _ in range(k)] for name in FIELDS}
    extra = {}
    if completion_ids is not None:
        extra["completion_ids"] = [ids for group in completion_ids for ids in group]
    per_reward = []
    for func in reward_funcs:
        values = list(func(completions=flat, **columns, **extra))
        if len(values) != len(flat):
            name = getattr(func, "__name__", repr(func))
            raise ValueError(f"reward {name} returned {len(values)} values for {len(flat)} completions")
        per_reward.append([_as_reward(v) for v in values])
    return [[[column[i * k + s] for column in per_reward] for s in range(k)] for i in range(len(records))]


@dataclass
class BatchResult:
    """The raw results of one batch: what the shard log stores.

    Attributes:
        batch: the batch index.
        samples: per generated record `{"index", "id", "completions", "completion_tokens", "prompt_tokens",
            "rewards"}` (rewards: the (K, R) matrix).
        bad: per record that could not be prepared `{"index", "id", "stage": "prepare", "reason"}`.
    """

    batch: int
    samples: list[dict] = field(default_factory=list)
    bad: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"batch": self.batch, "samples": self.samples, "bad": self.bad}


def generation_options(config: FilterConfig, batch: int):
    """The engine's decoding settings for batch `batch`: K samples per prompt, the batch's own seed."""
    from temporal_rl.generation import GenerationOptions

    return GenerationOptions(
        max_new_tokens=config.max_new_tokens,
        do_sample=True,
        temperature=config.temperature,
        top_p=config.top_p,
        top_k=config.top_k,
        num_return_sequences=config.num_samples,
        batch_size=config.batch_size,
        seed=batch_seed(SEED_NAMESPACE, config.seed, batch),
        max_prompt_tokens=config.max_prompt_tokens,
    )


def run_batch(
    model: Any,
    processor: Any,
    config: FilterConfig,
    reward_funcs: Sequence[Callable[..., list]],
    batch: int,
    indices: Sequence[int],
    records: Sequence[dict],
    cache: Any,
) -> BatchResult:
    """Generate K completions for each record of one batch (one `generate` call) and score them.

    Args:
        indices: the records' positions in the data (`FilterData.records`).
        records: the batch's records (at most `config.batch_size`).
        cache: the frame cache (`config.frame_cache()`), or None to decode every video.
    """
    from temporal_rl.generation import iter_generations

    result = BatchResult(batch=batch)
    index_of = {record["id"]: index for index, record in zip(indices, records, strict=True)}
    record_of = {record["id"]: record for record in records}

    def skip(record: dict, error) -> None:
        record_id = str(record.get("id"))
        result.bad.append(
            {"index": index_of.get(record_id), "id": record_id, "stage": "prepare", "reason": error.reason}
        )

    generations = list(
        iter_generations(
            model,
            processor,
            records,
            config.frame_sampling(),
            cache,
            prompt=config.prompt_options(),
            generation=generation_options(config, batch),
            on_error=skip,
        )
    )
    matrices = reward_matrices(
        reward_funcs,
        [record_of[g.record_id] for g in generations],
        [g.completions for g in generations],
        [g.completion_ids for g in generations],
    )
    for generation, matrix in zip(generations, matrices, strict=True):
        result.samples.append(
            {
                "index": index_of[generation.record_id],
                "id": generation.record_id,
                "completions": generation.completions,
                "completion_tokens": generation.completion_tokens,
                "prompt_tokens": generation.prompt_tokens,
                "rewards": matrix,
            }
        )
    return result


# ---------------------------------------------------------------------------------------------------------------
# The shard log


def shard_path(output_dir: str | os.PathLike, rank: int) -> Path:
    return Path(output_dir) / SHARD_DIR / f"rank-{rank:03d}.jsonl"


def append_batch(handle, result: BatchResult) -> None:
    """One line per finished batch, written whole, flushed and fsynced: a kill leaves at most one torn line."""
    append_jsonl(handle, [result.to_json()], ensure_ascii=True)


def read_shards(output_dir: str | os.PathLike) -> dict[int, dict]:
    """Every finished batch in the shard files, by batch index (the first copy if one appears twice).

    A last line without its newline (a write cut by a kill) is ignored; any other unreadable line is an error.
    """
    batches: dict[int, dict] = {}
    for path in sorted((Path(output_dir) / SHARD_DIR).glob("rank-*.jsonl")):
        for number, line in complete_lines(path):
            try:
                entry = json.loads(line)
                batch = int(entry["batch"])
            except (ValueError, KeyError, TypeError) as err:
                raise RecordError(
                    f"unreadable shard line ({err}); delete the output directory", path=path, line=number
                ) from None
            batches.setdefault(batch, entry)
    return batches


def run_settings(config: FilterConfig, data_sha256: str) -> dict[str, Any]:
    """The settings that determine the raw results (`RESUME_KEYS`), as JSON values."""
    return {
        "model_name_or_path": str(config.model_name_or_path),
        "adapter": None if config.adapter is None else str(config.adapter),
        "dtype": config.dtype,
        "data_file": str(Path(config.data_file).resolve()),
        "data_sha256": data_sha256,
        "max_samples": config.max_samples,
        "num_samples": config.num_samples,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "top_k": config.top_k,
        "max_new_tokens": config.max_new_tokens,
        "max_prompt_tokens": config.max_prompt_tokens,
        "batch_size": config.batch_size,
        "seed": config.seed,
        "reward_funcs": list(config.reward_funcs),
        "sampling": config.frame_sampling().to_dict(),
        "prompt": {"think": config.think, "span_format": config.span_format, "video_position": config.video_position},
    }


# ---------------------------------------------------------------------------------------------------------------
# Merge, selection, outputs


def _finite_or_none(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def merge_results(data: FilterData, batches: Mapping[int, dict], num_batches: int) -> tuple[list[dict], list[dict]]:
    """The raw results of every batch in data order, and the bad samples (read and prepare stages) in line order.

    Raises:
        RuntimeError: a batch is missing (a process did not finish) or does not match the data.
    """
    missing = [b for b in range(num_batches) if b not in batches]
    if missing:
        raise RuntimeError(f"{len(missing)} batch(es) missing from the shards (first: {missing[0]}); run again")
    samples, bad = [], list(data.bad)
    for b in range(num_batches):
        entry = batches[b]
        for row in entry["samples"] + entry["bad"]:
            index = row["index"]
            if index is None or not 0 <= index < len(data.records) or data.records[index]["id"] != row["id"]:
                raise RuntimeError(f"batch {b} of the shards does not match the data file (record {row['id']!r})")
        samples += entry["samples"]
        bad += [{**row, "line": data.lines[row["index"]]} for row in entry["bad"]]
    samples.sort(key=lambda row: row["index"])
    bad.sort(key=lambda row: row["line"])
    return samples, bad


@dataclass
class Decisions:
    """The selection over the scored samples (in data order).

    Attributes:
        keep: (N,) bool after the cap.
        rule: N rule names (`kept`, `cap`, `no_rule` or `<reward>:<reason>`).
        failed: N lists of every failed check.
        stats: N dicts `{reward: {"kind", "n", "mean", "std", "pass_rate"}}` (pass_rate for discrete rewards).
        kept_before_cap: how many the rules kept.
    """

    keep: np.ndarray
    rule: list[str]
    failed: list[list[str]]
    stats: list[dict]
    kept_before_cap: int


def decide(config: FilterConfig, records: Sequence[dict], samples: Sequence[dict]) -> Decisions:
    """Apply the selection rules and the cap (`temporal_rl.filtering.selection`) to the scored samples."""
    names, kinds = list(config.reward_funcs), config.reward_kinds()
    n, k, r = len(samples), config.num_samples, len(names)
    tensor = np.full((n, k, r), np.nan)
    for i, sample in enumerate(samples):
        tensor[i] = [[np.nan if v is None else v for v in row] for row in sample["rewards"]]
    selection = select_by_reward_variance(tensor, names, kinds, config.selection_rule())
    strata = [tuple(records[s["index"]][name] for name in config.stratify_by) for s in samples]
    keep = stratified_cap(selection.keep, strata, config.max_kept, config.seed)
    rule = [
        CAP if before and not after else name
        for before, after, name in zip(selection.keep, keep, selection.rule, strict=True)
    ]
    stats = []
    for i in range(n):
        row = {}
        for name, kind, stat in zip(names, kinds, selection.stats, strict=True):
            row[name] = {
                "kind": kind,
                "n": int(stat.count[i]),
                "mean": _finite_or_none(stat.mean[i]),
                "std": _finite_or_none(stat.std[i]),
                "pass_rate": _finite_or_none(stat.pass_rate[i]) if kind == DISCRETE else None,
            }
        stats.append(row)
    return Decisions(
        keep=keep, rule=rule, failed=selection.failed, stats=stats, kept_before_cap=int(selection.keep.sum())
    )


def scored_rows(config: FilterConfig, data: FilterData, samples: Sequence[dict], decisions: Decisions) -> list[dict]:
    rows = []
    for i, sample in enumerate(samples):
        record = data.records[sample["index"]]
        rows.append(
            {
                **record,
                "line": data.lines[sample["index"]],
                "completions": sample["completions"],
                "completion_tokens": sample["completion_tokens"],
                "prompt_tokens": sample["prompt_tokens"],
                "reward_names": list(config.reward_funcs),
                "rewards": sample["rewards"],
                "stats": decisions.stats[i],
                "keep": bool(decisions.keep[i]),
                "rule": decisions.rule[i],
                "failed": decisions.failed[i],
            }
        )
    return rows


def _count_block(rows: Sequence[dict]) -> dict[str, Any]:
    kept = sum(row["keep"] for row in rows)
    return {"scored": len(rows), "kept": kept, "dropped": len(rows) - kept, "by_rule": _sorted_counts(rows)}


def _sorted_counts(rows: Sequence[dict]) -> dict[str, int]:
    counts = Counter(row["rule"] for row in rows)
    return {rule: counts[rule] for rule in sorted(counts, key=lambda rule: (rule != KEPT, rule))}


def _quantiles(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    points = (0, 10, 25, 50, 75, 90, 100)
    return {f"p{p}": float(v) for p, v in zip(points, np.percentile(np.asarray(values), points), strict=True)}


def reward_distributions(config: FilterConfig, rows: Sequence[dict]) -> dict[str, Any]:
    """Per reward: how many samples it scores, quantiles of its mean and std, and for a discrete reward the count
    of samples per number of passing completions (out of K): the distribution to choose thresholds from."""
    result = {}
    k = config.num_samples
    for name, kind in zip(config.reward_funcs, config.reward_kinds(), strict=True):
        scored = [row["stats"][name] for row in rows if row["stats"][name]["n"] > 0]
        entry: dict[str, Any] = {
            "kind": kind,
            "samples": len(scored),
            "mean": _quantiles([s["mean"] for s in scored]),
            "std": _quantiles([s["std"] for s in scored]),
        }
        if kind == DISCRETE:
            passes = Counter(round(s["pass_rate"] * s["n"]) for s in scored)
            entry["passing_completions"] = {f"{j}/{k}": passes.get(j, 0) for j in range(k + 1)}
        result[name] = entry
    return result


def build_report(
    config: FilterConfig,
    data: FilterData,
    rows: Sequence[dict],
    bad: Sequence[dict],
    decisions: Decisions,
    timing: Mapping[str, Any],
) -> dict[str, Any]:
    """`report.json`: counts (kept and dropped per rule, task and source), distributions, bad samples, config."""
    kept = sum(row["keep"] for row in rows)
    by = {}
    for key in ("task", "source"):
        groups: dict[str, list] = {}
        for row in rows:
            groups.setdefault(row[key], []).append(row)
        bad_counts = Counter(data.records[b["index"]][key] for b in bad if b.get("index") is not None)
        by[key] = {
            value: {**_count_block(groups.get(value, [])), "bad": bad_counts.get(value, 0)}
            for value in sorted(set(groups) | set(bad_counts))
        }
    return {
        "data_file": str(config.data_file),
        "output_dir": str(config.output_dir),
        "counts": {
            "samples": data.num_samples,
            "scored": len(rows),
            "bad": len(bad),
            "kept": kept,
            "dropped": len(rows) - kept,
            "kept_before_cap": decisions.kept_before_cap,
            "kept_fraction": kept / len(rows) if rows else None,
        },
        "by_rule": _sorted_counts(rows),
        "by_task": by["task"],
        "by_source": by["source"],
        "rewards": reward_distributions(config, rows),
        "bad_samples": list(bad),
        "config": config.to_dict(),
        "timing": dict(timing),
    }


def write_figure(path: Path, config: FilterConfig, rows: Sequence[dict]) -> None:
    """Histograms, kept vs dropped: pass rate for each discrete reward, std for each continuous one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = config.num_samples
    panels = [(n, kind) for n, kind in zip(config.reward_funcs, config.reward_kinds(), strict=True) if kind]
    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for axis, (name, kind) in zip(axes[0], panels, strict=True):
        scored = [row for row in rows if row["stats"][name]["n"] > 0]
        metric = "pass_rate" if kind == DISCRETE else "std"
        values = {
            label: [row["stats"][name][metric] for row in scored if row["keep"] == flag]
            for label, flag in (("kept", True), ("dropped", False))
        }
        if kind == DISCRETE:
            bins = np.linspace(-0.5 / k, 1 + 0.5 / k, k + 2)
            bounds = (config.min_pass_rate, config.max_pass_rate)
            title = f"{name}: pass rate over K={k}"
        else:
            top = max([0.5, *values["kept"], *values["dropped"]])
            bins = np.linspace(0, top, 26)
            bounds = (config.min_std,)
            title = f"{name}: std over K={k} (population)"
        axis.hist(
            [values["kept"], values["dropped"]],
            bins=bins,
            stacked=True,
            color=["tab:green", "tab:gray"],
            label=[f"kept ({len(values['kept'])})", f"dropped ({len(values['dropped'])})"],
        )
        for bound in bounds:
            axis.axvline(bound, color="tab:red", linestyle="--", linewidth=1)
        axis.set(title=title, xlabel=metric.replace("_", " "), ylabel="samples")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _canonical(record: Mapping[str, Any]) -> dict:
    return {name: record[name] for name in FIELDS}


def write_outputs(
    config: FilterConfig, data: FilterData, samples: Sequence[dict], bad: Sequence[dict], timing: Mapping[str, Any]
) -> dict[str, Any]:
    """Select, then write scored.jsonl, filtered.jsonl, report.json and report.png (each atomically). Returns the
    report."""
    out = Path(config.output_dir)
    decisions = decide(config, data.records, samples)
    rows = scored_rows(config, data, samples, decisions)
    write_jsonl(out / SCORED_FILE, rows)
    write_jsonl(out / FILTERED_FILE, [_canonical(row) for row in rows if row["keep"]])
    report = build_report(config, data, rows, bad, decisions, timing)
    write_json_atomic(out / REPORT_FILE, report)
    write_figure(out / FIGURE_FILE, config, rows)
    return report


# ---------------------------------------------------------------------------------------------------------------
# The run


def _partial_state():
    import torch
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available())


def run_filter(config: FilterConfig) -> dict[str, Any] | None:
    """The whole filter on this process's shard; process 0 also merges and writes the outputs.

    Returns:
        The report (process 0), None on the other processes.
    """
    start = time.perf_counter()
    state = _partial_state()
    rank, world = state.process_index, state.num_processes
    out = Path(config.output_dir)
    (out / SHARD_DIR).mkdir(parents=True, exist_ok=True)
    stop_with_launcher()
    lock_output_dir(out, rank)  # a second live run (or a killed run's left-over worker) on this folder: refused

    data = read_samples(config.data_file, config.max_samples)
    ranges = batch_ranges(len(data.records), config.batch_size)
    settings = run_settings(config, file_sha256(config.data_file))

    # Cut torn tails (each process its own shard; process 0 those of processes that no longer exist), then take
    # stock of the finished batches before anyone appends.
    if drop_torn_tail(shard_path(out, rank)):
        logger.warning("%s: dropped a torn last line (interrupted write)", shard_path(out, rank))
    if state.is_main_process:
        for path in (out / SHARD_DIR).glob("rank-*.jsonl"):
            if int(path.stem.split("-")[1]) >= world and drop_torn_tail(path):
                logger.warning("%s: dropped a torn last line (interrupted write)", path)
    state.wait_for_everyone()
    done = set(read_shards(out))
    check_settings(
        out / SETTINGS_FILE,
        settings,
        RESUME_KEYS,
        has_results=bool(done),
        results="results",
        fix="use another output_dir or delete it",
        path=out,
    )
    state.wait_for_everyone()
    if state.is_main_process:
        write_json_atomic(out / SETTINGS_FILE, settings)

    todo = [b for b in shard_batches(len(ranges), rank, world) if b not in done]
    load_seconds, generate_start = 0.0, time.perf_counter()
    if todo:
        load_seconds, generate_start = _generate(config, data, ranges, todo, state)
    state.wait_for_everyone()
    if not state.is_main_process:
        return None

    generate_seconds = time.perf_counter() - generate_start
    batches = read_shards(out)
    samples, bad = merge_results(data, batches, len(ranges))
    generated = sum(len(batches[b]["samples"]) + len(batches[b]["bad"]) for b in batches if b not in done)
    timing = {
        "world_size": world,
        "batches": len(ranges),
        "batches_resumed": len(done),
        "samples_generated": generated,
        "load_seconds": round(load_seconds, 3),
        "generate_seconds": round(generate_seconds, 3),
        "samples_per_second": round(generated / generate_seconds, 3) if generated and generate_seconds else None,
        "completions_per_second": (
            round(generated * config.num_samples / generate_seconds, 3) if generated and generate_seconds else None
        ),
        "seconds_before_outputs": round(time.perf_counter() - start, 3),
    }
    return write_outputs(config, data, samples, bad, timing)


def _generate(
    config: FilterConfig, data: FilterData, ranges: Sequence[range], todo: Sequence[int], state
) -> tuple[float, float]:
    """Load the model, then run and log this process's unfinished batches.

    Returns:
        (seconds the model took to load, `time.perf_counter()` when generation started).
    """
    load_start = time.perf_counter()
    from tqdm import tqdm

    from temporal_rl.models.loading import load_inference_model
    from temporal_rl.rewards import get_reward_funcs

    model, processor = load_inference_model(
        config.model_name_or_path, config.adapter, device=str(state.device), dtype=config.dtype
    )
    reward_funcs = get_reward_funcs(config.reward_funcs)
    cache = config.frame_cache()
    generate_start = time.perf_counter()
    total = sum(len(ranges[b]) for b in todo)
    bar = tqdm(
        total=total,
        desc=f"filter (process {state.process_index} of {state.num_processes})",
        unit="sample",
        file=sys.stderr,
        disable=not (config.progress and state.is_main_process),
    )
    with bar, open(shard_path(config.output_dir, state.process_index), "a", encoding="utf-8") as handle:
        for b in todo:
            indices = list(ranges[b])
            records = [data.records[i] for i in indices]
            result = run_batch(model, processor, config, reward_funcs, b, indices, records, cache)
            append_batch(handle, result)
            bar.update(len(indices))
    return generate_start - load_start, generate_start


def format_summary(report: Mapping[str, Any]) -> str:
    """A few lines for the terminal: counts, rules, per task, timing."""
    counts, timing = report["counts"], report["timing"]
    lines = [
        f"scored {counts['scored']} of {counts['samples']} samples ({counts['bad']} bad): kept {counts['kept']}, "
        f"dropped {counts['dropped']}"
        + (
            f" (the rules kept {counts['kept_before_cap']} before the cap)"
            if counts["kept_before_cap"] != counts["kept"]
            else ""
        ),
        "by rule: " + ", ".join(f"{rule} {n}" for rule, n in report["by_rule"].items()),
    ]
    for task, block in report["by_task"].items():
        lines.append(f"  {task}: kept {block['kept']} of {block['scored']} ({block['bad']} bad)")
    if timing.get("samples_per_second"):
        lines.append(
            f"{timing['samples_generated']} samples in {timing['generate_seconds']:.1f} s "
            f"({timing['samples_per_second']:.2f} samples/s, {timing['world_size']} process(es))"
        )
    for bad in report["bad_samples"]:
        lines.append(f"  bad: line {bad['line']} ({bad['id'] or 'no id'}): {bad['reason']}")
    return "\n".join(lines)
