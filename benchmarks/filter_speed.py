"""Throughput of the data filter's engine against the naive way of sampling K completions, in the same run.

    python benchmarks/filter_speed.py [--samples 16] [--num-samples 8] [--batch-size 8] [--max-new-tokens 16]
        [--repeats 3] [--model DIR]

Both score the same synthetic grounding clips (tiny preset, 56 px) with the tiny Qwen2.5-VL (built here unless
--model is given), K sampled completions per clip, rewards iou + format:

- **filter engine** (`temporal_rl.filter_run.run_batch`, the code the filter runs): each clip's video decoded once
  into a fresh frame cache, one processor call per clip, `batch_size` clips per `generate` call with K
  completions each from `num_return_sequences`;
- **naive**: for each clip, K separate `generate` calls of one completion, the processor (and the video decoding,
  no cache) run again for each call.

The two are interleaved (A/B per repeat, a fresh cache each time for the engine); the median samples/s of each and
their ratio are printed with the work counted: processor calls, generate calls, frames decoded, tokens generated
(generated positions, padding after an early end included), vision-tower calls and patches encoded.
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

import temporal_rl.inference as inference  # noqa: E402
from data_tools.synth import generate_dataset  # noqa: E402
from temporal_rl.data import read_records  # noqa: E402
from temporal_rl.filter_config import FilterConfig  # noqa: E402
from temporal_rl.filter_run import batch_ranges, reward_matrices, run_batch  # noqa: E402
from temporal_rl.rewards import get_reward_funcs  # noqa: E402
from temporal_rl.video import FrameCache  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=16, help="synthetic grounding clips")
    parser.add_argument("--num-samples", type=int, default=8, help="K, completions per clip")
    parser.add_argument("--batch-size", type=int, default=8, help="clips per generate call (engine)")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default=None, help="model directory (default: build the tiny model)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from transformers import AutoModelForImageTextToText, AutoProcessor

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = args.model
        if model_dir is None:
            from temporal_rl.models.tiny import build_tiny_model

            model_dir = build_tiny_model(tmp / "tiny")
        generate_dataset("grounding", "train", args.samples, "filter-speed", tmp / "data", workers=1, progress=False)
        records = read_records(tmp / "data" / "data.jsonl")
        config = FilterConfig(
            model_name_or_path=str(model_dir),
            data_file=str(tmp / "data" / "data.jsonl"),
            output_dir=str(tmp / "out"),
            num_samples=args.num_samples,
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
            reward_funcs=["iou", "format"],
            discrete_rewards=[],
            continuous_rewards=["iou"],
            video_min_pixels=784,
            video_max_pixels=3136,
            span_format="plain",
            video_position="last",
        )
        model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).eval()
        counters_ref = [Counters()]
        instrument(model, counters_ref, inference.load_video)
        processor = CountingProcessor(AutoProcessor.from_pretrained(model_dir), None)
        reward_funcs = get_reward_funcs(config.reward_funcs)

        def timed(name: str, repeat: int):
            counters_ref[0] = processor.counters = Counters()
            start = time.perf_counter()
            if name == "engine":
                done = run_engine(model, processor, config, reward_funcs, records, FrameCache(tmp / f"cache-{repeat}"))
            else:
                done = run_naive(model, processor, config, reward_funcs, records)
            return done / (time.perf_counter() - start), counters_ref[0].as_dict()

        timed("engine", -1)  # warm-up: imports, first-call allocations
        rates = {"engine": [], "naive": []}
        work = {}
        for repeat in range(args.repeats):
            for name in ("engine", "naive"):
                rate, work[name] = timed(name, repeat)
                rates[name].append(rate)

    k, n = args.num_samples, args.samples
    print(f"{n} clips x K={k} completions, {args.max_new_tokens} new tokens max, engine batch {args.batch_size}")
    print(
        f"{'':<16}{'samples/s':>11}{'(min..max)':>16}{'processor':>11}{'generate':>10}{'frames':>9}{'tokens':>9}"
        f"{'ViT calls':>11}{'ViT patches':>13}"
    )
    for name, label in (("engine", "filter engine"), ("naive", "naive")):
        w = work[name]
        spread = f"{min(rates[name]):.2f}..{max(rates[name]):.2f}"
        print(
            f"{label:<16}{statistics.median(rates[name]):>11.2f}{spread:>16}{w['processor_calls']:>11}"
            f"{w['generate_calls']:>10}{w['frames_decoded']:>9}{w['tokens_generated']:>9}"
            f"{w['vit_calls']:>11}{w['vit_patches']:>13}"
        )
    ratio = statistics.median(rates["engine"]) / statistics.median(rates["naive"])
    print(f"speed-up (median samples/s, engine / naive): {ratio:.1f}x over {args.repeats} interleaved repeats")


if __name__ == "__main__":
    main()
