"""The real architectures of each model family, from their public config values, without downloading weights.

| family       | sizes    | Hub ids                                  | parameters (meta device = the public count)   |
|--------------|----------|------------------------------------------|-----------------------------------------------|
| `qwen2_5_vl` | 3B, 7B   | `Qwen/Qwen2.5-VL-{3B,7B}-Instruct`       | 3,754,622,976; 8,292,166,656                  |
| `qwen3_vl`   | 4B, 8B   | `Qwen/Qwen3-VL-{4B,8B}-Instruct`         | 4,437,815,808; 8,767,123,696                  |
| `qwen3_5`    | 4B, 9B   | `Qwen/Qwen3.5-{4B,9B}`                   | 4,539,265,536; 9,409,813,744                  |

Used for memory and FLOP accounting (meta device: no memory at all), to check LoRA targets and recipes against the
real module names, and for real-size speed and memory measurements with random weights on a GPU. Real checkpoints
load through `from_pretrained` as usual; this module never stands in for them in training. Where the public counts
come from: `tests/test_models.py`.
"""

from __future__ import annotations

from typing import Literal

ModelSize = Literal["3B", "7B"]

# The public config.json values of Qwen/Qwen2.5-VL-{3B,7B}-Instruct.
_VISION = dict(
    depth=32,
    hidden_size=1280,
    hidden_act="silu",
    intermediate_size=3420,
    num_heads=16,
    in_channels=3,
    patch_size=14,
    spatial_merge_size=2,
    temporal_patch_size=2,
    tokens_per_second=2,
    window_size=112,
    fullatt_block_indexes=[7, 15, 23, 31],
)
_TEXT = {
    "3B": dict(
        vocab_size=151936,
        hidden_size=2048,
        intermediate_size=11008,
        num_hidden_layers=36,
        num_attention_heads=16,
        num_key_value_heads=2,
        max_position_embeddings=128000,
        tie_word_embeddings=True,
    ),
    "7B": dict(
        vocab_size=152064,
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        max_position_embeddings=128000,
        tie_word_embeddings=False,
    ),
}
_SHARED_TEXT = dict(
    hidden_act="silu",
    rms_norm_eps=1e-6,
    rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [16, 24, 24]},
    bos_token_id=151643,
    eos_token_id=151645,
    sliding_window=32768,
    use_sliding_window=False,
)
HUB_IDS = {"3B": "Qwen/Qwen2.5-VL-3B-Instruct", "7B": "Qwen/Qwen2.5-VL-7B-Instruct"}


def qwen2_5_vl_config(size: ModelSize):
    """The `Qwen2_5_VLConfig` of the public Qwen2.5-VL-3B or -7B (Instruct) checkpoint."""
    from transformers import Qwen2_5_VLConfig

    if size not in _TEXT:
        raise ValueError(f"unknown Qwen2.5-VL size {size!r}; expected one of {', '.join(_TEXT)}")
    text = {**_SHARED_TEXT, **_TEXT[size]}
    vision = {**_VISION, "out_hidden_size": text["hidden_size"]}
    return Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=151655,
        video_token_id=151656,
        vision_start_token_id=151652,
        vision_end_token_id=151653,
        tie_word_embeddings=text["tie_word_embeddings"],
    )


def build_qwen2_5_vl(size: ModelSize, *, device: str = "meta", dtype=None):
    """Instantiate the real Qwen2.5-VL architecture with random weights (or none, on the meta device).

    Args:
        size: "3B" or "7B".
        device: "meta" for shapes only (no memory), or a real device ("cuda", "cpu") for random weights.
        dtype: parameter dtype, default bfloat16.
    """
    return build_architecture("qwen2_5_vl", size, device=device, dtype=dtype)


# The public config.json values of Qwen/Qwen3-VL-{4B,8B}-Instruct.
_QWEN3_VL_TEXT = {
    "4B": dict(hidden_size=2560, intermediate_size=9728, tie_word_embeddings=True),
    "8B": dict(hidden_size=4096, intermediate_size=12288, tie_word_embeddings=False),
}
_QWEN3_VL_VISION = {
    "4B": dict(depth=24, hidden_size=1024, intermediate_size=4096, deepstack_visual_indexes=[5, 11, 17]),
    "8B": dict(depth=27, hidden_size=1152, intermediate_size=4304, deepstack_visual_indexes=[8, 16, 24]),
}


# The vision-tower values Qwen3-VL and Qwen3.5 share in their public config.json files.
_QWEN3_VISION_COMMON = dict(
    num_heads=16,
    hidden_act="gelu_pytorch_tanh",
    patch_size=16,
    spatial_merge_size=2,
    temporal_patch_size=2,
    num_position_embeddings=2304,
)


