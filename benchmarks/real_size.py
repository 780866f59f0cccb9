"""Real-size speed: the 7B GRPO step and the ViaRL step, phase by phase, on whatever GPU is here.

    python -m benchmarks.real_size [--scale real|small|smoke] [--only grpo,viarl] [--trainers ours,plain] [--steps N]
                                   [--out DIR] [--peft-lora-generation]
    make bench-gpu                       # = python -m benchmarks.real_size (into bench/real or bench/small)

**real** (the default on a CUDA machine): the public Qwen2.5-VL-7B and -3B architectures with random weights in
bf16 on the GPU (no download: the tiny tokenizer, the config's special-token ids set to its ids, the full real
vocabulary kept, since the logits over it are a large part of the memory), SDPA, LoRA r=64 on the 7 projections of
the language model (vision tower frozen), activation checkpointing, synthetic clips rendered here:

- **grpo**: the 7B, 8 frames per video at 448x448, G = 8, 2 prompts per step (micro-batch 8, accumulation 2),
  128-token completions (`min_new_tokens` = max: random weights never stop), beta 0.01, think prompt (about 1,140
  prompt tokens), rewards iou + format; `TemporalGRPOTrainer` ("ours") against `PlainVideoGRPOTrainer` ("plain":
  stock TRL plus the video fix);
- **viarl**: `ViaRLSelectorTrainer`, the 3B selector (LoRA) and the frozen bf16 7B answerer in one process, T = 128
  candidates at 112 px, N = 8 at 896 px from 896 px source clips, G = 8, 1 prompt per step, 512-token selector
  completions, 128-token answers, kl_coef 1e-3; each completion is given 8 distinct random indices (random weights
  never write a valid list), so the answerer really answers 8 different prompts.

**small** (the default on a CPU): the same frame sizes, frame counts, G and prompts per step, with the tiny
Qwen2.5-VL (tiny widths, its own small vocabulary) as every model, fp32, shorter completions (32 / 64 / 16 tokens),
2 steps, and only our GRPO trainer unless `--trainers ours,plain` (the plain baseline encodes 196,608 patches per
step at these frame sizes: tens of minutes per step on a CPU). **smoke**: small frames and few tokens, both GRPO
trainers, for the test (tests/test_real_size.py).

Each run trains `--steps` optimizer steps (default 3, 2 at the small scale; each step's clips are new files, so the
frame cache is cold as in a first epoch) and records per step: wall time, peak GPU memory (allocated and reserved;
CUDA only), and the exclusive time of each phase (benchmarks/phases.py; on a GPU each phase boundary synchronises
the device):

| phase | what is timed |
|---|---|
| decode + processor (CPU) | `_encode_prompts` (frames, template, processor), ViaRL's candidates, answer prompts |
| vision encoder | forwards of the policy's vision tower, wherever they run |
| generation | the policy's `_generate_single_turn` (TRL's `generate` call) |
| old/ref log-probs | `_get_per_token_logps_and_entropies` outside the loss: old and reference log-probs |
| policy forward+backward | `compute_loss` and `accelerator.backward` |
| rewards | `_calculate_rewards`, without the answerer |
| answerer | the answer model's `generate` calls (its own vision tower included) |
| optimizer step | the optimizer's `step` |
| other | the rest of the step (TRL's bookkeeping, padding, advantages, gathers, ...) |

and the work: vision-tower patches, policy tokens generated, answer prompts generated. Printed as one table
(median over the steps after the first); written to OUT/results.json (every step of every run, the settings, the
machine and device) and OUT/results.md, like `make bench`. A run that fails (e.g. out of memory) is reported with
its error and the others still run.
"""

from __future__ import annotations

from temporal_rl.environment import pin_environment

pin_environment()

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import gc  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from benchmarks.phases import GIB, PhaseTimer, StepClock  # noqa: E402
from benchmarks.suite import format_number, machine_facts, to_jsonable, write_results  # noqa: E402

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PHASES = (
    "decode + processor (CPU)",
    "vision encoder",
    "generation",
    "old/ref log-probs",
    "policy forward+backward",
    "rewards",
    "answerer",
    "optimizer step",
    "other",
)
WORKLOADS = ("grpo", "viarl")
GRPO_CLIP_SECONDS = 10  # grounding clips this long (2 fps), sampled down to the scale's frame count
WORK = ("vision patches", "policy prompt tokens", "policy tokens generated", "answer prompts")  # counted per step


