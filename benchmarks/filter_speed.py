"""Throughput of the data filter's engine against the naive way of sampling K completions, in the same run.

    python benchmarks/filter_speed.py [--quick] [--samples 16] [--num-samples 8] [--batch-size 8]
        [--max-new-tokens 16] [--repeats 3] [--model DIR]

Both score the same synthetic grounding clips (tiny preset, 56 px) with the tiny Qwen2.5-VL (built here unless
--model is given), K sampled completions per clip, rewards iou + format:

- **filter engine** (`temporal_rl.filtering.run.run_batch`, the code the filter runs): each clip's video decoded once
  into a fresh frame cache, one processor call per clip, `batch_size` clips per `generate` call with K
  completions each from `num_return_sequences`;
- **naive**: for each clip, K separate `generate` calls of one completion, the processor (and the video decoding,
  no cache) run again for each call.

The two are interleaved (A/B per repeat, a fresh cache each time for the engine); the median samples/s of each and
their ratio are printed with the work counted: processor calls, generate calls, frames decoded, tokens generated
(generated positions, padding after an early end included), vision-tower calls and patches encoded. `measure()`
returns the same as a dict (what `make bench`, benchmarks/suite.py, calls); `--quick` is a small run for tests.
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

import temporal_rl.generation as inference  # noqa: E402
from data_tools.synth import generate_dataset  # noqa: E402
from temporal_rl.data import read_records  # noqa: E402
from temporal_rl.filtering.config import FilterConfig  # noqa: E402
from temporal_rl.filtering.run import batch_ranges, reward_matrices, run_batch  # noqa: E402
from temporal_rl.rewards import get_reward_funcs  # noqa: E402
from temporal_rl.video.cache import FrameCache  # noqa: E402


class Counters:
    """Work counted by wrapping the processor, `generate` and the frame loader."""

    def __init__(self):
        self.processor_calls = self.generate_calls = self.frames_decoded = self.tokens_generated = 0
        self.vit_calls = self.vit_patches = 0

    def as_dict(self) -> dict:
        return dict(vars(self))


class CountingProcessor:
    def __init__(self, processor, counters: Counters):
        self.processor, self.counters = processor, counters

    def __call__(self, *args, **kwargs):
        self.counters.processor_calls += 1
        return self.processor(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.processor, name)

    @property
    def __class__(self):  # the model-family seam finds a processor's family by its class
        return self.processor.__class__


def instrument(model, counters_ref: list, real_load_video):
    """Count generate calls, generated tokens, vision-tower calls and patches, decoded frames (`counters_ref[0]`)."""
    real_generate = model.generate

    def generate(**kwargs):
        counters = counters_ref[0]
        counters.generate_calls += 1
        output = real_generate(**kwargs)
        sequences = output if torch.is_tensor(output) else output.sequences
        counters.tokens_generated += sequences.shape[0] * (sequences.shape[1] - kwargs["input_ids"].shape[1])
        return output

    def count_vit(module, args, kwargs):
        counters_ref[0].vit_calls += 1
        counters_ref[0].vit_patches += int((args[0] if args else kwargs["hidden_states"]).shape[0])

    model.model.visual.register_forward_pre_hook(count_vit, with_kwargs=True)

    def load_video(path, *args, **kwargs):
        video = real_load_video(path, *args, **kwargs)
        counters_ref[0].frames_decoded += video.decoded_frames
        return video

    model.generate = generate
    inference.load_video = load_video


def run_engine(model, processor, config, reward_funcs, records, cache) -> int:
    done = 0
    for b, indices in enumerate(batch_ranges(len(records), config.batch_size)):
        result = run_batch(
            model, processor, config, reward_funcs, b, list(indices), [records[i] for i in indices], cache
        )
        done += len(result.samples)
    return done


def run_naive(model, processor, config, reward_funcs, records) -> int:
    options = inference.GenerationOptions(
        max_new_tokens=config.max_new_tokens,
        do_sample=True,
        temperature=config.temperature,
        num_return_sequences=1,
        batch_size=1,
    )
    torch.manual_seed(config.seed)
    for record in records:
        completions, ids = [], []
        for _ in range(config.num_samples):
            prompt = inference.prepare_prompt(
                record, processor, config.frame_sampling(), None, config.prompt_options()
            )
            (generation,) = inference.generate_batch(model, processor, [prompt], options)
            completions += generation.completions
            ids += generation.completion_ids
        reward_matrices(reward_funcs, [record], [completions], [ids])
    return len(records)


def measure(
    quick: bool = False,
    samples: int | None = None,
    num_samples: int | None = None,
    batch_size: int | None = None,
    max_new_tokens: int | None = None,
    repeats: int | None = None,
    model: str | None = None,
) -> dict:
    """Run the engine and the naive way interleaved; returns a JSON-serialisable dict.

    Args:
        quick: 4 clips, K=4, batch 4, 8 new tokens, one repeat (for tests) instead of 16, 8, 8, 16 and three.
        samples, num_samples, batch_size, max_new_tokens, repeats: override the mode's settings.
        model: a model directory; the tiny model is built when None.

    Returns:
        settings, samples_per_s (per way, every repeat), median_samples_per_s, work (per way, counted on the
        last repeat), speedup (median engine / median naive) and table (rows {"benchmark", "metric", "ours",
        "baseline", "ratio"}: samples/s, then the work counted, ours = engine, baseline = naive).
    """
    defaults = (4, 4, 4, 8, 1) if quick else (16, 8, 8, 16, 3)
    given = (samples, num_samples, batch_size, max_new_tokens, repeats)
    samples, num_samples, batch_size, max_new_tokens, repeats = (
        d if g is None else g for g, d in zip(given, defaults, strict=True)
    )
    if min(samples, num_samples, batch_size, max_new_tokens, repeats) < 1:
        raise ValueError(f"samples, num_samples, batch_size, max_new_tokens and repeats must be >= 1, got {given}")
    torch.set_num_threads(1)

    from transformers import AutoModelForImageTextToText, AutoProcessor

    real_load_video = inference.load_video
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = model
        if model_dir is None:
            from temporal_rl.models.tiny import build_tiny_model

            model_dir = build_tiny_model(tmp / "tiny")
        generate_dataset("grounding", "train", samples, "filter-speed", tmp / "data", workers=1, progress=False)
        records = read_records(tmp / "data" / "data.jsonl")
        config = FilterConfig(
            model_name_or_path=str(model_dir),
            data_file=str(tmp / "data" / "data.jsonl"),
            output_dir=str(tmp / "out"),
            num_samples=num_samples,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            reward_funcs=["iou", "format"],
            discrete_rewards=[],
            continuous_rewards=["iou"],
            video_min_pixels=784,
            video_max_pixels=3136,
            span_format="plain",
            video_position="last",
        )
        loaded = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).eval()
        counters_ref = [Counters()]
        try:
            instrument(loaded, counters_ref, real_load_video)
            processor = CountingProcessor(AutoProcessor.from_pretrained(model_dir), None)
            reward_funcs = get_reward_funcs(config.reward_funcs)

            def timed(name: str, repeat: int):
                counters_ref[0] = processor.counters = Counters()
                start = time.perf_counter()
                if name == "engine":
                    cache = FrameCache(tmp / f"cache-{repeat}")
                    done = run_engine(loaded, processor, config, reward_funcs, records, cache)
                else:
                    done = run_naive(loaded, processor, config, reward_funcs, records)
                return done / (time.perf_counter() - start), counters_ref[0].as_dict()

            timed("engine", -1)  # warm-up: imports, first-call allocations
            rates = {"engine": [], "naive": []}
            work = {}
            for repeat in range(repeats):
                for name in ("engine", "naive"):
                    rate, work[name] = timed(name, repeat)
                    rates[name].append(rate)
        finally:
            inference.load_video = real_load_video

    medians = {name: statistics.median(values) for name, values in rates.items()}
    speedup = medians["engine"] / medians["naive"]
    table = [
        {
            "benchmark": "filter",
            "metric": f"samples/s ({samples} clips, K={num_samples}, batch {batch_size})",
            "ours": medians["engine"],
            "baseline": medians["naive"],
            "ratio": speedup,
        }
    ]
    for key, label in (
        ("processor_calls", "processor calls"),
        ("generate_calls", "generate calls"),
        ("frames_decoded", "frames decoded"),
        ("vit_patches", "vision-encoder patches"),
    ):
        ours, baseline = work["engine"][key], work["naive"][key]
        table.append(
            {
                "benchmark": "filter",
                "metric": f"{label} per run",
                "ours": ours,
                "baseline": baseline,
                "ratio": ours / baseline if baseline else None,
            }
        )
    return {
        "settings": {
            "samples": samples,
            "num_samples": num_samples,
            "batch_size": batch_size,
            "max_new_tokens": max_new_tokens,
            "repeats": repeats,
            "model": None if model is None else str(model),
        },
        "samples_per_s": rates,
        "median_samples_per_s": medians,
        "work": work,
        "speedup": speedup,
        "torch_threads": torch.get_num_threads(),
        "table": table,
    }


def describe(result: dict) -> str:
    """The printed table: samples/s per way with the work counted, then the speed-up."""
    s = result["settings"]
    rates, work = result["samples_per_s"], result["work"]
    lines = [
        f"{s['samples']} clips x K={s['num_samples']} completions, {s['max_new_tokens']} new tokens max, "
        f"engine batch {s['batch_size']}",
        f"{'':<16}{'samples/s':>11}{'(min..max)':>16}{'processor':>11}{'generate':>10}{'frames':>9}{'tokens':>9}"
        f"{'ViT calls':>11}{'ViT patches':>13}",
    ]
    for name, label in (("engine", "filter engine"), ("naive", "naive")):
        w = work[name]
        spread = f"{min(rates[name]):.2f}..{max(rates[name]):.2f}"
        lines.append(
            f"{label:<16}{result['median_samples_per_s'][name]:>11.2f}{spread:>16}{w['processor_calls']:>11}"
            f"{w['generate_calls']:>10}{w['frames_decoded']:>9}{w['tokens_generated']:>9}"
            f"{w['vit_calls']:>11}{w['vit_patches']:>13}"
        )
    lines.append(
        f"speed-up (median samples/s, engine / naive): {result['speedup']:.1f}x over {s['repeats']} interleaved "
        "repeats"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 clips, K=4, batch 4, 8 new tokens, one repeat")
    parser.add_argument("--samples", type=int, default=None, help="synthetic grounding clips (16)")
    parser.add_argument("--num-samples", type=int, default=None, help="K, completions per clip (8)")
    parser.add_argument("--batch-size", type=int, default=None, help="clips per generate call, engine (8)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="(16)")
    parser.add_argument("--repeats", type=int, default=None, help="(3)")
    parser.add_argument("--model", default=None, help="model directory (default: build the tiny model)")
    args = parser.parse_args()
    result = measure(
        args.quick, args.samples, args.num_samples, args.batch_size, args.max_new_tokens, args.repeats, args.model
    )
    print(describe(result))


if __name__ == "__main__":
    main()
