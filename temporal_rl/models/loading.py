"""Loading a Qwen2.5-VL checkpoint for training: dtype, 4-bit quantization, and LoRA on the language model only.

The vision tower is excluded from LoRA by default: PEFT's `all-linear` and plain suffix names such as
`gate_proj` also match the ViT's layers, which adds ~46M parameters and a full backward graph through the ViT,
and vLLM cannot serve ViT adapters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from peft import LoraConfig
from trl import ModelConfig, get_peft_config, get_quantization_config

LANGUAGE_MODEL_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
VISION_TOWER_PATTERN = r".*visual.*"
QUANTIZATION_SKIPPED_MODULES = ("visual", "lm_head")


@dataclass
class TemporalModelConfig(ModelConfig):
    """TRL's `ModelConfig` with LoRA defaults for Qwen2.5-VL.

    lora_vision_tower: also put LoRA adapters on the vision tower (off by default).
    """

    lora_target_modules: list[str] | None = field(
        default_factory=lambda: list(LANGUAGE_MODEL_LORA_TARGETS),
        metadata={"help": "LoRA target module names (the vision tower is excluded unless lora_vision_tower)."},
    )
    lora_vision_tower: bool = field(default=False, metadata={"help": "Also adapt the vision tower with LoRA."})

    def __post_init__(self):
        super().__post_init__()
        if self.model_name_or_path is None:
            raise ValueError("model_name_or_path is required (a Hub id or a local directory)")
        if self.load_in_4bit and not self.use_peft:
            raise ValueError("load_in_4bit (QLoRA) trains adapters only: set use_peft: true")


def lora_config(model_args: TemporalModelConfig) -> LoraConfig | None:
    """The LoRA config of the run (None without `use_peft`), the vision tower excluded unless asked for."""
    config = get_peft_config(model_args)
    if config is not None and not model_args.lora_vision_tower:
        config.exclude_modules = VISION_TOWER_PATTERN
    return config


def load_model(model_args: ModelConfig, *, dtype: torch.dtype | None = None):
    """`AutoModelForImageTextToText` for the run: the config's dtype (or `dtype`), optionally 4/8-bit quantized."""
    from transformers import AutoModelForImageTextToText

    if dtype is None:
        dtype = model_args.dtype if model_args.dtype in (None, "auto") else getattr(torch, model_args.dtype)
    quantization = get_quantization_config(model_args)
    if quantization is not None:
        # The frozen vision tower and the head stay in the compute dtype: quantizing them costs quality for ~1 GB.
        quantization.llm_int8_skip_modules = list(QUANTIZATION_SKIPPED_MODULES)
    return AutoModelForImageTextToText.from_pretrained(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
        attn_implementation=model_args.attn_implementation,
        dtype=dtype,
        quantization_config=quantization,
        device_map=_kbit_device_map() if quantization is not None else None,
    )


def _kbit_device_map() -> dict[str, int | str]:
    """Quantized weights live on this process's device (each data-parallel rank holds a whole copy)."""
    from accelerate import PartialState

    return {"": PartialState().local_process_index if torch.cuda.is_available() else "cpu"}


def load_processor(model_args: ModelConfig):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
    )