@dataclasses.dataclass(frozen=True)
class Scale:
    """The settings of one scale (see the module docstring)."""

    name: str
    tiny_models: bool
    steps: int = 3
    # GRPO trainers run unless `--trainers` says otherwise: "plain" encodes every row's video in every forward
    # (196,608 patches per step at real frame sizes), tens of minutes per step on a CPU
    trainers: tuple[str, ...] = ("ours", "plain")
    lora_r: int = 64
    generations: int = 8
    # GRPO (Temporal-RLT)
    grpo_model: str = "7B"
    grpo_prompts: int = 2
    grpo_frames: int = 8
    grpo_side: int = 448
    grpo_completion: int = 128
    # ViaRL
    selector_model: str = "3B"
    answer_model: str = "7B"
    viarl_prompts: int = 1
    candidates: int = 128
    selector_side: int = 112
    select: int = 8
    answer_side: int = 896
    source_side: int = 896
    selector_completion: int = 512
    answer_tokens: int = 128
    # False: the policy's generation runs PEFT's LoRA forward (before issue 16), for the before/after table
    lean_lora_generation: bool = True


SCALES = {
    "real": Scale("real", tiny_models=False),
    "small": Scale(
        "small",
        tiny_models=True,
        steps=2,
        trainers=("ours",),
        grpo_completion=32,
        selector_completion=64,
        answer_tokens=16,
    ),
    "smoke": Scale(
        "smoke",
        tiny_models=True,
        steps=2,
        lora_r=8,
        generations=4,
        grpo_frames=4,
        grpo_side=112,
        grpo_completion=6,
        candidates=16,
        selector_side=56,
        select=4,
        answer_side=112,
        source_side=112,
        selector_completion=8,
        answer_tokens=4,
    ),
}


# ----------------------------------------------------------------------------------------------------------------
# Models


def tiny_processor_dir(work: Path) -> Path:
    from temporal_rl.models.tiny import build_tiny_model

    target = work / "tiny"
    if not (target / "config.json").exists():
        build_tiny_model(target)
    return target


