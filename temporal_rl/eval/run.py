"""Evaluate a model on a canonical data file: generate, score, report (`python -m temporal_rl.eval.run`).

    python -m temporal_rl.eval.run --config TRAINING_RECIPE.yaml --model DIR [--adapter DIR] --data D.jsonl --out OUT
        [--max_samples N] [--batch_size B] [--seed S] [--video_fps F] [--video_max_pixels P] [--think] ...

The video and prompt settings (frame budget, frame cache, `think`, `span_format`, `video_position`: the fields of
`temporal_rl.configs.VideoArguments`) come from the training recipe given with `--config`, read by the same
`TrlParser` and dataclass as training, so a model is evaluated on the frames and the prompt it was trained on; the
recipe's other keys (optimizer, rewards, model) are not evaluation settings and are ignored. Any field can be set on
the command line instead (`--video_max_pixels 3136`, dashes or underscores); without a recipe, the defaults are
Qwen's (qwen-vl-utils' frame budget).

Writes into OUT:

| file                | content                                                                             |
|---------------------|-------------------------------------------------------------------------------------|
| `predictions.jsonl` | `{"id", "completion", "prompt_tokens", "completion_tokens"}`, appended and flushed   |
| `run_config.json`   | the settings the predictions were made with; a resumed run must use the same ones   |
| `metrics.json`      | `evaluate`'s report, the benchmark breakdowns, the skipped records, timing          |
| `samples.jsonl`     | per-record scores                                                                   |
| `metrics.png`       | IoU distribution (span tasks), accuracy per task and question type (answer tasks)   |

Resuming: a killed run is started again with the same command. Records already in `predictions.jsonl` are skipped;
a torn last line (no newline: the kill hit the write) is cut off and its record generated again.

Records whose video is missing or undecodable are skipped, listed at the end and in `metrics.json`, and count as
unanswered in the metrics (every query of the data file, up to `--max-samples`, is in the denominator).

Benchmark conventions on top of `evaluate` (`benchmark_breakdowns`): per source, accuracy (and mIoU for span tasks)
broken down by a meta field, with a macro mean where the benchmark reports one: MLVU's M-Avg (mean over
`question_type`), Video-MME by `duration_bucket` (short / medium / long), `task_type` and `domain`, LVBench by
`question_type` (a question counts toward each of its types), MVBench's mean over `task`, NExT-GQA by `type`; any
other source by `question_type` when its records carry one (the synthetic benchmark does).

This module owns the evaluation run: the resumable predictions file, the benchmark breakdowns and the figure.
Generation is `temporal_rl.generation`; the metric maths are `temporal_rl.eval.metrics`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporal_rl.configs import VideoArguments
from temporal_rl.data import RecordError, read_records, write_jsonl
from temporal_rl.eval.metrics import SPAN_TASKS, accuracy, evaluate, format_report, mean_percent, read_predictions
from temporal_rl.prompts import DEFAULT_MAX_PROMPT_TOKENS
from temporal_rl.resumable import (
    OutputLocked,
    append_jsonl,
    check_settings,
    drop_torn_tail,
    lock_output_dir,
    write_json_atomic,
)

PREDICTIONS_FILE = "predictions.jsonl"
RUN_CONFIG_FILE = "run_config.json"
METRICS_FILE = "metrics.json"
SAMPLES_FILE = "samples.jsonl"
FIGURE_FILE = "metrics.png"

# source -> [(meta key, name of the macro mean over the key's values or None)]
BENCHMARK_CONVENTIONS: dict[str, list[tuple[str, str | None]]] = {
    "mlvu": [("question_type", "M-Avg")],
    "videomme": [("duration_bucket", None), ("task_type", None), ("domain", None)],
    "lvbench": [("question_type", None)],
    "mvbench": [("task", "Avg")],
    "nextgqa": [("type", None)],
}
DEFAULT_BREAKDOWN = [("question_type", None)]
DTYPES = ("auto", "float32", "bfloat16", "float16")

# Settings that change the predictions: a resumed run must match them.
RESUME_KEYS = (
    "model",
    "adapter",
    "data",
    "think",
    "span_format",
    "video_position",
    "sampling",
    "max_new_tokens",
    "max_prompt_tokens",
    "check_durations",
    "do_sample",
)


# ---------------------------------------------------------------------------------------------------------------
# Benchmark breakdowns (pure)


def _meta_values(record: Mapping[str, Any], key: str) -> list[str]:
    value = record["meta"].get(key) if isinstance(record.get("meta"), Mapping) else None
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    return [str(v) for v in values]


def group_scores(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """`n`, `accuracy` (answer tasks) and `mIoU` (span tasks) of a group of per-record scores.

    Example:
        ```python
        >>> group_scores([{"correct": True, "iou": None}, {"correct": False, "iou": None}])
        {'n': 2, 'accuracy': 50.0}
        ```
    """
    scores: dict[str, Any] = {"n": len(samples)}
    answered = [s["correct"] for s in samples if s["correct"] is not None]
    ious = [s["iou"] for s in samples if s["iou"] is not None]
    if answered:
        scores["accuracy"] = accuracy(answered)
    if ious:
        scores["mIoU"] = mean_percent(ious)
    return scores


def breakdown(
    records: Sequence[Mapping[str, Any]], samples: Sequence[Mapping[str, Any]], key: str
) -> dict[str, dict[str, Any]]:
    """Scores per value of `record["meta"][key]`; a list-valued field counts the record toward each of its values.

    Records without the key are left out. Values in sorted order.
    """
    groups: dict[str, list] = {}
    for record, sample in zip(records, samples, strict=True):
        for value in _meta_values(record, key):
            groups.setdefault(value, []).append(sample)
    return {value: group_scores(groups[value]) for value in sorted(groups)}


def macro_mean(groups: Mapping[str, Mapping[str, Any]], metric: str = "accuracy") -> float:
    """The unweighted mean of `metric` over groups (MLVU's M-Avg, MVBench's average); 0 without groups."""
    values = [group[metric] for group in groups.values() if metric in group]
    return math.fsum(values) / len(values) if values else 0.0


def benchmark_breakdowns(
    records: Sequence[Mapping[str, Any]], samples: Sequence[Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Per source, the benchmark's breakdowns (`BENCHMARK_CONVENTIONS`, else by `question_type`) and macro means.

    Args:
        records: the canonical records, in the order of `samples`.
        samples: their per-record scores (`temporal_rl.eval.metrics.score_record`).

    Returns:
        `{source: {meta key: {value: {"n", "accuracy"?, "mIoU"?}}, macro name: value}}`; sources whose records
        carry none of the keys are left out.
    """
    by_source: dict[str, tuple[list, list]] = {}
    for record, sample in zip(records, samples, strict=True):
        pair = by_source.setdefault(record["source"], ([], []))
        pair[0].append(record)
        pair[1].append(sample)
    result: dict[str, dict[str, Any]] = {}
    for source in sorted(by_source):
        source_records, source_samples = by_source[source]
        entry: dict[str, Any] = {}
        for key, macro_name in BENCHMARK_CONVENTIONS.get(source, DEFAULT_BREAKDOWN):
            groups = breakdown(source_records, source_samples, key)
            if not groups:
                continue
            entry[key] = groups
            if macro_name:
                entry[macro_name] = macro_mean(groups)
        if entry:
            result[source] = entry
    return result


