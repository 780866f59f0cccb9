"""Per-phase timing of a training step, from outside the trainers: `PhaseTimer` and the wrappers that feed it.

A phase is a named span of a step (decoding and the processor, the vision encoder, generation, ...). Spans nest:
time spent in an inner span counts for the inner phase only (exclusive times), so the phases of a step add up to
at most its wall time, and the remainder is reported as "other". On a GPU every boundary synchronises the device,
so that the GPU work launched in a span is paid inside it (this costs a little; the step times are then slightly
pessimistic, and the same for every trainer).

`PhaseTimer.wrap(obj, "method", "phase")` times an instance's method (the instance attribute shadows the class's
method; `restore()` undoes every wrap), `time_module(module, "phase")` times a module's forwards with hooks, and
`StepClock` (a `TrainerCallback`) cuts the spans into optimizer steps with their wall time and peak GPU memory.

This module owns the timing mechanism only; which methods are which phase is the benchmark's decision
(benchmarks/real_size.py).
"""

from __future__ import annotations

import functools
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from transformers import TrainerCallback

GIB = 1024**3


class PhaseTimer:
    """Exclusive wall time per phase, accumulated until `take()`.

    Args:
        synchronize: called at every span boundary (`torch.cuda.synchronize` on a GPU; nothing on a CPU).
    """

    def __init__(self, synchronize: Callable[[], None] | None = None):
        self.synchronize = synchronize or (lambda: None)
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._stack: list[list] = []  # [name, start of its current exclusive slice]
        self._undo: list[Callable[[], None]] = []

    @property
    def current(self) -> str | None:
        """The innermost open phase, None outside every span."""
        return self._stack[-1][0] if self._stack else None

    def _enter(self, name: str) -> None:
        self.synchronize()
        now = time.perf_counter()
        if self._stack:
            outer = self._stack[-1]
            self.seconds[outer[0]] += now - outer[1]
        self._stack.append([name, now])
        self.calls[name] += 1

    def _exit(self) -> None:
        self.synchronize()
        now = time.perf_counter()
        name, began = self._stack.pop()
        self.seconds[name] += now - began
        if self._stack:
            self._stack[-1][1] = now

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self._enter(name)
        try:
            yield
        finally:
            self._exit()

    def wrap(self, obj, method: str, name: str | Callable[[], str]) -> None:
        """Time `obj.method` as phase `name` (or the phase `name()` returns at each call)."""
        original = getattr(obj, method)
        had_own = method in vars(obj)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            with self.phase(name() if callable(name) else name):
                return original(*args, **kwargs)

        setattr(obj, method, timed)
        self._undo.append(lambda: setattr(obj, method, original) if had_own else delattr(obj, method))

    def time_module(self, module: torch.nn.Module, name: str) -> None:
        """Time every forward of `module` as phase `name` (forward hooks)."""
        handles = [
            module.register_forward_pre_hook(lambda *_: self._enter(name)),
            module.register_forward_hook(lambda *_: self._exit()),
        ]
        self._undo.append(lambda: [handle.remove() for handle in handles])

    def take(self) -> tuple[dict[str, float], dict[str, int]]:
        """The exclusive seconds and the calls of each phase since the last call (open spans keep running)."""
        now = time.perf_counter()
        if self._stack:  # the innermost open span's running slice counts up to now
            top = self._stack[-1]
            self.seconds[top[0]] += now - top[1]
            top[1] = now
        seconds, calls = dict(self.seconds), dict(self.calls)
        self.seconds.clear()
        self.calls.clear()
        return seconds, calls

    def restore(self) -> None:
        """Undo every wrap and hook."""
        while self._undo:
            self._undo.pop()()


class StepClock(TrainerCallback):
    """Per optimizer step: wall time, exclusive phase times ("other" = the rest), and peak GPU memory.

    Args:
        timer: the `PhaseTimer` the wrappers feed.
        device: the training device (peak memory is read on CUDA only).
        counters: callables returning (and resetting) per-step work counts, by name.
    """

    def __init__(
        self, timer: PhaseTimer, device: torch.device, counters: dict[str, Callable[[], float]] | None = None
    ):
        self.timer, self.device, self.counters = timer, device, counters or {}
        self.steps: list[dict] = []
        self._began = None

    def _cuda(self) -> bool:
        return self.device.type == "cuda"

    def on_step_begin(self, args, state, control, **kwargs):
        self.timer.synchronize()
        if self._cuda():
            torch.cuda.reset_peak_memory_stats(self.device)
        self.timer.take()  # what ran between steps is not the step's
        for take in self.counters.values():
            take()
        self._began = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.timer.synchronize()
        wall = time.perf_counter() - self._began
        seconds, calls = self.timer.take()
        step = {
            "step": state.global_step,
            "wall_s": wall,
            "phases_s": {**seconds, "other": max(0.0, wall - sum(seconds.values()))},
            "phase_calls": calls,
            "work": {name: take() for name, take in self.counters.items()},
        }
        if self._cuda():
            step["peak_allocated_gib"] = torch.cuda.max_memory_allocated(self.device) / GIB
            step["peak_reserved_gib"] = torch.cuda.max_memory_reserved(self.device) / GIB
        self.steps.append(step)
