"""Resumable outputs: what lets a job killed at any moment (even SIGKILL) start again and finish as if never stopped.

Evaluation (`predictions.jsonl`), the data filter (its shard log) and ViaRL (the selections files, the state file)
share these pieces:

- an append-only JSONL log, one line per finished unit, written whole and flushed (`append_jsonl`); a kill leaves at
  most one torn last line, which `drop_torn_tail` cuts before appending again and `complete_lines` never returns;
- a settings guard (`check_settings`): a resumed job refuses to extend results made with other settings, and says
  which ones changed (`changed_settings`);
- per-batch seeds (`batch_seed`): a batch samples the same completions however it is reached (first run, resumed
  run, any number of processes);
- atomic writes (`atomic_open`, `write_json_atomic`): a reader sees the old file or the whole new one, never a part.

This module owns those mechanics and nothing about what is written. Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


class SettingsChanged(ValueError):
    """Results on disk were made with other settings than the job's. The message names the path and the changes."""

    def __init__(self, message: str, path: str | os.PathLike):
        self.path, self.reason = path, message
        super().__init__(f"{path}: {message}")


# ---------------------------------------------------------------------------------------------------------------
# Atomic writes


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside `path`; on a clean exit flush, fsync and rename it onto `path`, else delete it.

    The folder is created. `mode` is "w" (text, UTF-8) or "wb".
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write JSON (indented, a final newline) so that a reader sees the old file or the whole new one."""
    with atomic_open(path) as handle:
        json.dump(data, handle, indent=2, default=str)
        handle.write("\n")


# ---------------------------------------------------------------------------------------------------------------
# The append-only log


def drop_torn_tail(path: str | os.PathLike) -> bool:
    """Cut a last line that lacks its newline (a write interrupted by a kill). Returns whether it cut anything.

    Example:
        ```python
        >>> import tempfile; path = Path(tempfile.mkdtemp()) / "log.jsonl"
        >>> _ = path.write_text('{"id": "a"}\\n{"id": "b')
        >>> drop_torn_tail(path), path.read_text()
        (True, '{"id": "a"}\\n')
        ```
    """
    path = Path(path)
    if not path.is_file():
        return False
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return False
    keep = data.rfind(b"\n") + 1
    with open(path, "r+b") as handle:
        handle.truncate(keep)
    return True


def complete_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """(line number from 1, text) of every non-blank line that ends with its newline; a torn last line is skipped."""
    text = Path(path).read_text(encoding="utf-8")
    for number, line in enumerate(text.split("\n")[:-1], start=1):  # after the last newline: empty or torn
        if line.strip():
            yield number, line


def append_jsonl(handle: IO, rows: Iterable[Any], *, fsync: bool = True, ensure_ascii: bool = False) -> None:
    """Append rows as whole JSON lines and flush (and fsync): a kill leaves at most one torn line."""
    for row in rows:
        handle.write(json.dumps(row, ensure_ascii=ensure_ascii) + "\n")
    handle.flush()
    if fsync:
        os.fsync(handle.fileno())


# ---------------------------------------------------------------------------------------------------------------
# The settings guard


def changed_settings(
    previous: Mapping[str, Any],
    current: Mapping[str, Any],
    keys: Sequence[str] | None = None,
    label: Callable[[str], str] = str,
) -> list[str]:
    """`"key: old -> new"` for each of `keys` (default: every key of either) whose value differs, in order.

    Example:
        ```python
        >>> changed_settings({"seed": 0, "k": 8}, {"seed": 1, "k": 8})
        ['seed: 0 -> 1']
        ```
    """
    keys = sorted(set(previous) | set(current)) if keys is None else keys
    return [
        f"{label(key)}: {previous.get(key)!r} -> {current.get(key)!r}"
        for key in keys
        if previous.get(key) != current.get(key)
    ]


def check_settings(
    settings_file: str | os.PathLike,
    settings: Mapping[str, Any],
    keys: Sequence[str],
    *,
    has_results: bool,
    results: str,
    fix: str,
    path: str | os.PathLike,
) -> None:
    """Refuse to extend results made with other settings: compare `keys` with those stored in `settings_file`.

    Nothing to compare (no results yet, or no settings file) passes.

    Args:
        settings_file: the JSON file the earlier run's settings were written to.
        settings: this run's settings.
        keys: the settings that change the results.
        has_results: whether results are on disk.
        results: what the results are called in the message ("predictions", "results").
        fix: what to do instead, for the message.
        path: the path the error names.

    Raises:
        SettingsChanged: a setting of `keys` differs; the message lists each change.
    """
    settings_file = Path(settings_file)
    if not has_results or not settings_file.is_file():
        return
    previous = json.loads(settings_file.read_text(encoding="utf-8"))
    changes = changed_settings(previous, settings, keys)
    if changes:
        raise SettingsChanged(f"the {results} there were made with other settings ({', '.join(changes)}); {fix}", path)


# ---------------------------------------------------------------------------------------------------------------
# Per-batch seeds


def batch_seed(namespace: str, seed: int, batch: int | Sequence[str]) -> int:
    """The sampling seed of one batch of a job: a function of (namespace, seed, batch) alone, not of the process, the
    order the batches run in, or what ran before.

    Args:
        namespace: the job ("temporal_rl.filter", ...), so two jobs with one seed draw differently.
        seed: the run's seed.
        batch: the batch's index (batches fixed by file order) or its record ids (batches of whatever is left).

    Example:
        ```python
        >>> batch_seed("job", 0, 3) == batch_seed("job", 0, 3) != batch_seed("job", 0, 4)
        True
        >>> batch_seed("job", 0, ["a", "b"]) != batch_seed("job", 0, ["b", "a"])
        True
        ```
    """
    key = batch if isinstance(batch, int) else json.dumps([str(item) for item in batch])
    digest = hashlib.sha256(f"{namespace}/{seed}/{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


# ---------------------------------------------------------------------------------------------------------------
# One live run per output folder


class OutputLocked(RuntimeError):
    """Another live process holds the output folder's lock. The message names the folder and that process."""

    def __init__(self, folder: str | os.PathLike, holder: str):
        self.path = folder
        super().__init__(
            f"{folder}: in use by another live run ({holder}); wait for it to finish or stop it, or use another "
            "output folder (a killed run frees the folder at once)"
        )


