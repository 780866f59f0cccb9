"""Vision-encoder sharing in TemporalGRPOTrainer: the same numbers as encoding every row, with 1/G of the work.

Each comparison runs the same rollout batch (TRL-shuffled and split) through the shared and the unshared path of
one trainer, or through an independent per-row forward; patches are counted by this file's own forward hook on the
vision tower, not by the trainer's counter. The equivalence tests run on every model family's tiny model (Qwen3-VL's
shared outputs carry its deepstack features; Qwen3.5's language model mixes Gated DeltaNet and attention layers).
"""

import pytest
import torch
from peft import LoraConfig
from transformers import AutoModelForImageTextToText, AutoProcessor, TrainerCallback

from data_tools.synth import generate_dataset
from temporal_rl.data import load_dataset
from temporal_rl.families import FAMILIES
from temporal_rl.grpo.config import TemporalGRPOConfig
from temporal_rl.grpo.trainer import TemporalGRPOTrainer
from temporal_rl.grpo.video_rows import VideoRows
from temporal_rl.grpo.vision_sharing import distinct_rows, find_video_model

G = 4
LM_LORA = LoraConfig(
    r=4, lora_alpha=8, lora_dropout=0.0, target_modules=r".*language_model.*\.(q_proj|v_proj)", init_lora_weights=False
)


@pytest.fixture(scope="module")
def two_videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("sharing")
    generate_dataset("grounding", "train", 2, "vision-sharing", root, workers=1, progress=False)
    return load_dataset(root / "data.jsonl")


def _config(tmp_path, **overrides):
    settings = dict(
        output_dir=str(tmp_path / "out"),
        bf16=False,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        per_device_train_batch_size=4,
        num_generations=G,
        steps_per_generation=2,  # 2 prompts x G rows, shuffled and split into 2 slices, one per optimizer step
        max_completion_length=6,
        temperature=1.0,
        max_steps=2,
        logging_steps=1,
        learning_rate=0.0,
        beta=0.04,  # reference log-probs (adapters disabled) too
        span_format="plain",
        reward_funcs=["format", "iou"],
        frame_cache_dir=str(tmp_path / "frames"),
        video_min_pixels=28 * 28,
        video_max_pixels=64 * 64,  # 56 px frames: 56 px for Qwen2.5-VL (sides x 28), 64 px for Qwen3-VL / Qwen3.5
        seed=0,
    )
    settings.update(overrides)
    return TemporalGRPOConfig(**settings)


def _trainer(tiny_model_dir, dataset, config, trainer_cls=TemporalGRPOTrainer, **kwargs):
    torch.manual_seed(0)
    return trainer_cls(
        model=AutoModelForImageTextToText.from_pretrained(tiny_model_dir),
        args=config,
        train_dataset=dataset,
        processing_class=AutoProcessor.from_pretrained(tiny_model_dir),
        **kwargs,
    )


class _Patches:
    """Patches encoded by a vision tower: rows of the pixel input of each of its calls."""

    def __init__(self, visual):
        self.count = 0
        visual.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        self.count += (args[0] if args else kwargs["hidden_states"]).size(0)


def _rollout_slice(trainer):
    """The first training slice of a fresh rollout (generated, scored, shuffled and split by TRL)."""
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = trainer.args.gradient_accumulation_steps  # set by `train()`
    inputs = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    # The random model's rewards often tie within a group (zero advantages, zero policy gradient): fix them.
    inputs["advantages"] = torch.linspace(-1.0, 1.0, inputs["advantages"].numel())
    return inputs


def _logps_and_grads(trainer, inputs, shared: bool):
    """Policy log-probs (B, T) of the slice's completions and the gradients of its GRPO loss, by parameter name."""
    trainer.share_vision_encoder = shared
    model = trainer.model
    model.zero_grad()
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    with torch.no_grad(), trainer._videos_of(VideoRows.from_batch(inputs)):
        logps, _, _ = trainer._get_per_token_logps_and_entropies(model, ids, mask, inputs["completion_ids"].size(1))
    trainer.compute_loss(model, inputs).backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return logps, grads


