"""Model families: everything that differs between the vision-language models the toolkit trains, in one place.

The trainers, the generation engine (evaluation, the filter, ViaRL's answer model), the selector and the SFT
collator ask this module and hold no family-specific code. A family is one `ModelFamily` entry in `FAMILIES`; its
processor side is a `VideoFormat` (two families may share one: a processor alone cannot tell Qwen3-VL from Qwen3.5,
both use `Qwen3VLProcessor`, and both take a video the same way).

| family     | processor             | sides | time signal the model is given       | extra tensors        | deep |
|------------|-----------------------|-------|--------------------------------------|----------------------|------|
|`qwen2_5_vl`| `Qwen2_5_VLProcessor` | 28    | `second_per_grid_ts` (M-RoPE)        | `second_per_grid_ts` | no   |
| `qwen3_vl` | `Qwen3VLProcessor`    | 32    | `<t seconds>` text before each patch | none                 | yes  |
| `qwen3_5`  | `Qwen3VLProcessor`    | 32    | `<t seconds>` text before each patch | none                 | no   |

("sides": frame sides are multiples of it; "deep": deepstack, the vision tower also returns features of 3 of its
layers, added to the language model's first layers at the video tokens.)

`VideoFormat` (`video_format(processor)`), how a video reaches the model:

- `frame_sampling(sampling)`: the frame budget with the family's frame-side factor (patch size x spatial merge);
- `fit(video)`: frames whose sides are multiples of that factor (a frame source sampled for another family, e.g.
  ViaRL's factor-28 candidates, is resized to the nearest multiples);
- `processor_kwargs(videos)`: the processor arguments that keep our frames, sizes and real fps (and so the time
  signal: `second_per_grid_ts`, or the timestamps the processor writes into the prompt);
- `row_tensors`, `row_tensors_of(encoded)`: the per-video tensors every forward needs besides the patches and the
  grid;
- `model_timestamps(processor, inputs)`: the time, in seconds, the model is given for each temporal patch;
- `placeholder_ids(processor)`, `never_generated_ids(processor)`: the image / video placeholder ids, and the tokens
  generation must never sample (a sampled `<|video_pad|>` asks the next forward for a video that is not there).

`ModelFamily` (`family_of(model)` or `checkpoint_family(path)`), the model's side:

- `encode_videos(video_model, pixels, grids)`: the vision tower once over several videos, as one `VideoFeatures` per
  video (its merged tokens and, for Qwen3-VL, the deepstack features that must travel with them);
- `encoder_outputs(features)`: per-row features in the form of the model's `mm_encoder_outputs["video"]`, so that
  a later forward takes them instead of pixels (`temporal_rl.grpo.vision_sharing`);
- `lora_targets`, `vision_tower_pattern`, `quantization_skipped`: LoRA on the language model only (the default
  targets of `temporal_rl.models.loading`), the vision tower excluded, and what 4-bit loading leaves unquantized.

Adding a family: one `ModelFamily` entry (and a `VideoFormat` if its processor takes videos differently), a tiny
builder in `temporal_rl.models.tiny`, its public architectures in `temporal_rl.models.qwen`, recipes, and the
per-family tests (they are parametrized over `FAMILIES`).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from temporal_rl.video.sampling import FrameSampling, SampledVideo

if TYPE_CHECKING:
    from torch import nn

logger = logging.getLogger(__name__)

# Qwen's vision special tokens: generation never samples them.
VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
_TIMESTAMP = re.compile(r"<(\d+(?:\.\d+)?) seconds>")


@dataclass(frozen=True)
class VideoFormat:
    """How a video reaches a model through its processor (see the module docstring).

    Attributes:
        name: a short name.
        processor_classes: the processor class names that take videos this way.
        image_factor: frame sides are multiples of this (patch size x spatial merge size).
        temporal_patch_size: frames per temporal patch.
        row_tensors: per-video tensors the processor returns, and every forward needs, besides `pixel_values_videos`
            and `video_grid_thw`.
        timestamps_in_text: the processor writes each temporal patch's time into the prompt (`<2.5 seconds>`), from
            the frames' source indices and the video's fps in the metadata; otherwise the time signal is
            `second_per_grid_ts`.
        videos_kwargs: extra video-processor arguments of every call.
        never_generate: tokens generation must never sample.
    """

    name: str
    processor_classes: tuple[str, ...]
    image_factor: int
    temporal_patch_size: int = 2
    row_tensors: tuple[str, ...] = ()
    timestamps_in_text: bool = False
    videos_kwargs: Mapping[str, Any] = field(default_factory=dict)
    never_generate: tuple[str, ...] = VISION_TOKENS

    def frame_sampling(self, sampling: FrameSampling) -> FrameSampling:
        """`sampling` with this format's frame-side factor (frames sampled with it need no `fit`)."""
        if sampling.image_factor == self.image_factor:
            return sampling
        return dataclasses.replace(sampling, image_factor=self.image_factor)

    def fit(self, video: SampledVideo) -> SampledVideo:
        """`video` with frame sides that are multiples of `image_factor`: as it is when they already are, else its
        frames resized (bicubic) to the nearest multiples (at least one factor each)."""
        height, width = video.frames.shape[1:3]
        factor = self.image_factor
        if height % factor == 0 and width % factor == 0:
            return video
        size = tuple(max(factor, round(side / factor) * factor) for side in (height, width))
        logger.info(
            "%s frames of %dx%d resized to %dx%d for the %s video format; sample them with "
            "VideoFormat.frame_sampling to avoid this",
            video.path,
            height,
            width,
            size[0],
            size[1],
            self.name,
        )
        return dataclasses.replace(video, frames=_resize(video.frames, size))

    def processor_kwargs(self, videos: Sequence[SampledVideo]) -> dict[str, Any]:
        """Processor arguments (next to `text=`) that make it use these frames as they are.

        `processor(text=texts, **fmt.processor_kwargs(videos))`. The frames go in unsampled (`do_sample_frames=False`)
        and unresized (`do_resize=False`: they already have the budget size, see `fit`), with metadata carrying
        their real fps and source frame indices, from which the processor derives the time signal. The settings
        sit in `videos_kwargs` so they cannot reach images in the same call. For a bare video processor:
        `video_processor(videos=kw["videos"], **kw["videos_kwargs"])`.
        """
        kwargs = shared_processor_kwargs(videos)
        if kwargs:
            kwargs["videos_kwargs"].update(self.videos_kwargs)
        return kwargs

    def row_tensors_of(self, encoded: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """The `row_tensors` of several processor outputs (one video each), concatenated in order: `{name: (B,)}`
        (floating values as float32)."""
        rows = {}
        for name in self.row_tensors:
            missing = [i for i, e in enumerate(encoded) if name not in e]
            if missing:
                raise KeyError(f"processor output {missing[0]} has no {name!r}, which the {self.name} format needs")
            tensor = torch.cat([torch.as_tensor(e[name]).reshape(-1) for e in encoded])
            rows[name] = tensor.float() if tensor.is_floating_point() else tensor
        return rows

    def placeholder_ids(self, processor: Any) -> tuple[int | None, int]:
        """`(image placeholder id or None, video placeholder id)` in the processor's vocabulary."""
        tokenizer = getattr(processor, "tokenizer", processor)
        video = tokenizer.convert_tokens_to_ids(getattr(processor, "video_token", "<|video_pad|>"))
        image_token = getattr(processor, "image_token", "<|image_pad|>")
        image = tokenizer.convert_tokens_to_ids(image_token) if image_token in tokenizer.get_vocab() else None
        return image, video

    def never_generated_ids(self, processor: Any) -> list[int]:
        """The ids of `never_generate` in the processor's (or tokenizer's) vocabulary; tokens it lacks are left out."""
        vocab = getattr(processor, "tokenizer", processor).get_vocab()
        return sorted(vocab[token] for token in self.never_generate if token in vocab)

    def model_timestamps(self, processor: Any, inputs: Mapping[str, Any], video: int = 0) -> list[float]:
        """The time (seconds) the model is given for each temporal patch of video `video` of a one-prompt processor
        output: the `<t seconds>` texts of the prompt (the middle of the patch's first and last frame), or
        `k * second_per_grid_ts` (Qwen2.5-VL's temporal positions count from the first patch: the model is given
        times relative to it)."""
        patches = int(inputs["video_grid_thw"][video][0])
        if self.timestamps_in_text:
            tokenizer = getattr(processor, "tokenizer", processor)
            text = tokenizer.decode(torch.as_tensor(inputs["input_ids"]).reshape(-1).tolist())
            times = [float(t) for t in _TIMESTAMP.findall(text)]
            offset = sum(int(g[0]) for g in inputs["video_grid_thw"][:video])
            return times[offset : offset + patches]
        step = float(torch.as_tensor(inputs["second_per_grid_ts"]).reshape(-1)[video])
        return [k * step for k in range(patches)]


def shared_processor_kwargs(videos: Sequence[SampledVideo]) -> dict[str, Any]:
    """The processor arguments every video format shares (see `VideoFormat.processor_kwargs`)."""
    if not videos:
        return {}
    return {
        "videos": [video.frames for video in videos],
        "videos_kwargs": {
            "video_metadata": [video.video_metadata() for video in videos],
            "do_sample_frames": False,
            "do_resize": False,
        },
    }


def _resize(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    height, width = size
    out = np.empty((len(frames), height, width, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        out[i] = np.asarray(Image.fromarray(frame).resize((width, height), Image.Resampling.BICUBIC))
    return out


@dataclass(frozen=True, eq=False)
class VideoFeatures:
    """One video's vision-tower output as the language model consumes it.

    Attributes:
        embeds: (tokens, hidden) merged patch features, one per video placeholder token.
        deepstack: per deepstack layer, (tokens, hidden) features added to the language model's first layers'
            hidden states at the video tokens (Qwen3-VL); empty for families without deepstack.
    """

    embeds: torch.Tensor
    deepstack: tuple[torch.Tensor, ...] = ()

    @property
    def num_tokens(self) -> int:
        return int(self.embeds.size(0))

    def detach(self) -> VideoFeatures:
        return VideoFeatures(self.embeds.detach(), tuple(layer.detach() for layer in self.deepstack))


@dataclass(frozen=True)
class ModelFamily:
    """A model family (see the module docstring).

    Attributes:
        name: the family's name (`--family` of the tiny builder, `make demo FAMILY=...`).
        display: its human name.
        model_types: the `config.model_type` values of its checkpoints.
        video: its `VideoFormat`.
        deepstack: its vision tower also returns deepstack features, which travel with the merged tokens.
        lora_targets: LoRA target module names of its language model (the default of `TemporalModelConfig`).
        vision_tower_pattern: regex of the vision tower's module names, excluded from LoRA.
        quantization_skipped: module names 4-bit / 8-bit loading leaves in the compute dtype.
    """

    name: str
    display: str
    model_types: tuple[str, ...]
    video: VideoFormat
    deepstack: bool = False
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    vision_tower_pattern: str = r".*visual.*"
    quantization_skipped: tuple[str, ...] = ("visual", "lm_head")

    def encode_videos(
        self, video_model: nn.Module, pixel_values_videos: torch.Tensor, video_grid_thw: torch.Tensor
    ) -> list[VideoFeatures]:
        """The vision tower over the concatenated patches of several videos, in one call: one `VideoFeatures` per
        video, in order. Gradients flow to the tower when grad mode is on and it has trainable parameters.

        Args:
            video_model: the module owning the tower and `get_video_features` (Qwen's `*Model`).
            pixel_values_videos: (sum of patches, D) the videos' patches, concatenated.
            video_grid_thw: (V, 3) their grids.
        """
        output = video_model.get_video_features(
            pixel_values_videos=pixel_values_videos, video_grid_thw=video_grid_thw, return_dict=True
        )
        embeds = list(output.pooler_output)
        layers = getattr(output, "deepstack_features", None) or []
        if self.deepstack and not layers:
            raise RuntimeError(f"the {self.display} vision tower returned no deepstack features")
        if not self.deepstack and layers:
            raise RuntimeError(
                f"the vision tower returned deepstack features, which the {self.display} family does not carry: "
                "is this checkpoint of another family?"
            )
        return [VideoFeatures(e, tuple(layer[i] for layer in layers)) for i, e in enumerate(embeds)]

    def encoder_outputs(self, features: Sequence[VideoFeatures]):
        """Per-row features as the model's `mm_encoder_outputs["video"]` (row order; rows may share features)."""
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        embeds = tuple(row.embeds for row in features)
        if not self.deepstack:
            return BaseModelOutputWithPooling(pooler_output=embeds)
        from transformers.models.qwen3_vl.modeling_qwen3_vl import BaseModelOutputWithDeepstackFeatures

        depth = {len(row.deepstack) for row in features}
        if len(depth) > 1:
            raise ValueError(f"rows carry different numbers of deepstack layers: {sorted(depth)}")
        layers = [tuple(row.deepstack[i] for row in features) for i in range(depth.pop() if depth else 0)]
        return BaseModelOutputWithDeepstackFeatures(pooler_output=embeds, deepstack_features=layers)


QWEN2_5_VL_VIDEO = VideoFormat(
    name="qwen2_5_vl",
    processor_classes=("Qwen2_5_VLProcessor",),
    image_factor=28,
    row_tensors=("second_per_grid_ts",),
)
QWEN3_VL_VIDEO = VideoFormat(
    name="qwen3_vl",
    processor_classes=("Qwen3VLProcessor",),
    image_factor=32,
    timestamps_in_text=True,
    # No effect with do_resize=False; set so the processor does not warn about its future default.
    videos_kwargs={"cap_pixels_per_frame": True},
)

FAMILIES: dict[str, ModelFamily] = {
    family.name: family
    for family in (
        ModelFamily("qwen2_5_vl", "Qwen2.5-VL", ("qwen2_5_vl",), QWEN2_5_VL_VIDEO),
        ModelFamily("qwen3_vl", "Qwen3-VL", ("qwen3_vl",), QWEN3_VL_VIDEO, deepstack=True),
        ModelFamily(
            "qwen3_5",
            "Qwen3.5",
            ("qwen3_5",),
            QWEN3_VL_VIDEO,
            # 3 of 4 decoder layers are Gated DeltaNet (linear attention): their input and output projections too.
            lora_targets=(
                "q_proj",
                "k_proj",
                "v_proj",
                "o_proj",
                "gate_proj",
                "up_proj",
                "down_proj",
                "in_proj_qkv",
                "in_proj_z",
                "out_proj",
            ),  # fmt: skip
        ),
    )
}
DEFAULT_FAMILY = "qwen2_5_vl"


def get_family(name: str) -> ModelFamily:
    """The family called `name`."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown model family {name!r}; supported: {', '.join(FAMILIES)}") from None


def family_of(model_or_config: Any) -> ModelFamily:
    """The family of a model (bare, PEFT- or DDP-wrapped), a config, or a family name.

    Raises:
        ValueError: the model type is not one of a supported family.
    """
    if isinstance(model_or_config, ModelFamily):
        return model_or_config
    if isinstance(model_or_config, str):
        return get_family(model_or_config)
    target = getattr(model_or_config, "module", model_or_config)  # DDP
    config = getattr(target, "config", target)
    model_type = getattr(config, "model_type", None)
    for family in FAMILIES.values():
        if model_type in family.model_types:
            return family
    supported = ", ".join(f"{f.display} ({'/'.join(f.model_types)})" for f in FAMILIES.values())
    raise ValueError(f"model type {model_type!r} is not a supported family; supported: {supported}")


def checkpoint_family(name_or_path: str, revision: str | None = None) -> ModelFamily:
    """The family of a checkpoint (a local directory or a Hub id), from its `config.json`."""
    from transformers import AutoConfig

    return family_of(AutoConfig.from_pretrained(name_or_path, revision=revision))


def video_format(processor: Any) -> VideoFormat:
    """The video format of a processor, by its class (or a base class).

    Raises:
        ValueError: no family takes videos through this processor class.
    """
    names = {cls.__name__ for cls in processor.__class__.__mro__}  # __class__: a proxy may pass as its target
    formats = {f.video.name: f.video for f in FAMILIES.values()}
    for fmt in formats.values():
        if names & set(fmt.processor_classes):
            return fmt
    supported = sorted({name for fmt in formats.values() for name in fmt.processor_classes})
    raise ValueError(
        f"{type(processor).__name__} is not the processor of a supported model family (one of {', '.join(supported)})"
    )