def format_breakdowns(breakdowns: Mapping[str, Mapping[str, Any]]) -> str:
    """The breakdowns as indented text: one block per source and key, a line per value."""
    lines = []
    for source, entry in breakdowns.items():
        for key, groups in entry.items():
            if not isinstance(groups, Mapping):
                lines.append(f"{source}  {key} {groups:.2f}")
                continue
            lines.append(f"{source} by {key}")
            width = max(len(value) for value in groups)
            for value, scores in groups.items():
                cells = [f"n {scores['n']}"] + [f"{m} {scores[m]:.2f}" for m in ("accuracy", "mIoU") if m in scores]
                lines.append(f"  {value.ljust(width)}  " + "  ".join(cells))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# The predictions file


def check_resume_settings(out: Path, settings: Mapping[str, Any], has_predictions: bool) -> None:
    """Refuse to add predictions made with other settings to an existing predictions file; record the settings."""
    path = out / RUN_CONFIG_FILE
    check_settings(
        path,
        settings,
        RESUME_KEYS,
        has_results=has_predictions,
        results="predictions",
        fix="use another --out or delete it",
        path=out / PREDICTIONS_FILE,
    )
    write_json_atomic(path, settings)


# ---------------------------------------------------------------------------------------------------------------
# Model loading and generation


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def generate_predictions(
    args: EvalArguments, video: VideoArguments, todo: list[dict], predictions_path: Path
) -> dict[str, Any]:
    """Generate a completion for each record of `todo`, appending to the predictions file as they come.

    Returns:
        `{"skipped": [{"id", "reason"}], "generated", "load_seconds", "seconds", "completion_tokens"}`: `seconds`
        is the generation time (frames, prompts and generate), after the model loaded in `load_seconds`.
    """
    from tqdm import tqdm

    from temporal_rl.generation import GenerationOptions, iter_generations
    from temporal_rl.models.loading import load_inference_model

    skipped: list[dict[str, str]] = []
    generated, completion_tokens, load_seconds = 0, 0, 0.0
    start = time.perf_counter()
    if todo:
        model, processor = load_inference_model(args.model, args.adapter, device=args.device, dtype=args.dtype)
        load_seconds = time.perf_counter() - start
        start = time.perf_counter()
        options = GenerationOptions(
            max_new_tokens=args.max_new_tokens,
            do_sample=args.do_sample,
            temperature=args.temperature,
            top_p=args.top_p,
            batch_size=args.batch_size,
            seed=args.seed,
            max_prompt_tokens=args.max_prompt_tokens,
            check_durations=args.check_durations,
        )
        bar = tqdm(total=len(todo), desc="eval", unit="sample", file=sys.stderr, disable=args.no_progress)

        def skip(record, error):
            skipped.append({"id": str(record.get("id")), "reason": error.reason})
            bar.update(1)

        with bar, open(predictions_path, "a", encoding="utf-8") as handle:
            for generation in iter_generations(
                model,
                processor,
                todo,
                video.frame_sampling(),
                video.frame_cache(),
                prompt=video.prompt_options(),
                generation=options,
                on_error=skip,
            ):
                row = {
                    "id": generation.record_id,
                    "completion": generation.completions[0],
                    "prompt_tokens": generation.prompt_tokens,
                    "completion_tokens": generation.completion_tokens[0],
                }
                append_jsonl(handle, [row], fsync=False)
                generated += 1
                completion_tokens += generation.completion_tokens[0]
                bar.update(1)
            os.fsync(handle.fileno())
    return {
        "skipped": skipped,
        "generated": generated,
        "load_seconds": load_seconds,
        "seconds": time.perf_counter() - start,
        "completion_tokens": completion_tokens,
    }


