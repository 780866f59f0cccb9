"""`lean_lora_generation`: LoRA layers in two operations while decoding, the same outputs as PEFT's forward.

The trainer's generation used to run PEFT's LoRA forward in every decode step: at real 3B size that doubles the
kernels launched per token (2,073 -> 4,089, benchmarks/generation_path.py), and decoding is bound by them. These
tests pin the numbers (the lean outputs equal PEFT's), the fallbacks (anything unusual runs PEFT's own forward),
and that the trainer's generation runs no PEFT LoRA forward at all (which fails without the fix).
"""

import pytest
import torch
from peft import LoraConfig, get_peft_model
from peft.tuners.lora.layer import Linear as LoraLinear
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from temporal_rl.families import VideoFeatures, get_family
from temporal_rl.grpo.vision_sharing import supplied_video_features
from temporal_rl.models.lora_generation import lean_lora_generation


def _net(dtype=torch.float32, **lora):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 8)).to(dtype)
    settings = dict(r=4, lora_alpha=3, target_modules=["0", "2"], init_lora_weights=False)  # scaling 0.75
    model = get_peft_model(net, LoraConfig(**{**settings, **lora}))
    return model


def _lean_calls(model):
    """The LoRA layers of `model` whose forward the scope replaced."""
    return [m for m in model.modules() if isinstance(m, LoraLinear) and "forward" in m.__dict__]


def test_same_outputs_as_peft(compute):
    """float32: PEFT's output up to rounding (the same products); bf16 (CUDA): within bf16 rounding of it (8
    significant bits: 2e-2 relative and absolute on outputs of order 1, as `test_bf16_base_with_float32_adapters`)."""
    model = _net(compute.dtype).to(compute.device)
    x = torch.randn(3, 5, 16, dtype=compute.dtype, device=compute.device)
    tolerance = {"rtol": 2e-2, "atol": 2e-2} if compute.bf16 else {"rtol": 0, "atol": 1e-5 if compute.cuda else 1e-6}
    with torch.no_grad():
        expected = model(x)
        with lean_lora_generation(model) as switched:
            assert switched == 2 and len(_lean_calls(model)) == 2
            got = model(x)
    assert not _lean_calls(model)  # restored
    torch.testing.assert_close(got, expected, **tolerance)
    with torch.no_grad(), model.disable_adapter():  # the adapters matter: the check can fail
        assert (model(x) - expected).abs().max() > 10 * tolerance["atol"]


def test_bf16_base_with_float32_adapters():
    """A bf16 model with PEFT's float32 adapters: the lean path in the adapters' dtype or in bf16 (the loss
    forwards' autocast precision) stays within bf16 rounding of PEFT's output."""
    model = _net(torch.bfloat16)
    assert {p.dtype for n, p in model.named_parameters() if "lora_" in n} == {torch.float32}
    x = torch.randn(4, 16, dtype=torch.bfloat16)
    with torch.no_grad():
        expected = model(x).float()
        for dtype in (None, torch.bfloat16):
            with lean_lora_generation(model, compute_dtype=dtype) as switched:
                got = model(x)
            assert switched == 2 and got.dtype == torch.bfloat16
            torch.testing.assert_close(got.float(), expected, rtol=2e-2, atol=2e-2)


def test_gradients_and_unusual_layers_run_peft_forward():
    model = _net()
    x = torch.randn(2, 16)
    with lean_lora_generation(model):
        out = model(x)  # grad enabled: PEFT's forward, which trains
        out.sum().backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if "lora_" in n)
    with lean_lora_generation(_net(lora_dropout=0.5).train()) as switched:
        assert switched == 0  # active dropout
    with lean_lora_generation(_net(lora_dropout=0.5).eval()) as switched:
        assert switched == 2  # dropout is the identity in eval mode
    with lean_lora_generation(_net(use_dora=True)) as switched:
        assert switched == 0
    with lean_lora_generation(nn.Linear(3, 3)) as switched:  # no adapters: nothing to do
        assert switched == 0
    model = _net()
    with torch.no_grad(), lean_lora_generation(model):
        with model.disable_adapter():  # switched off inside the scope: PEFT's forward (the base output)
            off = model(x)
    with torch.no_grad(), model.disable_adapter():
        torch.testing.assert_close(off, model(x), rtol=0, atol=0)


