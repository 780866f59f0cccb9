"""The SFT warm start: batches hold the prompt with its video and the gold answer, the loss on the answer only."""

import dataclasses

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForImageTextToText, AutoProcessor
from transformers.video_utils import VideoMetadata

from data_tools.synth import generate_dataset
from temporal_rl.configs import DataArguments, TemporalSFTConfig
from temporal_rl.data import load_dataset
from temporal_rl.families import FAMILIES
from temporal_rl.models.loading import TemporalModelConfig
from temporal_rl.prompts import PromptOptions, build_messages, format_answer
from temporal_rl.sft import IGNORE_INDEX, VideoSFTCollator
from temporal_rl.training import train_sft
from temporal_rl.video.cache import FrameCache
from temporal_rl.video.decode import decode_video
from temporal_rl.video.sampling import FrameSampling

SAMPLING = FrameSampling(fps=2.0, min_pixels=28 * 28, max_pixels=56 * 56)


@pytest.fixture(scope="module")
def grounding_jsonl(tmp_path_factory):
    root = tmp_path_factory.mktemp("sft_data")
    generate_dataset("grounding", "train", 6, "sft-test", root, workers=1, progress=False)
    return root / "data.jsonl"


@pytest.mark.parametrize("family", list(FAMILIES))
def test_collator_masks_everything_but_the_answer(family, tiny_family_dir, grounding_jsonl, tmp_path):
    processor = AutoProcessor.from_pretrained(tiny_family_dir(family))
    rows = [load_dataset(grounding_jsonl)[i] for i in range(3)]
    # 56 px frames: 56 px for Qwen2.5-VL (sides x 28), 64 px for Qwen3-VL and Qwen3.5 (sides x 32).
    sampling = dataclasses.replace(SAMPLING, max_pixels=64 * 64)
    batch = VideoSFTCollator(processor, sampling, FrameCache(tmp_path), PromptOptions(span_format="plain"))(rows)
    tokenizer = processor.tokenizer
    factor = processor.video_processor.patch_size * processor.video_processor.merge_size
    for i, row in enumerate(rows):
        # Independent: the processor on this row's prompt and freshly decoded frames, its arguments written here.
        text = processor.apply_chat_template(
            build_messages(row, span_format="plain"), add_generation_prompt=True, tokenize=False
        )
        video = decode_video(row["video"], dataclasses.replace(sampling, image_factor=factor))
        assert video.frames.shape[1:3] == (2 * factor, 2 * factor)
        metadata = VideoMetadata(
            total_num_frames=video.total_frames, fps=video.source_fps, frames_indices=video.indices
        )
        videos_kwargs = {"video_metadata": [metadata], "do_sample_frames": False, "do_resize": False}
        prompt = processor(text=[text], videos=[video.frames], videos_kwargs=videos_kwargs, return_tensors="pt")
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


@pytest.mark.slow
def test_sft_recipe_path_trains_exactly_like_a_plain_loop_on_the_same_batches(
    tiny_model_dir, grounding_jsonl, tmp_path
):
    """TRL's SFTTrainer (with its fused LM head, sampler, scheduler, clipping and fused AdamW) and a plain PyTorch
    loop with a log-softmax loss, given the same initial weights and the same batches, end with the same weights:
    the recipe path adds nothing to what the model learns (a defect there would show here)."""
    import copy

    from transformers import get_scheduler
    from trl import SFTTrainer

    from temporal_rl.models.loading import load_model, load_processor

    steps = 6
    config = TemporalSFTConfig(
        output_dir=str(tmp_path / "sft"),
        bf16=False,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        per_device_train_batch_size=3,
        learning_rate=5e-3,
        adam_beta2=0.98,
        lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr_rate": 0.1},
        warmup_steps=2,
        max_steps=steps,
        span_format="plain",
        video_position="last",
        video_min_pixels=784,
        video_max_pixels=3136,
        frame_cache_dir=str(tmp_path / "frames"),
        remove_unused_columns=False,
        dataset_kwargs={"skip_prepare_dataset": True},
    )
    model_args = TemporalModelConfig(model_name_or_path=str(tiny_model_dir))
    processor = load_processor(model_args)
    collator = VideoSFTCollator(processor, config.frame_sampling(), config.frame_cache(), config.prompt_options())
    batches = []

    def recording_collator(rows):
        batches.append([row["id"] for row in rows])
        return collator(rows)

    train = load_dataset(grounding_jsonl)
    model = load_model(model_args)
    plain = copy.deepcopy(model)
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=train,
        processing_class=processor,
        data_collator=recording_collator,
    )
    trainer.train()

    rows_by_id = {row["id"]: row for row in train}
    optimizer = torch.optim.AdamW(plain.parameters(), lr=5e-3, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.0)
    scheduler = get_scheduler(
        "cosine_with_min_lr",
        optimizer,
        num_warmup_steps=2,
        num_training_steps=steps,
        scheduler_specific_kwargs={"min_lr_rate": 0.1},
    )
    plain.train()
    for ids in batches[:steps]:
        batch = collator([rows_by_id[i] for i in ids])
        labels = batch.pop("labels")[:, 1:]
        logits = plain(**batch).logits[:, :-1]
        mask = labels != IGNORE_INDEX
        log_probs = torch.log_softmax(logits.float(), -1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        loss = -(log_probs * mask).sum() / mask.sum()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(plain.parameters(), 1.0)
        optimizer.step()
        scheduler.step()

    moved = max(
        (p - q).abs().max().item()
        for p, q in zip(model.parameters(), load_model(model_args).parameters(), strict=True)
    )
    assert moved > 1e-3  # both trained
    differences = [
        (p - q).abs().max().item() for p, q in zip(trainer.model.parameters(), plain.parameters(), strict=True)
    ]
    assert max(differences) < 1e-5


def test_wall_clock_budget_stops_after_the_step_that_crosses_it():
    from transformers import TrainerControl, TrainerState

    from temporal_rl.training import WallClockBudget

    now = [100.0]
    budget = WallClockBudget(5.0, clock=lambda: now[0])
    control = TrainerControl()
    budget.on_train_begin(None, TrainerState(), control)
    for elapsed, stops in ((1.0, False), (4.9, False), (5.0, True)):
        now[0] = 100.0 + elapsed
        assert budget.on_step_end(None, TrainerState(), control).should_training_stop is stops


def test_max_train_seconds_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="max_train_seconds must be positive"):
        TemporalSFTConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", max_train_seconds=0)