def greedy_completions(
    model,
    processor,
    records: Sequence[dict],
    video_args,
    *,
    max_new_tokens: int,
    batch_size: int,
    check_durations: bool = True,
) -> dict[str, str]:
    """`{record id: greedy completion}` for `records`.

    `video_args`: the frame budget, frame cache and prompt options to generate with (a `VideoArguments`, e.g. the
    training recipe's config, so the model is asked as it was trained). `check_durations`: False only for records
    whose videos are deliberately not theirs (`GenerationOptions.check_durations`).
    """
    from temporal_rl.generation import GenerationOptions, iter_generations

    generations = iter_generations(
        model,
        processor,
        records,
        video_args.frame_sampling(),
        video_args.frame_cache(),
        prompt=video_args.prompt_options(),
        generation=GenerationOptions(
            max_new_tokens=max_new_tokens, batch_size=batch_size, check_durations=check_durations
        ),
    )
    return {g.record_id: g.completions[0] for g in generations}


def predict_and_score(
    model,
    processor,
    records: Sequence[dict],
    video_args,
    *,
    max_new_tokens: int,
    batch_size: int,
    gold: Sequence[dict] | None = None,
) -> tuple[dict[str, Any], list[dict]]:
    """Greedy predictions on `records` (`greedy_completions`), scored against `gold` (default: the records):
    (report, per-record samples)."""
    completions = greedy_completions(
        model, processor, records, video_args, max_new_tokens=max_new_tokens, batch_size=batch_size
    )
    return evaluate(list(gold if gold is not None else records), completions)


def evaluate_model(
    model_dir: str | os.PathLike, data_file: str | os.PathLike, video_args, *, max_new_tokens: int, batch_size: int
) -> tuple[dict[str, Any], list[dict]]:
    """Greedy predictions of a saved model (float32) on a data file, with a recipe's video and prompt settings,
    scored: (report, per-record samples)."""
    from temporal_rl.models.loading import load_inference_model

    model, processor = load_inference_model(model_dir, dtype="float32")
    return predict_and_score(
        model, processor, read_records(data_file), video_args, max_new_tokens=max_new_tokens, batch_size=batch_size
    )


# ---------------------------------------------------------------------------------------------------------------
# Figure


