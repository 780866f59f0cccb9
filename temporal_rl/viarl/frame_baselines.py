"""Frame-selection baselines for the selector: uniform frames, and CLIP top-k by question-frame similarity.

Both return candidate indices in time order, the form `temporal_rl.viarl.candidates.select_frames` takes, so a
baseline and the trained selector feed the answer model the same way:

    candidates = candidate_frames(path, 128, 112, 896, cache)
    uniform_selection(candidates.num_candidates, 8)                      # [0, 16, ..., 112]
    scorer = ClipFrameScorer.from_pretrained("openai/clip-vit-base-patch32")
    clip_topk_selection(scorer, candidates, record["question"], 8)       # the 8 most similar, in time order
    select_frames(candidates, indices)                                   # -> the answer model's video

CLIP scores the unlabelled candidates (the high-resolution copy, so the drawn indices do not bias it) against the
question text without its options; the processor resizes and centre-crops each frame to CLIP's input size. ViaRL's
paper mentions a CLIP pre-filter that its code does not have; this is the natural baseline to run beside uniform.

This module owns these baselines. It does not decode (`temporal_rl.viarl.candidates`) nor run the answer model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from temporal_rl.viarl.candidates import CandidateFrames
from temporal_rl.video.sampling import uniform_indices


def uniform_selection(num_candidates: int, num_select: int, placement: str = "center") -> list[int]:
    """N candidates spread uniformly over the T (`temporal_rl.video.sampling.uniform_indices`).

    The baseline defaults to `"center"` (the middle of each of N equal segments, symmetric over the video); the
    selector's fallback uses `"start"` as ViaRL does.
    """
    return uniform_indices(num_candidates, num_select, placement)


def topk_indices(scores: Sequence[float] | np.ndarray | torch.Tensor, k: int) -> list[int]:
    """The indices of the `k` highest scores, in increasing index (time) order; ties go to the earlier index.

    Example:
        ```python
        >>> topk_indices([0.1, 0.9, 0.3, 0.9, 0.5], 3)
        [1, 3, 4]
        ```
    """
    values = torch.as_tensor(scores).detach().to("cpu", torch.float64).reshape(-1).numpy()
    if not 1 <= k <= len(values):
        raise ValueError(f"cannot pick the top {k} of {len(values)} scores")
    if np.isnan(values).any():
        raise ValueError("scores contain NaN")
    order = np.argsort(-values, kind="stable")[:k]
    return sorted(int(i) for i in order)


def _pooled(output: Any) -> torch.Tensor:
    """The projected embedding of `get_*_features`: a tensor, or (transformers 5) the output's `pooler_output`."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class ClipFrameScorer:
    """Cosine similarity between a text and video frames under a CLIP model (`transformers.CLIPModel` interface).

    Args:
        model: a CLIP model with `get_image_features(pixel_values=...)` and `get_text_features(input_ids=...,
            attention_mask=...)`, e.g. `CLIPModel.from_pretrained(...)`.
        processor: the matching `CLIPProcessor` (tokenizer and image processor).
        batch_size: frames per image forward.
    """

    def __init__(self, model, processor, batch_size: int = 32):
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.model, self.processor, self.batch_size = model, processor, batch_size

    @classmethod
    def from_pretrained(
        cls, name_or_path: str, *, device: str | torch.device = "cpu", dtype=None, batch_size: int = 32
    ):
        """Load any CLIP checkpoint transformers reads (`CLIPModel` + `CLIPProcessor`), in eval mode."""
        from transformers import CLIPModel, CLIPProcessor

        model = CLIPModel.from_pretrained(name_or_path, dtype=dtype).to(device).eval()
        return cls(model, CLIPProcessor.from_pretrained(name_or_path), batch_size=batch_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def text_embedding(self, text: str) -> torch.Tensor:
        """(D,) unit-norm embedding of `text` (truncated to the model's context length)."""
        inputs = self.processor(text=[text], return_tensors="pt", padding=True, truncation=True)
        inputs = {k: v.to(self.device) for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
        embedding = _pooled(self.model.get_text_features(**inputs))[0].float()
        return embedding / embedding.norm().clamp(min=1e-12)

    @torch.no_grad()
    def frame_embeddings(self, frames: np.ndarray) -> torch.Tensor:
        """(T, D) unit-norm embeddings of uint8 (T, H, W, 3) frames."""
        dtype = next(self.model.parameters()).dtype
        embeddings = []
        for start in range(0, len(frames), self.batch_size):
            batch = list(frames[start : start + self.batch_size])
            pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"]
            embeddings.append(
                _pooled(self.model.get_image_features(pixel_values=pixels.to(self.device, dtype))).float()
            )
        embeddings = torch.cat(embeddings)
        return embeddings / embeddings.norm(dim=-1, keepdim=True).clamp(min=1e-12)

    def similarities(self, frames: np.ndarray, text: str) -> torch.Tensor:
        """(T,) cosine similarity of each frame with `text`, on the CPU in float32."""
        if len(frames) == 0:
            raise ValueError("no frames to score")
        return (self.frame_embeddings(frames) @ self.text_embedding(text)).cpu()


def clip_topk_selection(scorer: ClipFrameScorer, candidates: CandidateFrames, question: str, k: int) -> list[int]:
    """The `k` candidates most similar to `question` under CLIP, in time order.

    Args:
        scorer: the CLIP scorer.
        candidates: from `temporal_rl.viarl.candidates.candidate_frames`; their unlabelled frames are scored.
        question: the question text, without its options.
        k: N, the number of frames to select.
    """
    return topk_indices(scorer.similarities(candidates.video.frames, question), k)
