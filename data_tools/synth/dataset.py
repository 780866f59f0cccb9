"""Rendering a whole split to disk: DIR/videos/<id>.mp4 plus DIR/data.jsonl, in parallel over samples.

Each worker plans, renders and encodes whole samples; the parent collects the records in index order (whatever the
number of workers) and writes the JSONL atomically at the end. Workers start with `spawn`, so they never inherit
a parent's threads (torch, OpenMP) through fork.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from data_tools.synth.encode import encode_mp4
from data_tools.synth.presets import DEFAULT_DIFFICULTY, get_preset
from data_tools.synth.scene import render_frames
from data_tools.synth.tasks import check_sample_arguments, plan_sample
from temporal_rl.data import validate_record, write_jsonl

DATA_FILE = "data.jsonl"
VIDEO_DIR = "videos"


@dataclass(frozen=True)
class RenderJob:
    """Everything a worker needs to produce one sample's video and record."""

    task: str
    split: str
    index: int
    namespace: str
    difficulty: str
    out_dir: str


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def render_to_disk(job: RenderJob) -> dict:
    """Plan, render and encode one sample into `job.out_dir`; returns its record (video path relative to out_dir)."""
    plan = plan_sample(job.task, job.split, job.index, job.namespace, job.difficulty)
    encode_mp4(render_frames(plan.scene), plan.scene.fps, Path(job.out_dir) / plan.record["video"])
    return plan.record


def _records_in_order(jobs: list[RenderJob], workers: int) -> Iterator[dict]:
    if workers == 1 or len(jobs) <= 1:
        yield from map(render_to_disk, jobs)
        return
    chunksize = max(1, min(8, len(jobs) // (4 * workers)))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield from pool.map(render_to_disk, jobs, chunksize=chunksize)


def generate_dataset(
    task: str,
    split: str,
    n: int,
    namespace: str,
    out_dir: str | os.PathLike,
    difficulty: str = DEFAULT_DIFFICULTY,
    workers: int | None = None,
    progress: bool = True,
    keep: Callable[[dict], bool] | None = None,
) -> list[dict]:
    """Render samples 0..n-1 to `out_dir`/videos and write `out_dir`/data.jsonl; returns the records.

    Args:
        task: grounding, mcq, needle or grounded_qa.
        split: train, val or test.
        n: number of samples (indices 0..n-1).
        namespace: separates independent sets; same arguments give the same files, byte for byte.
        out_dir: created if missing; an existing data.jsonl is replaced, videos of the same ids are overwritten.
        difficulty: preset name (tiny, standard, hard).
        workers: processes (default `min(2, cpu count)`); the result does not depend on it.
        progress: show a tqdm bar on stderr.
        keep: render only the samples whose planned record passes (planning is cheap, rendering is not), e.g. one
            needle kind; the others are left out (their indices stay unused, so every kept sample is the same as
            without `keep`).
    """
    check_sample_arguments(task, split, 0, namespace)
    get_preset(difficulty)
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    workers = default_workers() if workers is None else workers
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")

    out_dir = Path(out_dir)
    (out_dir / VIDEO_DIR).mkdir(parents=True, exist_ok=True)
    indices = range(n)
    if keep is not None:
        indices = [i for i in indices if keep(plan_sample(task, split, i, namespace, difficulty).record)]
    jobs = [RenderJob(task, split, index, namespace, difficulty, str(out_dir)) for index in indices]
    data_path = out_dir / DATA_FILE
    records = []
    bar = tqdm(total=len(jobs), desc=f"synth {task}/{split}", unit="clip", file=sys.stderr, disable=not progress)
    with bar:
        for record in _records_in_order(jobs, workers):
            validate_record(record, path=data_path, check_video=True)
            records.append(record)
            bar.update(1)
    write_jsonl(data_path, records)
    return records
