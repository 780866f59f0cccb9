"""`make bench`: every benchmark in one run, one table, bench/results.json and bench/results.md.

    python -m benchmarks [--quick] [--only decode,filter,grpo] [--out bench] [--work-dir DIR]

Runs, in this order and in this process (threads pinned to one before anything imports torch):

- **decode** (`benchmarks/decode_vs_fetch.py`): N = 32 and 128 frames of a 2-minute 720p clip made on the spot,
  `load_video` cold (empty frame cache) and warm (cache hit) against qwen-vl-utils' `fetch_video`;
  ratio = fetch_video's time / ours.
- **filter** (`benchmarks/filter_speed.py`): the variance-aware filter's engine against K separate `generate`
  calls per clip; ratio = ours / naive (samples/s, and the work counted).
- **grpo** (`benchmarks/grpo_step.py`): TemporalGRPOTrainer against plain TRL GRPOTrainer with the video fix on a
  video-heavy tiny config; ratio = ours / baseline (step time and the work counted per step).

Each benchmark's `measure(quick)` returns a dict with a "table" of rows {"benchmark", "metric", "ours",
"baseline", "ratio"} (a row may carry its own "goal" {"op": ">=" | "<=", "value": x}); the suite adds the goals
of issue #7 where a row has none, prints one markdown table (benchmark, metric, ours, baseline, ratio, goal, met?)
under the machine's facts, and writes `OUT/results.json` (everything each benchmark returned: raw timings, work
counts, settings, checks; the machine; errors) and `OUT/results.md` (the table), each atomically. A benchmark
that fails is reported (message in both files, traceback on stderr) and the others still run; the exit status
is then 1. `--quick` is each benchmark's small mode (for tests; its figures are not the record).

This module owns running, goals, the table and the output files; the measuring is the benchmark modules'.
"""

from __future__ import annotations

import os

from temporal_rl.environment import pin_environment

pin_environment()
os.environ.setdefault("FORCE_QWENVL_VIDEO_READER", "decord")

import argparse  # noqa: E402
import datetime  # noqa: E402
import importlib  # noqa: E402
import importlib.metadata  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

BENCHMARKS = {
    "decode": "benchmarks.decode_vs_fetch",
    "filter": "benchmarks.filter_speed",
    "grpo": "benchmarks.grpo_step",
}
BASELINES = {
    "decode": "qwen-vl-utils 0.0.14 `fetch_video` (decord backend); ratio = its time / ours",
    "filter": "K separate `generate` calls per clip, processor and decoding per call; ratio = ours / naive",
    "grpo": "plain TRL GRPOTrainer with the video fix (each row its own pixels, ViT on every row in every "
    "forward); ratio = ours / baseline",
}
# Issue #7's goals for rows that bring none: (benchmark, words in the metric) -> (op, value).
DEFAULT_GOALS = {
    ("grpo", "step time"): ("<=", 0.6),
}
VERSIONED = ("torch", "transformers", "trl", "peft", "accelerate", "av", "numpy", "qwen-vl-utils", "decord")
COLUMNS = ("benchmark", "metric", "ours", "baseline", "ratio", "goal", "met?")


def parse_only(text: str | None) -> list[str]:
    """The benchmarks named in a comma-separated `--only` value (all when None), in the suite's order."""
    if text is None:
        return list(BENCHMARKS)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown or not names:
        raise ValueError(f"--only takes a comma-separated subset of {', '.join(BENCHMARKS)}; got {text!r}")
    return [name for name in BENCHMARKS if name in names]


def goal_for(name: str, row: dict, result: dict) -> dict | None:
    """The goal {"op", "value"} of a row of benchmark `name`: its own, else issue #7's default, else None.

    The vision-encoder patch goal of grpo is 1/G of the baseline's, G read from the result's
    config["generations"] (or settings["num_generations"]).
    """
    if row.get("goal") is not None:
        return row["goal"]
    metric = row["metric"].lower()
    for (benchmark, words), (op, value) in DEFAULT_GOALS.items():
        if name == benchmark and words in metric:
            return {"op": op, "value": value}
    if name == "grpo" and "patches" in metric:
        generations = (result.get("config") or {}).get("generations") or (result.get("settings") or {}).get(
            "num_generations"
        )
        if generations:
            return {"op": "<=", "value": 1 / generations, "text": f"<= 1/G = 1/{generations}"}
    return None


