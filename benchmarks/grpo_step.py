"""GRPO step: TemporalGRPOTrainer (vision encoder shared) against plain TRL GRPOTrainer with the video fix.

    python benchmarks/grpo_step.py [--quick] [--json PATH]

Both train the tiny Qwen2.5-VL with LoRA on the language model (the vision tower frozen) on the same synthetic
grounding clips, seeds and settings, with video-heavy prompts (the "standard" clips, 112 px at 2 fps: about 3/4 of a
prompt's tokens are video tokens), G = 8 completions per prompt and completions of at most 8 tokens:

- **ours**: `TemporalGRPOTrainer` (defaults: frame cache, one processor call per distinct prompt, each distinct
  video through the vision tower once per step, its output reused by generation and every loss-side forward);
- **baseline**: `temporal_rl.grpo.baselines.PlainVideoGRPOTrainer`, stock TRL plus the minimal fix that makes
  it correct: every row decoded and processed on its own, the vision tower encoding every row in every forward.
- **ours, sharing off** (full run only, not in the table): `TemporalGRPOTrainer` with `share_vision_encoder: false`,
  to show what the vision sharing alone is worth.

Each step draws fresh clips (every clip is seen once, each run has an empty frame cache). Per trainer: the median
of TRL's `step_time` after 2 warm-up steps (1 with `--quick`), and per step (mean over the measured steps) the
vision-tower patches encoded (a forward hook on the tower), the language-model token positions fed to its forwards
(a forward hook on it: prompt and completion tokens of generation and of the policy forward, padding included) and
the frames decoded (the trainer's `video/frames_decoded`). `measure()` returns all of it as a dict with a "table" of
ours/baseline ratios (what `make bench`, benchmarks/suite.py, calls); `--quick` is a small run for tests.
"""

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from peft import LoraConfig  # noqa: E402
from transformers import AutoModelForImageTextToText, AutoProcessor, PrinterCallback, TrainerCallback  # noqa: E402

from data_tools.synth import generate_dataset  # noqa: E402
from temporal_rl.data import load_dataset  # noqa: E402
from temporal_rl.grpo.baselines import PlainVideoGRPOTrainer  # noqa: E402
from temporal_rl.grpo.config import TemporalGRPOConfig  # noqa: E402
from temporal_rl.grpo.trainer import TemporalGRPOTrainer  # noqa: E402
from temporal_rl.grpo.vision_sharing import find_video_model  # noqa: E402
from temporal_rl.models.tiny import build_tiny_model  # noqa: E402

WARMUP_STEPS = {False: 2, True: 1}  # by `quick`
DIFFICULTY = "standard"  # synthetic clips of 112 x 112 px, 10-20 s, rendered at 2 fps
FRAME_PIXELS = 112 * 112  # the clips' own size: 8 x 8 patches, 16 video tokens per 2 frames


class WorkPerStep(TrainerCallback):
    """Per optimizer step: patches the vision tower encoded and token positions the language model was fed,
    counted by forward pre-hooks on the two modules of the policy."""

    def __init__(self, model):
        video_model = find_video_model(model)
        self.patches = self.positions = 0
        self.steps: list[dict] = []
        video_model.visual.register_forward_pre_hook(self._count_patches, with_kwargs=True)
        video_model.language_model.register_forward_pre_hook(self._count_positions, with_kwargs=True)

    def _count_patches(self, module, args, kwargs):
        self.patches += (args[0] if args else kwargs["hidden_states"]).size(0)

    def _count_positions(self, module, args, kwargs):
        embeds = kwargs.get("inputs_embeds")
        self.positions += embeds.shape[0] * embeds.shape[1]

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append({"vision_patches": self.patches, "lm_tokens": self.positions})
        self.patches = self.positions = 0


def _config(out: Path, steps: int, prompts: int, generations: int, share: bool) -> TemporalGRPOConfig:
    return TemporalGRPOConfig(
        output_dir=str(out / "out"),
        bf16=False,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        per_device_train_batch_size=prompts * generations,
        num_generations=generations,
        max_completion_length=8,
        max_steps=steps,
        logging_steps=1,
        learning_rate=1e-4,
        seed=0,
        span_format="plain",
        reward_funcs=["iou", "format"],
        video_fps=2.0,
        video_min_pixels=FRAME_PIXELS,
        video_max_pixels=FRAME_PIXELS,
        frame_cache_dir=str(out / "frames"),  # empty: every clip is decoded once by ours
        share_vision_encoder=share,
    )