LOCK_PREFIX = ".lock"
# The locks this process holds: kept open for its lifetime (the kernel drops them when it dies, SIGKILL included).
_HELD_LOCKS: dict[str, IO] = {}


def lock_output_dir(folder: str | os.PathLike, rank: int = 0) -> Path:
    """Take process `rank`'s exclusive lock on `folder` (`.lock.rank-N`), held until this process exits.

    A second live run on the same folder cannot take it (`OutputLocked`): each process of a data-parallel run
    takes its own rank's lock, so a restart finds a left-over worker of a killed run still writing as surely as a
    whole second run. The lock is `flock`'s, tied to the open file: it needs no clean-up, and a process killed by
    SIGKILL frees it at once. Taking it twice in one process is a no-op.

    Returns:
        The lock file's path (it holds the holder's pid and host, for the message).

    Raises:
        OutputLocked: another live process holds this rank's lock.
    """
    import fcntl
    import socket

    Path(folder).mkdir(parents=True, exist_ok=True)
    path = Path(folder) / f"{LOCK_PREFIX}.rank-{rank}"
    key = str(path.resolve())
    if key in _HELD_LOCKS:
        return path
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (held open for the process's lifetime)
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "holder unknown"
        handle.close()
        raise OutputLocked(folder, holder) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
    handle.flush()
    _HELD_LOCKS[key] = handle
    return path


def stop_with_launcher() -> bool:
    """In a process started by a launcher (`accelerate launch`, `torchrun`: `LOCAL_RANK` is set), ask the kernel
    to SIGKILL this process when its parent dies (`accelerate launch` sets `ACCELERATE_MIXED_PRECISION` even for one
    process), so a killed launcher leaves no worker running on beside its
    restart; a worker whose launcher is already gone exits now. Linux only (elsewhere nothing is done).

    Returns:
        Whether the request was made.
    """
    import ctypes
    import signal
    import sys

    launched = "LOCAL_RANK" in os.environ or "ACCELERATE_MIXED_PRECISION" in os.environ
    if not launched or not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return False
    if os.getppid() != parent:  # the launcher died before the request was made
        os._exit(1)
    return True
