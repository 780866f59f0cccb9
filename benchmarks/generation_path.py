"""The training-time generation path against a plain `generate`: what one generated token costs, counted.

    python -m benchmarks.generation_path [--quick] [--json PATH]

Why: on an H200 (2026-12-04, docs/measurements.md) the ViaRL trainer's generation of 8 x 512 tokens with the 3B
took 82 s where a plain `generate` of 16 x 512 tokens with the 7B took 29 s. Decoding with Hugging Face `generate`
is bound by the operations launched per token, so this benchmark counts them, on two scales:

- **real sizes, meta device** (no weights, no memory, no GPU): aten operations of one decode step of the real 3B and
  7B language models (8 rows, 1,400 cached tokens), without LoRA, with PEFT's LoRA (r = 64 on the 7 projections of
  every layer, the recipes' adapters) and with the trainer's lean path (`temporal_rl.models.lora_generation`,
  adapters in bf16); operations that launch a kernel are counted apart from views;
- **tiny model, CPU**: `TemporalGRPOTrainer`'s own generation (`_generate_single_turn`, one prompt x G rows,
  `min_new_tokens = max_new_tokens`, LoRA r=64 on the 7 projections) with PEFT's LoRA forward ("before") and with
  the lean path ("after"), against plain `model.generate` on the same prompt ids and video, of the same LoRA model
  and of the base model without adapters; plain `generate` with `use_cache=False` shows what generation without a
  KV cache would look like. Per token step (8 rows): language-model forwards, token positions fed per row (1 with the
  KV cache), aten operations and kernels (the marginal cost: counts at L and L/2 new tokens, differenced, so the
  prefill cancels out), and the CPU time of the decoding after the prefill (thread time: the machine may be shared;
  median of interleaved repeats), as ratios to the plain `generate` of the base model.

`measure(quick)` returns a dict with a "table" of {"benchmark", "metric", "ours", "baseline", "ratio"} rows (ours =
the trainer's generation after the fix, baseline = before it): the row format of `make bench` (benchmarks/suite.py),
which does not run it (run it on its own; docs/measurements.md records its counts).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections import Counter
from contextlib import nullcontext
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from temporal_rl.models.lora_generation import lean_lora_generation  # noqa: E402

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class OpCounter(TorchDispatchMode):
    """Counts the aten operations dispatched inside it: all, and those that launch a kernel (not a view)."""

    def __init__(self):
        super().__init__()
        self.ops = Counter()
        self.kernels = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[func.overloadpacket.__name__] += 1
        returns = func._schema.returns
        if not (returns and returns[0].alias_info is not None and not returns[0].alias_info.is_write):
            self.kernels += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.ops.values())


def lora_config(r: int = 64):
    from peft import LoraConfig

    return LoraConfig(
        r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules=LORA_TARGETS, exclude_modules=r".*visual.*"
    )


# ----------------------------------------------------------------------------------------------------------------
# Real sizes on the meta device


def decode_step_ops(size: str, rows: int = 8, context: int = 1400) -> dict:
    """aten operations of one decode step of the real `size` language model: no LoRA, PEFT's, lean (bf16)."""
    from peft import get_peft_model
    from transformers import DynamicCache

    from temporal_rl.models.qwen import build_qwen2_5_vl

    model = build_qwen2_5_vl(size, device="meta")
    hidden = model.config.text_config.hidden_size

    def count(language_model, scope) -> OpCounter:
        cache = DynamicCache(config=model.config)
        embeds = torch.empty(rows, context, hidden, device="meta", dtype=torch.bfloat16)
        positions = torch.zeros(3, rows, context, dtype=torch.long, device="meta")
        counter = OpCounter()
        with torch.no_grad(), scope:
            language_model(inputs_embeds=embeds, position_ids=positions, past_key_values=cache, use_cache=True)
            with counter:
                language_model(
                    inputs_embeds=embeds[:, :1],
                    position_ids=positions[:, :, :1],
                    past_key_values=cache,
                    use_cache=True,
                )
        return counter

    base = count(model.model.language_model, nullcontext())
    peft_model = get_peft_model(model, lora_config())
    language_model = peft_model.base_model.model.model.language_model
    peft = count(language_model, nullcontext())
    with lean_lora_generation(peft_model, torch.bfloat16) as switched:
        pass
    lean = count(language_model, lean_lora_generation(peft_model, torch.bfloat16))
    return {
        "size": size,
        "rows": rows,
        "cached_tokens": context,
        "lora_layers": switched,
        "ops": {"no_lora": base.total, "peft_lora": peft.total, "lean_lora": lean.total},
        "kernels": {"no_lora": base.kernels, "peft_lora": peft.kernels, "lean_lora": lean.kernels},
        "lean_minus_no_lora": dict((lean.ops - base.ops).most_common()),
        "peft_minus_no_lora": dict((peft.ops - base.ops).most_common()),
    }


