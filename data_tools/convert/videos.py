"""Video files of a benchmark: finding the file a record names under the video root, and reading its duration.

The annotations name a video one way and the downloads name the file another: ActivityNet downloads mix `.mp4`,
`.mkv` and `.webm` and keep or drop the `v_` prefix; LVBench's download script (video2dataset) numbers the files.
A converter lists the names a video can have (its candidates, in order of preference); `VideoFinder.find` returns
the first that exists, each candidate tried with its own extension first and then with the other video extensions.
Each folder is listed once, so resolving thousands of records costs one listing per folder, not a stat per guess.
Where the videos are not, a durations file written from them (`durations.py`) stands in for the listing
(`add_manifest`): the records then name the files as they are where the videos are.

`probe_duration` reads a duration from the file's container (PyAV, no decoding) and says why when it cannot.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v")


class ProbeError(ValueError):
    """A video file whose duration cannot be read; the message says why."""


def alternative_names(name: str) -> list[str]:
    """`name` first, then the same stem with each other video extension.

    Example:

    ```python
    >>> alternative_names("v_Qx3Lmn0pRsT.mp4")[:3]
    ['v_Qx3Lmn0pRsT.mp4', 'v_Qx3Lmn0pRsT.mkv', 'v_Qx3Lmn0pRsT.webm']
    >>> alternative_names("Cm73ma6Ibcs")[:2]
    ['Cm73ma6Ibcs', 'Cm73ma6Ibcs.mp4']

    ```
    """
    stem, suffix = os.path.splitext(name)
    if suffix.lower() not in VIDEO_EXTENSIONS:
        stem = name
    return [name] + [stem + ext for ext in VIDEO_EXTENSIONS if stem + ext != name]


class VideoFinder:
    """Finds video files under `root`, listing each folder once.

    Args:
        root: the folder the benchmark's video paths are relative to (need not exist).
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(os.path.abspath(root))
        self._listings: dict[str, frozenset[str]] = {}
        self._manifest: dict[str, set[str]] = {}

    def add_manifest(self, files: Iterable[str]) -> None:
        """Files known to be under the root elsewhere (paths relative to it: a durations file's keys), found by
        `find` after the files on disk."""
        for file in files:
            folder, name = os.path.split(self.path(file))
            self._manifest.setdefault(folder, set()).add(name)

    def names_in(self, folder: str | os.PathLike) -> frozenset[str]:
        """The names of the files in `folder` (empty when it is not a readable folder)."""
        key = os.fspath(folder)
        if key not in self._listings:
            try:
                with os.scandir(key) as entries:
                    self._listings[key] = frozenset(entry.name for entry in entries if entry.is_file())
            except OSError:
                self._listings[key] = frozenset()
        return self._listings[key]

    def exists(self, file: str | os.PathLike) -> bool:
        """Whether `file` (absolute) is a file."""
        folder, name = os.path.split(os.path.normpath(file))
        return name in self.names_in(folder)

    def path(self, candidate: str) -> Path:
        """The absolute path of a candidate name relative to the root (`./a/b.mp4` -> `<root>/a/b.mp4`)."""
        return Path(os.path.normpath(self.root / candidate))

    def find(self, *candidates: str | None) -> Path | None:
        """The first candidate (relative to the root; None ones are passed over) whose file exists under any
        video extension, else the first in the manifest, else None."""
        files = [self.path(candidate) for candidate in candidates if candidate]
        for listing in (self.names_in, lambda folder: self._manifest.get(os.fspath(folder), ())):
            for file in files:
                names = listing(file.parent)
                for name in alternative_names(file.name):
                    if name in names:
                        return file.with_name(name)
        return None

    def relative(self, file: str | os.PathLike) -> str:
        """`file` relative to the root, in `/` form (the key a durations file gives it)."""
        return Path(os.path.relpath(file, self.root)).as_posix()


def probe_duration(path: str | os.PathLike) -> float:
    """A video file's duration in seconds, read from its container (PyAV, no decoding).

    The video stream's own duration when it has one, else the container's, else frames / frame rate.

    Raises:
        ProbeError: the file is missing, empty, not a video PyAV can open, or states no duration.
    """
    import av

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ProbeError("not a file")
    if os.path.getsize(path) == 0:
        raise ProbeError("the file is empty (0 bytes)")
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise ProbeError("no video stream in the file")
            stream = container.streams.video[0]
            candidates = []
            if stream.duration and stream.time_base:
                candidates.append(float(stream.duration * stream.time_base))
            if container.duration:
                candidates.append(container.duration / 1_000_000)
            if stream.frames and stream.average_rate:
                candidates.append(stream.frames / float(stream.average_rate))
    except av.error.FFmpegError as err:
        raise ProbeError(f"not a readable video file ({getattr(err, 'strerror', None) or err})") from None
    except OSError as err:
        raise ProbeError(f"cannot be read ({err.strerror or err})") from None
    for seconds in candidates:
        if seconds > 0:
            return seconds
    raise ProbeError("the container states no duration")
