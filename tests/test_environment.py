"""The pinned environment for this process and for child processes (temporal_rl.environment)."""

import os

from temporal_rl.environment import PINNED, child_environment, pin_environment


def test_child_environment_pins_threads_drops_accelerate_and_puts_paths_first(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    monkeypatch.setenv("ACCELERATE_NUM_PROCESSES", "2")
    monkeypatch.setenv("PYTHONPATH", "/already")
    env = child_environment(["/first", "/second"])
    assert env["OMP_NUM_THREADS"] == "1" and env["HF_HUB_OFFLINE"] == "1" and env["PYTHONUNBUFFERED"] == "1"
    assert not any(name.startswith("ACCELERATE_") for name in env)
    assert env["PYTHONPATH"].split(os.pathsep) == ["/first", "/second", "/already"]
    assert os.environ["ACCELERATE_NUM_PROCESSES"] == "2"  # this process's environment is left alone


def test_child_environment_has_no_empty_pythonpath(monkeypatch):
    monkeypatch.delenv("PYTHONPATH", raising=False)
    assert "PYTHONPATH" not in child_environment()


def test_pin_environment_keeps_what_the_user_set(monkeypatch):
    for name in PINNED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    pin_environment()
    assert os.environ["OMP_NUM_THREADS"] == "4"
    assert all(os.environ[name] == value for name, value in PINNED.items() if name != "OMP_NUM_THREADS")