def goal_met(goal: dict | None, ratio: float | None) -> bool | None:
    """Whether `ratio` meets `goal` (None when there is no goal or no ratio)."""
    if goal is None or ratio is None or not math.isfinite(ratio):
        return None
    if goal["op"] == ">=":
        return ratio >= goal["value"]
    if goal["op"] == "<=":
        return ratio <= goal["value"] * (1 + 1e-9)
    raise ValueError(f"unknown goal operator {goal['op']!r} (use '>=' or '<=')")


def with_goals(name: str, rows: list[dict], result: dict) -> list[dict]:
    """The rows of benchmark `name` with "goal" and "met" filled in."""
    out = []
    for row in rows:
        missing = {"benchmark", "metric", "ours", "baseline", "ratio"} - set(row)
        if missing:
            raise ValueError(f"a table row lacks {sorted(missing)}: {row}")
        goal = goal_for(name, row, result)
        out.append({**row, "goal": goal, "met": goal_met(goal, row["ratio"])})
    return out


def format_number(value) -> str:
    """Integers as they are, floats to 4 significant digits (3 decimals at least below 10), None as '-'."""
    if value is None:
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.4g}" if abs(value) >= 10 else f"{value:.3f}"


def format_goal(goal: dict | None) -> str:
    if goal is None:
        return ""
    if goal.get("text"):
        return goal["text"].replace("<=", "≤").replace(">=", "≥")
    return f"{'≥' if goal['op'] == '>=' else '≤'} {goal['value']:g}x"


def markdown_table(rows: list[dict]) -> str:
    """The rows as a markdown table with the suite's columns."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        ratio = "-" if row["ratio"] is None else f"{format_number(row['ratio'])}x"
        met = {True: "yes", False: "no", None: ""}[row["met"]]
        cells = [
            row["benchmark"],
            row["metric"],
            format_number(row["ours"]),
            format_number(row["baseline"]),
            ratio,
            format_goal(row["goal"]),
            met,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_state() -> dict:
    """The checkout's commit and whether it has uncommitted changes (read-only git calls; None outside git)."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (other processes competing for the CPUs), None where unknown."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def machine_facts() -> dict:
    """Where and when the run happened: CPUs, threads, platform, versions, date, commit."""
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "python": platform.python_version(),
        "versions": {name: package_version(name) for name in VERSIONED},
        "git": git_state(),
    }


def machine_line(machine: dict) -> str:
    versions = ", ".join(f"{name} {version}" for name, version in machine["versions"].items() if version)
    git = machine["git"]
    load = " -> ".join(
        "/".join(f"{x:.1f}" for x in machine[key]) if machine.get(key) else "?"
        for key in ("load_average_start", "load_average_end")
    )
    commit = "" if not git["commit"] else f"; commit {git['commit'][:10]}{' + local changes' if git['dirty'] else ''}"
    return (
        f"{machine['date_utc']}; {machine['platform']}, {machine['cpu_count']} CPUs, torch threads "
        f"{machine['torch_threads']} (OMP_NUM_THREADS={machine['omp_num_threads']}), load average (1/5/15 min) "
        f"{load}; Python {machine['python']}, "
        f"{versions}{commit}"
    )


def decode_checks(result: dict) -> list[str]:
    """One line per decode case saying whether ours and fetch_video did the same work."""
    lines = []
    for case in result.get("cases", []):
        check = case.get("check")
        if check is None:
            continue
        same = all(check[k] for k in ("same_count", "same_size", "same_indices", "same_sample_fps"))
        verdict = "same frame count, frame size, source frame indices and sample fps" if same else "MISMATCH"
        lines.append(
            f"decode, {case['num_frames']} frames: {verdict}; {case['frames_decoded']} frames decoded by ours; "
            f"mean |ours - fetch_video| {check['mean_abs_diff']:.2f} per 8-bit value (one frame off: "
            f"{check['neighbour_mean_abs_diff']:.2f})"
        )
    return lines


