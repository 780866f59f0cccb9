"""Does variance-aware data selection help GRPO? Filtered vs random vs full training sets, same optimizer steps.

On the synthetic grounding task with an SFT-warm-started tiny Qwen2.5-VL (`make demo` writes one to
`runs/demo/sft`):

1. run the filter (`temporal_rl.filtering.run`, the `filter_recipe`) on the training set with the SFT model;
2. for each seed, GRPO (`temporal_rl.grpo.trainer.train_grpo`, the `grpo_recipe`) from the SFT model on
   (a) `filtered`: the kept samples, (b) `random`: a random subset of the training set of the same size (drawn
   with the seed), (c) `full`: the whole training set; every run takes the same number of optimizer steps;
3. evaluate each trained model on the held-out split with greedy decoding
   (`temporal_rl.eval.run.evaluate_model`), and the SFT model once as the starting point;
4. write `results.json` (every run's metrics, the per-arm mean and std over seeds, the filter's counts, the share
   of GRPO groups with zero reward spread, configs, timings) and `results.md` (the table).

Each finished run leaves `runs/<arm>/seed<seed>/eval.json`; started again, the experiment skips what is done (the
filter resumes on its own).

This module owns the experiment's sequence and its report; filtering, training and evaluation are the library's.
"""

from __future__ import annotations

import json
import logging
import random
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from temporal_rl.configs import parse_config, parse_recipe
from temporal_rl.data import FIELDS, read_records, write_jsonl
from temporal_rl.eval.run import evaluate_model
from temporal_rl.filtering.config import FilterConfig
from temporal_rl.filtering.run import FILTERED_FILE, run_filter
from temporal_rl.grpo.config import TemporalGRPOConfig

logger = logging.getLogger(__name__)

ARMS = ("filtered", "random", "full")
METRICS = ("mIoU", "R@0.3", "R@0.5", "R@0.7")