# ----------------------------------------------------------------------------------------------------------------
# Tiny model on the CPU


class ForwardCounter:
    """Language-model forwards and the token positions fed to them (a forward pre-hook)."""

    def __init__(self, language_model):
        self.forwards = self.positions = self.decode_positions = self.decode_forwards = 0
        self.prefill_done = None  # thread time at the end of the first forward (the prefill)
        language_model.register_forward_pre_hook(self._count, with_kwargs=True)
        language_model.register_forward_hook(self._after)

    def _after(self, module, args, output):
        if self.forwards == 1:
            self.prefill_done = time.thread_time()

    def _count(self, module, args, kwargs):
        embeds = kwargs.get("inputs_embeds")
        self.forwards += 1
        self.positions += int(embeds.shape[0] * embeds.shape[1])
        if self.forwards > 1:  # after the prefill
            self.decode_forwards += 1
            self.decode_positions += int(embeds.shape[1])

    def take(self) -> dict:
        out = {
            "forwards": self.forwards,
            "positions": self.positions,
            "positions_per_row_per_decode_forward": self.decode_positions / max(1, self.decode_forwards),
        }
        self.forwards = self.positions = self.decode_positions = self.decode_forwards = 0
        return out


def _tiny_setup(tmp: Path, new_tokens: int, generations: int):
    from peft import get_peft_model
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from data_tools.synth import generate_dataset
    from temporal_rl.data import load_dataset
    from temporal_rl.grpo.config import TemporalGRPOConfig
    from temporal_rl.grpo.trainer import TemporalGRPOTrainer
    from temporal_rl.models.tiny import build_tiny_model

    model_dir = build_tiny_model(tmp / "tiny")
    generate_dataset("grounding", "train", 1, "bench-generation", tmp / "data", "standard", workers=1, progress=False)
    config = TemporalGRPOConfig(
        output_dir=str(tmp / "out"),
        bf16=False,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        per_device_train_batch_size=generations,
        num_generations=generations,
        max_completion_length=new_tokens,
        generation_kwargs={"min_new_tokens": new_tokens},  # random weights: every row runs to the limit
        temperature=1.0,
        max_steps=1,
        learning_rate=0.0,
        beta=0.0,
        span_format="plain",
        reward_funcs=["format", "iou"],
        frame_cache_dir=str(tmp / "frames"),
        video_min_pixels=112 * 112,
        video_max_pixels=112 * 112,
        activation_checkpointing=True,  # as the recipes: TRL switches it off for generation
        seed=0,
    )
    torch.manual_seed(0)
    processor = AutoProcessor.from_pretrained(model_dir)
    base = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
    lora_model = get_peft_model(AutoModelForImageTextToText.from_pretrained(model_dir), lora_config())
    for name, param in lora_model.named_parameters():  # B != 0: the adapters change the outputs
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.02)
    trainer = TemporalGRPOTrainer(
        model=lora_model,
        args=config,
        train_dataset=load_dataset(tmp / "data" / "data.jsonl"),
        processing_class=processor,
    )
    return trainer, base, processor