def run(trainer_cls, model_dir: Path, dataset, config: TemporalGRPOConfig, warmup: int) -> dict:
    """Train `max_steps` steps; the per-step work and step times after `warmup` steps."""
    torch.manual_seed(0)
    trainer = trainer_cls(
        model=AutoModelForImageTextToText.from_pretrained(model_dir),
        args=config,
        train_dataset=dataset,
        processing_class=AutoProcessor.from_pretrained(model_dir),
        peft_config=LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=r".*language_model.*_proj"),
    )
    trainer.remove_callback(PrinterCallback)  # no log lines on stdout
    work = WorkPerStep(trainer.model)
    trainer.add_callback(work)
    started = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - started
    logs = [entry for entry in trainer.state.log_history if "step_time" in entry]
    measured = slice(warmup, None)
    step_times = [entry["step_time"] for entry in logs][measured]
    counted = work.steps[measured]
    prompt_video = [entry.get("video/frames_decoded", 0.0) for entry in logs][measured]
    last = trainer._buffered_inputs[0]  # the last step's rows: how much of a prompt is video
    video_tokens = (last["prompt_ids"] == trainer._video_pad_token_id).sum()
    return {
        "step_time_s": statistics.median(step_times),
        "step_times_s": step_times,
        "vision_patches_per_step": statistics.mean(step["vision_patches"] for step in counted),
        "lm_tokens_per_step": statistics.mean(step["lm_tokens"] for step in counted),
        "frames_decoded_per_step": statistics.mean(prompt_video),
        "completion_tokens_mean": statistics.mean(entry["completions/mean_length"] for entry in logs[measured]),
        "trainer_logged_patches_per_step": statistics.mean(e["video/vision_patches"] for e in logs[measured]),
        "video_token_fraction": float(video_tokens / last["prompt_mask"].sum()),
        "wall_s": wall,
    }


METRICS = (
    ("step time (s, median)", "step_time_s"),
    ("vision-encoder patches / step", "vision_patches_per_step"),
    ("LM token positions / step", "lm_tokens_per_step"),
    ("frames decoded / step", "frames_decoded_per_step"),
)


def measure(quick: bool = False) -> dict:
    """Ours against the plain baseline on the same video-heavy tiny config; JSON-serialisable.

    Returns:
        {"config": ..., "trainers": {"ours": {...}, "baseline": {...}[, "ours_unshared": {...}]},
         "ratios": {metric: ours / baseline}, "table": [{"benchmark", "metric", "ours", "baseline", "ratio"}]}
    """
    torch.set_num_threads(1)
    prompts, generations = 2, 8
    warmup = WARMUP_STEPS[quick]
    steps = warmup + (2 if quick else 8)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = build_tiny_model(tmp / "tiny")
        generate_dataset(
            "grounding", "train", steps * prompts, "bench-grpo", tmp / "data", DIFFICULTY, workers=1, progress=False
        )
        dataset = load_dataset(tmp / "data" / "data.jsonl")
        runs = {"ours": (TemporalGRPOTrainer, True), "baseline": (PlainVideoGRPOTrainer, False)}
        if not quick:
            runs["ours_unshared"] = (TemporalGRPOTrainer, False)
        trainers = {
            name: run(cls, model_dir, dataset, _config(tmp / name, steps, prompts, generations, share), warmup)
            for name, (cls, share) in runs.items()
        }
    ours, baseline = trainers["ours"], trainers["baseline"]
    ratios = {key: ours[key] / baseline[key] if baseline[key] else None for _, key in METRICS}
    table = [
        {
            "benchmark": "grpo_step",
            "metric": label,
            "ours": ours[key],
            "baseline": baseline[key],
            "ratio": ratios[key],
        }
        for label, key in METRICS
    ]
    return {
        "config": {
            "model": "tiny Qwen2.5-VL (random weights), LoRA r=8 on the language model, vision tower frozen",
            "clips": f"synthetic grounding clips ({DIFFICULTY}: 112 px, 10-20 s), sampled at 2 fps, "
            f"{FRAME_PIXELS} pixels per frame",
            "video_token_fraction": ours["video_token_fraction"],
            "prompts_per_step": prompts,
            "generations": generations,
            "max_completion_length": 8,
            "steps": steps,
            "warmup_steps": warmup,
            "quick": quick,
            "torch_threads": torch.get_num_threads(),
            "baseline": "PlainVideoGRPOTrainer: stock TRL + video fix (per-row decode and processing, "
            "vision tower on every row in every forward)",
        },
        "trainers": trainers,
        "ratios": ratios,
        "table": table,
    }


def _format(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 measured steps, no sharing-off run")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = measure(quick=args.quick)
    config = results["config"]
    print(
        f"{config['model']}; {config['clips']}; {config['prompts_per_step']} prompts x {config['generations']} "
        f"generations, {config['steps'] - config['warmup_steps']} steps after {config['warmup_steps']} warm-up"
    )
    print(f"| {'metric':<30} | {'ours':>10} | {'baseline':>10} | {'ratio':>7} |")
    print(f"|{'-' * 32}|{'-' * 12}|{'-' * 12}|{'-' * 9}|")
    for row in results["table"]:
        print(
            f"| {row['metric']:<30} | {_format(row['ours']):>10} | {_format(row['baseline']):>10} "
            f"| {_format(row['ratio']):>7} |"
        )
    if "ours_unshared" in results["trainers"]:
        unshared = results["trainers"]["ours_unshared"]
        print(
            f"ours with share_vision_encoder=false: step {unshared['step_time_s']:.3f} s, "
            f"{unshared['vision_patches_per_step']:.0f} patches / step "
            f"(ours / this: {results['trainers']['ours']['step_time_s'] / unshared['step_time_s']:.2f} step time)"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