def real_size_model(size: str, tokenizer, device: torch.device, dtype: torch.dtype = torch.bfloat16):
    """The public `size` architecture with random weights on `device`, its special-token ids set to `tokenizer`'s
    (the vocabulary stays the real one: token ids the tokenizer lacks decode to nothing)."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    from temporal_rl.models.qwen import qwen2_5_vl_config

    config = qwen2_5_vl_config(size)
    ids = dict(zip(("image", "video", "start", "end"), tokenizer.convert_tokens_to_ids(
        ["<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>"]
    ), strict=True))  # fmt: skip
    config.image_token_id, config.video_token_id = ids["image"], ids["video"]
    config.vision_start_token_id, config.vision_end_token_id = ids["start"], ids["end"]
    for part in (config, config.text_config):
        part.eos_token_id = tokenizer.eos_token_id
        part.pad_token_id = tokenizer.pad_token_id
        part.bos_token_id = tokenizer.bos_token_id
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # built in bf16 directly: no float32 copy of the weights on the way
    try:
        with torch.device(device):
            model = Qwen2_5_VLForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


def load_policy(scale: Scale, size: str, tiny_dir: Path, tokenizer, device: torch.device):
    if scale.tiny_models:
        from transformers import AutoModelForImageTextToText

        return AutoModelForImageTextToText.from_pretrained(tiny_dir)
    return real_size_model(size, tokenizer, device)


def lora(scale: Scale):
    from peft import LoraConfig

    return LoraConfig(
        r=scale.lora_r,
        lora_alpha=2 * scale.lora_r,
        lora_dropout=0.0,
        target_modules=LORA_TARGETS,
        exclude_modules=r".*visual.*",
    )


# ----------------------------------------------------------------------------------------------------------------
# Data: synthetic clips, each step's on new files


def clips(task: str, count: int, side: int, seconds: int, out: Path, distinct: int) -> Path:
    """`count` canonical records on synthetic `side` px clips of `seconds` s at 2 fps; `distinct` clips are rendered
    and copied to new files (the frame cache keys on the file, so every record is decoded afresh)."""
    from data_tools.synth import generate_dataset
    from data_tools.synth.presets import PRESETS
    from temporal_rl.data import write_jsonl

    preset = dataclasses.replace(
        PRESETS["standard"], name=f"bench-{task}-{side}", size=side, clip_seconds=(seconds, seconds)
    )
    rendered = generate_dataset(task, "train", min(count, distinct), f"bench-real-size-{task}", out / "rendered",
                                preset, workers=1, progress=False)  # fmt: skip
    records = []
    for index in range(count):
        source = rendered[index % len(rendered)]
        path = out / "videos" / f"{task}-{index:04d}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / "rendered" / source["video"], path)
        records.append({**source, "id": f"{source['id']}-copy{index}", "video": str(path)})
    write_jsonl(out / "data.jsonl", records)
    return out / "data.jsonl"


# ----------------------------------------------------------------------------------------------------------------
# Instrumentation


class Work:
    """Per-step work counters, read and reset by `StepClock`."""

    def __init__(self):
        self.values: dict[str, float] = {}

    def add(self, name: str, amount: float) -> None:
        self.values[name] = self.values.get(name, 0.0) + amount

    def taker(self, name: str):
        def take() -> float:
            return self.values.pop(name, 0.0)

        return take


def instrument(trainer, timer: PhaseTimer, work: Work, answer=None) -> None:
    """Wrap the trainer's (and the answer reward's) methods and hook its vision tower: see the module docstring."""
    from temporal_rl.grpo.vision_sharing import find_video_model

    decode = PHASES[0]
    timer.wrap(trainer, "_encode_prompts", decode)
    if hasattr(trainer, "_candidates"):
        timer.wrap(trainer, "_candidates", decode)
    visual = find_video_model(trainer.model).visual
    timer.time_module(visual, "vision encoder")
    visual.register_forward_pre_hook(
        lambda module, args, kwargs: work.add(
            "vision patches", (args[0] if args else kwargs["hidden_states"]).size(0)
        ),
        with_kwargs=True,
    )

    generate = trainer._generate_single_turn

    def counted_generation(prompt_ids, *args, **kwargs):
        completion_ids, logprobs = generate(prompt_ids, *args, **kwargs)
        work.add("policy prompt tokens", sum(len(ids) for ids in prompt_ids))
        work.add("policy tokens generated", sum(len(ids) for ids in completion_ids))
        return completion_ids, logprobs

    trainer._generate_single_turn = counted_generation
    timer.wrap(trainer, "_generate_single_turn", "generation")
    policy = "policy forward+backward"
    timer.wrap(
        trainer,
        "_get_per_token_logps_and_entropies",
        lambda: policy if timer.current == policy else "old/ref log-probs",
    )
    timer.wrap(trainer, "compute_loss", policy)
    timer.wrap(trainer.accelerator, "backward", policy)
    timer.wrap(trainer, "_calculate_rewards", "rewards")
    if answer is not None:
        answer_generate = answer.answer

        def counted_answers(prompts):
            work.add("answer prompts", len(prompts))
            return answer_generate(prompts)

        answer.answer = counted_answers
        timer.wrap(answer, "answer", "answerer")
        timer.wrap(answer, "prepare", decode)


class OptimizerClock(StepClock):
    """`StepClock` that also times the optimizer's step (the optimizer exists once training begins)."""

    def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
        if optimizer is not None:
            self.timer.wrap(optimizer, "step", "optimizer step")


# ----------------------------------------------------------------------------------------------------------------
# Runs


def _synchronize(device: torch.device):
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else None


def _common_config(scale: Scale, out: Path, device: torch.device) -> dict:
    cuda = device.type == "cuda"
    return dict(
        output_dir=str(out / "out"),
        bf16=cuda,
        use_cpu=not cuda,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        logging_steps=1,
        max_steps=scale.steps,
        learning_rate=1e-6,
        temperature=1.0,
        num_generations=scale.generations,
        per_device_train_batch_size=scale.generations,  # one group per micro-batch
        activation_checkpointing=True,
        frame_cache_dir=str(out / "frames"),  # empty: each step's new clips are decoded
        seed=0,
    )


