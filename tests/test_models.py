"""The tiny model round-trips through from_pretrained and runs; the real architectures match the public sizes."""

import hashlib

import numpy as np
import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor
from transformers.video_utils import VideoMetadata

from temporal_rl.models.qwen import build_qwen2_5_vl, parameter_counts
from temporal_rl.models.tiny import QWEN_SPECIAL_TOKENS, TinySpec, build_tiny_model


def _digest(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def _video_prompt(processor, frames, fps=2.0):
    content = [{"type": "video"}, {"type": "text", "text": "When is the red circle visible?"}]
    messages = [{"role": "user", "content": content}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    metadata = VideoMetadata(total_num_frames=len(frames), fps=fps, frames_indices=list(range(len(frames))))
    return processor(
        text=[text], videos=[frames], video_metadata=[metadata], do_sample_frames=False, return_tensors="pt"
    )


def test_same_seed_same_bytes_other_seed_other_weights(tmp_path, tiny_model_dir):
    again = build_tiny_model(tmp_path / "again")
    assert _digest(again) == _digest(tiny_model_dir)
    other = _digest(build_tiny_model(tmp_path / "other", TinySpec(seed=1)))
    assert other["model.safetensors"] != _digest(tiny_model_dir)["model.safetensors"]
    assert other["tokenizer.json"] == _digest(tiny_model_dir)["tokenizer.json"]


def test_round_trip_and_forward_on_a_video_prompt(tiny_model_dir):
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir).eval()
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(8, 56, 56, 3), dtype=np.uint8)
    inputs = _video_prompt(processor, frames, fps=2.0)
    # 8 frames of 56x56: 4 temporal groups of (56/14)^2 patches, merged 2x2 -> 4 * 4 = 16 video tokens.
    assert inputs["video_grid_thw"].tolist() == [[4, 4, 4]]
    assert int((inputs["input_ids"] == model.config.video_token_id).sum()) == 16
    assert inputs["pixel_values_videos"].shape == (4 * 4 * 4, 3 * 2 * 14 * 14)
    # 2 frames per temporal patch at 2 fps -> one second per grid step.
    assert inputs["second_per_grid_ts"].tolist() == [1.0]

    with torch.no_grad():
        logits = model(**inputs).logits
        assert logits.shape == (1, inputs["input_ids"].shape[1], model.config.text_config.vocab_size)
        assert torch.isfinite(logits).all()
        # The video must reach the output: other pixels, other logits.
        other = _video_prompt(processor, 255 - frames, fps=2.0)
        assert not torch.allclose(model(**other).logits[0, -1], logits[0, -1])
        generated = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    prompt_length = inputs["input_ids"].shape[1]
    assert generated.shape[0] == 1 and prompt_length < generated.shape[1] <= prompt_length + 4


def test_every_saved_weight_is_loaded(tiny_model_dir):
    from safetensors.torch import load_file

    model, info = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, output_loading_info=True)
    assert not any(info.values()), info  # nothing missing, unexpected, mismatched or re-initialised
    saved = load_file(tiny_model_dir / "model.safetensors")
    assert sum(t.numel() for t in saved.values()) == parameter_counts(model)["total"]


def test_tokenizer_speaks_qwen(tiny_model_dir):
    tokenizer = AutoProcessor.from_pretrained(tiny_model_dir).tokenizer
    for token in QWEN_SPECIAL_TOKENS:
        ids = tokenizer.encode(token, add_special_tokens=False)
        assert len(ids) == 1 and tokenizer.convert_ids_to_tokens(ids[0]) == token
    assert tokenizer.tokenize("12.75") == ["1", "2", ".", "7", "5"]
    text = '<answer>{"start_time": "5.5", "end_time": "9.0"}</answer>'
    assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == text
    assert tokenizer.eos_token == "<|im_end|>"
    messages = [
        {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Q?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A"}]},
    ]
    expected = (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>Q?<|im_end|>\n"
        "<|im_start|>assistant\nA<|im_end|>\n"
    )
    assert tokenizer.apply_chat_template(messages, tokenize=False) == expected


@pytest.mark.parametrize(
    ("size", "total", "vision"),
    # Counts measured on the public checkpoints' architectures (../shared/design/performance-model.md, 3.1).
    [("3B", 3_754_622_976, 668_684_288), ("7B", 8_292_166_656, 676_550_144)],
)
def test_real_architectures_on_the_meta_device(size, total, vision):
    model = build_qwen2_5_vl(size, device="meta")
    counts = parameter_counts(model)
    assert counts["total"] == total
    assert counts["vision"] == vision
    assert next(model.parameters()).device.type == "meta"
