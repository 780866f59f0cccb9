"""`python -m data_tools.convert.durations`: the durations file of a folder of videos, for the converters' --durations.

```
python -m data_tools.convert.durations --video-root videomme/data --out videomme_durations.jsonl [--workers 8]
```

Every video file under `--video-root` (recursively; the extensions of `videos.VIDEO_EXTENSIONS`, `--ext` to
choose) is probed with PyAV (its container's duration, no decoding) by a pool of `--workers` processes, with a
progress bar. Each result is appended to `--out` as soon as it comes, one line per video:

    {"video": "<path under the video root, / separated>", "duration": <seconds>}

which is the key a converter looks a video up by when run with the same `--video-root`. The file is resumable: a
run started again (after an interruption, or when more videos arrived) skips the videos already in it and repairs
a torn last line. A video that cannot be read (damaged, not a video, no duration in its container) is not
written; the summary names each one with the reason, and the next run tries it again.

Exit status 0 when the folder was probed (unreadable videos included, named in the summary), 2 when it could not
be (no such folder, an output file that is not a durations file).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from data_tools.convert.videos import VIDEO_EXTENSIONS, ProbeError, probe_duration


class DurationsError(ValueError):
    """The command cannot run: the message names the file or folder and what is wrong."""


def video_files(root: Path, extensions: Iterable[str]) -> list[str]:
    """The video files under `root` (recursively, by extension, case-insensitive), as sorted `/`-separated paths
    relative to `root`."""
    wanted = {ext.lower() if ext.startswith(".") else f".{ext.lower()}" for ext in extensions}
    found = []
    for folder, subfolders, names in os.walk(root):
        subfolders.sort()
        for name in names:
            if os.path.splitext(name)[1].lower() in wanted:
                found.append(Path(os.path.relpath(os.path.join(folder, name), root)).as_posix())
    return sorted(found)


def read_done(out: Path) -> set[str]:
    """The videos already in a durations file; a torn last line (an interrupted write) is cut off the file.

    Raises:
        DurationsError: a line before the last is not a durations line (not a file this command wrote).
    """
    if not out.exists():
        return set()
    done, keep = set(), 0
    with open(out, "rb") as f:
        lines = f.readlines()
    for number, raw in enumerate(lines, start=1):
        try:
            line = json.loads(raw)
            video, seconds = line["video"], line["duration"]
            valid = isinstance(video, str) and isinstance(seconds, (int, float)) and raw.endswith(b"\n")
        except (ValueError, KeyError, TypeError):
            valid = False
        if not valid:
            if number == len(lines):
                break  # torn by an interruption: cut below
            raise DurationsError(f"{out}, line {number}: not a durations line ({raw[:80]!r}); choose another --out")
        done.add(video)
        keep += len(raw)
    if keep != out.stat().st_size:
        with open(out, "r+b") as f:
            f.truncate(keep)
    return done


def probe_one(job: tuple[str, str]) -> tuple[str, float | None, str | None]:
    """(video, seconds, None) or (video, None, why it cannot be read), for a pool worker."""
    root, video = job
    try:
        return video, round(probe_duration(os.path.join(root, video)), 6), None
    except ProbeError as err:
        return video, None, str(err)
    except Exception as err:  # a worker must report every file, whatever PyAV raises
        return video, None, f"{type(err).__name__}: {err}"


def probe_all(root: Path, videos: list[str], workers: int) -> Iterator[tuple[str, float | None, str | None]]:
    """`probe_one` for each video, in the order they finish (in this process when `workers` is 1)."""
    jobs = [(str(root), video) for video in videos]
    if workers <= 1:
        yield from map(probe_one, jobs)
        return
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap_unordered(probe_one, jobs, chunksize=4)


def write_durations(root: Path, out: Path, *, workers: int, extensions: Iterable[str], progress: bool = True) -> dict:
    """Probe the videos under `root` not yet in `out`, appending each result to `out` as it comes.

    Returns:
        `{"found", "already", "probed", "unreadable": [(video, reason), ...]}`.

    Raises:
        DurationsError: `root` is not a folder, or `out` is not a durations file.
    """
    from tqdm import tqdm

    if not root.is_dir():
        raise DurationsError(f"{root}: no such folder (--video-root)")
    videos = video_files(root, extensions)
    done = read_done(out)
    todo = [video for video in videos if video not in done]
    unreadable = []
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a", encoding="utf-8") as f, tqdm(total=len(todo), desc="probing", disable=not progress) as bar:
        for video, seconds, error in probe_all(root, todo, workers):
            if error is None:
                f.write(json.dumps({"video": video, "duration": seconds}, ensure_ascii=False) + "\n")
                f.flush()
            else:
                unreadable.append((video, error))
            bar.update()
    return {
        "found": len(videos),
        "already": len(videos) - len(todo),
        "probed": len(todo) - len(unreadable),
        "unreadable": sorted(unreadable),
    }


def summary(result: dict, out: Path) -> str:
    lines = [
        f"durations: {result['found']} videos found, {result['already']} already in {out}, {result['probed']} "
        f"probed now, {len(result['unreadable'])} unreadable"
    ]
    lines += [f"  unreadable: {video}: {reason}" for video, reason in result["unreadable"]]
    if result["unreadable"]:
        lines.append("  (not written; a run started again tries them again)")
    return "\n".join(lines)


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m data_tools.convert.durations", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--video-root", required=True, help="the folder of videos (the converter's --video-root)")
    parser.add_argument("--out", required=True, help="the durations file (JSONL; appended to, resumable)")
    parser.add_argument(
        "--workers", type=int, default=min(8, available_cpus()), help="probing processes (default: the CPUs, up to 8)"
    )
    parser.add_argument(
        "--ext",
        nargs="+",
        default=list(VIDEO_EXTENSIONS),
        help=f"video extensions (default {' '.join(VIDEO_EXTENSIONS)})",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    try:
        result = write_durations(
            Path(args.video_root), out, workers=args.workers, extensions=args.ext, progress=not args.no_progress
        )
    except DurationsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(summary(result, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
