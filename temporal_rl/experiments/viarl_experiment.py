"""Does a ViaRL selector find the needle? Held-out answer accuracy over the amplification cycles, per seed.

On the synthetic needle task (`data_tools.synth`, tiny preset: a 30-60 s haystack, a 2-4 s needle, 4 options), for
each seed:

1. the needle data (train and a held-out split, built once for all seeds; only the needle kinds asked for are
   rendered, default a star of a colour), kept to clips whose needle lies on at least one of the T candidates
   (`meta.needle_frames`). The held-out split is `val` by default: new clips with the (shape, colour) pairs and
   question wordings of train. The synthetic `test` split adds combinations reserved for it (a red or a blue star, a
   fifth of its needles), colours the answer model never learned to give as an answer;
2. a tiny random selector and a tiny random answerer (`temporal_rl.models.tiny`, seeded);
3. the amplification (`temporal_rl.viarl.amplification`, the `viarl_recipe`): the warm starts, then the cycles;
4. held-out accuracy of the answer model at each point (after the warm start, after each cycle) on N frames chosen
   `uniform`ly, by the `selector` of that point (greedy), by the `oracle` (the candidates showing the needle,
   `temporal_rl.viarl.answer_stage.oracle_indices`) and `outside` the needle (candidates that do not show it: the
   answer model without the evidence, near chance when it reads the needle rather than guessing from the haystack);
   after each cycle also the selector with the answer model it was trained against (the previous point's). Chance is
   the mean of 1 / options. Every row also gives the share of records whose chosen frames show the needle
   (`evidence_rate`): a selector that learned where the needle is raises it above uniform's, whatever the answer
   model makes of it; and, for a selector, how many different index lists it chose (`distinct_selections`: a
   selector that looks at the video chooses differently for different videos).

Writes `report.json` (per seed and point: `uniform_accuracy`, `selector_accuracy`, `oracle_accuracy`,
`outside_accuracy`, `selector_needle_hit_rate`, `uniform_needle_hit_rate`, ... in percent, and their means over
seeds (population std); every evaluation row, data counts, configs, each seed's amplification time), `results.md`
(the tables) and `results.png` (accuracy and evidence rate per row, one dot per seed). Resumable: each seed's
amplification resumes on its own (`viarl_state.json`) and each finished evaluation is kept in
`seed<k>/eval/<row>.json`.

This module owns the experiment's sequence and its report; data, models, training and evaluation are the library's.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporal_rl.configs import parse_config, parse_recipe
from temporal_rl.resumable import write_json_atomic
from temporal_rl.viarl.amplification import ModelRef, ViaRLConfig, ViaRLRun
from temporal_rl.viarl.answer_stage import CandidateSpec, evaluate_answers, evidence_window, window_candidates

NEEDLE_KINDS = ("star", "digit")
# Per evaluation row: accuracy; the share of records whose chosen frames show the needle (all, and among valid
# selections: an invalid one falls back to uniform frames at segment starts); the share of invalid selections.
METRICS = ("accuracy", "evidence_rate", "valid_evidence_rate", "invalid_rate", "distinct_selections", "records")
REPORT_FILE = "report.json"
# The report's per-point numbers (percent): name -> (row selection, metric)
POINT_METRICS = {
    "uniform_accuracy": ("uniform", "accuracy"),
    "selector_accuracy": ("selector", "accuracy"),
    "oracle_accuracy": ("oracle", "accuracy"),
    "outside_accuracy": ("outside", "accuracy"),
    "selector_needle_hit_rate": ("selector", "evidence_rate"),
    "uniform_needle_hit_rate": ("uniform", "evidence_rate"),
    "selector_invalid_rate": ("selector", "invalid_rate"),
    "selector_distinct_selections": ("selector", "distinct_selections"),
}


@dataclass
class ViaRLExperimentConfig:
    """The experiment's knobs; every training setting comes from the amplification recipe and its stage recipes."""

    output_dir: str = field(default="runs/viarl-experiment", metadata={"help": "Where everything goes."})
    viarl_recipe: str = field(
        default="recipes/tiny/viarl_needle.yaml", metadata={"help": "Amplification recipe (ViaRLConfig YAML)."}
    )
    seeds: list[int] = field(default_factory=lambda: [0, 1], metadata={"help": "Seeds (models and training)."})
    namespace: str = field(default="viarl-needle", metadata={"help": "Synthetic data namespace."})
    test_split: str = field(
        default="val",
        metadata={
            "help": "Held-out split: val (train's pairs and wordings, new clips) or test (adds the test-only pairs: "
            "red and blue stars, which the answer model never learned to name)."
        },
    )
    num_train: int = field(default=3000, metadata={"help": "Needle clips generated for training (before keeping)."})
    num_test: int = field(default=400, metadata={"help": "Needle clips generated for the test (before keeping)."})
    data_workers: int | None = field(
        default=None, metadata={"help": "Processes rendering the needle clips (default: min(2, cpu count))."}
    )
    needle_kinds: list[str] = field(default_factory=lambda: ["star"], metadata={"help": "Needle kinds kept."})
    num_cycles: int | None = field(default=None, metadata={"help": "Override the recipe's num_cycles."})
    selector_steps: int | None = field(default=None, metadata={"help": "Override max_steps of selector stages."})
    answer_steps: int | None = field(default=None, metadata={"help": "Override max_steps of answer stages."})
    answer_warmstart_steps: int | None = field(default=None, metadata={"help": "Override the answer warm start."})
    selector_warmstart_steps: int | None = field(default=None, metadata={"help": "Override the selector warm start."})
    eval_batch_size: int = field(default=64, metadata={"help": "Records per generate call in evaluation."})
    prepare_only: bool = field(
        default=False, metadata={"help": "Only build the data and the seeds' tiny models (what `make viarl` runs on)."}
    )

    def __post_init__(self):
        if not self.seeds:
            raise ValueError("seeds is empty: give at least one seed, e.g. --seeds 0 1")
        unknown = [kind for kind in self.needle_kinds if kind not in NEEDLE_KINDS]
        if unknown or not self.needle_kinds:
            raise ValueError(f"needle_kinds must be a non-empty subset of {', '.join(NEEDLE_KINDS)}, got {unknown}")
        if self.test_split not in ("val", "test"):
            raise ValueError(f"test_split must be val or test, got {self.test_split!r}")
        for name in ("num_train", "num_test", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")


# ----------------------------------------------------------------------------------------------------------------
# Data


def needle_visible(record: Mapping[str, Any], source_indices: Sequence[int]) -> bool:
    """Whether the record's needle lies on at least one candidate (source frame inside `meta.needle_frames`)."""
    window = evidence_window(record)
    return window is not None and bool(window_candidates(source_indices, window))


def keep_needles(records: Sequence[dict], kinds: Sequence[str], spec: CandidateSpec, cache) -> tuple[list[dict], dict]:
    """The records of the needle kinds asked for whose needle some candidate shows, and the counts of what was
    dropped. Builds every record's candidates (so the frame cache holds them for the stages)."""
    kept, counts = [], {"generated": len(records), "other_kind": 0, "needle_not_on_a_candidate": 0}
    for record in records:
        if record["meta"]["needle"]["kind"] not in kinds:
            counts["other_kind"] += 1
            continue
        if not record["meta"].get("needle_visible_at_sample_fps", True) or not needle_visible(
            record, spec.candidates(record["video"], cache, selector=False).source_indices
        ):
            counts["needle_not_on_a_candidate"] += 1
            continue
        kept.append(record)
    counts["kept"] = len(kept)
    return kept, counts


def chance_accuracy(records: Sequence[Mapping[str, Any]]) -> float:
    """The expected accuracy of a uniform random option: the mean of 1 / (number of options)."""
    return statistics.fmean(1.0 / len(record["options"]) for record in records)


# ----------------------------------------------------------------------------------------------------------------
# Rows of the table


@dataclass(frozen=True)
class EvalRow:
    """One evaluation: the answer model of `answer_point` on frames chosen by `selection` (with the selector of
    `selector_point` when `selection` is "selector")."""

    name: str
    answer_point: str
    selection: str
    selector_point: str | None = None


def eval_rows(num_cycles: int, answer_warmstart: bool) -> list[EvalRow]:
    """The table's rows in order.

    Example:
        ```python
        >>> [row.name for row in eval_rows(1, True)]  # doctest: +NORMALIZE_WHITESPACE
        ['warm start: uniform', 'warm start: oracle', 'warm start: outside',
         'cycle 1: uniform', 'cycle 1: selector', 'cycle 1: selector, answer model it trained against',
         'cycle 1: oracle', 'cycle 1: outside']
        ```
    """
    rows = []
    if answer_warmstart:
        rows += [
            EvalRow("warm start: uniform", "warmstart", "uniform"),
            EvalRow("warm start: oracle", "warmstart", "oracle"),
            EvalRow("warm start: outside", "warmstart", "outside"),
        ]
    for cycle in range(1, num_cycles + 1):
        point, previous = f"cycle_{cycle}", (f"cycle_{cycle - 1}" if cycle > 1 else "warmstart")
        rows += [
            EvalRow(f"cycle {cycle}: uniform", point, "uniform"),
            EvalRow(f"cycle {cycle}: selector", point, "selector", point),
        ]
        if cycle > 1 or answer_warmstart:
            rows.append(
                EvalRow(f"cycle {cycle}: selector, answer model it trained against", previous, "selector", point)
            )
        rows += [
            EvalRow(f"cycle {cycle}: oracle", point, "oracle"),
            EvalRow(f"cycle {cycle}: outside", point, "outside"),
        ]
    return rows


def point_table(rows: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float | None]]:
    """One seed's report per point (`warm start`, `cycle 1`, ...): `POINT_METRICS` in percent (None where the point
    has no such row, e.g. no selector at the warm start; `selector_distinct_selections` stays a count).

    Example:
        ```python
        >>> rows = {"cycle 1: uniform": {"accuracy": 0.25, "evidence_rate": 0.1},
        ...         "cycle 1: selector": {"accuracy": 0.5, "evidence_rate": 0.4, "invalid_rate": 0.0,
        ...                               "distinct_selections": 12}}
        >>> table = point_table(rows)["cycle 1"]
        >>> table["selector_accuracy"], table["selector_needle_hit_rate"], table["oracle_accuracy"]
        (50.0, 40.0, None)
        ```
    """
    points = list(dict.fromkeys(name.split(":")[0] for name in rows))
    table = {}
    for point in points:
        table[point] = {}
        for key, (selection, metric) in POINT_METRICS.items():
            value = rows.get(f"{point}: {selection}", {}).get(metric)
            if value is not None and metric != "distinct_selections":
                value = round(100 * value, 2)
            table[point][key] = value
    return table


