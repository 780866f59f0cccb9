"""Command line: `python -m temporal_rl.eval --data D.jsonl --predictions P.jsonl --out M.json`.

Scores every query of the data file (a canonical JSONL file, videos not needed) against the predictions
(`{"id", "completion"}` per line), writes the metrics as JSON and prints them as a table. Exit status 2 with a
message naming the file and the line when an input is invalid.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from temporal_rl.data import RecordError, read_records, write_jsonl
from temporal_rl.eval.metrics import evaluate, format_report, read_predictions


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m temporal_rl.eval", description="Score model predictions against a canonical data file."
    )
    parser.add_argument("--data", required=True, help="canonical JSONL file: the queries and their gold answers")
    parser.add_argument("--predictions", required=True, help='JSONL file, one {"id", "completion"} per line')
    parser.add_argument("--out", required=True, help="where to write the metrics (JSON)")
    parser.add_argument("--samples", default=None, help="optional JSONL file for the per-record scores")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        records = read_records(args.data, check_video=False, absolute_video=False)
        completions = read_predictions(args.predictions, known_ids=[record["id"] for record in records])
    except RecordError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    report, samples = evaluate(records, completions)
    report = {"data": str(args.data), "predictions": str(args.predictions), **report}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.samples:
        write_jsonl(args.samples, samples)
    print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