def render_markdown(report: dict) -> str:
    """bench/results.md: the machine line, the table, what the baselines are, checks and errors."""
    mode = "quick run (small settings, not the record)" if report["quick"] else "full run"
    lines = [
        "# Benchmarks (`make bench`)",
        "",
        f"{mode}; {machine_line(report['machine'])}.",
        "",
        markdown_table(report["table"]),
        "",
        "Baselines:",
    ]
    lines += [f"- {name}: {BASELINES[name]}." for name in report["ran"]]
    decode = report["results"].get("decode")
    if decode:
        clip, facts = decode["clip"]["spec"], decode["clip"]["facts"]
        lines += [
            "",
            f"Decode clip: {facts['width']}x{facts['height']} H.264, {facts['frames'] / facts['fps']:.0f} s at "
            f"{facts['fps']:.0f} fps, keyframe interval {clip['gop']} ({facts['keyframes']} keyframes), "
            f"{facts['mbit_per_s']:.2f} Mbit/s; median of {decode['repeats']} interleaved repeat(s); Qwen's default "
            "pixel budget.",
        ]
        if decode.get("baseline_unavailable"):
            lines.append(f"fetch_video not measured: {decode['baseline_unavailable']}.")
        lines += [f"- {line}" for line in decode_checks(decode)]
    if report["errors"]:
        lines += ["", "Errors:"] + [f"- {name}: {message}" for name, message in report["errors"].items()]
    lines.append("")
    lines.append(
        f"Raw timings, work counts and settings: results.json. Wall time of the suite: {report['wall_s']:.0f} s."
    )
    return "\n".join(lines) + "\n"


def to_jsonable(value):
    """numpy scalars and arrays, tuples and paths as plain JSON values."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def write_results(out: Path, report: dict, markdown: str) -> None:
    """A benchmark's `results.json` and `results.md` in `out`, each written atomically; the table printed."""
    write_atomic(out / "results.json", json.dumps(report, indent=1) + "\n")
    write_atomic(out / "results.md", markdown)
    print(markdown)
    print(f"wrote {out / 'results.json'} and {out / 'results.md'}")


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(temp, 0o644)  # mkstemp's 0600 would make the committed record private
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def run_benchmark(name: str, quick: bool, work_dir: str | None) -> dict:
    """Import the benchmark's module and call its `measure`."""
    module = importlib.import_module(BENCHMARKS[name])
    measure = getattr(module, "measure", None)
    if measure is None:
        raise RuntimeError(f"{BENCHMARKS[name]} has no measure(quick) function")
    if name == "decode":
        return measure(quick=quick, work_dir=work_dir)
    return measure(quick=quick)


def run_suite(names: list[str], quick: bool, out: Path, work_dir: str | None = None) -> dict:
    """Run `names`, print the table and write OUT/results.json and OUT/results.md. Returns the report."""
    torch.set_num_threads(1)
    start, machine = time.perf_counter(), {**machine_facts(), "load_average_start": load_average()}
    results, errors, elapsed, table = {}, {}, {}, []
    for name in names:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        began = time.perf_counter()
        try:
            result = run_benchmark(name, quick, work_dir)
            rows = with_goals(name, result["table"], result)
        except Exception as err:  # reported, and the other benchmarks still run
            traceback.print_exc()
            errors[name] = f"{type(err).__name__}: {err}"
        else:
            results[name] = result
            table += rows
        elapsed[name] = time.perf_counter() - began
        print(f"[bench] {name}: {elapsed[name]:.1f} s", file=sys.stderr, flush=True)
    report = {
        "quick": quick,
        "ran": names,
        "machine": {**machine, "load_average_end": load_average()},
        "table": table,
        "baselines": {name: BASELINES[name] for name in names},
        "results": results,
        "errors": errors,
        "elapsed_s": elapsed,
        "wall_s": time.perf_counter() - start,
    }
    report = to_jsonable(report)
    write_results(out, report, render_markdown(report))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="each benchmark's small mode (tests)")
    parser.add_argument("--only", default=None, help="comma-separated subset of: " + ",".join(BENCHMARKS))
    parser.add_argument("--out", default="bench", help="folder for results.json and results.md (default: bench)")
    parser.add_argument("--work-dir", default=None, help="keep the decode benchmark's clip here and reuse it")
    args = parser.parse_args(argv)
    try:
        names = parse_only(args.only)
    except ValueError as err:
        parser.error(str(err))
    report = run_suite(names, args.quick, Path(args.out), args.work_dir)
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
