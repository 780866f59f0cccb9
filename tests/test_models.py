"""The tiny model of each family round-trips through from_pretrained and runs; the real architectures match the
public parameter counts."""

import hashlib
import subprocess
import sys

import numpy as np
import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor
from transformers.video_utils import VideoMetadata

from temporal_rl.families import FAMILIES, family_of, video_format
from temporal_rl.models.qwen import ARCHITECTURES, build_architecture, build_qwen2_5_vl, parameter_counts
from temporal_rl.models.tiny import QWEN_SPECIAL_TOKENS, TINY_FAMILIES, TinySpec, build_tiny_model

# Per family: the processor and model classes, the frame side that patchifies without resizing, and the chat
# template's rendering of a video question and its answer.
EXPECTED = {
    "qwen2_5_vl": dict(
        processor="Qwen2_5_VLProcessor",
        model="Qwen2_5_VLForConditionalGeneration",
        side=56,
        chat="<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>Q?<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n",
    ),
    "qwen3_vl": dict(
        processor="Qwen3VLProcessor",
        model="Qwen3VLForConditionalGeneration",
        side=64,
        chat="<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>Q?<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n",
    ),
    "qwen3_5": dict(
        processor="Qwen3VLProcessor",
        model="Qwen3_5ForConditionalGeneration",
        side=64,
        chat="<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>Q?<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n",
    ),
}


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


def test_every_family_has_a_tiny_model_and_expectations():
    assert set(TINY_FAMILIES) == set(FAMILIES) == set(EXPECTED) == set(ARCHITECTURES)


def test_same_seed_same_bytes_other_seed_other_weights(tmp_path, tiny_model_dir):
    again = build_tiny_model(tmp_path / "again")
    assert _digest(again) == _digest(tiny_model_dir)
    other = _digest(build_tiny_model(tmp_path / "other", TinySpec(seed=1)))
    assert other["model.safetensors"] != _digest(tiny_model_dir)["model.safetensors"]
    assert other["tokenizer.json"] == _digest(tiny_model_dir)["tokenizer.json"]


def test_a_wider_tiny_model_scales_the_families_rope_split(tmp_path):
    """`--hidden-size 128 --layers 4` (head 32 wide, 16 rotated pairs): the family's (2, 3, 3) split doubles, the
    model builds and runs; a head whose rotated half the split cannot divide is refused with the fix."""
    import torch
    from transformers import AutoModelForImageTextToText

    spec = TinySpec(hidden_size=128, num_hidden_layers=4)
    assert spec.mrope_section == (4, 6, 6)
    command = [sys.executable, "-m", "temporal_rl.models.tiny", "--out", str(tmp_path / "wide")]
    subprocess.run([*command, "--hidden-size", "128", "--layers", "4"], check=True, capture_output=True)
    model = AutoModelForImageTextToText.from_pretrained(tmp_path / "wide")
    text = model.config.text_config
    assert (text.hidden_size, text.num_hidden_layers) == (128, 4)
    with torch.no_grad():
        assert model(input_ids=torch.tensor([[1, 2, 3]])).logits.shape[:2] == (1, 3)
    with pytest.raises(ValueError, match="give mrope_section"):
        TinySpec(hidden_size=80, num_attention_heads=4)  # head 20 wide, 10 rotated pairs: (2, 3, 3) does not scale


