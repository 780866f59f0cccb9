"""How much a model's answers depend on the video: the checks that tell a seeing model from a blind one.

A model can raise its held-out score without looking at the video (a better blind prior: wider spans, the usual
answer letter). Two checks separate the two:

- `swap_videos`: the same questions asked of other clips' videos. Scored against their own gold answers, a seeing
  model falls far below its own-video score; a blind one scores the same.
- `zeroed_video_kl`: the mean per-token KL divergence between the model's next-token distributions over the gold
  completion with the real frames and with the pixel inputs zeroed (after the processor's normalisation, i.e. every
  patch at the normalisation mean). Measured on the demo's tiny model: a seeing model about 0.5 nats, every blind
  one below 2e-3.

This module owns these two checks; prompts, frames and batches come from the SFT collator.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch


def swap_videos(records: list[dict], seed: int = 0) -> list[dict]:
    """The records with their videos permuted among them (a derangement): the same questions and gold spans, each
    asked of another clip. A model that grounds its answers in the video scores far lower on these."""
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    rotated = order[1:] + order[:1]  # i -> the next index of the permutation: no record keeps its own video
    video_of = {i: records[j]["video"] for i, j in zip(order, rotated, strict=True)}
    return [{**record, "video": video_of[i]} for i, record in enumerate(records)]


def completion_token_kl(real_logits: torch.Tensor, other_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-token KL(p_real || p_other) at the positions that predict a label.

    Args:
        real_logits, other_logits: (B, L, V) logits of the same sequences under two inputs.
        labels: (B, L) token ids, -100 where no loss is taken (the prompt, padding).

    Returns:
        (N,) KL in nats for the N positions whose next token is a label, in row order.
    """
    mask = labels[:, 1:] != -100
    real = torch.log_softmax(real_logits[:, :-1].double(), dim=-1)[mask]
    other = torch.log_softmax(other_logits[:, :-1].double(), dim=-1)[mask]
    return (real.exp() * (real - other)).sum(-1)


@torch.no_grad()
def zeroed_video_kl(model, collator, rows: Sequence[dict], batch_size: int = 16) -> float:
    """Mean per-token KL between the model's predictions of the gold completions with the real frames and with
    zeroed pixel inputs (see the module docstring): near 0 for a model that ignores the video.

    Args:
        model: a model of a supported family (put in eval mode here).
        collator: a `VideoSFTCollator` (its prompt, frames and gold completion are what is compared).
        rows: canonical records.
        batch_size: rows per forward.
    """
    if not rows:
        raise ValueError("zeroed_video_kl needs at least one row")
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(rows), batch_size):
        batch = {
            key: value.to(model.device) for key, value in collator(list(rows[start : start + batch_size])).items()
        }
        labels = batch.pop("labels")
        real = model(**batch).logits
        zeroed = model(**{**batch, "pixel_values_videos": torch.zeros_like(batch["pixel_values_videos"])}).logits
        kl = completion_token_kl(real, zeroed, labels)
        total, count = total + kl.sum().item(), count + kl.numel()
    return total / count