def _without_a_path_to_the_loss(model) -> str | None:
    """Name prefix of the parameters whose gradient is zero by construction, or None.

    Deepstack feature k is added to the video positions' hidden states after language-model layer k; added after the
    last layer, it reaches only the video positions' own logits, which no loss reads. The tiny Qwen3-VL (2 layers,
    deepstack after both) has one such merger; the real ones (36 layers, deepstack after 0-2) have none."""
    config = model.config
    vision, text = getattr(config, "vision_config", None), getattr(config, "text_config", None)
    indexes = getattr(vision, "deepstack_visual_indexes", None) or []
    if text is None or len(indexes) < text.num_hidden_layers:
        return None
    return f"model.visual.deepstack_merger_list.{text.num_hidden_layers - 1}."


def _assert_same(shared, unshared, dead_prefix=None):
    (logps_a, grads_a), (logps_b, grads_b) = shared, unshared
    torch.testing.assert_close(logps_a, logps_b, rtol=0, atol=1e-6)
    assert grads_a.keys() == grads_b.keys() and grads_a
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=1e-5, atol=1e-7, msg=name)
        if dead_prefix is not None and name.startswith(dead_prefix):
            assert grads_a[name].abs().max() == 0, name  # the reasoning above holds
        else:
            assert grads_a[name].abs().max() > 0, name


def _per_row_logps(model, inputs, rows, row, video_token_id):
    """float64 log-probs of one row's completion from a forward of that row alone, from its own pixels."""
    prompt = inputs["prompt_ids"][row][inputs["prompt_mask"][row].bool()]
    completion = inputs["completion_ids"][row][inputs["completion_mask"][row].bool()]
    ids = torch.cat([prompt, completion])[None]
    with torch.no_grad():
        logits = model(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            mm_token_type_ids=(ids == video_token_id).long() * 2,
            pixel_values_videos=rows.pixel_values_videos[row],
            video_grid_thw=rows.video_grid_thw[row : row + 1],
            **{name: tensor[row : row + 1] for name, tensor in rows.row_tensors.items()},
        ).logits[0, prompt.numel() - 1 : -1]
    return torch.log_softmax(logits.double(), dim=-1).gather(1, completion[:, None])[:, 0]


def test_distinct_rows_by_identity_and_content():
    a, b = torch.zeros(4, 2), torch.ones(4, 2)
    grids = torch.tensor([[1, 2, 2]] * 5)
    assert distinct_rows([a, b, a, a.clone(), b], grids) == [0, 1, 0, 0, 1]
    other_grid = grids.clone()
    other_grid[3] = torch.tensor([1, 1, 4])
    assert distinct_rows([a, b, a, a.clone(), b], other_grid) == [0, 1, 0, 2, 1]


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
def test_frozen_tower_lora_shared_equals_unshared_and_per_row(family, tiny_family_dir, two_videos, tmp_path):
    trainer = _trainer(tiny_family_dir(family), two_videos, _config(tmp_path), peft_config=LM_LORA)
    visual = find_video_model(trainer.model).visual
    patches = _Patches(visual)
    inputs = _rollout_slice(trainer)
    rows = VideoRows.from_batch(inputs)
    rollout = [VideoRows.from_batch(piece) for piece in trainer._buffered_inputs]  # both slices
    distinct = {
        id(p): int(g.prod())
        for part in rollout
        for p, g in zip(part.pixel_values_videos, part.video_grid_thw, strict=True)
    }
    # Encoded once, before generation: one tower call over the 2 distinct videos, for generation, old and ref.
    assert patches.count == sum(distinct.values()) and len(distinct) == 2
    assert len(trainer._vision_cache) == 2 and len(rows) == 4
    assert len({key for part in rollout for key in part.feature_keys}) == 2

    shared = _logps_and_grads(trainer, inputs, shared=True)
    assert patches.count == sum(distinct.values())  # the policy forward read the cache too
    unshared = _logps_and_grads(trainer, inputs, shared=False)
    assert all("lora" in name for name in shared[1])  # LoRA on the language model only, the tower frozen
    _assert_same(shared, unshared)

    # The rollout's old and reference log-probs (shared path) against the unshared policy / adapter-free model.
    valid = inputs["completion_mask"].bool()
    torch.testing.assert_close(inputs["old_per_token_logps"][valid], unshared[0][valid], rtol=0, atol=1e-6)
    trainer.share_vision_encoder = False
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    with torch.no_grad(), trainer.model.disable_adapter(), trainer._videos_of(rows):
        ref, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, valid.size(1))
    torch.testing.assert_close(inputs["ref_per_token_logps"][valid], ref[valid], rtol=0, atol=1e-6)
    assert (ref[valid] - shared[0][valid]).abs().max() > 1e-3  # the adapters matter: the check can fail

    for row in range(len(rows)):  # an independent forward per row
        expected = _per_row_logps(trainer.model, inputs, rows, row, trainer._video_pad_token_id)
        got = shared[0][row, : expected.numel()].double()
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
def test_trainable_tower_shared_within_a_forward(family, tiny_family_dir, two_videos, tmp_path):
    trainer = _trainer(tiny_family_dir(family), two_videos, _config(tmp_path, beta=0.0))
    visual = find_video_model(trainer.model).visual
    assert all(p.requires_grad for p in visual.parameters())
    inputs = _rollout_slice(trainer)
    assert "video_feature_keys" not in inputs and len(trainer._vision_cache) == 0  # nothing cached across forwards
    patches = _Patches(visual)
    shared = _logps_and_grads(trainer, inputs, shared=True)
    rows = VideoRows.from_batch(inputs)
    video_of_row = distinct_rows(rows.pixel_values_videos, rows.video_grid_thw)
    once = sum(int(rows.video_grid_thw[video_of_row.index(video)].prod()) for video in set(video_of_row))
    assert patches.count == 2 * once  # the log-prob forward and the loss forward, each distinct video once
    unshared = _logps_and_grads(trainer, inputs, shared=False)
    assert any(name.startswith("model.visual.") for name in shared[1])
    _assert_same(shared, unshared, _without_a_path_to_the_loss(trainer.model))


