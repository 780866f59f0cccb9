"""The main job on the embedded default: does GRPO with the IoU reward improve temporal grounding?

On a fresh machine, with no download: build the tiny Qwen2.5-VL, render a synthetic grounding set (train and a
held-out test split), SFT-warm-start, evaluate, run GRPO (iou + format rewards), evaluate again, and compare with
blind baselines (the whole video; the mean training span). Writes `report.json` (numbers, seeds, configs, timings)
and `report.png` (GRPO reward curve; held-out IoU histograms before and after) in the output directory.

Every model row also shows its mIoU when each question is asked of another clip's video: the gap between the two
says how much the answers depend on the video at all (a better blind prior also raises mIoU).

This module owns the experiment's sequence and its report; training, evaluation and data generation are the
library's (`temporal_rl.training`, `temporal_rl.eval`, `data_tools.synth`).
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from data_tools.synth import generate_dataset
from temporal_rl.configs import TemporalSFTConfig, parse_recipe
from temporal_rl.data import read_records
from temporal_rl.eval.baselines import baseline_predictions, mean_normalised_span
from temporal_rl.eval.metrics import evaluate
from temporal_rl.eval.run import predict_and_score
from temporal_rl.grpo.config import TemporalGRPOConfig
from temporal_rl.models.loading import load_inference_model
from temporal_rl.models.tiny import TinySpec, build_tiny_model

logger = logging.getLogger(__name__)


@dataclass
class DemoConfig:
    """The demo's knobs; the training settings themselves come from the two tiny recipes."""

    output_dir: str = field(default="runs/demo", metadata={"help": "Where every artefact of the demo goes."})
    seed: int = field(default=0, metadata={"help": "Seed of the model initialisation and of both trainings."})
    namespace: str = field(default="demo", metadata={"help": "Synthetic data namespace (fixes the clips)."})
    num_train: int = field(default=2000, metadata={"help": "Synthetic training clips."})
    num_test: int = field(default=200, metadata={"help": "Held-out synthetic test clips."})
    sft_recipe: str = field(default="recipes/tiny/sft_grounding.yaml", metadata={"help": "SFT recipe YAML."})
    grpo_recipe: str = field(default="recipes/tiny/grpo_grounding.yaml", metadata={"help": "GRPO recipe YAML."})
    sft_steps: int | None = field(default=None, metadata={"help": "Override the SFT recipe's max_steps."})
    grpo_steps: int | None = field(default=None, metadata={"help": "Override the GRPO recipe's max_steps."})
    eval_batch_size: int = field(default=32, metadata={"help": "Records per generate call in evaluation."})


def swap_videos(records: list[dict], seed: int = 0) -> list[dict]:
    """The records with their videos permuted among them (a derangement): the same questions and gold spans, each
    asked of another clip. A model that grounds its answers in the video scores far lower on these."""
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    rotated = order[1:] + order[:1]  # i -> the next index of the permutation: no record keeps its own video
    video_of = {i: records[j]["video"] for i, j in zip(order, rotated, strict=True)}
    return [{**record, "video": video_of[i]} for i, record in enumerate(records)]


def score_greedy(
    model,
    processor,
    records: list[dict],
    video_args,
    *,
    max_new_tokens: int,
    batch_size: int,
    swapped_videos: bool = False,
):
    """Greedy predictions on `records`, scored: (report, per-record samples).

    With `swapped_videos`, each question is asked of another clip's video (`swap_videos`) and scored against its
    own gold span: the blind check of whether the answers depend on the video at all.
    """
    asked = swap_videos(records) if swapped_videos else records
    return predict_and_score(
        model, processor, asked, video_args, max_new_tokens=max_new_tokens, batch_size=batch_size, gold=records
    )


def evaluate_with_swapped_videos(model_dir: str | Path, records: list[dict], video_args, **eval_kwargs):
    """(report, samples) on the records' own videos and the report on swapped videos, from one model load."""
    model, processor = load_inference_model(model_dir, dtype="float32")
    report, samples = score_greedy(model, processor, records, video_args, **eval_kwargs)
    swapped, _ = score_greedy(model, processor, records, video_args, swapped_videos=True, **eval_kwargs)
    return report, samples, swapped


METRICS = ("mIoU", "R@0.3", "R@0.5", "R@0.7")
SWAPPED = "mIoU, swapped video"


def grounding_row(report: dict, swapped: dict | None = None) -> dict:
    row = {name: round(report["tasks"]["grounding"][name], 2) for name in METRICS}
    if swapped is not None:
        row[SWAPPED] = round(swapped["tasks"]["grounding"]["mIoU"], 2)
    return row


def format_table(rows: dict[str, dict]) -> str:
    header = f"{'':<26}" + "".join(f"{name:>8}" for name in METRICS) + f"{SWAPPED:>22}"
    lines = [header, "-" * len(header)]
    for name, row in rows.items():
        swapped = f"{row[SWAPPED]:>22.1f}" if SWAPPED in row else f"{'-':>22}"
        lines.append(f"{name:<26}" + "".join(f"{row[k]:>8.1f}" for k in METRICS) + swapped)
    return "\n".join(lines)


