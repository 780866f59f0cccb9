"""The environment the toolkit's own runs, benchmarks and tests work in: threads pinned, hubs offline.

Timings on a shared machine mean something only with one thread per process, and a child process started by an
experiment, a benchmark or a test must not believe it is a rank of an outer `accelerate launch`. This module owns
those settings, for the current process (`pin_environment`, called before torch is imported) and for child processes
(`child_environment`). It imports only the standard library.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

PINNED = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}


def pin_environment() -> None:
    """Set `PINNED` in this process where the user has not set a value (call before importing torch)."""
    for name, value in PINNED.items():
        os.environ.setdefault(name, value)


def child_environment(pythonpath: Iterable[str | os.PathLike] = ()) -> dict[str, str]:
    """The environment for a child process: this one's without `ACCELERATE_*` (so a child launched under an outer
    `accelerate launch` runs as a plain process), `PINNED` forced, unbuffered output, and `pythonpath` put in front
    of PYTHONPATH.

    Example:
        ```python
        >>> env = child_environment(["/repo"])
        >>> env["OMP_NUM_THREADS"], env["PYTHONPATH"].split(os.pathsep)[0]
        ('1', '/repo')
        ```
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith("ACCELERATE_")}
    env.update(PINNED, PYTHONUNBUFFERED="1")
    paths = [os.fspath(path) for path in pythonpath]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [*paths, env.get("PYTHONPATH")]))
    if not env["PYTHONPATH"]:
        del env["PYTHONPATH"]
    return env