@dataclass
class FilterExperimentConfig:
    """The experiment's knobs; filter and GRPO settings come from their recipes, with the overrides below."""

    output_dir: str = field(default="runs/filter-experiment", metadata={"help": "Where everything goes."})
    sft_model: str = field(default="runs/demo/sft", metadata={"help": "The SFT-warm-started model GRPO starts from."})
    train_file: str = field(default="runs/demo/data/train/data.jsonl", metadata={"help": "Training set to filter."})
    test_file: str = field(default="runs/demo/data/test/data.jsonl", metadata={"help": "Held-out evaluation set."})
    filter_recipe: str = field(default="recipes/tiny/filter_grounding.yaml", metadata={"help": "Filter recipe YAML."})
    grpo_recipe: str = field(default="recipes/tiny/grpo_grounding.yaml", metadata={"help": "GRPO recipe YAML."})
    frame_cache_dir: str = field(default="runs/demo/frames", metadata={"help": "Frame cache shared by every stage."})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "GRPO seeds (and random draws)."})
    arms: list[str] = field(default_factory=lambda: list(ARMS), metadata={"help": "Any of filtered, random, full."})
    grpo_steps: int | None = field(default=None, metadata={"help": "Optimizer steps of every run (recipe's)."})
    grpo_batch_size: int | None = field(default=None, metadata={"help": "per_device_train_batch_size override."})
    grpo_num_generations: int | None = field(default=None, metadata={"help": "num_generations override."})
    filter_num_samples: int | None = field(default=None, metadata={"help": "Filter's K override."})
    filter_min_std: float | None = field(default=None, metadata={"help": "Filter's min_std override."})
    filter_batch_size: int | None = field(default=None, metadata={"help": "Filter's batch_size override."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use the first N training samples."})
    max_test_samples: int | None = field(default=None, metadata={"help": "Evaluate on the first N test samples."})
    eval_batch_size: int = field(default=32, metadata={"help": "Records per generate call in evaluation."})

    def __post_init__(self):
        unknown = [arm for arm in self.arms if arm not in ARMS]
        if unknown or not self.arms:
            raise ValueError(f"arms must be a non-empty subset of {', '.join(ARMS)}, got {self.arms}")
        if not self.seeds:
            raise ValueError("seeds is empty: give at least one seed, e.g. --seeds 0 1 2")
        for name in ("max_train_samples", "max_test_samples", "grpo_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be a positive count or null, got {value}")


# ---------------------------------------------------------------------------------------------------------------
# Pure helpers


def random_subset(records: Sequence[dict], size: int, seed: int) -> list[dict]:
    """`size` records drawn uniformly without replacement with `random.Random(seed)`, kept in their file order."""
    if not 0 <= size <= len(records):
        raise ValueError(f"cannot draw {size} of {len(records)} records")
    chosen = sorted(random.Random(seed).sample(range(len(records)), size))
    return [records[i] for i in chosen]


def summarise_runs(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per arm: seeds, training-set size, and mean / std (sample std, over seeds) of each metric.

    Example:
        ```python
        >>> runs = [{"arm": "full", "seed": s, "train_size": 8, "metrics": {"mIoU": v}} for s, v in [(0, 1), (1, 3)]]
        >>> summarise_runs(runs)["full"]["mIoU"]
        {'mean': 2.0, 'std': 1.4142135623730951}
        ```
    """
    by_arm: dict[str, list] = {}
    for run in runs:
        by_arm.setdefault(run["arm"], []).append(run)
    summary = {}
    for arm in [a for a in ARMS if a in by_arm]:
        arm_runs = by_arm[arm]
        entry: dict[str, Any] = {
            "seeds": [run["seed"] for run in arm_runs],
            "train_size": arm_runs[0]["train_size"],
        }
        names = [name for name in (*METRICS, "frac_reward_zero_std") if name in arm_runs[0]["metrics"]]
        for name in names:
            values = [run["metrics"][name] for run in arm_runs if run["metrics"].get(name) is not None]
            if values:
                entry[name] = {
                    "mean": statistics.fmean(values),
                    "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                }
        summary[arm] = entry
    return summary


def markdown_table(summary: Mapping[str, Mapping[str, Any]], sft: Mapping[str, float] | None) -> str:
    """The arms as a markdown table: mean ± std over seeds."""
    header = "| training set | samples | seeds | " + " | ".join(METRICS) + " | zero-spread groups |"
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    if sft is not None:
        lines.append("| SFT start (no GRPO) | - | - | " + " | ".join(f"{sft[m]:.1f}" for m in METRICS) + " | - |")
    for arm, entry in summary.items():
        cells = [f"{entry[m]['mean']:.1f} ± {entry[m]['std']:.1f}" if m in entry else "-" for m in METRICS]
        zero = entry.get("frac_reward_zero_std")
        zero_cell = f"{100 * zero['mean']:.0f}%" if zero else "-"
        lines.append(f"| {arm} | {entry['train_size']} | {len(entry['seeds'])} | {' | '.join(cells)} | {zero_cell} |")
    return "\n".join(lines)


def _grounding_row(report: Mapping[str, Any]) -> dict[str, float]:
    return {name: round(report["tasks"]["grounding"][name], 2) for name in METRICS}


def _mean_logged(log_history: Sequence[Mapping[str, Any]], key: str) -> float | None:
    values = [entry[key] for entry in log_history if isinstance(entry.get(key), (int, float))]
    return statistics.fmean(values) if values else None


# ---------------------------------------------------------------------------------------------------------------
# The experiment


def _canonical(records: Sequence[dict]) -> list[dict]:
    return [{name: record[name] for name in FIELDS} for record in records]


def _pool(path: str, limit: int | None, out: Path) -> Path:
    """The data file, or its first `limit` records written to `out` (videos absolute)."""
    if limit is None:
        return Path(path)
    write_jsonl(out, _canonical(read_records(path)[:limit]))
    return out


def _filter_config(config: FilterExperimentConfig, train_file: Path, out: Path) -> FilterConfig:
    overrides = {
        "model_name_or_path": config.sft_model,
        "data_file": train_file,
        "output_dir": out / "filter",
        "frame_cache_dir": config.frame_cache_dir,
        "num_samples": config.filter_num_samples,
        "min_std": config.filter_min_std,
        "batch_size": config.filter_batch_size,
        "progress": True,
    }
    (filter_config,) = parse_config(config.filter_recipe, (FilterConfig,), overrides)
    return filter_config


def _run_filter_here(filter_config: FilterConfig) -> dict:
    """The filter in this process, leaving accelerate's process state as the trainers expect to find it."""
    from accelerate import PartialState

    fresh = not PartialState._shared_state
    try:
        return run_filter(filter_config)
    finally:
        if fresh:
            PartialState._reset_state()


def _grpo_overrides(config: FilterExperimentConfig, train_file: Path, output_dir: Path, seed: int) -> dict:
    return {
        "train_file": train_file,
        "model_name_or_path": config.sft_model,
        "output_dir": output_dir,
        "seed": seed,
        "frame_cache_dir": config.frame_cache_dir,
        "max_steps": config.grpo_steps,
        "per_device_train_batch_size": config.grpo_batch_size,
        "num_generations": config.grpo_num_generations,
    }


def run_experiment(config: FilterExperimentConfig, log: Callable[[str], None] = logger.info) -> dict[str, Any]:
    """The whole experiment; returns the results (also written to `results.json` and `results.md`).

    Args:
        log: where progress lines go (the recipe prints them).
    """
    from temporal_rl.grpo.trainer import train_grpo

    out = Path(config.output_dir)
    (out / "data").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    train_file = _pool(config.train_file, config.max_train_samples, out / "data" / "train.jsonl")
    test_file = _pool(config.test_file, config.max_test_samples, out / "data" / "test.jsonl")
    train_records = read_records(train_file)

    filter_config = _filter_config(config, train_file, out)
    log(f"[filter] {len(train_records)} samples, K={filter_config.num_samples}, min_std={filter_config.min_std}")
    filter_report = _run_filter_here(filter_config)
    kept = read_records(Path(filter_config.output_dir) / FILTERED_FILE)
    log(f"[filter] kept {len(kept)} of {len(train_records)} ({filter_report['by_rule']})")
    if not kept:
        raise RuntimeError(
            f"the filter kept no sample (see {filter_config.output_dir}/report.json for the std distribution): "
            "lower --filter_min_std or raise --filter_num_samples"
        )

    # The SFT starting point, evaluated once
    _, probe, _ = parse_recipe(config.grpo_recipe, TemporalGRPOConfig, _grpo_overrides(config, train_file, out, 0))
    eval_kwargs = {"max_new_tokens": probe.max_completion_length, "batch_size": config.eval_batch_size}
    sft_path = out / "sft_eval.json"
    if sft_path.is_file():
        sft_row = json.loads(sft_path.read_text())
    else:
        sft_row = _grounding_row(evaluate_model(config.sft_model, test_file, probe, **eval_kwargs)[0])
        sft_path.write_text(json.dumps(sft_row, indent=2) + "\n")
    log(f"[sft] {sft_row}")

    runs = []
    for seed in config.seeds:
        sets = {"filtered": Path(filter_config.output_dir) / FILTERED_FILE, "full": train_file}
        if "random" in config.arms:
            sets["random"] = out / "data" / f"random-seed{seed}.jsonl"
            write_jsonl(sets["random"], _canonical(random_subset(train_records, len(kept), seed)))
        for arm in config.arms:
            run_dir = out / "runs" / arm / f"seed{seed}"
            result_path = run_dir / "eval.json"
            if result_path.is_file():
                runs.append(json.loads(result_path.read_text()))
                log(f"[{arm} seed {seed}] done before: {runs[-1]['metrics']}")
                continue
            run_start = time.perf_counter()
            train_size = len(read_records(sets[arm], check_video=False))
            data_args, grpo_config, model_args = parse_recipe(
                config.grpo_recipe, TemporalGRPOConfig, _grpo_overrides(config, sets[arm], run_dir, seed)
            )
            trainer = train_grpo(data_args, grpo_config, model_args)
            train_seconds = time.perf_counter() - run_start
            if trainer.state.global_step != grpo_config.max_steps:
                # The trainer drops an incomplete last batch: a set smaller than one step's prompts trains 0 steps.
                raise RuntimeError(
                    f"{arm} seed {seed}: GRPO took {trainer.state.global_step} of {grpo_config.max_steps} steps on "
                    f"{train_size} samples; a step "
                    f"needs per_device_train_batch_size / num_generations = "
                    f"{grpo_config.per_device_train_batch_size // grpo_config.num_generations} prompts per process. "
                    "Use more training samples, a lower --filter_min_std or a smaller --grpo_batch_size"
                )
            report, _ = evaluate_model(run_dir, test_file, grpo_config, **eval_kwargs)
            history = trainer.state.log_history
            run = {
                "arm": arm,
                "seed": seed,
                "train_file": str(sets[arm]),
                "train_size": train_size,
                "steps": trainer.state.global_step,
                "metrics": {
                    **_grounding_row(report),
                    "frac_reward_zero_std": _mean_logged(history, "frac_reward_zero_std"),
                    "train_reward": _mean_logged(history, "reward"),
                },
                "seconds": {"train": round(train_seconds, 1), "total": round(time.perf_counter() - run_start, 1)},
            }
            result_path.write_text(json.dumps(run, indent=2) + "\n")
            runs.append(run)
            log(f"[{arm} seed {seed}] {run['metrics']} in {run['seconds']['total']:.0f} s")

    summary = summarise_runs(runs)
    table = markdown_table(summary, sft_row)
    results = {
        "summary": summary,
        "sft": sft_row,
        "runs": runs,
        "filter": {
            "counts": filter_report["counts"],
            "by_rule": filter_report["by_rule"],
            "rewards": filter_report["rewards"],
            "timing": filter_report["timing"],
            "config": filter_config.to_dict(),
        },
        "experiment_config": asdict(config),
        "grpo_recipe": config.grpo_recipe,
        "test_queries": len(read_records(test_file, check_video=False)),
        "seconds": round(time.perf_counter() - start, 1),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (out / "results.md").write_text(
        f"# Variance-aware data selection: GRPO on filtered vs random vs full training sets\n\n"
        f"Held-out queries: {results['test_queries']}; optimizer steps per run: "
        f"{runs[0]['steps'] if runs else '-'}; mean ± sample std over seeds {list(config.seeds)}.\n\n{table}\n"
    )
    log("\n" + table)
    return results
