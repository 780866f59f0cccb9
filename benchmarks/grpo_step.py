"""GRPO step time: TemporalGRPOTrainer against stock TRL GRPOTrainer on the same tiny config and video batches.

    python benchmarks/grpo_step.py [--steps 12] [--batch 16] [--generations 8]

Stock GRPOTrainer cannot tokenize video prompts from paths at all; it is given our `_tokenize_prompts` (frames
from the cache) and nothing else, so it generates with the video and scores the loss without it (a different,
wrong, model). Both run the same seeds, data, model and settings; the median step time (TRL's `step_time`, after
2 warm-up steps) is printed with the work counted per step: rows, vision-encoder patches in the rollout,
completion tokens.
"""

import argparse
import os
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import AutoModelForImageTextToText, AutoProcessor  # noqa: E402
from trl import GRPOTrainer  # noqa: E402

from data_tools.synth import generate_dataset  # noqa: E402
from temporal_rl.configs import TemporalGRPOConfig  # noqa: E402
from temporal_rl.data import load_dataset  # noqa: E402
from temporal_rl.models.tiny import build_tiny_model  # noqa: E402
from temporal_rl.prompts import PromptOptions
from temporal_rl.rewards import get_reward_funcs  # noqa: E402
from temporal_rl.trainers import TemporalGRPOTrainer, add_video_prompts  # noqa: E402
from temporal_rl.trainers.video_inputs import encode_video_prompts, mm_token_type_ids  # noqa: E402


class StockGRPOWithVideoRollouts(GRPOTrainer):
    """Stock GRPOTrainer given only the frames for generation (the loss side stays stock)."""

    def _tokenize_prompts(self, prompts):
        prompt_ids, rows, _ = encode_video_prompts(
            self.processing_class, prompts, self.args.frame_sampling(), self.args.frame_cache()
        )
        fields = rows.model_kwargs(0, len(rows))
        fields["mm_token_type_ids"] = [
            mm_token_type_ids(torch.tensor(ids), self._image_pad_token_id, self._video_pad_token_id).tolist()
            for ids in prompt_ids
        ]
        return prompt_ids, None, fields


def run(trainer_cls, model_dir: Path, dataset, config: TemporalGRPOConfig) -> dict:
    torch.manual_seed(0)
    trainer = trainer_cls(
        model=AutoModelForImageTextToText.from_pretrained(model_dir),
        args=config,
        train_dataset=dataset,
        processing_class=AutoProcessor.from_pretrained(model_dir),
        reward_funcs=get_reward_funcs(config.reward_funcs),
    )
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "step_time" in entry][2:]
    return {
        "step_time_s": statistics.median(entry["step_time"] for entry in logs),
        "completion_tokens": statistics.mean(entry["completions/mean_length"] for entry in logs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=16, help="rows per step (prompts x generations)")
    parser.add_argument("--generations", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = build_tiny_model(tmp / "tiny")
        generate_dataset("grounding", "train", 64, "bench", tmp / "data", workers=1, progress=False)
        dataset = add_video_prompts(load_dataset(tmp / "data" / "data.jsonl"), PromptOptions(span_format="plain"))
        config = TemporalGRPOConfig(
            output_dir=str(tmp / "out"),
            bf16=False,
            use_cpu=True,
            report_to="none",
            save_strategy="no",
            per_device_train_batch_size=args.batch,
            num_generations=args.generations,
            max_completion_length=16,
            max_steps=args.steps,
            logging_steps=1,
            seed=0,
            span_format="plain",
            reward_funcs=["iou", "format"],
            video_min_pixels=784,
            video_max_pixels=3136,
            frame_cache_dir=str(tmp / "frames"),
        )
        results = {
            "TemporalGRPOTrainer (video in every forward)": run(TemporalGRPOTrainer, model_dir, dataset, config),
            "stock GRPOTrainer (no video in the loss)": run(StockGRPOWithVideoRollouts, model_dir, dataset, config),
        }
    prompts = args.batch // args.generations
    print(f"tiny Qwen2.5-VL, 56 px synthetic clips at 2 fps, {prompts} prompts x {args.generations} generations")
    print(f"{'trainer':<46} {'step s':>8} {'completion tokens':>18}")
    for name, result in results.items():
        print(f"{name:<46} {result['step_time_s']:>8.3f} {result['completion_tokens']:>18.1f}")
    ours, stock = results.values()
    print(f"ours / stock step time: {ours['step_time_s'] / stock['step_time_s']:.2f}")


if __name__ == "__main__":
    main()
