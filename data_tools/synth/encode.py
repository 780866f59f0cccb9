"""Writing frames to an mp4 file with PyAV: libx264, yuv420p, crf 18, preset veryfast, tune zerolatency.

One encoder thread and fixed options make the output byte-identical for identical frames; zerolatency means no
B-frames, so decoded frame i has timestamp i / fps exactly. The file is written under a temporary name and renamed,
so a reader never sees half a video.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

X264_OPTIONS = {"crf": "18", "preset": "veryfast", "tune": "zerolatency", "threads": "1"}


def encode_mp4(frames: np.ndarray, fps: int, path: str | os.PathLike) -> int:
    """Encode (num_frames, H, W, 3) uint8 RGB frames (H and W even) to `path`; returns the file size in bytes."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected (num_frames, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"yuv420p needs an even width and height, got {width}x{height}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with av.open(str(partial), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.codec_context.thread_count = 1
            stream.options = dict(X264_OPTIONS)
            for index, rgb in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                frame.pts, frame.time_base = index, Fraction(1, fps)
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path.stat().st_size
