"""Test-wide environment: pinned threads, offline hubs. Fixtures shared by several test files live here."""

import os

from temporal_rl.environment import child_environment, pin_environment

pin_environment()

import torch  # noqa: E402

torch.set_num_threads(1)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny Qwen2.5-VL directory, built once per test session."""
    from temporal_rl.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_qwen2_5_vl"))


@pytest.fixture(scope="session")
def tiny_family_dir(tmp_path_factory, tiny_model_dir):
    """`tiny_family_dir(family)`: the tiny model directory of a model family (`temporal_rl.families.FAMILIES`), each
    built once per test session, on first use."""
    from temporal_rl.models.tiny import TinySpec, build_tiny_model

    built = {"qwen2_5_vl": tiny_model_dir}

    def get(family: str):
        if family not in built:
            built[family] = build_tiny_model(tmp_path_factory.mktemp(f"tiny_{family}"), TinySpec(family=family))
        return built[family]

    return get


@pytest.fixture
def fresh_python():
    """Runs a Python script in a fresh interpreter (this checkout first on the path); fails with its stderr."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]

    def run(script: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", script], cwd=root, env=child_environment([root]), capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    return run


class Compute:
    """Where and in what precision a numerical-equivalence test runs, with the tolerances that precision allows.

    The same comparisons (shared against unshared vision outputs, batched against per-row forwards, lean against
    PEFT's LoRA) run on the CPU in float32 always, and on CUDA in float32 and in bfloat16 when a CUDA device is
    present. Tolerances (`logp_atol`: batched vs batched paths; `row_atol`: a padded batch vs an unpadded per-row
    forward; `grad_rtol` / `grad_atol`: gradients, relative and absolute, in bf16 the latter a share of the
    largest gradient):

    - cpu float32: the paths run the same kernels on nearly the same shapes: 1e-6 on log-probs (about 10 float32
      ulps at |log p| ~ 10), 1e-5 against a per-row forward (a different padding and sequence length); gradients
      1e-5 relative, 1e-7 absolute;
    - cuda float32: cuBLAS and cuDNN choose their kernels (and so their summation orders) by shape, so a batched
      and a per-row forward differ by float32 rounding accumulated over the layers: ten times the CPU's. TF32 is
      switched off for the test (cuDNN's convolutions, the patch embedding, use it by default), so float32 is
      float32;
    - bfloat16 (weights and activations in bf16, as the recipes train; on CUDA): 3e-2 on log-probs, both
      comparisons. Measured in bf16 on the CPU (`TEMPORAL_RL_TEST_CPU_BF16=1`, 2026-12-04), the largest error of
      the trainer's log-probs against an independent per-row forward was 2.0e-3 (reference log-probs; policy and
      old 9.5e-4). GPU kernels round differently (fused attention, other tilings): a logit of magnitude 2-4 moved
      by one bf16 step (2^-6 = 0.016) moves a log-prob by up to that step, and two such steps are allowed. Gradients:
      2^-5 relative (4 bf16 units in the last place), with an absolute floor of 2^-5 of the largest gradient. Not
      yet run on a GPU.
    """

    def __init__(self, device: str, dtype: torch.dtype):
        self.device, self.dtype = torch.device(device), dtype
        self.cuda, self.bf16 = device == "cuda", dtype == torch.bfloat16
        if self.bf16:
            self.logp_atol = self.row_atol = 3e-2
            self.grad_rtol, self.grad_atol = 2.0**-5, 2.0**-5
        elif self.cuda:
            self.logp_atol, self.row_atol, self.grad_rtol, self.grad_atol = 1e-5, 1e-4, 1e-4, 1e-6
        else:
            self.logp_atol, self.row_atol, self.grad_rtol, self.grad_atol = 1e-6, 1e-5, 1e-5, 1e-7

    def __repr__(self) -> str:
        return f"Compute({self.device.type}, {self.dtype})"

    def trainer_args(self) -> dict:
        """The `TemporalGRPOConfig` fields that put a trainer on this device in this precision."""
        return {"use_cpu": not self.cuda, "bf16": self.bf16}

    def model(self, model):
        """`model` in this precision (moved by the trainer, or by `.to(compute.device)`)."""
        return model.to(self.dtype)

    def assert_grads_close(self, got: torch.Tensor, expected: torch.Tensor, name: str) -> None:
        atol = self.grad_atol * float(expected.abs().max()) if self.bf16 else self.grad_atol  # bf16: of the largest
        torch.testing.assert_close(got, expected, rtol=self.grad_rtol, atol=atol, msg=name)


_COMPUTES = [
    pytest.param(("cpu", torch.float32), id="cpu-fp32"),
    *[
        pytest.param(
            ("cuda", dtype),
            id=f"cuda-{label}",
            marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"),
        )
        for dtype, label in ((torch.float32, "fp32"), (torch.bfloat16, "bf16"))
    ],
]
if os.environ.get("TEMPORAL_RL_TEST_CPU_BF16"):  # the bf16 tolerances checked on a machine without a GPU
    _COMPUTES.append(pytest.param(("cpu", torch.bfloat16), id="cpu-bf16"))


@pytest.fixture(params=_COMPUTES)
def compute(request):
    """A `Compute`: cpu-fp32 always; cuda-fp32 and cuda-bf16 where CUDA is present (skipped elsewhere)."""
    setting = Compute(*request.param)
    if not setting.cuda:
        yield setting
        return
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield setting
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