def write_figure(path: Path, samples: Sequence[Mapping[str, Any]], breakdowns: Mapping[str, Any], report) -> None:
    """IoU histogram for span tasks, accuracy bars per task and per question type for answer tasks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ious = [s["iou"] for s in samples if s["task"] in SPAN_TASKS]
    bars = _accuracy_bars(report, breakdowns)
    panels = [p for p in ("iou", "accuracy") if (p == "iou" and ious) or (p == "accuracy" and bars)]
    if not panels:
        return
    figure, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for axis, panel in zip(axes[0], panels, strict=True):
        if panel == "iou":
            axis.hist(ious, bins=[i / 20 for i in range(21)], color="tab:blue", edgecolor="white")
            axis.axvline(
                sum(ious) / len(ious), color="tab:red", linestyle="--", label=f"mean {mean_percent(ious):.1f}%"
            )
            axis.set(xlabel="temporal IoU", ylabel="queries", title=f"IoU distribution (n={len(ious)})", xlim=(0, 1))
            axis.legend()
        else:
            names, values = zip(*bars, strict=True)
            axis.bar_label(axis.barh(range(len(values)), values, color="tab:green"), fmt="%.1f", padding=2)
            axis.set_yticks(range(len(values)), names, fontsize=8)
            axis.invert_yaxis()
            axis.set(xlabel="accuracy (%)", xlim=(0, 100), title="accuracy per task and type")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _accuracy_bars(report: Mapping[str, Any], breakdowns: Mapping[str, Any]) -> list[tuple[str, float]]:
    bars = []
    for task, metrics in report["tasks"].items():
        for name in ("accuracy", "Acc@QA"):
            if name in metrics:
                bars.append((f"{task} (n={metrics['n']})", metrics[name]))
    for source, entry in breakdowns.items():
        for groups in entry.values():
            if isinstance(groups, Mapping):
                bars += [(f"{source} {value}", s["accuracy"]) for value, s in groups.items() if "accuracy" in s]
    return bars


# ---------------------------------------------------------------------------------------------------------------
# Command line


@dataclass
class EvalArguments:
    """What to evaluate and how to decode; the video and prompt settings are `VideoArguments`' (the recipe's)."""

    model: str = field(metadata={"help": "Model directory or Hub id (with its processor)."})
    data: str = field(metadata={"help": "Canonical JSONL file."})
    out: str = field(metadata={"help": "Output folder (predictions, metrics, figure)."})
    adapter: str | None = field(default=None, metadata={"help": "PEFT (LoRA) adapter directory to apply."})
    max_samples: int | None = field(default=None, metadata={"help": "Evaluate the first N records only."})
    batch_size: int = field(default=8, metadata={"help": "Records per generate call."})
    max_new_tokens: int = field(default=256, metadata={"help": "Completion length cap."})
    max_prompt_tokens: int = field(
        default=DEFAULT_MAX_PROMPT_TOKENS,
        metadata={"help": "Longest prompt in tokens, video included; a longer record is skipped and listed."},
    )
    check_durations: bool = field(
        default=True,
        metadata={
            "help": "Skip and list a record whose duration disagrees with its decoded video's. "
            "`--check_durations false` only for a deliberate mismatch (each question asked of another clip's video)."
        },
    )
    do_sample: bool = field(default=False, metadata={"help": "Sample instead of greedy decoding."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature (with --do_sample)."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass (with --do_sample)."})
    device: str | None = field(default=None, metadata={"help": "cuda or cpu (default: cuda when available)."})
    dtype: str = field(
        default="auto", metadata={"help": "auto (bf16 on CUDA, else fp32), float32, bfloat16 or float16."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of sampled decoding."})
    no_progress: bool = field(default=False, metadata={"help": "No progress bar."})

    def __post_init__(self):
        if self.max_samples is not None and self.max_samples < 1:
            raise ValueError("--max_samples must be positive")
        if self.max_prompt_tokens < 1:
            raise ValueError(f"--max_prompt_tokens must be a positive count, got {self.max_prompt_tokens}")
        if self.dtype not in DTYPES:
            raise ValueError(f"--dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")


def recipe_video_settings(path: str | os.PathLike) -> dict[str, Any]:
    """The video and prompt settings (`VideoArguments` fields) of a training recipe YAML; its other keys dropped."""
    import yaml

    recipe = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(recipe, dict):
        raise ValueError(f"{path}: a recipe is a YAML mapping")
    names = {f.name for f in dataclasses.fields(VideoArguments)}
    return {key: value for key, value in recipe.items() if key in names}


def parse_args(argv: list[str] | None = None) -> tuple[EvalArguments, VideoArguments]:
    """`(EvalArguments, VideoArguments)` from the command line; `--config RECIPE` sets the video fields' defaults."""
    from trl import TrlParser

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = TrlParser(
        (EvalArguments, VideoArguments),
        prog="python -m temporal_rl.eval.run",
        description="Generate predictions for a canonical data file with a model, then score them. --config "
        "TRAINING_RECIPE.yaml takes the video and prompt settings (video_*, frame_cache_dir, think, span_format, "
        "video_position) from the recipe the model was trained with; the options below override it.",
    )
    if "--config" in argv:
        at = argv.index("--config")
        if at + 1 >= len(argv):
            parser.error("--config needs the training recipe's path")
        recipe = argv[at + 1]
        del argv[at : at + 2]
        parser.set_defaults_with_config(**recipe_video_settings(recipe))
    try:
        args, video = parser.parse_args_into_dataclasses(args=argv)
        video.validate_video()
    except ValueError as err:
        parser.error(str(err))
    return args, video


