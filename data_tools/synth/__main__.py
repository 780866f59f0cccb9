"""Command line: render one synthetic split to DIR/videos/*.mp4 and DIR/data.jsonl.

python -m data_tools.synth --task grounding --split train --n 200 --namespace public --out runs/synth/train
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from data_tools.synth.dataset import DATA_FILE, VIDEO_DIR, default_workers, generate_dataset
from data_tools.synth.heldout import SPLITS
from data_tools.synth.presets import DEFAULT_DIFFICULTY, PRESETS
from data_tools.synth.tasks import FAMILIES, NAMESPACE_PATTERN


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _namespace(text: str) -> str:
    if not NAMESPACE_PATTERN.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a valid namespace: use letters, digits, '_', '.' and '-', "
            "starting with a letter or digit"
        )
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m data_tools.synth",
        description="Render a synthetic temporal benchmark split (mp4 videos + canonical JSONL records).",
    )
    parser.add_argument("--task", required=True, choices=FAMILIES, help="task family (needle records are task mcq)")
    parser.add_argument(
        "--split", required=True, choices=SPLITS, help="train and val never use test-only combinations"
    )
    parser.add_argument("--n", required=True, type=_positive_int, help="number of samples (indices 0..n-1)")
    parser.add_argument("--namespace", required=True, type=_namespace, help="separates independent sets, e.g. public")
    parser.add_argument("--out", required=True, type=Path, help=f"output folder for {DATA_FILE} and {VIDEO_DIR}/")
    parser.add_argument("--difficulty", default=DEFAULT_DIFFICULTY, choices=tuple(PRESETS), help="difficulty preset")
    parser.add_argument(
        "--workers", type=_positive_int, default=default_workers(), help="render processes (default: min(2, cpus))"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        print(f"error: --out {args.out} exists and is not a folder", file=sys.stderr)
        return 2
    started = time.perf_counter()
    records = generate_dataset(
        args.task, args.split, args.n, args.namespace, args.out, difficulty=args.difficulty, workers=args.workers
    )
    elapsed = time.perf_counter() - started
    video_bytes = sum((args.out / record["video"]).stat().st_size for record in records)
    print(
        f"wrote {len(records)} {args.task} samples ({args.split}, {args.difficulty}) to {args.out / DATA_FILE} "
        f"in {elapsed:.1f} s; videos {video_bytes / 1024:.0f} KiB ({video_bytes / len(records) / 1024:.1f} KiB/clip)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
