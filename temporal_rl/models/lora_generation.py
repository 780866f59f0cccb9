"""LoRA during generation at the cost of two matrix products per adapted layer (`lean_lora_generation`).

Why: decoding with Hugging Face `generate` is bound by the per-token cost of launching operations, not by the
arithmetic (one decode step of the real 3B runs ~3,800 aten operations for 8 rows; on an H200 a step of the 7B took
57 ms where its weights can be read in 4 ms). PEFT's unmerged LoRA layer adds six operations and a deep Python
dispatch to every adapted linear layer (cast the input to the adapter's dtype, A, B, scale, add, cast back): with
LoRA on the 7 projections of every decoder layer, a decode step of the 3B goes from ~3,800 to ~6,800 operations,
and a training-time generation costs about twice a plain `generate` of the same model (`benchmarks/
generation_path.py` counts it). Inside `lean_lora_generation(model)`, each adapted layer computes
`base(x) + scaling * (x A^T) B^T` as one product and one in-place `addmm` into the base output: two operations.

Why not merge the adapters into the weights for generation (what TRL does for vLLM): in bfloat16 a merged weight
keeps the adapter's update only where it exceeds half a unit in the last place of the weight. A LoRA update of 1e-4
of the weights' scale changes 0.05 % of the merged bf16 weights: generation would sample from (almost) the base
model, not the policy being trained. Unmerged, the update is never rounded away.

What it changes and what it does not:

- only no-grad forwards with the plain `lora.Linear` layer take the lean path; a forward with gradients enabled,
  extra arguments, adapters switched off or merged, DoRA or another variant, active dropout (p > 0 in training
  mode), a bias on B, `fan_in_fan_out` or a quantized base layer runs PEFT's own forward, unchanged;
- `compute_dtype`: the adapters are used in that dtype (copies made once on entry): pass the dtype of the loss
  forwards' autocast (bf16 under `bf16: true`), so that sampling uses the adapters at the precision the loss scores
  them with. None keeps the adapters' own dtype (an input of another dtype is cast, as PEFT does);
- in float32 the output is PEFT's up to rounding (same products, the scale applied inside the `addmm`).

This module owns that scope only; which generations use it is the caller's decision (the GRPO trainer's
generation, `temporal_rl.generation.generate_batch`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


def _lora_linear_class():
    try:
        from peft.tuners.lora.layer import Linear
    except ImportError:  # no PEFT: nothing to adapt
        return None
    return Linear


def _adapter_factors(
    layer, compute_dtype: torch.dtype | None
) -> list[tuple[torch.Tensor, torch.Tensor, float]] | None:
    """[(A^T, B^T, scaling)] of the layer's active adapters for the lean path, or None when PEFT's forward must run."""
    base = layer.base_layer
    if not isinstance(base, nn.Linear) or not base.weight.is_floating_point():
        return None  # quantized or unusual base layers keep PEFT's forward
    if layer.disable_adapters or layer.merged or getattr(layer, "fan_in_fan_out", False):
        return None
    factors = []
    for name in layer.active_adapters:
        if name not in layer.lora_A:
            continue
        if name in getattr(layer, "lora_variant", {}):  # DoRA and other variants
            return None
        dropout = layer.lora_dropout[name]
        if not isinstance(dropout, nn.Identity) and (getattr(dropout, "p", 1.0) > 0 and layer.training):
            return None
        lora_a, lora_b = layer.lora_A[name], layer.lora_B[name]
        if getattr(lora_a, "bias", None) is not None or getattr(lora_b, "bias", None) is not None:
            return None
        dtype = compute_dtype or lora_a.weight.dtype
        a_t = lora_a.weight.detach().to(dtype).t()
        b_t = lora_b.weight.detach().to(dtype).t()
        factors.append((a_t, b_t, float(layer.scaling[name])))
    return factors or None


def _lean_forward(layer, factors, peft_forward):
    base = layer.base_layer
    active = tuple(layer.active_adapters)

    def forward(x, *args, **kwargs):
        if (
            args
            or kwargs
            or torch.is_grad_enabled()
            or layer.disable_adapters
            or layer.merged
            or tuple(layer.active_adapters) != active
        ):
            return peft_forward(x, *args, **kwargs)
        result = base(x)
        if not result.is_contiguous():
            return peft_forward(x, *args, **kwargs)
        rows = x.reshape(-1, x.shape[-1])
        flat = result.view(-1, result.shape[-1])
        for a_t, b_t, scaling in factors:
            hidden = rows.to(a_t.dtype) @ a_t
            if flat.dtype == b_t.dtype:
                flat.addmm_(hidden, b_t, alpha=scaling)
            else:  # adapters in another dtype than the base output: the sum in the output's dtype
                flat.add_(hidden @ b_t, alpha=scaling)
        return result

    return forward


@contextmanager
def lean_lora_generation(model: nn.Module, compute_dtype: torch.dtype | None = None) -> Iterator[int]:
    """Within the scope, the model's LoRA linear layers compute their adapters in two operations in no-grad
    forwards (see the module docstring); yields the number of layers switched.

    Args:
        model: any module (a `PeftModel`, a wrapped one, or a model without adapters: then nothing changes).
        compute_dtype: dtype of the adapters' products (None: the adapters' own).

    Example:
        >>> import torch
        >>> from peft import LoraConfig, get_peft_model
        >>> net = get_peft_model(torch.nn.Sequential(torch.nn.Linear(4, 4)), LoraConfig(target_modules=["0"]))
        >>> with lean_lora_generation(net) as switched, torch.no_grad():
        ...     _ = net(torch.ones(2, 4))
        >>> switched
        1
    """
    linear = _lora_linear_class()
    patched = []
    try:
        if linear is not None:
            for module in model.modules():
                if type(module) is not linear or "forward" in module.__dict__:
                    continue
                factors = _adapter_factors(module, compute_dtype)
                if factors is None:
                    continue
                module.forward = _lean_forward(module, factors, module.forward)
                patched.append(module)
        yield len(patched)
    finally:
        for module in patched:
            del module.forward
