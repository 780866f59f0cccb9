"""The on-disk frame cache and `load_video`, the one way to get a video's frames.

Everything that needs frames calls `load_video(path, sampling, cache)`; it returns a `SampledVideo` from the cache
when it has the frames, else decodes them (`temporal_rl.video.decode`) and caches them.

This module owns the cache (keys, entries, atomic writes) and that entry point.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from temporal_rl.video.decode import _check_file, decode_video
from temporal_rl.video.sampling import FrameSampling, SampledVideo

logger = logging.getLogger(__name__)

# Bump whenever decoding or the stored layout changes, so old cache entries stop matching.
CACHE_VERSION = 2  # 2: frames of a video with a display matrix are stored upright
CACHE_ENV_VAR = "TEMPORAL_RL_CACHE"


def default_cache_root() -> Path:
    """`$TEMPORAL_RL_CACHE`, else `~/.cache/temporal_rl/frames`."""
    root = os.environ.get(CACHE_ENV_VAR)
    return Path(root) if root else Path.home() / ".cache" / "temporal_rl" / "frames"


class FrameCache:
    """Decoded frames on disk, one uncompressed .npz per (video file version, sampling parameters).

    The key hashes the absolute path, size and mtime of the video, the sampling parameters and
    `CACHE_VERSION`, so editing or touching a video, or changing the budget, misses. Entries are written
    to a temporary file and renamed into place: a killed process never leaves half an entry under a key.
    An unreadable entry counts as a miss (with a warning) and is overwritten.
    """

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_cache_root()

    def __repr__(self) -> str:
        return f"FrameCache({str(self.root)!r})"

    def key(self, path: str | os.PathLike, sampling: FrameSampling) -> str:
        """The cache key of the video file as it is now, sampled with `sampling`."""
        path = os.path.abspath(os.fspath(path))
        stat = os.stat(path)
        identity = {
            "path": path,
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "sampling": sampling.to_dict(),
            "cache_version": CACHE_VERSION,
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()

    def entry_path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def load(self, key: str) -> SampledVideo | None:
        """The cached video under `key`, or None on a miss (absent or unreadable entry)."""
        entry = self.entry_path(key)
        if not entry.is_file():
            return None
        try:
            with np.load(entry, allow_pickle=False) as stored:
                meta = json.loads(str(stored["meta"]))
                video = SampledVideo(
                    frames=stored["frames"],
                    timestamps=stored["timestamps"],
                    indices=stored["indices"],
                    source_fps=float(meta["source_fps"]),
                    total_frames=int(meta["total_frames"]),
                    duration=float(meta["duration"]),
                    path=str(meta["path"]),
                    decoded_frames=0,
                )
            _check_cached(video, meta)
        except Exception as err:  # any damage to the file is a miss; the caller re-decodes and rewrites
            logger.warning(
                "frame cache entry %s is unreadable (%s: %s); decoding again", entry, type(err).__name__, err
            )
            return None
        return video

    def store(self, key: str, video: SampledVideo) -> Path | None:
        """Write `video` under `key` atomically. Returns the entry, or None when it could not be written."""
        entry = self.entry_path(key)
        meta = {
            "source_fps": video.source_fps,
            "total_frames": video.total_frames,
            "duration": video.duration,
            "path": video.path,
            "cache_version": CACHE_VERSION,
        }
        temp_name = None
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            fd, temp_name = tempfile.mkstemp(dir=entry.parent, prefix=f".{key}.", suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                np.savez(
                    handle,
                    frames=video.frames,
                    timestamps=video.timestamps,
                    indices=video.indices,
                    meta=np.array(json.dumps(meta)),
                )
            os.replace(temp_name, entry)
        except OSError as err:  # a full or read-only disk costs speed, not the run
            logger.warning("could not write frame cache entry %s (%s)", entry, err)
            if temp_name is not None and os.path.exists(temp_name):
                os.unlink(temp_name)
            return None
        return entry


def _check_cached(video: SampledVideo, meta: dict) -> None:
    frames, timestamps, indices = video.frames, video.timestamps, video.indices
    if meta.get("cache_version") != CACHE_VERSION:
        raise ValueError(f"cache version {meta.get('cache_version')!r}, expected {CACHE_VERSION}")
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
        raise ValueError(f"frames of dtype {frames.dtype} and shape {frames.shape}")
    count = frames.shape[0]
    if timestamps.dtype != np.float64 or timestamps.shape != (count,):
        raise ValueError(f"timestamps of dtype {timestamps.dtype} and shape {timestamps.shape}")
    if indices.dtype != np.int64 or indices.shape != (count,):
        raise ValueError(f"indices of dtype {indices.dtype} and shape {indices.shape}")


def load_video(
    path: str | os.PathLike,
    sampling: FrameSampling | None = None,
    cache: FrameCache | None = None,
    *,
    threads: int = 0,
) -> SampledVideo:
    """The frames of the video at `path` under `sampling`: from `cache` when it has them, else decoded (and cached).

    The one entry point for frames. Without a cache, this is `decode_video`.

    Raises:
        VideoError: as `decode_video`.
    """
    sampling = sampling or FrameSampling()
    if cache is None:
        return decode_video(path, sampling, threads=threads)
    _check_file(os.fspath(path))
    key = cache.key(path, sampling)
    cached = cache.load(key)
    if cached is not None:
        cached.path = os.fspath(path)  # the same file (the key holds its absolute path), named as the caller names it
        return cached
    video = decode_video(path, sampling, threads=threads)
    cache.store(key, video)
    return video
