"""Supervised warm start on canonical video data: the collator that turns rows into a Qwen2.5-VL batch.

TRL's SFTTrainer does the training (with `dataset_kwargs={"skip_prepare_dataset": True}` and
`remove_unused_columns=False`, so the raw rows reach the collator); this module only builds batches: the prompt
with its video exactly as the GRPO trainer builds it (`video_inputs.encode_video_prompts`), followed by the gold
completion (`PromptOptions.answer`) and the end-of-turn token, with the loss on the completion only.
"""

from __future__ import annotations

import torch

from temporal_rl.prompts import PromptOptions
from temporal_rl.trainers.video_inputs import encode_video_prompts, mm_token_type_ids
from temporal_rl.video import FrameCache, FrameSampling

IGNORE_INDEX = -100


class VideoSFTCollator:
    """Canonical rows -> `input_ids`, `attention_mask`, `labels` (-100 outside the completion), video inputs.

    Args:
        processor: a Qwen2.5-VL processor.
        sampling, cache: frame sampling and cache (`temporal_rl.video`).
        prompt: the prompt wording and answer format (`temporal_rl.prompts.PromptOptions`).
    """

    def __init__(self, processor, sampling: FrameSampling, cache: FrameCache | None, prompt: PromptOptions):
        self.processor, self.sampling, self.cache, self.prompt = processor, sampling, cache, prompt
        self.tokenizer = processor.tokenizer
        self.video_token_id = self.tokenizer.convert_tokens_to_ids(processor.video_token)
        self.image_token_id = self.tokenizer.convert_tokens_to_ids(processor.image_token)

    def completion_ids(self, row: dict) -> list[int]:
        text = self.prompt.answer(row) + self.tokenizer.eos_token
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        prompts = [self.prompt.messages(row, video=row["video"]) for row in rows]
        prompt_ids, video_rows, _ = encode_video_prompts(self.processor, prompts, self.sampling, self.cache)
        completions = [self.completion_ids(row) for row in rows]
        length = max(len(p) + len(c) for p, c in zip(prompt_ids, completions, strict=True))
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(rows), length), pad, dtype=torch.long)
        labels = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, (prompt, completion) in enumerate(zip(prompt_ids, completions, strict=True)):
            sequence = prompt + completion
            input_ids[i, : len(sequence)] = torch.tensor(sequence)
            labels[i, len(prompt) : len(sequence)] = torch.tensor(completion)
            attention_mask[i, : len(sequence)] = 1
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": labels,
            "mm_token_type_ids": mm_token_type_ids(input_ids, self.image_token_id, self.video_token_id),
            **video_rows.model_kwargs(0, len(rows)),
        }
