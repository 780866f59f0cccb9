"""The real Qwen2.5-VL-3B and -7B architectures, from their public config values, without downloading weights.

Used for memory and FLOP accounting (meta device: no memory at all) and for real-size speed and memory
measurements with random weights on a GPU. Real checkpoints load through `from_pretrained` as usual; this module
never stands in for them in training.
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
    """The `Qwen2_5_VLConfig` of the public 3B or 7B checkpoint."""
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
    """Instantiate the real architecture with random weights (or none, on the meta device).

    Args:
        size: "3B" or "7B".
        device: "meta" for shapes only (no memory), or a real device ("cuda", "cpu") for random weights.
        dtype: parameter dtype, default bfloat16.
    """
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    config = qwen2_5_vl_config(size)
    dtype = dtype or torch.bfloat16
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration(config).to(dtype)
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