def plot_report(path: Path, reward_curve: list[tuple[int, float]], ious: dict[str, list[float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (curve, histogram) = plt.subplots(1, 2, figsize=(11, 4))
    if reward_curve:
        steps, values = zip(*reward_curve, strict=True)
        curve.plot(steps, values, marker=".")
    curve.set(title="GRPO training reward (iou + weighted format)", xlabel="step", ylabel="mean reward")
    bins = [i / 10 for i in range(11)]
    for name, values in ious.items():
        histogram.hist(values, bins=bins, alpha=0.5, label=f"{name} (mIoU {100 * sum(values) / len(values):.1f})")
    histogram.set(title="held-out IoU per query", xlabel="IoU", ylabel="queries")
    histogram.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def run_demo(config: DemoConfig) -> dict:
    out = Path(config.output_dir)
    timings, start = {}, time.perf_counter()

    def stage(name: str) -> None:
        timings[name] = round(time.perf_counter() - start - sum(timings.values()), 1)
        print(f"[demo] {name} done in {timings[name]:.1f} s", flush=True)  # noqa: T201

    model_dir = build_tiny_model(out / "tiny-model", TinySpec(seed=config.seed))
    data_dir = out / "data"
    for split, n in (("train", config.num_train), ("test", config.num_test)):
        generate_dataset("grounding", split, n, config.namespace, data_dir / split, progress=True)
    train_file, test_file = data_dir / "train" / "data.jsonl", data_dir / "test" / "data.jsonl"
    stage("tiny model and synthetic data")

    common = {"train_file": train_file, "seed": config.seed, "frame_cache_dir": out / "frames"}
    sft_data, sft_config, sft_model = parse_recipe(
        config.sft_recipe,
        TemporalSFTConfig,
        {**common, "model_name_or_path": model_dir, "output_dir": out / "sft", "max_steps": config.sft_steps},
    )
    from temporal_rl.grpo.trainer import train_grpo
    from temporal_rl.training import train_sft

    train_sft(sft_data, sft_config, sft_model)
    stage("SFT warm start")
    grpo_data, grpo_config, grpo_model = parse_recipe(
        config.grpo_recipe,
        TemporalGRPOConfig,
        {**common, "model_name_or_path": out / "sft", "output_dir": out / "grpo", "max_steps": config.grpo_steps},
    )
    eval_kwargs = {"max_new_tokens": grpo_config.max_completion_length, "batch_size": config.eval_batch_size}
    test_records = read_records(test_file)
    sft_report, sft_samples, sft_swapped = evaluate_with_swapped_videos(
        out / "sft", test_records, grpo_config, **eval_kwargs
    )
    stage("evaluate SFT")
    grpo_trainer = train_grpo(grpo_data, grpo_config, grpo_model)
    stage("GRPO")
    grpo_report, grpo_samples, grpo_swapped = evaluate_with_swapped_videos(
        out / "grpo", test_records, grpo_config, **eval_kwargs
    )
    stage("evaluate GRPO")

    train_records = read_records(train_file)
    baselines, mean_span = {}, mean_normalised_span(train_records)
    for kind in ("whole_video", "mean_span"):
        predictions = baseline_predictions(
            test_records, [kind], mean_span=mean_span, span_format=grpo_config.span_format
        )
        baselines[kind] = evaluate(test_records, {p["id"]: p["completion"] for p in predictions})[0]

    rows = {
        "blind: whole video": grounding_row(baselines["whole_video"]),
        "blind: mean train span": grounding_row(baselines["mean_span"]),
        "SFT warm start": grounding_row(sft_report, sft_swapped),
        "SFT + GRPO": grounding_row(grpo_report, grpo_swapped),
    }
    table = format_table(rows)
    gain = rows["SFT + GRPO"]["mIoU"] - rows["SFT warm start"]["mIoU"]
    video_dependence = {name: round(row["mIoU"] - row[SWAPPED], 2) for name, row in rows.items() if SWAPPED in row}
    reward_curve = [(e["step"], e["reward"]) for e in grpo_trainer.state.log_history if "reward" in e]
    report = {
        "table": rows,
        "grpo_gain_miou": round(gain, 2),
        "video_dependence_miou": video_dependence,
        "seed": config.seed,
        "demo_config": asdict(config),
        "sft_config": sft_config.to_dict(),
        "grpo_config": grpo_config.to_dict(),
        "timings_s": timings,
        "grpo_log_history": grpo_trainer.state.log_history,
        "test_queries": len(test_records),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    plot_report(
        out / "report.png",
        reward_curve,
        {"SFT": [s["iou"] for s in sft_samples], "SFT + GRPO": [s["iou"] for s in grpo_samples]},
    )
    stage("report")
    print(f"\n{table}\n\nGRPO - SFT: {gain:+.1f} mIoU on {len(test_records)} held-out queries")  # noqa: T201
    dependence = ", ".join(f"{name} {value:+.1f}" for name, value in video_dependence.items())
    print(f"own video - swapped video (how much the answers use the video): {dependence}")  # noqa: T201
    print(f"wrote {out / 'report.json'} and {out / 'report.png'}; total {sum(timings.values()):.0f} s")  # noqa: T201
    return report