def tiny_generation(quick: bool) -> dict:
    """The trainer's generation (before / after) against plain `generate` on the tiny model; see the docstring."""
    from trl.trainer.utils import pad

    from temporal_rl.generation import vision_token_ids
    from temporal_rl.grpo.vision_sharing import find_video_model

    new_tokens, generations, repeats = (16, 4, 2) if quick else (64, 8, 5)
    with tempfile.TemporaryDirectory() as tmp:
        trainer, base, processor = _tiny_setup(Path(tmp), new_tokens, generations)
        trainer.model.train()
        batch = next(iter(trainer.get_train_dataloader()))
        prompt_ids, _, fields = trainer._tokenize_prompts([row["prompt"] for row in batch])
        rows = trainer._video_rows
        counters = {
            "trainer": ForwardCounter(find_video_model(trainer.model).language_model),
            "base": ForwardCounter(find_video_model(base).language_model),
        }
        tokenizer = processor.tokenizer
        ids = pad([torch.tensor(p) for p in prompt_ids], padding_value=tokenizer.pad_token_id, padding_side="left")
        mask = pad([torch.ones(len(p), dtype=torch.long) for p in prompt_ids], padding_value=0, padding_side="left")
        inputs = {
            "input_ids": ids,
            "attention_mask": mask,
            "mm_token_type_ids": (ids == trainer._video_pad_token_id).long() * 2,
            **rows.model_kwargs(0, len(rows)),
        }
        sampling = {
            "do_sample": True,
            "max_new_tokens": new_tokens,
            "min_new_tokens": new_tokens,
            "temperature": 1.0,
            "top_k": 0,
            "top_p": 1.0,
            "pad_token_id": tokenizer.pad_token_id,
            "suppress_tokens": vision_token_ids(processor),  # as the trainer: a sampled placeholder breaks a forward
        }

        def trainer_generation(lean: bool):
            def run(tokens: int = new_tokens):
                trainer.lean_lora_generation = lean
                trainer.generation_config.max_new_tokens = trainer.generation_config.min_new_tokens = tokens
                trainer._video_rows = rows
                trainer._generate_single_turn(prompt_ids, None, fields, generations)
                return "trainer"

            return run

        def plain(model, key: str, **extra):
            def run(tokens: int = new_tokens):
                with torch.no_grad():
                    model.generate(
                        **inputs, **{**sampling, "max_new_tokens": tokens, "min_new_tokens": tokens}, **extra
                    )
                return key

            return run

        cases = {
            "trainer_after": trainer_generation(lean=True),
            "trainer_before": trainer_generation(lean=False),
            "plain_generate_lora": plain(trainer.model, "trainer"),
            "plain_generate_no_lora": plain(base, "base"),
        }
        results = {name: {"cpu_s": []} for name in cases}
        half = new_tokens // 2
        for name, run in cases.items():
            counters[run()].take()  # a warm-up
            counted = {}
            for tokens in (half, new_tokens):  # the marginal cost of a token step: the prefill cancels out
                counter = OpCounter()
                with counter:
                    key = run(tokens)
                counted[tokens] = (counter, counters[key].take())
            (short, short_work), (full, full_work) = counted[half], counted[new_tokens]
            steps = new_tokens - half
            results[name].update(
                full_work,
                ops_per_step=(full.total - short.total) / steps,
                kernels_per_step=(full.kernels - short.kernels) / steps,
                forwards_per_step=(full_work["forwards"] - short_work["forwards"]) / steps,
            )
        for _ in range(repeats):  # interleaved A/B/C/D: CPU time of this thread after the prefill
            for name, run in cases.items():
                key = run()
                results[name]["cpu_s"].append(time.thread_time() - counters[key].prefill_done)
                counters[key].take()
        no_cache = plain(base, "base", use_cache=False)
        no_cache()
        no_cache_work = counters["base"].take()
    tokens = new_tokens * generations
    for result in results.values():
        result["cpu_s_median"] = statistics.median(result["cpu_s"])
        result["cpu_ms_per_step"] = 1000 * result["cpu_s_median"] / (new_tokens - 1)
    reference = results["plain_generate_no_lora"]
    for result in results.values():
        result["cpu_vs_plain_no_lora"] = result["cpu_s_median"] / reference["cpu_s_median"]
        result["kernels_vs_plain_no_lora"] = result["kernels_per_step"] / reference["kernels_per_step"]
    return {
        "rows": generations,
        "new_tokens_per_row": new_tokens,
        "tokens_generated": tokens,
        "prompt_tokens": int(mask.sum(1).max()),
        "repeats": repeats,
        "cases": results,
        "no_kv_cache": {**no_cache_work, "note": "plain generate of the base model with use_cache=False"},
    }