def mean_table(tables: Mapping[int, Mapping[str, Mapping[str, float | None]]]) -> dict[str, dict[str, dict]]:
    """Per point and number: the mean and population std over seeds (seeds without the number are left out)."""
    points = list(dict.fromkeys(point for table in tables.values() for point in table))
    means = {}
    for point in points:
        means[point] = {}
        for key in POINT_METRICS:
            values = [t[point][key] for t in tables.values() if point in t and t[point][key] is not None]
            if values:
                means[point][key] = {
                    "mean": round(statistics.fmean(values), 2),
                    "std": round(statistics.pstdev(values), 2) if len(values) > 1 else 0.0,
                    "seeds": len(values),
                }
    return means


def point_markdown(
    tables: Mapping[int, Mapping[str, Mapping[str, float | None]]],
    means: Mapping[str, Mapping[str, dict]],
    chance: float,
) -> str:
    """The report's table: per point, each seed's numbers and the mean ± std (percent)."""
    columns = ("uniform_accuracy", "selector_accuracy", "oracle_accuracy", "outside_accuracy",
               "uniform_needle_hit_rate", "selector_needle_hit_rate", "selector_distinct_selections")  # fmt: skip
    lines = ["| point | seed | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]

    def show(value) -> str:
        return "-" if value is None else (f"{value:.1f}" if isinstance(value, float) else str(value))

    for point in means:
        for seed, table in tables.items():
            if point in table:
                lines.append(f"| {point} | {seed} | " + " | ".join(show(table[point][c]) for c in columns) + " |")
        cells = [f"{means[point][c]['mean']:.1f} ± {means[point][c]['std']:.1f}" if c in means[point] else "-"
                 for c in columns]  # fmt: skip
        lines.append(f"| {point} | mean | " + " | ".join(cells) + " |")
    lines.append(f"\nChance (1 / options): {100 * chance:.1f} %.")
    return "\n".join(lines) + "\n"


def answer_at(run: ViaRLRun, point: str) -> ModelRef:
    """The answer model of a point: after the answer warm start (`warmstart`) or after cycle c's answer stage."""
    return run.models_after("warmstart/answer" if point == "warmstart" else f"{point}/answer")[1]


def selector_at(run: ViaRLRun, point: str) -> ModelRef:
    """The selector of a point (`cycle_<c>`): after cycle c's selector stage."""
    return run.models_after(f"{point}/selector")[0]


def summarise(runs: Mapping[int, Mapping[str, Mapping[str, Any]]], metric: str) -> dict[str, dict[str, float]]:
    """Per row: mean, population std, min and max of `metric` over seeds (rows missing a value are skipped)."""
    names = list(dict.fromkeys(name for per_seed in runs.values() for name in per_seed))
    summary = {}
    for name in names:
        values = [runs[seed][name].get(metric) for seed in runs if name in runs[seed]]
        values = [value for value in values if value is not None]
        if values:
            summary[name] = {
                "mean": statistics.fmean(values),
                "std": statistics.pstdev(values) if len(values) > 1 else 0.0,
                "min": min(values),
                "max": max(values),
                "seeds": len(values),
            }
    return summary


def markdown_table(summaries: Mapping[str, Mapping[str, Mapping[str, float]]], chance: float, seeds: int) -> str:
    """The results table: per row, the mean ± std over seeds of each metric (percent)."""

    def cell(metric: str, name: str) -> str:
        value = summaries[metric].get(name)
        return f"{100 * value['mean']:.1f} ± {100 * value['std']:.1f}" if value else "-"

    lines = [
        f"| held-out, mean ± std over {seeds} seed(s), % | answer accuracy | needle on a chosen frame | "
        "same, valid selections only | invalid selections |",
        "|---|---|---|---|---|",
    ]
    for name in summaries["accuracy"]:
        metrics = ("accuracy", "evidence_rate", "valid_evidence_rate", "invalid_rate")
        lines.append(f"| {name} | " + " | ".join(cell(metric, name) for metric in metrics) + " |")
    lines.append(f"| chance (1 / options) | {100 * chance:.1f} | - | - | - |")
    return "\n".join(lines) + "\n"


def plot_results(path: Path, runs: Mapping[int, Mapping[str, Mapping[str, Any]]], chance: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(name for per_seed in runs.values() for name in per_seed))
    figure, axes = plt.subplots(1, 2, figsize=(13, 0.45 * len(names) + 2), sharey=True)
    for axis, metric, title in (
        (axes[0], "accuracy", "held-out answer accuracy"),
        (axes[1], "evidence_rate", "needle on a chosen frame"),
    ):
        for row, name in enumerate(names):
            values = [runs[s][name][metric] for s in runs if name in runs[s] and runs[s][name][metric] is not None]
            if values:
                axis.barh(row, statistics.fmean(values), color="#9ecae1")
                axis.scatter(values, [row] * len(values), color="#08519c", zorder=3, s=14)
        axis.set(title=title, xlim=(0, 1))
        axis.grid(axis="x", alpha=0.3)
    axes[0].axvline(chance, color="grey", linestyle="--", label=f"chance {chance:.2f}")
    axes[0].legend(loc="lower right")
    axes[0].set_yticks(range(len(names)), names)
    axes[0].invert_yaxis()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


# ----------------------------------------------------------------------------------------------------------------
# The experiment


def viarl_config_for(config: ViaRLExperimentConfig, overrides: Mapping[str, Any]) -> ViaRLConfig:
    """The amplification recipe with the experiment's step overrides and `overrides` (None values skipped)."""

    steps = {
        "num_cycles": config.num_cycles,
        "selector_steps": config.selector_steps,
        "answer_steps": config.answer_steps,
        "answer_warmstart_steps": config.answer_warmstart_steps,
        "selector_warmstart_steps": config.selector_warmstart_steps,
    }
    (viarl_config,) = parse_config(config.viarl_recipe, (ViaRLConfig,), {**steps, **overrides})
    return viarl_config


def experiment_spec(config: ViaRLExperimentConfig) -> CandidateSpec:
    """T, N, the sizes and the label of the amplification's selector recipe."""
    from temporal_rl.viarl.config import ViaRLSelectorConfig

    selector_recipe = viarl_config_for(config, {}).selector_recipe
    return CandidateSpec.from_config(parse_recipe(selector_recipe, ViaRLSelectorConfig)[1])


def build_data(config: ViaRLExperimentConfig, spec: CandidateSpec, cache) -> tuple[dict[str, Path], dict[str, dict]]:
    """The kept train and held-out needle records (`data/<split>/kept.jsonl`, built once) and their counts, under the
    keys `train` and `test` (the held-out split, `config.test_split`). Only the needle kinds asked for are rendered."""
    from data_tools.synth import generate_dataset
    from temporal_rl.data import read_records, write_jsonl

    kinds = set(config.needle_kinds)
    files, counts = {}, {}
    for role, split, n in (("train", "train", config.num_train), ("test", config.test_split, config.num_test)):
        folder = Path(config.output_dir) / "data" / split
        kept_file = folder / "kept.jsonl"
        if not (folder / "counts.json").exists():
            rendered = generate_dataset(
                "needle", split, n, config.namespace, folder, difficulty="tiny", progress=False,
                workers=config.data_workers, keep=lambda record: record["meta"]["needle"]["kind"] in kinds,
            )  # fmt: skip
            kept, split_counts = keep_needles(read_records(folder / "data.jsonl"), config.needle_kinds, spec, cache)
            split_counts.update(generated=n, other_kind=n - len(rendered))
            # relative video paths, as the generator writes them: the folder can move
            write_jsonl(kept_file, [{**r, "video": str(Path(r["video"]).relative_to(folder.resolve()))} for r in kept])
            write_json_atomic(folder / "counts.json", split_counts)
        files[role], counts[role] = kept_file, json.loads((folder / "counts.json").read_text())
    return files, counts


def tiny_models(folder: Path, seed: int) -> dict[str, Path]:
    """A seed's tiny random selector (`TinySpec(seed=2 * seed)`) and answerer (`2 * seed + 1`), built once."""
    from temporal_rl.models.tiny import TinySpec, build_tiny_model

    models = {}
    for role, offset in (("selector", 0), ("answer", 1)):
        path = folder / f"tiny-{role}"
        if not (path / "config.json").exists():
            build_tiny_model(path, TinySpec(seed=2 * seed + offset))
        models[role] = path
    return models


def _load_answer(answer: ModelRef):
    import torch

    from temporal_rl.viarl.selector_trainer import load_answer_model

    device = "cuda" if torch.cuda.is_available() else None
    return load_answer_model(answer.base, answer.adapter, dtype="float32", device=device)


def run_experiment(config: ViaRLExperimentConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) the experiment; returns the report written to `report.json`."""
    from temporal_rl.data import read_records
    from temporal_rl.viarl.amplification import load_selector
    from temporal_rl.video.cache import FrameCache

    out = Path(config.output_dir)
    cache = FrameCache(out / "frames")
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        timings[name] = round(time.perf_counter() - clock, 1)
        clock = time.perf_counter()
        log(f"[viarl-experiment] {name}: {timings[name]:.1f} s")

    spec = experiment_spec(config)
    data, counts = build_data(config, spec, cache)
    test_records = read_records(data["test"])
    if not test_records:
        raise ValueError(
            f"no test record kept ({counts['test']}): generate more (num_test) or allow more needle_kinds"
        )
    chance = chance_accuracy(test_records)
    lap("data")

    models = {seed: tiny_models(out / f"seed{seed}", seed) for seed in config.seeds}
    if config.prepare_only:
        log(f"[viarl-experiment] prepared {data} and the tiny models of seeds {config.seeds}")
        return {"data": counts, "models": {str(seed): {k: str(v) for k, v in m.items()} for seed, m in models.items()}}
    runs: dict[int, dict[str, dict]] = {}
    states = {}
    for seed in config.seeds:
        seed_dir = out / f"seed{seed}"
        viarl_config = viarl_config_for(
            config,
            {
                "output_dir": seed_dir / "run",
                "train_file": data["train"],
                "selector_model": models[seed]["selector"],
                "answer_model": models[seed]["answer"],
                "frame_cache_dir": cache.root,
                "seed": seed,
            },
        )
        run = ViaRLRun(viarl_config)
        states[seed] = run.run()
        lap(f"seed {seed}: amplification")

        rows = eval_rows(viarl_config.num_cycles, viarl_config.answer_warmstart_recipe is not None)
        results = {}
        loaded: dict[ModelRef, Any] = {}
        for row in rows:
            path = seed_dir / "eval" / f"{row.name.replace(' ', '_').replace(':', '').replace(',', '')}.json"
            if not path.exists():
                answer = answer_at(run, row.answer_point)
                if answer not in loaded:
                    loaded.clear()
                    loaded[answer] = _load_answer(answer)
                answer_model, answer_processor = loaded[answer]
                selector = None
                if row.selection == "selector":
                    selector = load_selector(selector_at(run, row.selector_point), run.selector_args[2])
                evaluation = evaluate_answers(
                    answer_model, answer_processor, test_records, row.selection, spec, cache,
                    prompt=run.selector_args[1].prompt_options(), selector=selector,
                    batch_size=config.eval_batch_size, max_new_tokens=run.selector_args[1].answer_max_new_tokens,
                    selector_max_new_tokens=run.selector_args[1].max_completion_length,
                )  # fmt: skip
                distinct = len({tuple(r["indices"]) for r in evaluation.results})
                write_json_atomic(
                    path,
                    {**evaluation.summary(), "distinct_selections": distinct if row.selection == "selector" else None,
                     "row": dataclasses.asdict(row), "results": evaluation.results},
                )  # fmt: skip
            saved = json.loads(path.read_text())
            results[row.name] = {k: saved.get(k) for k in METRICS}
        runs[seed] = results
        lap(f"seed {seed}: evaluation")

    summaries = {
        metric: summarise(runs, metric) for metric in METRICS if metric not in ("records", "distinct_selections")
    }
    tables = {seed: point_table(rows) for seed, rows in runs.items()}
    means = mean_table(tables)
    report = {
        "per_seed": {str(seed): table for seed, table in tables.items()},
        "mean": means,
        "chance": round(100 * chance, 2),
        # from the state's stage times, so that a resumed run reports the training it did earlier
        "amplification_seconds_per_seed": {
            str(seed): round(sum(stage.get("seconds") or 0.0 for stage in state["stages"].values()), 1)
            for seed, state in states.items()
        },
        "table": {**summaries, "chance": chance},
        "runs": {str(seed): rows for seed, rows in runs.items()},
        "data": counts,
        "test_records": len(test_records),
        "spec": {k: v for k, v in dataclasses.asdict(spec).items() if k != "label_style"},
        "experiment_config": dataclasses.asdict(config),
        "stage_summaries": {str(seed): state["stages"] for seed, state in states.items()},
        "timings_s": timings,
    }
    write_json_atomic(out / REPORT_FILE, report)
    table = point_markdown(tables, means, chance) + "\n" + markdown_table(summaries, chance, len(config.seeds))
    (out / "results.md").write_text(table)
    plot_results(out / "results.png", runs, chance)
    log("\n" + table)
    return report
