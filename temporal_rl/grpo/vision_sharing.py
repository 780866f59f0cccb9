"""Vision-encoder sharing: each distinct video of a GRPO step goes through the vision tower once.

A GRPO batch holds each prompt G times, and a step runs the model on it several times (generation, old and
reference log-probs, the policy forward). Run naively, the vision tower (ViT) encodes every row's video in every
one of those forwards. Here:

- rows that hold the same pixel tensor (or equal pixels) are one video: `distinct_rows` maps rows to videos and
  `encode_videos` runs the ViT once over the distinct videos (`ModelFamily.encode_videos`), returning per-row
  references to their outputs (`temporal_rl.families.VideoFeatures`: the merged tokens and, for Qwen3-VL, the
  deepstack features that travel with them);
- `VisionFeatureCache` keeps the outputs of a rollout when the tower is frozen (`vision_is_frozen`), so that every
  forward of the step, and every optimizer step that re-uses the rollout, reads them instead of encoding again;
- `supplied_video_features` feeds per-row outputs to the model: a scoped forward pre-hook on the base model (the
  module owning the tower) gives each forward that holds video placeholders (and no video input) the outputs as
  `mm_encoder_outputs` (in the family's form, `ModelFamily.encoder_outputs`), transformers' argument for
  precomputed encoder outputs. The hook sits inside the model, so the outputs reach it through TRL's `generate` call
  (which can carry tensors only) and through PEFT or DDP wrappers unchanged; when the features are computed by the
  hook itself, the ViT runs inside the wrapped forward.
- `PatchCounter` counts the patches a vision tower actually encodes (a forward pre-hook on it).

The outputs are the same numbers the model computes from the pixels (the Qwen ViTs attend within each video only,
so encoding videos together or apart gives the same per-video output), and gradients through a shared output are
the sum over its rows, as with per-row copies. This module owns that mechanism; what a family's outputs are is the
family seam's (`temporal_rl.families`), which forwards use them is the trainer's decision
(`temporal_rl.grpo.trainer`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from temporal_rl.families import ModelFamily, VideoFeatures


def find_video_model(model: nn.Module) -> nn.Module:
    """The module that owns the vision tower (`visual`) and `get_video_features`, inside any wrappers.

    For Qwen's families that is the `*Model` under `*ForConditionalGeneration` (`Qwen2_5_VLModel`, `Qwen3VLModel`,
    `Qwen3_5Model`), whether `model` is the bare model, a PEFT model or a DDP module.

    Raises:
        TypeError: `model` has no such module (not a Qwen2-VL-family model).
    """
    for module in model.modules():
        if "visual" in module._modules and callable(getattr(module, "get_video_features", None)):
            return module
    raise TypeError(
        f"{type(model).__name__} has no submodule owning a `visual` tower and `get_video_features`: "
        "vision-encoder sharing supports Qwen's vision-language families (set share_vision_encoder: false otherwise)"
    )


def vision_is_frozen(visual: nn.Module) -> bool:
    """True when the tower's output cannot change during training or with adapters switched off.

    That is: no parameter of it requires grad, and it holds no PEFT adapter layer (a reference forward with the
    adapters disabled would see a different tower).
    """
    if any(parameter.requires_grad for parameter in visual.parameters()):
        return False
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:  # no PEFT, no adapters
        return True
    return not any(isinstance(module, BaseTunerLayer) for module in visual.modules())


def distinct_rows(pixels: Sequence[torch.Tensor], grids: torch.Tensor) -> list[int]:
    """For each row, the index of its video among the distinct videos, in first-seen order.

    Args:
        pixels: B tensors, row i of shape (patches_i, D); rows of one video usually hold the same tensor object.
        grids: (B, 3) patch grid of each row.

    Returns:
        B indices in [0, number of distinct videos): rows share an index when they hold the same tensor object,
        or tensors with equal grid and equal values.

    Example:
        >>> a, b = torch.zeros(4, 2), torch.ones(4, 2)
        >>> distinct_rows([a, a, b, a.clone()], torch.tensor([[1, 2, 2]] * 4))
        [0, 0, 1, 0]
    """
    if len(pixels) != grids.size(0):
        raise ValueError(f"{len(pixels)} pixel tensors for {grids.size(0)} grid rows")
    by_identity: dict[int, int] = {}
    firsts: list[int] = []  # row holding each distinct video
    index = []
    for row, tensor in enumerate(pixels):
        found = by_identity.get(id(tensor))
        if found is None:
            for video, first in enumerate(firsts):
                if torch.equal(grids[first], grids[row]) and torch.equal(pixels[first], tensor):
                    found = video
                    break
            else:
                found = len(firsts)
                firsts.append(row)
            by_identity[id(tensor)] = found
        index.append(found)
    return index


def encode_videos(
    family: ModelFamily,
    video_model: nn.Module,
    pixels: Sequence[torch.Tensor],
    grids: torch.Tensor,
    device: torch.device | None = None,
) -> list[VideoFeatures]:
    """Vision-tower outputs of B rows, each distinct video encoded once (one tower call over all of them).

    Args:
        family: the model's family (how its tower's output is split per video).
        video_model: the module owning the tower (`find_video_model`).
        pixels: B tensors (patches_i, D), as the processor gives them.
        grids: (B, 3) int64 patch grids.
        device: where the pixels go (default: the tower's device).

    Returns:
        B `VideoFeatures` (tokens_i = patches_i / merge_size**2): rows of one video hold the same object. Gradients
        flow to the tower when grad mode is on and it has trainable parameters.
    """
    index = distinct_rows(pixels, grids)
    if not index:
        return []
    firsts = [index.index(video) for video in range(max(index) + 1)]  # the first row of each video
    device = device if device is not None else next(video_model.visual.parameters()).device
    joined = torch.cat([pixels[row] for row in firsts]).to(device)
    outputs = family.encode_videos(video_model, joined, grids[firsts].to(device))
    return [outputs[video] for video in index]


@contextmanager
def supplied_video_features(
    family: ModelFamily,
    video_model: nn.Module,
    features: Callable[[], Sequence[VideoFeatures]],
    video_token_id: int,
) -> Iterator[None]:
    """Within the scope, each forward of `video_model` whose `input_ids` hold video placeholders, and that was given
    no video input, gets `features()` as its precomputed video encoder outputs.

    Args:
        family: the model's family (the form of `mm_encoder_outputs`, `ModelFamily.encoder_outputs`).
        video_model: the module owning the tower (`find_video_model`); its forward takes `mm_encoder_outputs`.
        features: called once per such forward (inside it: under its grad mode and autocast) and returning one
            `VideoFeatures` per row of that forward, in row order.
        video_token_id: the video placeholder id (`<|video_pad|>`).

    Raises (from the forward):
        RuntimeError: a forward's rows do not match the supplied features (count, or placeholders per row).
    """

    def supply(module, args, kwargs):
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        if input_ids is None or kwargs.get("pixel_values_videos") is not None or kwargs.get("mm_encoder_outputs"):
            return None
        placeholders = (input_ids == video_token_id).sum(dim=1).tolist()
        if not any(placeholders):  # a decoding step, or a text-only forward
            return None
        rows = list(features())
        tokens = [row.num_tokens for row in rows]
        if tokens != placeholders:
            raise RuntimeError(
                f"video features do not fit this forward: {len(rows)} rows with {tokens} tokens for "
                f"{len(placeholders)} sequences with {placeholders} video placeholders"
            )
        kwargs["mm_encoder_outputs"] = {"video": family.encoder_outputs(rows)}
        return args, kwargs

    handle = video_model.register_forward_pre_hook(supply, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


class VisionFeatureCache:
    """Vision-tower outputs of the videos of live rollouts, by integer key; rows of a batch refer to them by key.

    Attributes:
        owner: the tower the stored outputs came from (they are valid for forwards through it only).
    """

    def __init__(self):
        self._features: dict[int, VideoFeatures] = {}
        self._next_key = 0
        self.owner: nn.Module | None = None

    def __len__(self) -> int:
        return len(self._features)

    def store(self, features: Sequence[VideoFeatures], owner: nn.Module) -> list[int]:
        """Keep per-row outputs (detached; rows of one video holding one object); returns each row's key."""
        if self.owner is not None and owner is not self.owner and self._features:
            raise ValueError("the cache holds outputs of another vision tower; release them first")
        self.owner = owner
        keys_by_tensor: dict[int, int] = {}
        keys = []
        for row in features:
            key = keys_by_tensor.get(id(row))
            if key is None:
                key = keys_by_tensor[id(row)] = self._next_key
                self._next_key += 1
                self._features[key] = row.detach()
            keys.append(key)
        return keys

    def lookup(self, keys: Sequence[int]) -> list[VideoFeatures]:
        missing = sorted({key for key in keys if key not in self._features})
        if missing:
            raise KeyError(
                f"vision features {missing} were released: a rollout's batch was used after it was consumed"
            )
        return [self._features[key] for key in keys]

    def release(self, keys: Sequence[int]) -> None:
        for key in keys:
            self._features.pop(key, None)


class PatchCounter:
    """Counts the patches vision towers encode: a forward pre-hook adds the rows of each call's pixel input."""

    def __init__(self):
        self.count = 0
        self._handles = []

    def attach(self, visual: nn.Module) -> None:
        def count(module, args, kwargs):
            pixels = args[0] if args else kwargs["hidden_states"]
            self.count += int(pixels.size(0))

        self._handles.append(visual.register_forward_pre_hook(count, with_kwargs=True))

    def take(self) -> int:
        """The patches counted since the last call."""
        count, self.count = self.count, 0
        return count

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