def measure(quick: bool = False) -> dict:
    """Counted work per decode step at real sizes (meta) and on the tiny model (CPU); JSON-serialisable."""
    torch.set_num_threads(1)
    real = {size: decode_step_ops(size) for size in (("3B",) if quick else ("3B", "7B"))}
    tiny = tiny_generation(quick)
    cases = tiny["cases"]
    after, before = cases["trainer_after"], cases["trainer_before"]
    table = []
    for size, counted in real.items():
        kernels = counted["kernels"]
        table.append(
            {
                "benchmark": "generation",
                "metric": f"real {size}, kernels / decode step (LoRA r=64; no LoRA: {kernels['no_lora']})",
                "ours": kernels["lean_lora"],
                "baseline": kernels["peft_lora"],
                "ratio": kernels["lean_lora"] / kernels["peft_lora"],
            }
        )
    table += [
        {
            "benchmark": "generation",
            "metric": "tiny, trainer generation, kernels / token step vs plain generate (no LoRA)",
            "ours": after["kernels_vs_plain_no_lora"],
            "baseline": before["kernels_vs_plain_no_lora"],
            "ratio": after["kernels_per_step"] / before["kernels_per_step"],
        },
        {
            "benchmark": "generation",
            "metric": "tiny, trainer generation, decode CPU time vs plain generate (no LoRA)",
            "ours": after["cpu_vs_plain_no_lora"],
            "baseline": before["cpu_vs_plain_no_lora"],
            "ratio": after["cpu_s_median"] / before["cpu_s_median"],
        },
        {
            "benchmark": "generation",
            "metric": "tiny, trainer generation, LM forwards / token step (KV cache: 1)",
            "ours": after["forwards_per_step"],
            "baseline": before["forwards_per_step"],
            "ratio": after["forwards_per_step"] / before["forwards_per_step"],
        },
    ]
    return {
        "config": {
            "real": "Qwen2.5-VL 3B/7B language models on the meta device, 8 rows, 1,400 cached tokens, bf16, "
            "LoRA r=64 on q,k,v,o,gate,up,down",
            "tiny": f"tiny Qwen2.5-VL, LoRA r=64 on the 7 projections (B initialised non-zero), 112 px clip, "
            f"{tiny['rows']} rows x {tiny['new_tokens_per_row']} tokens",
            "quick": quick,
            "torch_threads": torch.get_num_threads(),
            "time": "CPU time of this thread (time.thread_time) from the end of the prefill to the end of generate, "
            "median of interleaved repeats",
        },
        "real_size": real,
        "tiny": tiny,
        "table": table,
    }


def _print(results: dict) -> None:
    for size, counted in results["real_size"].items():
        ops, kernels = counted["ops"], counted["kernels"]
        print(
            f"real {size}, one decode step ({counted['rows']} rows, {counted['cached_tokens']} cached tokens, "
            f"{counted['lora_layers']} LoRA layers): aten ops no LoRA / PEFT LoRA / lean LoRA = "
            f"{ops['no_lora']} / {ops['peft_lora']} / {ops['lean_lora']}; kernels "
            f"{kernels['no_lora']} / {kernels['peft_lora']} / {kernels['lean_lora']}"
        )
    tiny = results["tiny"]
    print(
        f"tiny model, {tiny['rows']} rows x {tiny['new_tokens_per_row']} new tokens after a "
        f"{tiny['prompt_tokens']}-token prompt:"
    )
    print(
        f"| {'case':<24} | {'LM fwd/step':>11} | {'pos/row/fwd':>11} | {'ops/step':>8} | {'kernels/step':>12} "
        f"| {'CPU ms/step':>11} | {'CPU vs plain':>12} |"
    )
    for name, case in tiny["cases"].items():
        print(
            f"| {name:<24} | {case['forwards_per_step']:>11.2f} | "
            f"{case['positions_per_row_per_decode_forward']:>11.2f} | {case['ops_per_step']:>8.0f} | "
            f"{case['kernels_per_step']:>12.0f} | {case['cpu_ms_per_step']:>11.2f} | "
            f"{case['cpu_vs_plain_no_lora']:>12.2f} |"
        )
    no_cache = tiny["no_kv_cache"]
    print(
        f"plain generate without the KV cache: {no_cache['forwards']} forwards, "
        f"{no_cache['positions_per_row_per_decode_forward']:.1f} positions per row per decode forward"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the 3B only, fewer tokens and repeats (tests)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = measure(quick=args.quick)
    _print(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
