"""Decode time of `temporal_rl.video.cache.load_video`, cold and cached, against qwen-vl-utils' `fetch_video`.

    python benchmarks/decode_vs_fetch.py [--quick] [--repeats 3] [--frames 32 128] [--gop 250] [--work-dir DIR]

The clip is made on the spot with PyAV: 2 minutes of 1280x720 at 30 fps (3600 frames), libx264 veryfast crf 23
with a keyframe interval of 250 frames (x264's default; scene cuts add keyframes), a multi-scale noise texture
panning under a moving window and a new texture every 20 s (about 2 Mbit/s, so decoding does real work). With
`--work-dir` the clip is kept there and reused by later runs; otherwise it lives in a temporary folder for the run.
`--quick` uses an 8 s 480x270 clip, 16 and 32 frames and one repeat.

For each frame count N, both are asked for exactly N frames at Qwen's default pixel budget
(`FrameSampling(num_frames=N)`, and `{"nframes": N, "min_pixels", "max_pixels", "total_pixels"}` with the same
values for `fetch_video`):

- **ours cold**: `load_video` with an empty `FrameCache` (decode + resize + cache write);
- **ours warm**: `load_video` again on that cache (a cache hit: the stored frames read back);
- **fetch_video cold / warm**: its first and second call on the file. It has no cache, so "warm" only means the
  file's pages are in the OS cache (as they are for every call here: the clip was just written or read).

Per repeat the runs are interleaved (ours cold, fetch, ours warm, fetch); the median of the repeats is reported
with the ratio fetch / ours (above 1: ours is faster). The first repeat's outputs are checked to be the same work:
equal frame counts, frame sizes, source frame indices and sample fps, and the mean absolute pixel difference
between matching frames is printed beside that between each frame and its neighbour's (the two resizers differ:
swscale bicubic from YUV against torchvision bicubic+antialias from RGB).

Backend of `fetch_video`: torchvision 0.29 has no `read_video` and torchcodec needs FFmpeg's shared libraries on
the system, so decord (a wheel that ships its own FFmpeg; in the `dev` extras) is forced through
`FORCE_QWENVL_VIDEO_READER=decord`. Without decord only our rows are measured. Decoder threads: each side's automatic
choice (`threads=0` here: one single-threaded decoder per core over disjoint keyframe intervals, at most 8; decord's
`num_threads=0` there: FFmpeg's frame threads); torch runs on one thread.

This module owns the decode benchmark: the clip, the timed runs and the checks. `measure()` is what `make bench`
(benchmarks/suite.py) calls.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("FORCE_QWENVL_VIDEO_READER", "decord")

import av  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from temporal_rl.video.cache import FrameCache, load_video
from temporal_rl.video.sampling import FrameSampling, SampledVideo  # noqa: E402

GOALS = {"cold": 2.0, "warm": 20.0}  # issue #7: fetch_video time / ours time


@dataclass(frozen=True)
class ClipSpec:
    """The synthetic clip: its length, size, frame rate and H.264 settings."""

    seconds: int = 120
    width: int = 1280
    height: int = 720
    fps: int = 30
    gop: int = 250
    crf: int = 23
    scene_seconds: int = 20

    def file_name(self) -> str:
        return (
            f"pan-{self.width}x{self.height}-{self.seconds}s-{self.fps}fps-g{self.gop}-crf{self.crf}"
            f"-scene{self.scene_seconds}.mp4"
        )


FULL_CLIP = ClipSpec()
QUICK_CLIP = ClipSpec(seconds=8, width=480, height=270)
FULL_FRAME_COUNTS, QUICK_FRAME_COUNTS = (32, 128), (16, 32)


def texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A (height, width, 3) uint8 colour texture: random noise at four scales, smoothly upsampled and summed."""
    total = np.zeros((height, width, 3), dtype=np.float32)
    weights = ((8, 1.0), (32, 0.6), (128, 0.5), (640, 0.9))  # (cells across, weight): coarse blobs to fine grain
    for cells, weight in weights:
        small = rng.integers(0, 256, (max(1, cells * height // width), cells, 3), dtype=np.uint8)
        total += weight * np.asarray(Image.fromarray(small).resize((width, height), Image.BICUBIC), np.float32)
    return np.clip(total / sum(w for _, w in weights), 0, 255).astype(np.uint8)


def make_clip(path: str | os.PathLike, spec: ClipSpec) -> Path:
    """Encode the clip of `spec` to `path` (written beside it, then renamed into place). Returns the path."""
    if spec.width % 2 or spec.height % 2:
        raise ValueError(f"yuv420p needs an even width and height, got {spec.width}x{spec.height}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    rng = np.random.default_rng(0)
    scene_frames = spec.scene_seconds * spec.fps
    try:
        with av.open(str(partial), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=spec.fps)
            stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
            stream.options = {"crf": str(spec.crf), "preset": "veryfast", "g": str(spec.gop)}
            scene = None
            for index in range(spec.seconds * spec.fps):
                t = index % scene_frames
                if t == 0:
                    scene = texture(rng, 2 * spec.height, 2 * spec.width)
                # The window wanders over a texture twice the frame size, at a speed that varies smoothly.
                y = int(spec.height / 2 * (1 + np.sin(t / 97.0)))
                x = int(spec.width / 2 * (1 + np.sin(t / 61.0)))
                window = np.ascontiguousarray(scene[y : y + spec.height, x : x + spec.width])
                container.mux(stream.encode(av.VideoFrame.from_ndarray(window, format="rgb24")))
            container.mux(stream.encode(None))
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path


def clip_facts(path: str | os.PathLike) -> dict:
    """Frame count, rate, size, keyframes and bit rate of the first video stream (demuxed, not decoded)."""
    with av.open(os.fspath(path)) as container:
        stream = container.streams.video[0]
        packets = keyframes = 0
        for packet in container.demux(stream):
            if packet.size:
                packets += 1
                keyframes += int(packet.is_keyframe)
        fps = float(stream.average_rate)
        facts = {
            "frames": packets,
            "fps": fps,
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "codec": stream.codec_context.name,
        }
    size = os.path.getsize(path)
    facts.update(
        keyframes=keyframes,
        mean_gop=packets / max(keyframes, 1),
        bytes=size,
        mbit_per_s=size * 8 / (packets / fps) / 1e6,
    )
    return facts


def fetch_video_unavailable() -> str | None:
    """Why qwen-vl-utils' `fetch_video` cannot decode a file here, or None when it can (with decord)."""
    if importlib.util.find_spec("qwen_vl_utils") is None:
        return "qwen-vl-utils is not installed (pip install qwen-vl-utils==0.0.14)"
    if os.environ.get("FORCE_QWENVL_VIDEO_READER") != "decord":
        return "FORCE_QWENVL_VIDEO_READER must be 'decord' (torchvision 0.29 has no read_video)"
    if importlib.util.find_spec("decord") is None:
        return (
            "decord is not installed (pip install decord==0.6.0; torchvision 0.29 has no read_video and torchcodec "
            "needs FFmpeg's shared libraries)"
        )
    return None


def fetch_frames(path: str | os.PathLike, num_frames: int, sampling: FrameSampling) -> tuple[torch.Tensor, dict]:
    """qwen-vl-utils' `fetch_video` for `num_frames` frames at `sampling`'s pixel budget.

    Returns its float (N, 3, H, W) tensor as it comes and the facts to compare: source frame indices and the
    sample fps it reports.
    """
    from qwen_vl_utils.vision_process import fetch_video

    element = {
        "video": os.fspath(path),
        "nframes": num_frames,
        "min_pixels": sampling.min_pixels,
        "max_pixels": sampling.max_pixels,
        "total_pixels": sampling.total_pixels,
    }
    (video, metadata), sample_fps = fetch_video(element, return_video_sample_fps=True, return_video_metadata=True)
    return video, {"indices": [int(i) for i in metadata["frames_indices"]], "sample_fps": float(sample_fps)}


def load_fetch_video() -> None:
    """Import qwen-vl-utils and decord and pick the backend, so that no timed call pays for loading them."""
    import decord  # noqa: F401
    from qwen_vl_utils.vision_process import get_video_reader_backend

    get_video_reader_backend()


def as_uint8_nhwc(video: torch.Tensor) -> np.ndarray:
    """fetch_video's float (N, 3, H, W) frames as uint8 (N, H, W, 3), like ours."""
    return video.permute(0, 2, 3, 1).round().clamp(0, 255).to(torch.uint8).numpy()


def compare_outputs(ours: SampledVideo, theirs: np.ndarray, their_facts: dict) -> dict:
    """Whether both produced the same work: frame count, frame size, source indices, sample fps, pixels.

    Args:
        ours: our frames, (N, H, W, 3) uint8.
        theirs: fetch_video's frames as (M, H', W', 3) uint8.
        their_facts: `fetch_frames`' facts.

    Returns:
        same_count, same_size, same_indices, same_sample_fps; mean_abs_diff (matching frames) and
        neighbour_mean_abs_diff (frame i against their frame i-1: how far a one-frame misalignment would be).
    """
    same_count = ours.frames.shape[0] == theirs.shape[0]
    same_size = ours.frames.shape[1:] == theirs.shape[1:]
    facts = {
        "same_count": bool(same_count),
        "same_size": bool(same_size),
        "same_indices": bool(same_count and np.array_equal(ours.indices, their_facts["indices"])),
        "same_sample_fps": bool(abs(ours.sample_fps - their_facts["sample_fps"]) < 1e-9),
        "mean_abs_diff": None,
        "neighbour_mean_abs_diff": None,
    }
    if same_count and same_size:
        a, b = ours.frames.astype(np.int16), theirs.astype(np.int16)
        facts["mean_abs_diff"] = float(np.abs(a - b).mean())
        if len(a) > 1:
            facts["neighbour_mean_abs_diff"] = float(np.abs(a[1:] - b[:-1]).mean())
    return facts


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def measure_frames(path: Path, num_frames: int, repeats: int, scratch: Path, baseline: bool) -> dict:
    """Cold and warm times of ours (and of fetch_video when `baseline`) for `num_frames` frames of `path`."""
    sampling = FrameSampling(num_frames=num_frames)
    times = {"ours_cold": [], "ours_warm": [], "fetch_cold": [], "fetch_warm": []}
    result = {"num_frames": num_frames, "sampling": sampling.to_dict(), "times_s": times}
    for repeat in range(repeats):
        cache_dir = scratch / f"cache-{num_frames}-{repeat}"
        cache = FrameCache(cache_dir)
        seconds, cold = timed(lambda: load_video(path, sampling, cache))  # noqa: B023
        times["ours_cold"].append(seconds)
        if baseline:
            seconds, (video, their_facts) = timed(lambda: fetch_frames(path, num_frames, sampling))
            times["fetch_cold"].append(seconds)
        seconds, warm = timed(lambda: load_video(path, sampling, cache))  # noqa: B023
        times["ours_warm"].append(seconds)
        if warm.decoded_frames != 0 or not np.array_equal(warm.frames, cold.frames):
            raise RuntimeError(f"the frame cache missed or returned other frames for {num_frames} frames of {path}")
        if baseline:
            del video
            seconds, (video, their_facts) = timed(lambda: fetch_frames(path, num_frames, sampling))
            times["fetch_warm"].append(seconds)
        if repeat == 0:
            result.update(
                frames_returned=cold.num_frames,
                frame_size=[int(cold.frames.shape[1]), int(cold.frames.shape[2])],
                frames_decoded=cold.decoded_frames,
                cache_entry_bytes=sum(f.stat().st_size for f in cache_dir.rglob("*.npz")),
            )
            if baseline:
                result["check"] = compare_outputs(cold, as_uint8_nhwc(video), their_facts)
                result["fetch_frames_returned"] = int(video.shape[0])
                result["fetch_frame_size"] = [int(video.shape[2]), int(video.shape[3])]
        if baseline:
            del video
        del cold, warm
        for entry in cache_dir.rglob("*.npz"):
            entry.unlink()
    result["median_s"] = {name: statistics.median(values) if values else None for name, values in times.items()}
    return result


def table_rows(result: dict) -> list[dict]:
    """The suite's rows: per frame count, cold and warm times with the ratio fetch_video / ours."""
    rows = []
    for case in result["cases"]:
        n, (height, width) = case["num_frames"], case["frame_size"]
        for kind in ("cold", "warm"):
            ours, theirs = case["median_s"][f"ours_{kind}"], case["median_s"][f"fetch_{kind}"]
            rows.append(
                {
                    "benchmark": "decode",
                    "metric": f"{kind} s, {n} frames at {width}x{height}",
                    "ours": ours,
                    "baseline": theirs,
                    "ratio": theirs / ours if theirs is not None else None,
                    "goal": {"op": ">=", "value": GOALS[kind]},
                }
            )
    return rows


def measure(
    quick: bool = False,
    repeats: int | None = None,
    frame_counts: tuple[int, ...] | None = None,
    gop: int | None = None,
    work_dir: str | os.PathLike | None = None,
) -> dict:
    """Run the decode benchmark; returns a JSON-serialisable dict.

    Args:
        quick: an 8 s 480x270 clip, N = 16 and 32, one repeat (for tests) instead of 2 min of 720p, N = 32 and
            128, three repeats.
        repeats: overrides the number of repeats.
        frame_counts: overrides the N's asked for.
        gop: overrides the clip's keyframe interval.
        work_dir: where the clip is kept and reused across runs; a temporary folder when None.

    Returns:
        clip (spec and facts), backend, baseline_unavailable (None or why), cases (per N: times of every repeat,
        medians, frames returned and decoded, frame size, cache entry size, the output check) and table (rows
        {"benchmark", "metric", "ours", "baseline", "ratio", "goal"}).
    """
    torch.set_num_threads(1)
    spec = QUICK_CLIP if quick else FULL_CLIP
    if gop is not None:
        spec = ClipSpec(**{**asdict(spec), "gop": gop})
    repeats = repeats if repeats is not None else (1 if quick else 3)
    frame_counts = tuple(frame_counts or (QUICK_FRAME_COUNTS if quick else FULL_FRAME_COUNTS))
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    unavailable = fetch_video_unavailable()
    with tempfile.TemporaryDirectory(prefix="decode-bench-") as tmp:
        clip_dir = Path(work_dir) if work_dir is not None else Path(tmp)
        path = clip_dir / spec.file_name()
        encode_s = None
        if not path.is_file():
            encode_s, _ = timed(lambda: make_clip(path, spec))
        facts = clip_facts(path)
        bad = [n for n in frame_counts if not 2 <= n <= facts["frames"] or n % 2]
        if bad:
            raise ValueError(f"frame counts {bad} must be even and within [2, {facts['frames']}] for this clip")
        if unavailable is None:
            load_fetch_video()
        cases = [measure_frames(path, n, repeats, Path(tmp), unavailable is None) for n in frame_counts]
    result = {
        "clip": {"spec": asdict(spec), "facts": facts, "encode_s": encode_s, "reused": encode_s is None},
        "backend": "decord" if unavailable is None else None,
        "baseline_unavailable": unavailable,
        "repeats": repeats,
        "decoder_threads": (
            "automatic on both sides (ours threads=0: one decoder per core over disjoint GOPs; decord num_threads=0)"
        ),
        "torch_threads": torch.get_num_threads(),
        "cases": cases,
    }
    result["table"] = table_rows(result)
    return result


def describe(result: dict) -> str:
    """Human-readable lines: the clip, then per frame count the medians, work and the output check."""
    spec, facts = result["clip"]["spec"], result["clip"]["facts"]
    lines = [
        f"clip: {facts['width']}x{facts['height']} {facts['codec']}, {facts['frames'] / facts['fps']:.0f} s at "
        f"{facts['fps']:.0f} fps ({facts['frames']} frames), {facts['keyframes']} keyframes (keyint {spec['gop']}, "
        f"mean GOP {facts['mean_gop']:.0f}), {facts['mbit_per_s']:.2f} Mbit/s"
        + (f", encoded in {result['clip']['encode_s']:.1f} s" if result["clip"]["encode_s"] else ", reused"),
        f"baseline: qwen-vl-utils fetch_video [{result['backend']}]"
        if result["backend"]
        else f"baseline unavailable: {result['baseline_unavailable']}",
        f"median of {result['repeats']} interleaved repeat(s); decoder threads: {result['decoder_threads']}",
        f"{'frames':>6} {'size':>9} {'decoded':>8} {'ours cold':>10} {'ours warm':>10} {'fetch cold':>11} "
        f"{'fetch warm':>11} {'cold x':>7} {'warm x':>7}",
    ]
    for case in result["cases"]:
        m = case["median_s"]

        def fmt(value, width, digits=3):
            return f"{value:>{width}.{digits}f}" if value is not None else f"{'-':>{width}}"

        cold_x = m["fetch_cold"] / m["ours_cold"] if m["fetch_cold"] else None
        warm_x = m["fetch_warm"] / m["ours_warm"] if m["fetch_warm"] else None
        size = "x".join(str(s) for s in reversed(case["frame_size"]))
        lines.append(
            f"{case['num_frames']:>6} {size:>9} {case['frames_decoded']:>8} {fmt(m['ours_cold'], 10)} "
            f"{fmt(m['ours_warm'], 10)} {fmt(m['fetch_cold'], 11)} {fmt(m['fetch_warm'], 11)} "
            f"{fmt(cold_x, 6, 1)}x {fmt(warm_x, 6, 1)}x"
        )
    for case in result["cases"]:
        check = case.get("check")
        if check is None:
            continue
        same = all(check[k] for k in ("same_count", "same_size", "same_indices", "same_sample_fps"))
        lines.append(
            f"check {case['num_frames']} frames: "
            + ("same frame count, size, source indices and sample fps" if same else f"MISMATCH {check}")
            + f"; mean |ours - fetch| {check['mean_abs_diff']:.2f} per pixel value (vs a one-frame shift: "
            f"{check['neighbour_mean_abs_diff']:.2f})"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 s 480x270 clip, 16 and 32 frames, one repeat")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--frames", type=int, nargs="+", default=None, help="frame counts (32 128)")
    parser.add_argument("--gop", type=int, default=None, help="keyframe interval of the clip (default 250)")
    parser.add_argument("--work-dir", default=None, help="keep the clip here and reuse it")
    args = parser.parse_args()
    result = measure(args.quick, args.repeats, args.frames, args.gop, args.work_dir)
    print(describe(result))


if __name__ == "__main__":
    main()
