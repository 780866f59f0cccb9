"""Test-wide environment: pinned threads, offline hubs. Fixtures shared by several test files live here."""

import os

for name, value in {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}.items():
    os.environ.setdefault(name, value)

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
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
        done = subprocess.run([sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    return run