class _Ops(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def test_the_vision_hook_does_nothing_in_a_decoding_step():
    """The shared-vision hook runs before every forward; in a decoding step it must not inspect the tokens (that
    was an operation and a device synchronisation per generated token)."""

    class Model(nn.Module):
        def forward(self, input_ids=None, past_key_values=None, mm_encoder_outputs=None):
            return mm_encoder_outputs

    model, ops, step = Model(), _Ops(), torch.tensor([[5], [6]])
    features = [VideoFeatures(torch.zeros(2, 4))]
    with supplied_video_features(get_family("qwen2_5_vl"), model, lambda: features, video_token_id=7):
        with ops:
            assert model(input_ids=step, past_key_values=object()) is None
        assert ops.count == 0
        supplied = model(input_ids=torch.tensor([[1, 7, 7, 2]]))  # a prefill with the video's placeholders
    assert supplied is not None and supplied["video"].pooler_output[0].shape == (2, 4)


@pytest.mark.slow
def test_trainer_generation_runs_no_peft_lora_forward(tiny_model_dir, tmp_path, monkeypatch):
    """The trainer's generation decodes through the lean path only (no PEFT LoRA forward), and greedy decoding
    gives the same tokens as with PEFT's forward."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from data_tools.synth import generate_dataset
    from temporal_rl.data import load_dataset
    from temporal_rl.grpo.config import TemporalGRPOConfig
    from temporal_rl.grpo.trainer import TemporalGRPOTrainer

    generate_dataset("grounding", "train", 1, "lean-lora", tmp_path / "data", workers=1, progress=False)
    config = TemporalGRPOConfig(
        output_dir=str(tmp_path / "out"),
        use_cpu=True,
        bf16=False,
        report_to="none",
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=8,
        generation_kwargs={"min_new_tokens": 8, "do_sample": False},
        activation_checkpointing=True,
        beta=0.0,
        reward_funcs=["format"],
        frame_cache_dir=str(tmp_path / "frames"),
        video_min_pixels=28 * 28,
        video_max_pixels=56 * 56,
    )
    torch.manual_seed(0)
    trainer = TemporalGRPOTrainer(
        model=AutoModelForImageTextToText.from_pretrained(tiny_model_dir),
        args=config,
        train_dataset=load_dataset(tmp_path / "data" / "data.jsonl"),
        processing_class=AutoProcessor.from_pretrained(tiny_model_dir),
        peft_config=LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "gate_proj"],
                               exclude_modules=r".*visual.*", init_lora_weights=False),
    )  # fmt: skip
    peft_calls = []
    peft_forward = LoraLinear.forward

    def counted(self, x, *args, **kwargs):
        peft_calls.append(torch.is_grad_enabled())
        return peft_forward(self, x, *args, **kwargs)

    monkeypatch.setattr(LoraLinear, "forward", counted)
    trainer.model.train()
    batch = next(iter(trainer.get_train_dataloader()))
    prompt_ids, _, fields = trainer._tokenize_prompts([row["prompt"] for row in batch])
    rows = trainer._video_rows
    completions = {}
    for lean in (False, True):
        trainer.lean_lora_generation, trainer._video_rows = lean, rows
        peft_calls.clear()
        completions[lean], _ = trainer._generate_single_turn(prompt_ids, None, fields, 4)
        if lean:
            assert peft_calls == []  # every adapted layer decoded through the lean path
        else:
            assert len(peft_calls) == 8 * 2 * 3  # 8 forwards x 2 layers x 3 adapted projections
    assert completions[True] == completions[False]
    assert not _lean_calls(trainer.model)  # restored after generation