class _CacheSizes(TrainerCallback):
    def __init__(self, trainer):
        self.trainer, self.sizes = trainer, []

    def on_step_end(self, args, state, control, **kwargs):
        self.sizes.append(len(self.trainer._vision_cache))


class _CheckedAgainstUnshared(TemporalGRPOTrainer):
    """Records, at every loss computation, max |shared - unshared| of the slice's policy log-probs."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.errors = []

    def _compute_loss(self, model, inputs):
        ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
        mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        logps = []
        for shared in (True, False):
            self.share_vision_encoder = shared
            with torch.no_grad(), self._videos_of(VideoRows.from_batch(inputs)):
                logps.append(
                    self._get_per_token_logps_and_entropies(model, ids, mask, inputs["completion_ids"].size(1))
                )
        self.share_vision_encoder = True
        self.errors.append(float((logps[0][0] - logps[1][0]).abs().max()))
        return super()._compute_loss(model, inputs)


@pytest.mark.slow
def test_cached_outputs_serve_every_step_of_a_rollout_then_are_released(tiny_model_dir, two_videos, tmp_path):
    config = _config(tmp_path, learning_rate=1e-2)  # the LoRA weights change between the rollout's two steps
    trainer = _trainer(tiny_model_dir, two_videos, config, _CheckedAgainstUnshared, peft_config=LM_LORA)
    sizes = _CacheSizes(trainer)
    trainer.add_callback(sizes)
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    assert any(not torch.equal(p, before[name]) for name, p in trainer.model.named_parameters() if name in before)
    assert sizes.sizes == [2, 0]  # one rollout for both optimizer steps: kept after the first, released after
    assert len(trainer.errors) == 2 and max(trainer.errors) < 1e-6


@pytest.mark.slow
def test_patches_per_step_are_at_most_one_over_g(tiny_model_dir, two_videos, tmp_path):
    counts, rows_patches = {}, {}
    for shared in (True, False):
        config = _config(tmp_path, share_vision_encoder=shared)
        trainer = _trainer(tiny_model_dir, two_videos, config, peft_config=LM_LORA)
        patches = _Patches(find_video_model(trainer.model).visual)
        trainer.train()
        counts[shared] = patches.count
        rows = [VideoRows.from_batch(piece) for piece in trainer._buffered_inputs]
        rows_patches[shared] = sum(int(part.video_grid_thw.prod(dim=-1).sum()) for part in rows)
        logged = [
            entry["video/vision_patches"] for entry in trainer.state.log_history if "video/vision_patches" in entry
        ]
        assert sum(logged) == patches.count  # the trainer's own counter agrees with this hook
    assert rows_patches[True] == rows_patches[False]  # the same videos: 2 prompts x G rows
    # Unshared: generation, old log-probs, reference log-probs and the two policy slices each encode every row.
    assert counts[False] == 4 * rows_patches[False]
    # Shared: each of the 2 videos once for the whole rollout.
    assert counts[True] * G == rows_patches[True]
    assert counts[True] * G <= counts[False]
