"""Reliability guarantees that need real processes: one live run per output folder, and workers that die with
their launcher, training that resumes from its own newest complete checkpoint (docs/reliability.md lists every
guarantee and where it is shown)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from temporal_rl.resumable import OutputLocked, lock_output_dir

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.Popen([sys.executable, "-c", code], env=environment, text=True, **kwargs)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (dead, not yet reaped) is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_for(predicate, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_a_second_live_run_cannot_take_the_output_folder_and_a_killed_one_frees_it(tmp_path):
    """Nothing locked an output folder: a restart ran beside the killed run's left-over workers."""
    holder = _python(
        f"from temporal_rl.resumable import lock_output_dir; lock_output_dir({str(tmp_path)!r}, rank=1); "
        "print('locked', flush=True); import time; time.sleep(60)",
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(OutputLocked, match=rf"in use by another live run \(pid {holder.pid} on "):
            lock_output_dir(tmp_path, rank=1)
        lock_output_dir(tmp_path, rank=0)  # another rank's lock is free
        lock_output_dir(tmp_path, rank=0)  # taking it again in the same process is a no-op
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert lock_output_dir(tmp_path, rank=1).name == ".lock.rank-1"  # SIGKILL freed it at once


def test_eval_refuses_an_output_folder_in_use(tmp_path, capsys):
    from temporal_rl.eval.run import main

    holder = _python(
        f"from temporal_rl.resumable import lock_output_dir; lock_output_dir({str(tmp_path / 'out')!r}); "
        "print('locked', flush=True); import time; time.sleep(60)",
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        code = main(["--model", "absent", "--data", str(tmp_path / "d.jsonl"), "--out", str(tmp_path / "out")])
        assert code == 2 and f"in use by another live run (pid {holder.pid}" in capsys.readouterr().err
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


@pytest.mark.parametrize("launched", [True, False])
def test_a_worker_dies_with_its_launcher(launched):
    """Killing `accelerate launch` left its workers running, writing outputs seconds later. A launched worker
    (LOCAL_RANK set, as accelerate and torchrun set it) now asks to die with its parent; an unlaunched process
    keeps the old behaviour (the control: it survives, which shows the test can tell)."""
    worker = (
        "from temporal_rl.resumable import stop_with_launcher; stop_with_launcher(); "
        "print('ready', flush=True); import time; time.sleep(60)"
    )
    env = {"LOCAL_RANK": "0"} if launched else {}
    launcher_code = (
        "import subprocess, sys, os\n"
        f"child = subprocess.Popen([sys.executable, '-c', {worker!r}], stdout=subprocess.PIPE, text=True)\n"
        "assert child.stdout.readline().strip() == 'ready'\n"
        "print(child.pid, flush=True)\n"
        "import time; time.sleep(60)\n"
    )
    environment = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "ACCELERATE_MIXED_PRECISION")}
    launcher = _python(launcher_code, env={**env}, stdout=subprocess.PIPE) if launched else subprocess.Popen(
        [sys.executable, "-c", launcher_code], env={**environment, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    worker_pid = int(launcher.stdout.readline())
    try:
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        died = _wait_for(lambda: not _alive(worker_pid), seconds=5.0 if launched else 1.0)
        assert died == launched
    finally:
        if _alive(worker_pid):
            os.kill(worker_pid, signal.SIGKILL)


@pytest.mark.slow
def test_quick_chaos_every_job_is_identical_after_kill_9_and_restart(tmp_path):
    """`make chaos` in its quick mode: evaluation and the filter killed (whole process group, SIGKILL) at a random
    moment, restarted with the same command, compared byte for byte with an uninterrupted run."""
    import json

    from benchmarks.chaos import main

    results_file = tmp_path / "chaos.json"
    code = main(["--quick", "--seed", "1", "--work", str(tmp_path / "work"), "--json", str(results_file)])
    results = json.loads(results_file.read_text())
    assert [r["job"] for r in results] == ["eval", "filter"]
    for result in results:
        assert result["identical"], result
        assert result["units_repeated"] == 0, result
        assert result["kills"] == 1 and result["restarts"] == 1, result  # the kill landed before the job ended
    assert code == 0


@pytest.mark.slow
def test_quick_chaos_training_resumes_after_kill_9_to_the_uninterrupted_weights(tmp_path):
    """`make chaos` quick mode over SFT, GRPO and a ViaRL cycle: each killed (whole process tree, SIGKILL) after at
    least one complete checkpoint, restarted with the same command, which resumes; the final weights and the logged
    losses equal an uninterrupted run's, and no checkpoint is written twice (no step trained again)."""
    import json

    from benchmarks.chaos import main

    results_file = tmp_path / "chaos.json"
    code = main(
        ["--quick", "--seed", "1", "--jobs", "sft,grpo,viarl", "--work", str(tmp_path / "work"),
         "--json", str(results_file)]
    )  # fmt: skip
    results = json.loads(results_file.read_text())
    assert [r["job"] for r in results] == ["sft", "grpo", "viarl"]
    for result in results:
        assert result["identical"], result
        assert result["units_repeated"] == 0, result
        assert result["kills"] == 1 and result["restarts"] == 1, result  # the kill landed before the job ended
        assert result["units_at_kills"][0] >= 1, result  # after a checkpoint: the restart had one to resume
    assert code == 0


@pytest.mark.parametrize(
    ("content", "words"),
    [(b"", "the file is empty (0 bytes)"), (b"\n\n", "the file holds no records (only blank lines)")],
)
def test_eval_reports_an_empty_data_file_plainly(tmp_path, capsys, content, words):
    """An empty or blank data file used to crash evaluation with a traceback about a missing predictions file."""
    from temporal_rl.eval.run import main

    data = tmp_path / "d.jsonl"
    data.write_bytes(content)
    assert main(["--model", "absent", "--data", str(data), "--out", str(tmp_path / "out")]) == 2
    assert f"error: {data}: {words}" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------
# Training resumes from its own newest complete checkpoint


def _checkpoint(folder, step, state: str | None = "complete"):
    """A checkpoint folder as HF Trainer leaves it: weights, then (last) trainer_state.json, whole or torn."""
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"weights")
    if state == "complete":
        (path / "trainer_state.json").write_text(json.dumps({"global_step": step, "log_history": []}))
    elif state == "torn":
        (path / "trainer_state.json").write_text(f'{{"global_step": {step}, "log_hi')
    elif state == "other step":
        (path / "trainer_state.json").write_text(json.dumps({"global_step": step - 1}))
    return path


def test_newest_complete_checkpoint_skips_checkpoints_a_kill_tore(tmp_path):
    """Steps compare as numbers (checkpoint-10 is newer than checkpoint-2); a folder without its trainer state, with
    a torn one, or with another step's is skipped and named."""
    from temporal_rl.training import newest_complete_checkpoint

    assert newest_complete_checkpoint(tmp_path / "absent") == (None, [])
    _checkpoint(tmp_path, 2)
    complete = _checkpoint(tmp_path, 10)
    _checkpoint(tmp_path, 12, state=None)
    _checkpoint(tmp_path, 14, state="torn")
    _checkpoint(tmp_path, 16, state="other step")
    (tmp_path / "checkpoint-notes").mkdir()
    assert newest_complete_checkpoint(tmp_path) == (str(complete), ["checkpoint-16", "checkpoint-14", "checkpoint-12"])
    only_torn = tmp_path / "torn-only"
    _checkpoint(only_torn, 1, state="torn")
    assert newest_complete_checkpoint(only_torn) == (None, ["checkpoint-1"])


def test_a_restart_resumes_only_a_run_with_the_same_settings(tmp_path):
    """No checkpoint: nothing to resume, the settings are recorded. A checkpoint of the same settings: resumed and
    said so. Of other settings: refused, naming the change. An explicit resume_from_checkpoint is taken as given."""
    from types import SimpleNamespace

    from temporal_rl.resumable import SettingsChanged
    from temporal_rl.training import RUN_SETTINGS_FILE, checkpoint_to_resume

    def args(resume=None):
        return SimpleNamespace(output_dir=str(tmp_path), resume_from_checkpoint=resume, process_index=0)

    said = []
    settings = {"learning_rate": 0.1, "seed": 0}
    assert checkpoint_to_resume(args(), settings, said.append) is None and said == []
    assert json.loads((tmp_path / RUN_SETTINGS_FILE).read_text()) == settings

    checkpoint = _checkpoint(tmp_path, 3)
    _checkpoint(tmp_path, 4, state="torn")
    assert checkpoint_to_resume(args(), settings, said.append) == str(checkpoint)
    assert said == [
        f"skipping checkpoint-4 in {tmp_path}: incomplete (a save interrupted by a kill)",
        f"resuming from {checkpoint} (the newest complete checkpoint in {tmp_path})",
    ]
    with pytest.raises(SettingsChanged, match=r"learning_rate: 0\.1 -> 0\.2"):
        checkpoint_to_resume(args(), {**settings, "learning_rate": 0.2}, said.append)
    assert checkpoint_to_resume(args("elsewhere/checkpoint-7"), {"seed": 5}, said.append) == "elsewhere/checkpoint-7"


def test_run_settings_keep_what_changes_the_weights_and_drop_paths_cadence_and_tokens():
    from dataclasses import dataclass

    from temporal_rl.training import run_settings

    @dataclass
    class Data:
        train_file: str = "a.jsonl"
        frame_cache_dir: str = "/tmp/cache"

    @dataclass
    class Trainer:
        output_dir: str = "out"
        learning_rate: float = 1e-4
        save_steps: int = 5
        hub_token: str = "hf_secret"
        lr_scheduler_kwargs: dict = None
        callback: object = print  # not JSON: left out

    assert run_settings(Data(), Trainer(lr_scheduler_kwargs={"min_lr_rate": 0.1})) == {
        "train_file": "a.jsonl",
        "learning_rate": 1e-4,
        "lr_scheduler_kwargs": {"min_lr_rate": 0.1},
    }


def test_a_full_model_checkpoint_is_loaded_whole_where_the_trainer_loads_nothing(tiny_model_dir, tmp_path):
    """HF Trainer's resume loads `model.safetensors` under its on-disk names with strict=False: for Qwen2.5-VL no
    name matches, so it loads nothing. `load_full_weights` makes the model the checkpoint's, tensor for tensor."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText

    from temporal_rl.training import load_full_weights

    trained = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        for number, parameter in enumerate(trained.parameters()):
            parameter.add_(0.01 * (number + 1))
    trained.save_pretrained(tmp_path / "checkpoint-2")
    expected = {name: tensor.clone() for name, tensor in trained.state_dict().items()}

    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    missed = model.load_state_dict(load_file(tmp_path / "checkpoint-2" / "model.safetensors"), strict=False)
    assert missed.missing_keys  # what the Trainer does: the weights stay the base model's
    assert sum(not torch.equal(model.state_dict()[name], t) for name, t in expected.items()) == len(expected)
    assert load_full_weights(model, tmp_path / "checkpoint-2")
    state = model.state_dict()
    assert state.keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(state[name], tensor), name
    assert not load_full_weights(model, tmp_path)  # no weights there: nothing loaded


def test_a_checkpoint_at_max_steps_is_restored_not_trained_on(tiny_model_dir, tmp_path):
    """A run killed after its last checkpoint but before its final save: HF Trainer resumed from it would train one
    step past max_steps. `restore_finished` gives the trainer the checkpoint's LoRA adapter and state instead."""
    from types import SimpleNamespace

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    from temporal_rl.training import reached_max_steps, restore_finished

    def lora_model(seed):
        torch.manual_seed(seed)
        base = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
        config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
        return get_peft_model(base, config)

    trained = lora_model(seed=1)
    checkpoint = tmp_path / "checkpoint-3"
    trained.save_pretrained(checkpoint)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": 3, "max_steps": 3, "log_history": []}))
    expected = {n: p.detach().clone() for n, p in trained.named_parameters() if "lora_" in n}

    trainer = SimpleNamespace(model=lora_model(seed=2), args=SimpleNamespace(max_steps=3), state=None)
    assert reached_max_steps(checkpoint, trainer.args)
    assert not reached_max_steps(checkpoint, SimpleNamespace(max_steps=4))
    before = dict(trainer.model.named_parameters())
    assert any(not torch.equal(before[n], t) for n, t in expected.items())  # another adapter until restored
    restore_finished(trainer, checkpoint)
    after = dict(trainer.model.named_parameters())
    for name, tensor in expected.items():
        assert torch.equal(after[name], tensor), name
        assert after[name].requires_grad
    assert trainer.state.global_step == 3
