"""Loading a checkpoint of a supported model family: the one model loader (dtype, 4-bit quantization, a LoRA
adapter, the device), its processor, and LoRA on the language model only.

`load_model(model_args, adapter=..., ...)` is the only place a model is read from disk: training (a LoRA config, or
an adapter continued trainable), evaluation, the filter and ViaRL's models (`load_inference_model`, in eval mode,
with an adapter applied or merged) all go through it.

The vision tower is excluded from LoRA by default: PEFT's `all-linear` and plain suffix names such as
`gate_proj` also match the ViT's layers, which adds ~46M parameters and a full backward graph through the ViT,
and vLLM cannot serve ViT adapters. The default targets, the tower's name pattern and the modules 4-bit loading
leaves unquantized are the model family's (`temporal_rl.families`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
from peft import LoraConfig
from trl import ModelConfig, get_peft_config, get_quantization_config

from temporal_rl.families import DEFAULT_FAMILY, FAMILIES, ModelFamily, checkpoint_family

# Qwen2.5-VL's (and Qwen3-VL's) language-model projections and vision tower (`temporal_rl.families` has each family's).
LANGUAGE_MODEL_LORA_TARGETS = list(FAMILIES[DEFAULT_FAMILY].lora_targets)
VISION_TOWER_PATTERN = FAMILIES[DEFAULT_FAMILY].vision_tower_pattern


@dataclass
class TemporalModelConfig(ModelConfig):
    """TRL's `ModelConfig` with LoRA on the language model only.

    lora_target_modules: default (None) the model family's language-model projections (`ModelFamily.lora_targets`).
    lora_vision_tower: also put LoRA adapters on the vision tower (off by default).
    """

    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={
            "help": "LoRA target module names (default: the model family's language-model projections); the vision "
            "tower is excluded unless lora_vision_tower."
        },
    )
    lora_vision_tower: bool = field(default=False, metadata={"help": "Also adapt the vision tower with LoRA."})

    def __post_init__(self):
        super().__post_init__()
        if self.model_name_or_path is None:
            raise ValueError("model_name_or_path is required (a Hub id or a local directory)")
        if self.load_in_4bit and not self.use_peft:
            raise ValueError("load_in_4bit (QLoRA) trains adapters only: set use_peft: true")


def lora_config(model_args: TemporalModelConfig, family: ModelFamily | None = None) -> LoraConfig | None:
    """The LoRA config of the run (None without `use_peft`): the targets of `model_args` (default the family's), the
    vision tower excluded unless asked for.

    `family`: the model's (`family_of(model)`); default read from `model_args.model_name_or_path`'s config.
    """
    config = get_peft_config(model_args)
    if config is None:
        return None
    family = family or checkpoint_family(model_args.model_name_or_path, model_args.model_revision)
    if model_args.lora_target_modules is None:
        config.target_modules = set(family.lora_targets)
    if not model_args.lora_vision_tower:
        config.exclude_modules = family.vision_tower_pattern
    return config


def load_model(
    model_args: ModelConfig,
    *,
    dtype: torch.dtype | None = None,
    adapter: str | os.PathLike | None = None,
    adapter_trainable: bool = False,
    merge_adapter: bool = False,
    device: str | torch.device | None = None,
):
    """`AutoModelForImageTextToText` for the run: the config's dtype (or `dtype`), optionally 4/8-bit quantized, with a
    LoRA adapter on top.

    Args:
        model_args: the checkpoint, revision, attention implementation, dtype and quantization.
        dtype: overrides `model_args.dtype`.
        adapter: a PEFT (LoRA) adapter (directory or Hub id) applied on top.
        adapter_trainable: load the adapter's weights trainable (to continue training it).
        merge_adapter: fold the adapter into the weights (a quantized model keeps it as a PEFT layer).
        device: where to put the model (a quantized one is placed by its device map and stays there).
    """
    from transformers import AutoModelForImageTextToText

    if dtype is None:
        dtype = model_args.dtype if model_args.dtype in (None, "auto") else getattr(torch, model_args.dtype)
    quantization = get_quantization_config(model_args)
    if quantization is not None:
        # The frozen vision tower and the head stay in the compute dtype: quantizing them costs quality for ~1 GB.
        family = checkpoint_family(model_args.model_name_or_path, model_args.model_revision)
        quantization.llm_int8_skip_modules = list(family.quantization_skipped)
    model = AutoModelForImageTextToText.from_pretrained(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
        attn_implementation=model_args.attn_implementation,
        dtype=dtype,
        quantization_config=quantization,
        device_map=_kbit_device_map() if quantization is not None else None,
    )
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, os.fspath(adapter), is_trainable=adapter_trainable)
        if merge_adapter and quantization is None:
            model = model.merge_and_unload()
    if device is not None and quantization is None:
        model = model.to(device)
    return model


def load_inference_model(
    name_or_path: str | os.PathLike,
    adapter: str | os.PathLike | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: str = "auto",
    **kwargs,
):
    """A checkpoint (with its adapter applied, if any) in eval mode on `device`, and its processor: what evaluation,
    the filter and the experiments generate with.

    `dtype`: "auto" means bfloat16 on a CUDA device and float32 elsewhere; else "float32", "bfloat16" or "float16".
    Other keyword arguments go to `load_model` (`merge_adapter`, ...).
    """
    if dtype == "auto":
        dtype = "bfloat16" if str(device).startswith("cuda") else "float32"
    model_args = ModelConfig(model_name_or_path=os.fspath(name_or_path), dtype=dtype)
    model = load_model(model_args, adapter=adapter, device=device, **kwargs)
    return model.eval(), load_processor(model_args)


def _kbit_device_map() -> dict[str, int | str]:
    """Quantized weights live on this process's device (each data-parallel rank holds a whole copy)."""
    from accelerate import PartialState

    return {"": PartialState().local_process_index if torch.cuda.is_available() else "cpu"}


def load_processor(model_args: ModelConfig):
    """The checkpoint's processor (tokenizer, chat template, video processor)."""
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
    )
