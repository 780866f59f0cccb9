"""Decode time of `temporal_rl.video.load_video`, cold (decode + cache write) against cached, on clips made here.

    python benchmarks/decode_cache.py [--repeats 3]

Clips: a tiny-preset synthetic grounding clip (56 px, 2 fps), a standard-preset one (112 px, 2 fps) and a
60 s 1280x720 30 fps clip of moving gradients (libx264, default GOP). Sampling: Qwen's default budget at 2 fps.
Prints the median wall time of each and the work counted (frames decoded, frames returned).
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import av  # noqa: E402
import numpy as np  # noqa: E402

from data_tools.synth import encode_mp4, generate_sample  # noqa: E402
from temporal_rl.video import FrameCache, FrameSampling, load_video  # noqa: E402


def write_720p(path: Path, seconds: int = 60, fps: int = 30) -> None:
    height, width = 720, 1280
    y, x = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        for i in range(seconds * fps):
            frame = np.stack([(x + 4 * i) % 256, (y + 2 * i) % 256, ((x + y) // 2 + i) % 256], axis=-1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame.astype(np.uint8), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def median_time(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sampling = FrameSampling(fps=2.0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clips = {}
        for preset in ("tiny", "standard"):
            record, frames = generate_sample("grounding", "test", 0, "bench", preset)
            clips[f"synthetic {preset} ({frames.shape[2]} px, {record['duration']:.0f} s)"] = tmp / f"{preset}.mp4"
            encode_mp4(frames, record["meta"]["fps"], clips[list(clips)[-1]])
        clips["1280x720 30 fps, 60 s"] = tmp / "720p.mp4"
        write_720p(clips["1280x720 30 fps, 60 s"])

        print(f"{'clip':<34} {'frames':>7} {'decoded':>8} {'cold s':>8} {'cached s':>9} {'speed-up':>9}")
        for name, path in clips.items():
            cold_times = []
            for repeat in range(args.repeats):
                cache = FrameCache(tmp / f"cache-{repeat}-{path.stem}")
                start = time.perf_counter()
                cold = load_video(path, sampling, cache)
                cold_times.append(time.perf_counter() - start)
            cold_s = statistics.median(cold_times)
            cached_s, cached = median_time(lambda: load_video(path, sampling, cache), args.repeats)  # noqa: B023
            assert cached.decoded_frames == 0 and np.array_equal(cached.frames, cold.frames)
            print(
                f"{name:<34} {cold.num_frames:>7} {cold.decoded_frames:>8} {cold_s:>8.3f} {cached_s:>9.4f} "
                f"{cold_s / cached_s:>8.1f}x"
            )


if __name__ == "__main__":
    main()