def run_grpo(trainer_name: str, scale: Scale, work_dir: Path, device: torch.device) -> dict:
    """`scale.steps` GRPO steps of `trainer_name` ("ours" or "plain") on the GRPO workload; per-step records."""
    from transformers import AutoProcessor

    from temporal_rl.data import load_dataset
    from temporal_rl.grpo.baselines import PlainVideoGRPOTrainer
    from temporal_rl.grpo.config import TemporalGRPOConfig
    from temporal_rl.grpo.trainer import TemporalGRPOTrainer

    out = work_dir / f"grpo-{trainer_name}"
    tiny_dir = tiny_processor_dir(work_dir)
    processor = AutoProcessor.from_pretrained(tiny_dir)
    rows = scale.steps * scale.grpo_prompts
    seconds = max(GRPO_CLIP_SECONDS, scale.grpo_frames // 2)  # the synthetic grounding events need >= 10 s
    data = clips("grounding", rows, scale.grpo_side, seconds, out / "data", distinct=rows)
    pixels = scale.grpo_side * scale.grpo_side
    config = TemporalGRPOConfig(
        **_common_config(scale, out, device),
        gradient_accumulation_steps=scale.grpo_prompts,
        max_completion_length=scale.grpo_completion,
        generation_kwargs={"min_new_tokens": scale.grpo_completion},
        beta=0.01,
        loss_type="dapo",
        think=True,
        span_format="json",
        reward_funcs=["iou", "format"],
        reward_weights=[0.5, 0.5],
        video_fps=scale.grpo_frames / seconds,  # exactly `grpo_frames` frames per clip
        video_min_pixels=pixels,
        video_max_pixels=pixels,
        video_total_pixels=pixels * scale.grpo_frames,
    )
    torch.manual_seed(0)
    loaded = time.perf_counter()
    model = load_policy(scale, scale.grpo_model, tiny_dir, processor.tokenizer, device)
    cls = {"ours": TemporalGRPOTrainer, "plain": PlainVideoGRPOTrainer}[trainer_name]
    trainer = cls(
        model=model,
        args=config,
        train_dataset=load_dataset(data),
        processing_class=processor,
        peft_config=lora(scale),
    )
    if trainer_name == "ours":  # the plain baseline generates as stock TRL does (PEFT's LoRA forward)
        trainer.lean_lora_generation = scale.lean_lora_generation
    return _train(trainer, device, time.perf_counter() - loaded)


class DistinctIndicesAnswer:
    """Makes `AnswerModelReward` answer N distinct random indices per completion (a random selector never writes
    a valid list, and the fallback list would be the same for every completion): the answerer runs once per row."""

    def __init__(self, num_candidates: int, num_select: int, seed: int = 0):
        self.num_candidates, self.num_select = num_candidates, num_select
        self.rng = random.Random(seed)

    def completions(self, count: int) -> list[str]:
        picks = [sorted(self.rng.sample(range(self.num_candidates), self.num_select)) for _ in range(count)]
        return [f"<index>{', '.join(map(str, pick))}</index>" for pick in picks]


def run_viarl(scale: Scale, work_dir: Path, device: torch.device) -> dict:
    """`scale.steps` ViaRL selector steps: the selector (LoRA) and the frozen answer model in this process."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from temporal_rl.data import load_dataset
    from temporal_rl.viarl.config import ViaRLSelectorConfig
    from temporal_rl.viarl.selector_trainer import (
        AnswerModelReward,
        ViaRLSelectorTrainer,
        freeze,
        selector_reward_funcs,
    )

    out = work_dir / "viarl"
    tiny_dir = tiny_processor_dir(work_dir)
    processor = AutoProcessor.from_pretrained(tiny_dir)
    rows = scale.steps * scale.viarl_prompts
    data = clips("mcq", rows, scale.source_side, scale.candidates // 2, out / "data", distinct=1)
    config = ViaRLSelectorConfig(
        **_common_config(scale, out, device),
        gradient_accumulation_steps=scale.viarl_prompts,
        max_completion_length=scale.selector_completion,
        generation_kwargs={"min_new_tokens": scale.selector_completion},
        answer_model_name_or_path="(passed in: random weights)",
        answer_batch_size=8,
        answer_max_new_tokens=scale.answer_tokens,
        num_candidates=scale.candidates,
        num_frames_to_select=scale.select,
        selector_long_side=scale.selector_side,
        answer_long_side=scale.answer_side,
        length_min_tokens=min(80, scale.selector_completion),
        length_max_tokens=scale.selector_completion,
        kl_coef=1e-3,
    )
    torch.manual_seed(0)
    loaded = time.perf_counter()
    if scale.tiny_models:
        answer_model = AutoModelForImageTextToText.from_pretrained(tiny_dir)
    else:
        answer_model = real_size_model(scale.answer_model, processor.tokenizer, device)
    answer = AnswerModelReward(
        freeze(answer_model),
        processor,
        prompt_options=config.prompt_options(),
        batch_size=config.answer_batch_size,
        max_new_tokens=config.answer_max_new_tokens,
    )
    distinct = DistinctIndicesAnswer(scale.candidates, scale.select)
    answer_call = answer.__call__

    def answer_distinct(completions, **columns):
        return answer_call(distinct.completions(len(completions)), **columns)

    reward_funcs = [answer_distinct if func is answer else func for func in selector_reward_funcs(config, answer)]
    answer_distinct.__name__ = answer.__name__
    trainer = ViaRLSelectorTrainer(
        model=load_policy(scale, scale.selector_model, tiny_dir, processor.tokenizer, device),
        args=config,
        train_dataset=load_dataset(data),
        processing_class=processor,
        reward_funcs=reward_funcs,
        answer_model=answer_model,
        answer_processor=processor,
        peft_config=lora(scale),
    )
    trainer.lean_lora_generation = scale.lean_lora_generation
    return _train(trainer, device, time.perf_counter() - loaded, answer=answer)


def _train(trainer, device: torch.device, setup_s: float, answer=None) -> dict:
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    timer, work = PhaseTimer(_synchronize(device)), Work()
    instrument(trainer, timer, work, answer)
    counters = {name: work.taker(name) for name in WORK}
    clock = OptimizerClock(timer, device, counters)
    trainer.add_callback(clock)
    weights_gib = torch.cuda.memory_allocated(device) / GIB if device.type == "cuda" else None
    began = time.perf_counter()
    try:
        trainer.train()
    finally:
        timer.restore()
    logs = [entry for entry in trainer.state.log_history if "step_time" in entry]
    return {
        "setup_s": setup_s,
        "train_wall_s": time.perf_counter() - began,
        "weights_gib": weights_gib,
        "steps": clock.steps,
        "trl_step_times_s": [entry["step_time"] for entry in logs],
        "completion_mean_length": [entry.get("completions/mean_length") for entry in logs],
        "attn_implementation": getattr(trainer.model.config, "_attn_implementation", None),
    }


def summarize(run: dict) -> dict:
    """Medians over the steps after the first (all steps when there is one): wall, phases, work; the peak memory."""
    steps = run["steps"]
    measured = steps[1:] or steps
    phases = {name: statistics.median(step["phases_s"].get(name, 0.0) for step in measured) for name in PHASES}
    work = {name: statistics.median(step["work"].get(name, 0.0) for step in measured) for name in steps[0]["work"]}
    peaks = [step.get("peak_allocated_gib") for step in steps if step.get("peak_allocated_gib") is not None]
    reserved = [step.get("peak_reserved_gib") for step in steps if step.get("peak_reserved_gib") is not None]
    return {
        "step_times_s": [step["wall_s"] for step in steps],
        "step_s": statistics.median(step["wall_s"] for step in measured),
        "phases_s": phases,
        "work": work,
        "peak_allocated_gib": max(peaks) if peaks else None,
        "peak_reserved_gib": max(reserved) if reserved else None,
    }


# ----------------------------------------------------------------------------------------------------------------
# Report


RUN_TITLES = {
    "grpo/ours": "GRPO, TemporalGRPOTrainer",
    "grpo/plain": "GRPO, plain TRL + fix",
    "viarl/ours": "ViaRL selector step",
}


def device_facts(device: torch.device) -> dict:
    facts = {"type": device.type}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        facts.update(
            name=props.name,
            memory_gib=props.total_memory / GIB,
            capability=f"{props.major}.{props.minor}",
            cuda=torch.version.cuda,
            count=torch.cuda.device_count(),
        )
    else:
        facts["name"] = "CPU (no CUDA device)"
    return facts


def phase_table(summaries: dict[str, dict]) -> str:
    """Markdown: one column per run, one row per phase, then step time, the steps, peak memory and the work."""
    names = list(summaries)
    lines = ["| | " + " | ".join(RUN_TITLES.get(name, name) for name in names) + " |", "|---|" + "---|" * len(names)]

    def row(label, cells):
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    for phase in PHASES:
        row(f"{phase} (s)", [format_number(summaries[name]["phases_s"][phase]) for name in names])
    row("**step (s, median after the first)**", [f"**{format_number(summaries[n]['step_s'])}**" for n in names])
    row("steps 1..n (s)", [" / ".join(format_number(t) for t in summaries[n]["step_times_s"]) for n in names])
    row("peak allocated (GiB)", [format_number(summaries[n]["peak_allocated_gib"]) for n in names])
    row("peak reserved (GiB)", [format_number(summaries[n]["peak_reserved_gib"]) for n in names])
    for label in WORK:
        row(f"{label} / step", [format_number(summaries[n]["work"].get(label)) for n in names])
    return "\n".join(lines)


def suite_rows(summaries: dict[str, dict]) -> list[dict]:
    """`make bench`-style rows: ours against plain TRL + fix for the GRPO step."""
    rows = []
    ours, plain = summaries.get("grpo/ours"), summaries.get("grpo/plain")
    if ours and plain:
        for label, key in (("step time (s, median)", None), ("vision patches / step", "vision patches")):
            a = ours["step_s"] if key is None else ours["work"].get(key)
            b = plain["step_s"] if key is None else plain["work"].get(key)
            rows.append(
                {
                    "benchmark": "real_size/grpo",
                    "metric": label,
                    "ours": a,
                    "baseline": b,
                    "ratio": a / b if b else None,
                }
            )
    return rows


def render_markdown(report: dict) -> str:
    machine, device, scale = report["machine"], report["device"], report["scale"]
    lines = [
        "# Real-size speed (`python -m benchmarks.real_size`)",
        "",
        f"Scale **{scale['name']}** on **{device['name']}**"
        + (f" ({device['memory_gib']:.0f} GiB, CUDA {device['cuda']})" if device["type"] == "cuda" else "")
        + f"; {machine['date_utc']}; torch {machine['versions'].get('torch')}, transformers "
        f"{machine['versions'].get('transformers')}, TRL {machine['versions'].get('trl')}, PEFT "
        f"{machine['versions'].get('peft')}; {machine['cpu_count']} CPUs, torch threads {machine['torch_threads']}"
        + (f"; commit {machine['git']['commit'][:10]}" if machine["git"].get("commit") else "")
        + ".",
        "",
        report["description"],
        "",
        phase_table(report["summaries"]) if report["summaries"] else "(no run finished)",
        "",
        "Phase times are exclusive (a nested phase counts for itself only); `other` is the rest of the step. "
        + ("Each phase boundary synchronises the GPU." if device["type"] == "cuda" else "CPU wall times: on a "
           "shared machine compare columns of one run, not runs."),
    ]  # fmt: skip
    if report["errors"]:
        lines += ["", "Errors:"] + [f"- {name}: {message}" for name, message in report["errors"].items()]
    lines += [
        "",
        f"Every step of every run, the settings and the machine: results.json. Wall: {report['wall_s']:.0f} s.",
    ]
    return "\n".join(lines) + "\n"


def describe(scale: Scale, device: torch.device) -> str:
    models = (
        "tiny Qwen2.5-VL for every model (tiny widths, fp32)"
        if scale.tiny_models
        else f"Qwen2.5-VL-{scale.grpo_model} / -{scale.selector_model} architectures, random weights, bf16, "
        "full real vocabulary"
    )
    return (
        f"Models: {models}; LoRA r={scale.lora_r} on the 7 projections, vision tower frozen, activation "
        f"checkpointing. GRPO: {scale.grpo_frames} frames at {scale.grpo_side}x{scale.grpo_side}, "
        f"G={scale.generations}, "
        f"{scale.grpo_prompts} prompts per step (accumulation {scale.grpo_prompts}), {scale.grpo_completion}-token "
        f"completions, beta 0.01, think prompt. ViaRL: T={scale.candidates} at {scale.selector_side} px, "
        f"N={scale.select} at {scale.answer_side} px from {scale.source_side} px clips, G={scale.generations}, "
        f"{scale.viarl_prompts} prompt per step, {scale.selector_completion}-token selector completions, "
        f"{scale.answer_tokens}-token answers, {scale.select} distinct indices per completion; {scale.steps} steps "
        "per run, new "
        f"clips every step (cold frame cache); device {device}."
    )


def run_all(scale: Scale, only: list[str], out: Path, work_dir: Path | None, trainers: list[str]) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(1)
    began = time.perf_counter()
    machine = machine_facts()
    runs, errors = {}, {}
    planned = [("grpo", name) for name in trainers if "grpo" in only] + (
        [("viarl", "ours")] if "viarl" in only else []
    )
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        for workload, trainer_name in planned:
            key = f"{workload}/{trainer_name}"
            print(f"[real_size] {key} ...", file=sys.stderr, flush=True)
            try:
                if workload == "grpo":
                    runs[key] = run_grpo(trainer_name, scale, Path(tmp), device)
                else:
                    runs[key] = run_viarl(scale, Path(tmp), device)
            except Exception as err:  # reported; the other runs still happen
                traceback.print_exc()
                errors[key] = f"{type(err).__name__}: {err}"
            finally:
                gc.collect()
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            print(f"[real_size] {key} done", file=sys.stderr, flush=True)
    summaries = {key: summarize(run) for key, run in runs.items() if run["steps"]}
    report = to_jsonable(
        {
            "scale": dataclasses.asdict(scale),
            "device": device_facts(device),
            "machine": machine,
            "description": describe(scale, device),
            "phases": list(PHASES),
            "summaries": summaries,
            "table": suite_rows(summaries),
            "runs": runs,
            "errors": errors,
            "wall_s": time.perf_counter() - began,
        }
    )
    write_results(out, report, render_markdown(report))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scale", choices=list(SCALES), default=None, help="real (default on CUDA), small (default on a CPU), smoke"
    )
    parser.add_argument("--only", default="grpo,viarl", help="comma-separated subset of: grpo, viarl")
    parser.add_argument(
        "--trainers", default=None, help="GRPO trainers: ours, plain (default: both; ours only at the small scale)"
    )
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per run (default: the scale's)")
    parser.add_argument("--out", default=None, help="folder for results.json and results.md (default bench/<scale>)")
    parser.add_argument("--work-dir", default=None, help="where the clips and models go (default: a temp folder)")
    parser.add_argument(
        "--peft-lora-generation",
        action="store_true",
        help="generate through PEFT's LoRA forward, as before issue 16 (the 'before' column of a before/after)",
    )
    args = parser.parse_args(argv)
    scale = SCALES[args.scale or ("real" if torch.cuda.is_available() else "small")]
    if args.steps is not None:
        if args.steps < 1:
            parser.error("--steps must be at least 1")
        scale = dataclasses.replace(scale, steps=args.steps)
    if args.peft_lora_generation:
        scale = dataclasses.replace(scale, lean_lora_generation=False)
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    trainers = [name.strip() for name in (args.trainers or ",".join(scale.trainers)).split(",") if name.strip()]
    if not only or set(only) - set(WORKLOADS) or not trainers or set(trainers) - {"ours", "plain"}:
        parser.error("--only takes grpo and/or viarl; --trainers takes ours and/or plain")
    out = Path(args.out or f"bench/{scale.name}")
    report = run_all(scale, only, out, Path(args.work_dir) if args.work_dir else None, trainers)
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
