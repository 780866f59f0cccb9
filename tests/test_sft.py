"""The SFT warm start: batches hold the prompt with its video and the gold answer, the loss on the answer only."""

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForImageTextToText, AutoProcessor

from data_tools.synth import generate_dataset
from temporal_rl.configs import DataArguments, TemporalSFTConfig
from temporal_rl.data import load_dataset
from temporal_rl.models.loading import TemporalModelConfig
from temporal_rl.prompts import PromptOptions, build_messages, format_answer
from temporal_rl.sft import IGNORE_INDEX, VideoSFTCollator
from temporal_rl.training import train_sft
from temporal_rl.video.cache import FrameCache
from temporal_rl.video.decode import decode_video
from temporal_rl.video.inputs import processor_video_kwargs
from temporal_rl.video.sampling import FrameSampling

SAMPLING = FrameSampling(fps=2.0, min_pixels=28 * 28, max_pixels=56 * 56)


@pytest.fixture(scope="module")
def grounding_jsonl(tmp_path_factory):
    root = tmp_path_factory.mktemp("sft_data")
    generate_dataset("grounding", "train", 6, "sft-test", root, workers=1, progress=False)
    return root / "data.jsonl"


def test_collator_masks_everything_but_the_answer(tiny_model_dir, grounding_jsonl, tmp_path):
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    rows = [load_dataset(grounding_jsonl)[i] for i in range(3)]
    batch = VideoSFTCollator(processor, SAMPLING, FrameCache(tmp_path), PromptOptions(span_format="plain"))(rows)
    tokenizer = processor.tokenizer
    for i, row in enumerate(rows):
        # Independent: the processor on this row's prompt and freshly decoded frames.
        text = processor.apply_chat_template(
            build_messages(row, span_format="plain"), add_generation_prompt=True, tokenize=False
        )
        prompt = processor(
            text=[text], return_tensors="pt", **processor_video_kwargs([decode_video(row["video"], SAMPLING)])
        )
        prompt_ids = prompt["input_ids"][0]
        length = int(batch["attention_mask"][i].sum())
        assert torch.equal(batch["input_ids"][i, : len(prompt_ids)], prompt_ids)
        assert (batch["labels"][i, : len(prompt_ids)] == IGNORE_INDEX).all()
        assert (batch["labels"][i, length:] == IGNORE_INDEX).all()
        answer = tokenizer.decode(batch["labels"][i, len(prompt_ids) : length])
        assert answer == format_answer(row, span_format="plain") + tokenizer.eos_token
        video_tokens = int((batch["input_ids"][i] == tokenizer.convert_tokens_to_ids("<|video_pad|>")).sum())
        assert video_tokens == int(prompt["video_grid_thw"].prod()) // 4
        assert int((batch["mm_token_type_ids"][i] == 2).sum()) == video_tokens
    grids = batch["video_grid_thw"]
    assert batch["pixel_values_videos"].shape[0] == int(grids.prod(dim=-1).sum())


@pytest.mark.slow
def test_sft_recipe_trains_a_lora_adapter(tiny_model_dir, grounding_jsonl, tmp_path):
    out = tmp_path / "sft"
    config = TemporalSFTConfig(
        output_dir=str(out),
        bf16=False,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        per_device_train_batch_size=3,
        learning_rate=1e-2,
        max_steps=3,
        logging_steps=1,
        span_format="plain",
        video_min_pixels=784,
        video_max_pixels=3136,
        frame_cache_dir=str(tmp_path / "frames"),
    )
    model_args = TemporalModelConfig(model_name_or_path=str(tiny_model_dir), use_peft=True, lora_r=4, lora_alpha=8)
    trainer = train_sft(DataArguments(train_file=str(grounding_jsonl)), config, model_args)
    assert trainer.state.global_step == 3
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    base = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    adapted = PeftModel.from_pretrained(base, out)
    adapter_names = [name for name, _ in adapted.named_parameters() if "lora_" in name]
    assert adapter_names and not any(".visual." in name for name in adapter_names)  # the vision tower is left alone
    lora_b = [p for name, p in adapted.named_parameters() if "lora_B" in name]
    assert any(p.abs().sum() > 0 for p in lora_b)  # trained: LoRA's B starts at zero