def qwen3_vl_config(size: str):
    """The `Qwen3VLConfig` of the public Qwen3-VL-4B or -8B (Instruct) checkpoint."""
    from transformers import Qwen3VLConfig

    if size not in _QWEN3_VL_TEXT:
        raise ValueError(f"unknown Qwen3-VL size {size!r}; expected one of {', '.join(_QWEN3_VL_TEXT)}")
    text = dict(
        vocab_size=151936,
        num_hidden_layers=36,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        hidden_act="silu",
        max_position_embeddings=262144,
        rms_norm_eps=1e-6,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 5_000_000.0,
            "mrope_section": [24, 20, 20],
            "mrope_interleaved": True,
        },
        bos_token_id=151643,
        eos_token_id=151645,
        **_QWEN3_VL_TEXT[size],
    )
    vision = {**_QWEN3_VISION_COMMON, "out_hidden_size": text["hidden_size"], **_QWEN3_VL_VISION[size]}
    return Qwen3VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=151655,
        video_token_id=151656,
        vision_start_token_id=151652,
        vision_end_token_id=151653,
        tie_word_embeddings=text["tie_word_embeddings"],
    )


# The public config.json values of Qwen/Qwen3.5-{4B,9B} (dense; 3 of every 4 decoder layers are Gated DeltaNet).
_QWEN3_5_TEXT = {
    "4B": dict(hidden_size=2560, intermediate_size=9216, tie_word_embeddings=True),
    "9B": dict(hidden_size=4096, intermediate_size=12288, tie_word_embeddings=False),
}
_QWEN3_5_VISION = {
    "4B": dict(depth=24, hidden_size=1024, intermediate_size=4096),
    "9B": dict(depth=27, hidden_size=1152, intermediate_size=4304),
}


def qwen3_5_config(size: str):
    """The `Qwen3_5Config` of the public Qwen3.5-4B or -9B checkpoint (its multi-token-prediction head, which
    transformers does not instantiate, aside)."""
    from transformers import Qwen3_5Config

    if size not in _QWEN3_5_TEXT:
        raise ValueError(f"unknown Qwen3.5 size {size!r}; expected one of {', '.join(_QWEN3_5_TEXT)}")
    text = dict(
        vocab_size=248320,
        num_hidden_layers=32,
        num_attention_heads=16,
        num_key_value_heads=4,
        head_dim=256,
        linear_num_key_heads=16,
        linear_num_value_heads=32,
        linear_key_head_dim=128,
        linear_value_head_dim=128,
        linear_conv_kernel_dim=4,
        full_attention_interval=4,
        max_position_embeddings=262144,
        rms_norm_eps=1e-6,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 10_000_000.0,
            "partial_rotary_factor": 0.25,
            "mrope_section": [11, 11, 10],
            "mrope_interleaved": True,
        },
        **_QWEN3_5_TEXT[size],
    )
    vision = {**_QWEN3_VISION_COMMON, "out_hidden_size": text["hidden_size"], **_QWEN3_5_VISION[size]}
    return Qwen3_5Config(
        text_config=text,
        vision_config=vision,
        image_token_id=248056,
        video_token_id=248057,
        vision_start_token_id=248053,
        vision_end_token_id=248054,
        tie_word_embeddings=text["tie_word_embeddings"],
    )


# family -> size -> (Hub id, config builder)
ARCHITECTURES = {
    "qwen2_5_vl": {size: (HUB_IDS[size], qwen2_5_vl_config) for size in HUB_IDS},
    "qwen3_vl": {size: (f"Qwen/Qwen3-VL-{size}-Instruct", qwen3_vl_config) for size in _QWEN3_VL_TEXT},
    "qwen3_5": {size: (f"Qwen/Qwen3.5-{size}", qwen3_5_config) for size in _QWEN3_5_TEXT},
}


def architecture_config(family: str, size: str):
    """The config of a public checkpoint of `family` (`ARCHITECTURES`), e.g. `("qwen3_vl", "8B")`."""
    sizes = ARCHITECTURES.get(family)
    if sizes is None:
        raise ValueError(f"unknown family {family!r}; expected one of {', '.join(ARCHITECTURES)}")
    if size not in sizes:
        raise ValueError(f"unknown {family} size {size!r}; expected one of {', '.join(sizes)}")
    return sizes[size][1](size)


def build_architecture(family: str, size: str, *, device: str = "meta", dtype=None):
    """Instantiate a public architecture with random weights (or none, on the meta device).

    Args:
        family, size: e.g. `"qwen3_vl", "8B"` (`ARCHITECTURES`).
        device: "meta" for shapes only (no memory), or a real device ("cuda", "cpu") for random weights.
        dtype: parameter dtype, default bfloat16.
    """
    import torch
    from transformers import AutoModelForImageTextToText

    config = architecture_config(family, size)
    with torch.device(device):
        model = AutoModelForImageTextToText.from_config(config).to(dtype or torch.bfloat16)
    return model


def parameter_counts(model) -> dict[str, int]:
    """Parameters by part: `total`, `vision` (ViT and merger), `language` (decoder, embeddings and head).

    Tied embeddings are counted once.
    """
    seen, counts = set(), {"total": 0, "vision": 0, "language": 0}
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in seen:
            continue
        seen.add(id(param))
        part = "vision" if ".visual." in f".{name}" else "language"
        counts[part] += param.numel()
        counts["total"] += param.numel()
    return counts