def run_settings(args: EvalArguments, video: VideoArguments) -> dict[str, Any]:
    return {
        "model": str(args.model),
        "adapter": None if args.adapter is None else str(args.adapter),
        "data": str(Path(args.data).resolve()),
        "think": video.think,
        "span_format": video.span_format,
        "video_position": video.video_position,
        "sampling": video.frame_sampling().to_dict(),
        "frame_cache_dir": video.frame_cache_dir,
        "max_new_tokens": args.max_new_tokens,
        "max_prompt_tokens": args.max_prompt_tokens,
        "check_durations": args.check_durations,
        "do_sample": args.do_sample,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "seed": args.seed,
        "device": args.device,
        "dtype": args.dtype,
    }


def main(argv: list[str] | None = None) -> int:
    args, video = parse_args(argv)
    args.device = args.device or default_device()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    predictions_path = out / PREDICTIONS_FILE
    try:
        lock_output_dir(out)
    except OutputLocked as err:
        sys.stderr.write(f"error: {err}\n")
        return 2
    try:
        all_records = read_records(args.data, check_video=False)
        records = all_records[: args.max_samples] if args.max_samples else all_records
        known_ids = [record["id"] for record in all_records]
        if drop_torn_tail(predictions_path):
            sys.stderr.write(f"{predictions_path}: dropped a torn last line (interrupted write)\n")
        done = read_predictions(predictions_path, known_ids) if predictions_path.is_file() else {}
        check_resume_settings(out, run_settings(args, video), has_predictions=bool(done))
    except (RecordError, ValueError) as err:
        sys.stderr.write(f"error: {err}\n")
        return 2
    todo = [record for record in records if record["id"] not in done]
    if done:
        sys.stderr.write(f"resuming: {len(records) - len(todo)} of {len(records)} records already predicted\n")

    run = generate_predictions(args, video, todo, predictions_path)
    # no predictions file when nothing was left to generate and nothing had been (every record skipped before)
    completions = read_predictions(predictions_path, known_ids) if predictions_path.is_file() else {}
    report, samples = evaluate(records, {r["id"]: completions[r["id"]] for r in records if r["id"] in completions})
    breakdowns = benchmark_breakdowns(records, samples)
    report = {
        "data": str(args.data),
        "model": str(args.model),
        "adapter": args.adapter,
        **report,
        "breakdowns": breakdowns,
        "skipped": run["skipped"],
        "run": {
            "generated": run["generated"],
            "load_seconds": round(run["load_seconds"], 3),
            "seconds": round(run["seconds"], 3),
            "samples_per_second": round(run["generated"] / run["seconds"], 3) if run["generated"] else None,
            "mean_completion_tokens": run["completion_tokens"] / run["generated"] if run["generated"] else None,
            "settings": run_settings(args, video),
        },
    }
    write_json_atomic(out / METRICS_FILE, report)
    write_jsonl(out / SAMPLES_FILE, samples)
    write_figure(out / FIGURE_FILE, samples, breakdowns, report)
    sys.stdout.write(_summary(report) + "\n")
    return 0


def _summary(report: Mapping[str, Any]) -> str:
    parts = [format_report(report)]
    if report["breakdowns"]:
        parts.append(format_breakdowns(report["breakdowns"]))
    run = report["run"]
    if run["generated"]:
        parts.append(
            f"generated {run['generated']} in {run['seconds']:.2f} s ({run['samples_per_second']:.2f} samples/s; "
            f"model load {run['load_seconds']:.2f} s)"
        )
    if report["skipped"]:
        lines = [f"skipped {len(report['skipped'])} record(s), counted as unanswered:"]
        lines += [f"  {row['id']}: {row['reason']}" for row in report["skipped"]]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


if __name__ == "__main__":
    sys.exit(main())
