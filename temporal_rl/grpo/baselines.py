"""Baseline GRPO trainers for video, for benchmarks and tests: what a user gets from stock TRL 1.16.

- `StockGRPOWithVideoRollouts`: stock `trl.GRPOTrainer`, given only our prompt tokenization so that it can
  generate from video paths at all. Its loss side stays stock, i.e. wrong: the old, reference and policy log-probs
  are computed without the video (see `temporal_rl.grpo.trainer`).
- `PlainVideoGRPOTrainer`: stock TRL plus the minimal fix that makes it correct, and nothing more: every row is
  decoded and processed on its own and carries its own pixel copy, and the vision tower encodes every row in every
  forward (generation, old and reference log-probs, policy).

This module owns these reference points only; the trainer to use is `TemporalGRPOTrainer`.
"""

from __future__ import annotations

import torch
from trl import GRPOTrainer

from temporal_rl.grpo.config import TemporalGRPOConfig
from temporal_rl.grpo.trainer import TemporalGRPOTrainer
from temporal_rl.grpo.video_rows import VideoRows, encode_video_prompts
from temporal_rl.video.cache import load_video
from temporal_rl.video.inputs import mm_token_type_ids


class StockGRPOWithVideoRollouts(GRPOTrainer):
    """Stock GRPOTrainer whose `_tokenize_prompts` gets the frames (frame cache, real fps); nothing else changes.

    Needs a `TemporalGRPOConfig` (for the frame sampling) and a dataset with a `prompt` column
    (`add_video_prompts`). Generation sees each row's video; the loss-side forwards do not.
    """

    def _tokenize_prompts(self, prompts):
        if not isinstance(self.args, TemporalGRPOConfig):
            raise TypeError(f"args must be a TemporalGRPOConfig, got {type(self.args).__name__}")
        sampling, cache = self.args.frame_sampling(), self.args.frame_cache()
        prompt_ids, rows, _ = encode_video_prompts(
            self.processing_class, prompts, lambda path: load_video(path, sampling, cache)
        )
        fields = rows.model_kwargs(0, len(rows))
        fields["mm_token_type_ids"] = [
            mm_token_type_ids(torch.tensor(ids), self._image_pad_token_id, self._video_pad_token_id).tolist()
            for ids in prompt_ids
        ]
        return prompt_ids, None, fields


class PlainVideoGRPOTrainer(TemporalGRPOTrainer):
    """Plain TRL GRPOTrainer with the video fix: correct, with none of `TemporalGRPOTrainer`'s savings.

    Exactly what differs from `TemporalGRPOTrainer`:

    - each of the B rows of a rollout (G copies of each prompt) is decoded from its file afresh (no frame cache:
      TRL's processor decodes every prompt it is given) and run through the processor on its own, so every row
      holds its own pixel tensor;
    - vision sharing is off whatever `args.share_vision_encoder` says: generation and every loss-side forward get
      the concatenated pixels of their rows, and the vision tower encodes every row each time.

    What it keeps from `TemporalGRPOTrainer` is the fix itself: the rows' videos, grids, times and token types
    reach the old, reference and policy forwards through TRL's shuffle and split, so its log-probs are those of
    the model given each row's video (the same as `TemporalGRPOTrainer`'s).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.share_vision_encoder = False

    def _encode_prompts(self, prompts: list, template_kwargs: dict) -> tuple[list[list[int]], VideoRows, int]:
        prompt_ids, rows, decoded = [], [], 0
        for prompt in prompts:
            ids, row, videos = encode_video_prompts(
                self.processing_class, [prompt], lambda path: load_video(path, self.frame_sampling), template_kwargs
            )
            prompt_ids += ids
            rows.append(row)
            decoded += sum(video.decoded_frames for video in videos.values())
        return prompt_ids, VideoRows.concat(rows), decoded
