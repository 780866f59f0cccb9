"""The main job on the embedded default: does GRPO add to a tiny model that grounds its answers in the video?

On a fresh machine, with no download:

1. build the tiny model of `family` (Qwen2.5-VL by default; `make demo FAMILY=qwen3_vl`) and render a synthetic
   grounding set (a training and a held-out test split);
2. SFT warm start (`sft_recipe`), with its learning curve: held-out mIoU on the clip's own video and on another
   clip's video every `curve_every` steps;
3. from that checkpoint, for the same wall-clock budget (`rl_seconds`) and on the same data, GRPO (`grpo_recipe`)
   and, as the control, more SFT (`sft_recipe` at `continued_learning_rate`, constant). They run as the recipes'
   own commands (`recipes/grpo.py`, `recipes/sft.py`), side by side on the two cores with one thread each, so each
   gets the same compute;
4. evaluate the warm start, the control and the GRPO model on the held-out split (greedy), each also with swapped
   videos and with zeroed pixels, beside the blind "whole video" answer;
5. write `report.json` (the `table`, the learning curves, the seeing checks, configs, timings) and `report.png`.

A model grounds its answers in the video when its own-video mIoU is far above its swapped-video mIoU (the same
questions asked of another clip) and its answers change when the pixels are zeroed (`temporal_rl.eval.
video_dependence`); a better blind prior raises mIoU on both.

This module owns the experiment's sequence and its report; training, evaluation and data generation are the
library's (`temporal_rl.training`, `temporal_rl.eval`, `data_tools.synth`).
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm.auto import tqdm
from transformers import TrainerCallback

from data_tools.synth import generate_dataset
from temporal_rl.configs import TemporalSFTConfig, parse_recipe, recipe_arguments
from temporal_rl.data import read_records
from temporal_rl.environment import child_environment
from temporal_rl.eval.baselines import baseline_predictions
from temporal_rl.eval.metrics import evaluate
from temporal_rl.eval.run import greedy_completions
from temporal_rl.eval.video_dependence import swap_videos, zeroed_video_kl
from temporal_rl.families import DEFAULT_FAMILY, FAMILIES, get_family
from temporal_rl.grpo.config import TemporalGRPOConfig
from temporal_rl.models.loading import load_inference_model
from temporal_rl.models.tiny import TinySpec, build_tiny_model

logger = logging.getLogger(__name__)

RECIPE_SCRIPTS = Path(__file__).resolve().parents[2] / "recipes"
METRICS = ("mIoU", "R@0.3", "R@0.5", "R@0.7")
SWAPPED = "mIoU, swapped video"
UNBOUNDED_STEPS = 1_000_000  # the equal-compute runs' max_steps: their wall-clock budget is what stops them
BLIND, WARM_START, CONTROL, GRPO = (
    "blind: whole video",
    "SFT warm start",
    "SFT continued (same compute as GRPO)",
    "SFT + GRPO",
)


@dataclass
class DemoConfig:
    """The demo's knobs; the training settings themselves come from the two tiny recipes."""

    output_dir: str = field(default="runs/demo", metadata={"help": "Where every artefact of the demo goes."})
    family: str = field(
        default=DEFAULT_FAMILY, metadata={"help": f"Model family of the tiny model: {', '.join(FAMILIES)}."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the model initialisation and of every training."})
    namespace: str = field(default="demo", metadata={"help": "Synthetic data namespace (fixes the clips)."})
    num_train: int = field(default=2000, metadata={"help": "Synthetic training clips."})
    num_test: int = field(default=200, metadata={"help": "Held-out synthetic test clips."})
    sft_recipe: str = field(default="recipes/tiny/sft_grounding.yaml", metadata={"help": "SFT recipe YAML."})
    grpo_recipe: str = field(default="recipes/tiny/grpo_grounding.yaml", metadata={"help": "GRPO recipe YAML."})
    sft_steps: int | None = field(default=None, metadata={"help": "Override the SFT recipe's max_steps."})
    rl_seconds: float = field(
        default=120.0, metadata={"help": "Wall-clock training budget of GRPO and of the continued-SFT control each."}
    )
    continued_learning_rate: float = field(
        default=2e-4, metadata={"help": "Constant learning rate of the continued-SFT control (the warm start's last)."}
    )
    parallel: bool = field(
        default=True, metadata={"help": "Run GRPO and the control side by side (one core each) instead of in turn."}
    )
    curve_every: int = field(default=250, metadata={"help": "Warm-start steps between learning-curve points."})
    curve_samples: int = field(default=64, metadata={"help": "Held-out clips per learning-curve point."})
    kl_samples: int = field(default=64, metadata={"help": "Held-out clips of the zeroed-pixel KL check."})
    eval_batch_size: int = field(default=32, metadata={"help": "Records per generate call in evaluation."})

    def __post_init__(self):
        get_family(self.family)  # an unknown family fails here, naming the supported ones
        if self.rl_seconds <= 0:
            raise ValueError(f"rl_seconds must be positive, got {self.rl_seconds}")
        for name in ("num_train", "num_test", "curve_every", "curve_samples", "kl_samples", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive count, got {getattr(self, name)}")


def frame_budget(family: str, recipe: str) -> dict[str, int]:
    """Recipe overrides that keep the recipe's frame size in `family`'s frame sides: `{}` when the recipe's
    `video_max_pixels` is a square of a multiple of the family's side factor (the tiny recipes' 56 px, Qwen2.5-VL's
    28), else the square of the next multiple up (64 px for Qwen3-VL and Qwen3.5, factor 32), so the synthetic frames
    are not shrunk below the recipe's size."""
    import math

    import yaml

    factor = get_family(family).video.image_factor
    max_pixels = int(yaml.safe_load(Path(recipe).read_text())["video_max_pixels"])
    side = math.isqrt(max_pixels)
    if side * side == max_pixels and side % factor == 0:
        return {}
    return {"video_max_pixels": (math.ceil(side / factor) * factor) ** 2}


def seeing_evaluation(model_dir: str | Path, records: list[dict], video_args, config: DemoConfig, max_new_tokens: int):
    """One model on the held-out records: its report, its predictions, its report with swapped videos, and the KL
    between its answers with real and with zeroed pixels (on the first `kl_samples` records)."""
    from temporal_rl.sft import VideoSFTCollator

    model, processor = load_inference_model(model_dir, dtype="float32")
    kwargs = {"max_new_tokens": max_new_tokens, "batch_size": config.eval_batch_size}
    predictions = greedy_completions(model, processor, records, video_args, **kwargs)
    # another clip's video on purpose, so a record's duration is not its video's
    swapped = greedy_completions(model, processor, swap_videos(records), video_args, check_durations=False, **kwargs)
    collator = VideoSFTCollator(
        processor, video_args.frame_sampling(), video_args.frame_cache(), video_args.prompt_options()
    )
    kl = zeroed_video_kl(model, collator, records[: config.kl_samples], batch_size=config.eval_batch_size)
    return {
        "report": evaluate(records, predictions)[0],
        "predictions": predictions,
        "swapped_report": evaluate(records, swapped)[0],
        "zeroed_pixel_kl": kl,
    }


def grounding_row(report: dict, swapped: dict | None = None) -> dict:
    row = {name: round(report["tasks"]["grounding"][name], 2) for name in METRICS}
    if swapped is not None:
        row[SWAPPED] = round(swapped["tasks"]["grounding"]["mIoU"], 2)
    return row


def format_table(rows: dict[str, dict]) -> str:
    header = f"{'':<38}" + "".join(f"{name:>8}" for name in METRICS) + f"{SWAPPED:>22}"
    lines = [header, "-" * len(header)]
    for name, row in rows.items():
        swapped = f"{row[SWAPPED]:>22.1f}" if SWAPPED in row else f"{'-':>22}"
        lines.append(f"{name:<38}" + "".join(f"{row[k]:>8.1f}" for k in METRICS) + swapped)
    return "\n".join(lines)


class LearningCurve(TrainerCallback):
    """Scores greedy held-out predictions, on the clips' own and on swapped videos, every `every` optimizer steps
    (and at the last one): the warm start's learning curve, `points` as `{"step", "mIoU", "mIoU, swapped video",
    "loss"}`."""

    def __init__(self, records: list[dict], video_args, *, every: int, max_new_tokens: int, batch_size: int):
        self.records, self.video_args, self.every = records, video_args, every
        self.kwargs = {"max_new_tokens": max_new_tokens, "batch_size": batch_size}
        self.points: list[dict] = []

    def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        if state.global_step % self.every and state.global_step != state.max_steps:
            return control
        was_training = model.training
        model.eval()
        scores = {}
        for name, records, swapped in (("mIoU", self.records, False), (SWAPPED, swap_videos(self.records), True)):
            predictions = greedy_completions(
                model, processing_class, records, self.video_args, check_durations=not swapped, **self.kwargs
            )
            scores[name] = round(evaluate(self.records, predictions)[0]["tasks"]["grounding"]["mIoU"], 2)
        model.train(was_training)
        losses = [entry["loss"] for entry in state.log_history if "loss" in entry]
        self.points.append({"step": state.global_step, **scores, "loss": losses[-1] if losses else None})
        step, own, swapped = state.global_step, scores["mIoU"], scores[SWAPPED]
        line = f"[demo] warm start step {step}: held-out mIoU {own:.1f}, with swapped videos {swapped:.1f}"
        tqdm.write(line)  # above the trainer's progress bar, not through it
        return control


def run_side_by_side(jobs: dict[str, list[str]], logs: dict[str, Path], budget: float, parallel: bool) -> dict:
    """Run each job (`python <script> <args>`) to completion, side by side or in turn, with a progress line per
    job; returns the wall-clock seconds of each. A failed job raises with the end of its log."""
    env = child_environment()
    seconds = {}
    batches = [list(jobs)] if parallel else [[name] for name in jobs]
    for batch in batches:
        started, processes = time.perf_counter(), {}
        for name in batch:
            processes[name] = subprocess.Popen(
                [sys.executable, *jobs[name]], stdout=logs[name].open("w"), stderr=subprocess.STDOUT, env=env
            )
        while any(process.poll() is None for process in processes.values()):
            time.sleep(5)
            elapsed = time.perf_counter() - started
            states = ", ".join(f"{name} {last_step(_tail(logs[name]))}" for name in batch)
            print(f"[demo] {elapsed:5.0f} s of {budget:.0f} s: {states}", flush=True)  # noqa: T201
        for name, process in processes.items():
            seconds[name] = round(time.perf_counter() - started, 1)
            if process.returncode != 0:
                tail = logs[name].read_text()[-3000:]
                raise RuntimeError(f"{name} failed (exit {process.returncode}); end of {logs[name]}:\n{tail}")
    return seconds


def last_step(log_text: str, max_steps: int = UNBOUNDED_STEPS) -> str:
    """The last optimizer step a training log shows, for the progress line: the newest "| N/max_steps [" of the
    trainer's progress bar (weight loading and saving draw bars of their own, with other totals)."""
    steps = re.findall(rf"\| *(\d+)/{max_steps} \[", log_text)
    return f"step {steps[-1]}" if steps else "starting"


def _tail(log: Path, size: int = 20_000) -> str:
    return log.read_text(errors="replace")[-size:] if log.exists() else ""


def plot_report(
    path: Path, curve: list[dict], runs: dict[str, list[dict]], ious: dict[str, list[float]], table: dict[str, dict]
) -> None:
    """Three panels: the warm start's learning curve, the RL phase's training signal, held-out IoU histograms (each
    labelled with its row's mIoU from `table`, the value the printed table shows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(16, 4.2))
    if curve:
        steps = [p["step"] for p in curve]
        left.plot(steps, [p["mIoU"] for p in curve], marker="o", label="own video")
        left.plot(steps, [p[SWAPPED] for p in curve], marker="o", label="swapped video")
        left.legend()
    left.set(title="SFT warm start: held-out mIoU", xlabel="optimizer step", ylabel="mIoU (%)")
    for name, log in runs.items():
        key = "reward" if name == GRPO else "loss"
        points = [(e["train_seconds"], e[key]) for e in log if key in e and "train_seconds" in e]
        if points:
            middle.plot(*zip(*points, strict=True), marker=".", label=f"{name}: {key}")
    middle.set(title="equal-compute phase (training signal)", xlabel="training seconds")
    if runs:
        middle.legend(fontsize=8)
    bins = [i / 10 for i in range(11)]
    for name, values in ious.items():
        right.hist(values, bins=bins, alpha=0.45, label=f"{name} (mIoU {table[name]['mIoU']:.1f})")
    right.set(title="held-out IoU per query", xlabel="IoU", ylabel="queries")
    right.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def run_demo(config: DemoConfig) -> dict:
    out = Path(config.output_dir)
    timings, start = {}, time.perf_counter()

    def stage(name: str) -> None:
        timings[name] = round(time.perf_counter() - start - sum(timings.values()), 1)
        print(f"[demo] {name} done in {timings[name]:.1f} s", flush=True)  # noqa: T201

    model_dir = build_tiny_model(out / "tiny-model", TinySpec(family=config.family, seed=config.seed))
    data_dir = out / "data"
    for split, n in (("train", config.num_train), ("test", config.num_test)):
        generate_dataset("grounding", split, n, config.namespace, data_dir / split, progress=True)
    train_file, test_file = data_dir / "train" / "data.jsonl", data_dir / "test" / "data.jsonl"
    test_records = read_records(test_file)
    stage("tiny model and synthetic data")

    common = {"train_file": str(train_file), "seed": config.seed, "frame_cache_dir": str(out / "frames")}
    common.update(frame_budget(config.family, config.sft_recipe))
    sft_overrides = {**common, "model_name_or_path": str(model_dir), "output_dir": str(out / "sft")}
    sft_data, sft_config, sft_model = parse_recipe(
        config.sft_recipe, TemporalSFTConfig, {**sft_overrides, "max_steps": config.sft_steps}
    )
    max_new_tokens = 24
    curve = LearningCurve(
        test_records[: config.curve_samples],
        sft_config,
        every=config.curve_every,
        max_new_tokens=max_new_tokens,
        batch_size=config.eval_batch_size,
    )
    from temporal_rl.training import train_sft

    train_sft(sft_data, sft_config, sft_model, callbacks=[curve])
    stage("SFT warm start")

    # GRPO and the control: the recipes' own commands from the warm start, the same wall-clock budget each.
    _, grpo_config, _ = parse_recipe(config.grpo_recipe, TemporalGRPOConfig, {**common, "model_name_or_path": "x"})
    start_from = {**common, "model_name_or_path": str(out / "sft"), "max_train_seconds": config.rl_seconds}
    jobs = {
        GRPO: [
            str(RECIPE_SCRIPTS / "grpo.py"),
            *recipe_arguments(
                config.grpo_recipe, {**start_from, "output_dir": str(out / "grpo"), "max_steps": UNBOUNDED_STEPS}
            ),
        ],
        CONTROL: [
            str(RECIPE_SCRIPTS / "sft.py"),
            *recipe_arguments(
                config.sft_recipe,
                {
                    **start_from,
                    "output_dir": str(out / "sft-continued"),
                    "learning_rate": config.continued_learning_rate,
                    "lr_scheduler_type": "constant",
                    "warmup_steps": 0,
                    "max_steps": UNBOUNDED_STEPS,
                    "dataloader_num_workers": 0,  # one core each: the batches are built on the training core
                },
            ),
        ],
    }
    logs = {GRPO: out / "grpo.log", CONTROL: out / "sft-continued.log"}
    rl_seconds = run_side_by_side(jobs, logs, config.rl_seconds, config.parallel)
    stage("GRPO and the continued-SFT control")

    evaluations = {
        name: seeing_evaluation(out / directory, test_records, grpo_config, config, max_new_tokens)
        for name, directory in ((WARM_START, "sft"), (CONTROL, "sft-continued"), (GRPO, "grpo"))
    }
    for name, evaluation in evaluations.items():
        (out / f"predictions-{directory_name(name)}.jsonl").write_text(
            "".join(json.dumps({"id": i, "completion": c}) + "\n" for i, c in evaluation["predictions"].items())
        )
    stage("evaluate the three models")

    blind = baseline_predictions(test_records, ["whole_video"], span_format=grpo_config.span_format)
    blind_report = evaluate(test_records, {p["id"]: p["completion"] for p in blind})[0]
    rows = {BLIND: grounding_row(blind_report)}
    rows.update({name: grounding_row(e["report"], e["swapped_report"]) for name, e in evaluations.items()})
    run_logs = {
        name: json.loads((out / d / "trainer_state.json").read_text())["log_history"]
        for name, d in ((GRPO, "grpo"), (CONTROL, "sft-continued"))
    }
    report = {
        "table": rows,
        "grpo_minus_control_miou": round(rows[GRPO]["mIoU"] - rows[CONTROL]["mIoU"], 2),
        "grpo_minus_warm_start_miou": round(rows[GRPO]["mIoU"] - rows[WARM_START]["mIoU"], 2),
        "video_dependence": {
            name: {
                "own_minus_swapped_miou": round(rows[name]["mIoU"] - rows[name][SWAPPED], 2),
                "zeroed_pixel_kl": round(e["zeroed_pixel_kl"], 6),
            }
            for name, e in evaluations.items()
        },
        "warm_start_curve": curve.points,
        "equal_compute": {
            name: {
                "budget_s": config.rl_seconds,
                "wall_s": rl_seconds[name],
                "optimizer_steps": max((e.get("step", 0) for e in run_logs[name]), default=0),
                "train_seconds": max((e.get("train_seconds", 0.0) for e in run_logs[name]), default=0.0),
                "side_by_side": config.parallel,
            }
            for name in (GRPO, CONTROL)
        },
        "seed": config.seed,
        "demo_config": asdict(config),
        "sft_config": sft_config.to_dict(),
        "equal_compute_commands": {name: ["python", *argv] for name, argv in jobs.items()},
        "timings_s": timings,
        "rl_logs": run_logs,
        "test_queries": len(test_records),
    }
    samples = {name: evaluate(test_records, e["predictions"])[1] for name, e in evaluations.items()}
    ious = {name: [sample["iou"] for sample in per_query] for name, per_query in samples.items()}
    plot_report(out / "report.png", curve.points, run_logs, ious, rows)
    stage("report")
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\n{format_table(rows)}\n")  # noqa: T201
    print(  # noqa: T201
        f"GRPO - continued SFT at equal compute: {report['grpo_minus_control_miou']:+.1f} mIoU; GRPO - warm start: "
        f"{report['grpo_minus_warm_start_miou']:+.1f} ({len(test_records)} held-out queries)"
    )
    dependence = ", ".join(
        f"{name}: {v['own_minus_swapped_miou']:+.1f} mIoU, KL {v['zeroed_pixel_kl']:.3f}"
        for name, v in report["video_dependence"].items()
    )
    print(f"own video - swapped video, and KL(real || zeroed pixels): {dependence}")  # noqa: T201
    print(f"wrote {out / 'report.json'} and {out / 'report.png'}; total {sum(timings.values()):.0f} s")  # noqa: T201
    return report


def directory_name(row: str) -> str:
    return {WARM_START: "sft", CONTROL: "sft-continued", GRPO: "grpo"}[row]
