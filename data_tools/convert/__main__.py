"""Command line: `python -m data_tools.convert <benchmark> ...` (see `data_tools.convert` for the list).

Exit status 0 when the output was written (the summary says what happened to every row), 2 when the conversion
stopped: a malformed row without `--skip-bad` (the message names the file, the line / row / key and the reason) or
an unreadable input file.
"""

from __future__ import annotations

import argparse
import sys

from data_tools.convert import CONVERTERS
from data_tools.convert.common import ConvertError, Sink


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m data_tools.convert", description="Convert a benchmark's annotations to canonical JSONL."
    )
    commands = parser.add_subparsers(dest="benchmark", required=True, metavar="benchmark")
    for name, module in CONVERTERS.items():
        sub = commands.add_parser(name, help=module.HELP, description=module.__doc__.split("\n\n")[0])
        module.add_arguments(sub)
        sub.add_argument("--video-root", required=True, help="folder the benchmark's video paths are relative to")
        sub.add_argument("--out", required=True, help="output JSONL file")
        sub.add_argument("--skip-bad", action="store_true", help="skip malformed rows (counted and reported)")
        sub.add_argument("--check-videos", action="store_true", help="a row whose video file is missing is malformed")
        sub.add_argument(
            "--absolute-videos",
            action="store_true",
            help="write absolute video paths (default: relative to the output file's folder)",
        )
        sub.add_argument("--source", default=None, help=f"the records' source (default {module.SOURCE})")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module = CONVERTERS[args.benchmark]
    sink = Sink(
        args.out,
        args.video_root,
        skip_bad=args.skip_bad,
        check_videos=args.check_videos,
        absolute_videos=args.absolute_videos,
    )
    try:
        module.convert(args, sink)
    except ConvertError as err:
        hint = " (--skip-bad skips malformed rows and counts them)" if err.row else ""
        print(f"error: {err}{hint}", file=sys.stderr)
        return 2
    sink.finish()
    print(sink.summary(args.benchmark))
    return 0


if __name__ == "__main__":
    sys.exit(main())