@pytest.mark.parametrize("family", ["qwen3_vl", "qwen3_5"])
def test_the_command_line_writes_the_same_bytes(family, tiny_family_dir, tmp_path):
    """`python -m temporal_rl.models.tiny --family F --out DIR` in a fresh interpreter: the bytes of the builder."""
    out = tmp_path / family
    command = [sys.executable, "-m", "temporal_rl.models.tiny", "--family", family, "--out", str(out)]
    subprocess.run(command, check=True, capture_output=True)
    assert _digest(out) == _digest(tiny_family_dir(family))
    other = _digest(build_tiny_model(tmp_path / "other", TinySpec(family=family, seed=1)))
    assert other["model.safetensors"] != _digest(out)["model.safetensors"]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_round_trip_and_forward_on_a_video_prompt(family, tiny_family_dir):
    directory, expected = tiny_family_dir(family), EXPECTED[family]
    processor = AutoProcessor.from_pretrained(directory)
    model = AutoModelForImageTextToText.from_pretrained(directory).eval()
    assert type(processor).__name__ == expected["processor"]
    assert type(model).__name__ == expected["model"]
    assert family_of(model) is FAMILIES[family] and video_format(processor) is FAMILIES[family].video

    side = expected["side"]  # 4 patches a side, merged 2x2: 4 video tokens per temporal patch
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(8, side, side, 3), dtype=np.uint8)
    inputs = _video_prompt(processor, frames, fps=2.0)
    # 8 frames: 4 temporal groups of 4 x 4 patches, merged 2x2 -> 4 * 4 = 16 video tokens.
    assert inputs["video_grid_thw"].tolist() == [[4, 4, 4]]
    assert int((inputs["input_ids"] == model.config.video_token_id).sum()) == 16
    patch = TINY_FAMILIES[family].patch_size
    assert inputs["pixel_values_videos"].shape == (4 * 4 * 4, 3 * 2 * patch * patch)
    # 2 frames per temporal patch at 2 fps: one second per patch, in the family's time signal (Qwen2.5-VL: from the
    # first patch; Qwen3-VL and Qwen3.5: the middle of frames 2k and 2k + 1, written with one decimal).
    times = [0.0, 1.0, 2.0, 3.0] if family == "qwen2_5_vl" else [0.2, 1.2, 2.2, 3.2]
    assert video_format(processor).model_timestamps(processor, inputs) == times

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


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_saved_weight_is_loaded(family, tiny_family_dir):
    from safetensors.torch import load_file

    directory = tiny_family_dir(family)
    model, info = AutoModelForImageTextToText.from_pretrained(directory, output_loading_info=True)
    assert not any(info.values()), info  # nothing missing, unexpected, mismatched or re-initialised
    saved = load_file(directory / "model.safetensors")
    assert sum(t.numel() for t in saved.values()) == parameter_counts(model)["total"]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_tokenizer_speaks_qwen(family, tiny_family_dir):
    tokenizer = AutoProcessor.from_pretrained(tiny_family_dir(family)).tokenizer
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
    assert tokenizer.apply_chat_template(messages, tokenize=False) == EXPECTED[family]["chat"]
    if TINY_FAMILIES[family].timestamps_in_text:  # a timestamp costs its digits plus 3 tokens
        assert tokenizer.tokenize("<12.5 seconds>") == ["<", "1", "2", ".", "5", "Ġseconds", ">"]


# Parameter counts of the public checkpoints, and where they are published:
# - Qwen2.5-VL: the project's performance model (../shared/design/performance-model.md, 3.1);
# - Qwen3-VL: the BF16 safetensors of Qwen/Qwen3-VL-4B-Instruct hold 8,875,631,616 bytes (the index's total_size;
#   the vision tower's 315 tensors 830,695,424 bytes), those of Qwen/Qwen3-VL-8B-Instruct 17,534,247,392 bytes: 2
#   bytes a parameter;
# - Qwen3.5: Keras Hub's presets of the converted public checkpoints (keras_hub/src/models/qwen3_5/
#   qwen3_5_presets.py: qwen3_5_4b 4,539,265,536, qwen3_5_9b 9,409,813,744 parameters).
PUBLIC_COUNTS = [
    ("qwen2_5_vl", "3B", 3_754_622_976, 668_684_288),
    ("qwen2_5_vl", "7B", 8_292_166_656, 676_550_144),
    ("qwen3_vl", "4B", 8_875_631_616 // 2, 830_695_424 // 2),
    ("qwen3_vl", "8B", 17_534_247_392 // 2, None),
    ("qwen3_5", "4B", 4_539_265_536, None),
    ("qwen3_5", "9B", 9_409_813_744, None),
]


@pytest.mark.parametrize(("family", "size", "total", "vision"), PUBLIC_COUNTS, ids=lambda v: str(v))
def test_real_architectures_on_the_meta_device(family, size, total, vision):
    model = build_architecture(family, size, device="meta")
    counts = parameter_counts(model)
    assert counts["total"] == total
    if vision is not None:
        assert counts["vision"] == vision
    assert next(model.parameters()).device.type == "meta"
    assert family_of(model) is FAMILIES[family]


def test_build_qwen2_5_vl_is_the_qwen2_5_vl_architecture():
    assert parameter_counts(build_qwen2_5_vl("3B"))["total"] == PUBLIC_COUNTS[0][2]
    with pytest.raises(ValueError, match="expected one of 4B, 8B"):
        build_architecture("qwen3_vl", "2B")
