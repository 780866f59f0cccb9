"""`make chaos` (`python -m benchmarks.chaos [--quick] [--kills N] [--seed S] [--jobs eval,filter,...]`): long jobs
killed with SIGKILL at random moments, restarted with the same command, compared with an uninterrupted run.

Per job: the tiny random Qwen2.5-VL and synthetic grounding clips are made on the spot (in `--work`, default a
temporary folder); the job runs once uninterrupted (the reference), then again in a fresh folder where, `--kills`
times, it is started, killed with SIGKILL (the whole process tree: launcher and workers, which torchrun puts in
sessions of their own) at a random moment after a random number of finished units, and started again with the same
command; the last start runs to the end.
The outputs that define the job's result are compared with the reference's (`same_output`): byte for byte, except
trained weights (within `WEIGHT_TOLERANCE`) and the trainer's logged losses (the same to 6 decimals).

Printed per job: kills, restarts, whether the outputs are identical, units finished before each kill, units
repeated (finished twice: a line in the output logs for a unit already there) and work lost (seconds between the
last finished unit and the kill, summed: the unfinished batch that the restart does again).

Jobs: `eval` (temporal_rl.eval.run: unit = one prediction line), `filter` (recipes/filter_data.py, one process:
unit = one batch line in the shards), `filter2` (the same under `accelerate launch` with two CPU processes), `sft`
and `grpo` (recipes/sft.py, recipes/grpo.py on the tiny model, a checkpoint every step: unit = one complete
checkpoint; a restart resumes from the newest, `temporal_rl.training.checkpoint_to_resume`) and `viarl` (recipes/
viarl.py, one cycle with both warm starts, a checkpoint every step: unit = a finished stage or a complete
checkpoint). For the training jobs a repeated unit is a checkpoint written again after a restart (steps trained
twice), and the kills wait for at least one finished unit, so that each restart has something to resume.
`--quick` (the tests' mode): fewer samples and steps, one kill; eval and filter unless `--jobs` says otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from temporal_rl.environment import child_environment

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
JOBS = ("eval", "filter", "filter2", "sft", "grpo", "viarl")
TRAINING = ("sft", "grpo", "viarl")
# Training outputs are compared as numbers: weights within WEIGHT_TOLERANCE (max absolute difference; CPU float32 with
# a fixed seed repeats a run exactly, and a resumed run restores the weights, the optimizer, the scheduler and the
# RNG states, so the difference measured is 0) and the logged losses likewise. Bytes would also compare a file's
# metadata (safetensors headers, timestamps in trainer_state.json), which says nothing about what was trained.
WEIGHT_TOLERANCE = 1e-6


@dataclass
class Job:
    """One job: how to run it into a folder, what its finished units are, what its result is."""

    name: str
    command: list[str]  # with "{out}" where the output folder goes
    units: str  # "predictions", "shards", "checkpoints" (complete ones) or "stages" (ViaRL's finished stages)
    outputs: tuple[
        str, ...
    ]  # files compared: byte for byte, or as weights / logged losses (.safetensors, trainer_state)
    total_units: int
    first_kill_after: int = 0  # the fewest finished units a kill waits for (training: 1, so that a restart resumes)
    pythonpath: tuple[str, ...] = ()  # folders added to the job's PYTHONPATH (GRPO: the varied reward's module)

    def argv(self, out: Path) -> list[str]:
        return [part.replace("{out}", str(out)) for part in self.command]


@dataclass
class ChaosResult:
    job: str
    kills: int
    restarts: int
    identical: bool
    units_at_kills: list[int] = field(default_factory=list)
    processes_killed: list[int] = field(default_factory=list)
    units_repeated: int = 0
    lost_seconds: float = 0.0
    reference_seconds: float = 0.0
    chaos_seconds: float = 0.0
    total_units: int = 0
    differing: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return dict(self.__dict__)


def _env(job: Job | None = None) -> dict[str, str]:
    return child_environment([ROOT, *(job.pythonpath if job else ())])


def _checkpoints(out: Path) -> dict[str, int]:
    """Every complete checkpoint under `out` (ViaRL: in each stage's folder) -> its trainer_state.json's mtime (ns)."""
    from temporal_rl.training import newest_complete_checkpoint

    found = {}
    for folder in {path.parent for path in out.rglob("checkpoint-*")}:
        _, torn = newest_complete_checkpoint(folder)
        for checkpoint in folder.glob("checkpoint-*"):
            state = checkpoint / "trainer_state.json"
            if checkpoint.name not in torn and state.is_file():
                found[str(checkpoint.relative_to(out))] = state.stat().st_mtime_ns
    return found


def _done_stages(out: Path) -> list[bytes]:
    try:
        state = json.loads((out / "viarl_state.json").read_text())
    except (OSError, ValueError):
        return []
    return [name.encode() for name, stage in state.get("stages", {}).items() if stage.get("status") == "done"]


def unit_lines(out: Path, units: str) -> list[bytes]:
    """The finished units of a job in `out`: the complete lines of its unit log(s) (predictions, or every shard's
    batches), its complete checkpoints, or ViaRL's finished stages and complete checkpoints."""
    if units == "checkpoints":
        return [name.encode() for name in sorted(_checkpoints(out))]
    if units == "stages":
        return _done_stages(out) + [name.encode() for name in sorted(_checkpoints(out))]
    if units == "predictions":
        paths = [out / "predictions.jsonl"]
    else:
        paths = sorted((out / "shards").glob("rank-*.jsonl"))
    lines = []
    for path in paths:
        if path.is_file():
            lines += [line for line in path.read_bytes().split(b"\n")[:-1] if line.strip()]
    return lines


def _unit_key(line: bytes, units: str):
    row = json.loads(line)
    return row["id"] if units == "predictions" else row["batch"]


def _last_change(out: Path, units: str) -> float | None:
    if units in ("checkpoints", "stages"):
        times = [ns / 1e9 for ns in _checkpoints(out).values()]
        if units == "stages" and (out / "viarl_state.json").is_file():
            times.append((out / "viarl_state.json").stat().st_mtime)
        return max(times) if times else None
    paths = [out / "predictions.jsonl"] if units == "predictions" else list((out / "shards").glob("rank-*.jsonl"))
    times = [p.stat().st_mtime for p in paths if p.is_file() and p.stat().st_size]
    return max(times) if times else None


def _run_to_end(job: Job, out: Path, log: Path) -> float:
    start = time.monotonic()
    with log.open("a") as output:
        result = subprocess.run(
            job.argv(out), cwd=ROOT, env=_env(job), stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    if result.returncode != 0:
        raise RuntimeError(f"{job.name}: exit {result.returncode}; see {log}\n{log.read_text()[-3000:]}")
    return time.monotonic() - start


def process_tree(root: int) -> list[int]:
    """`root` and every process descended from it (Linux `/proc`), parents before children. A launcher's workers
    may sit in process groups of their own (torchrun starts each in a new session), so a group kill misses them."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, queue = [], [root]
    while queue:
        pid = queue.pop(0)
        tree.append(pid)
        queue += children.get(pid, [])
    return tree


def _kill_tree(process: subprocess.Popen) -> int:
    """SIGKILL the job's whole process tree at once (stopped first, so that none forks or exits in between).
    Returns how many processes were killed."""
    tree = process_tree(process.pid)
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)
    tree = process_tree(process.pid)  # anything forked before the stop
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait()
    return len(tree)


def _start_and_kill(job: Job, out: Path, log: Path, target_units: int, delay: float, rng_deadline: float) -> dict:
    """Start the job; once `target_units` units are finished (counting those of earlier starts) wait `delay` s and
    SIGKILL its process group. Returns what was on disk at the kill."""
    with log.open("a") as output:
        process = subprocess.Popen(
            job.argv(out), cwd=ROOT, env=_env(job), stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + rng_deadline
    while process.poll() is None and time.monotonic() < deadline:
        if len(unit_lines(out, job.units)) >= target_units:
            time.sleep(delay)
            break
        time.sleep(0.02)
    finished = process.poll() is not None
    killed_at = time.time()
    killed = _kill_tree(process)
    last = _last_change(out, job.units)
    return {
        "checkpoints": _checkpoints(out),
        "finished_before_kill": finished,
        "units": len(unit_lines(out, job.units)),
        "lost": 0.0 if finished or last is None else max(0.0, killed_at - last),
        "processes": killed,
    }


def run_chaos(job: Job, work: Path, kills: int, rng: random.Random) -> ChaosResult:
    reference, chaos = work / f"{job.name}-reference", work / f"{job.name}-chaos"
    reference_seconds = _run_to_end(job, reference, work / f"{job.name}-reference.log")
    log = work / f"{job.name}-chaos.log"
    start = time.monotonic()
    result = ChaosResult(job.name, kills=0, restarts=0, identical=False, total_units=job.total_units)
    seen: set = set()
    saved: dict[str, int] = {}  # complete checkpoints at the kills -> their trainer state's mtime
    # the kills land after random counts of finished units (0: during start-up or the first unit; at most one short
    # of the end, so each lands inside the work), in increasing order, each a random fraction of a second later:
    # inside a unit's generation, a write, or the start-up
    first = min(job.first_kill_after, job.total_units - 2)
    targets = sorted(rng.choices(range(max(0, first), max(1, job.total_units - 1)), k=kills))
    for target in targets:
        delay = rng.uniform(0.0, 0.3)
        state = _start_and_kill(job, chaos, log, target, delay, rng_deadline=reference_seconds * 3 + 60)
        if state["finished_before_kill"]:
            break
        result.kills += 1
        result.units_at_kills.append(state["units"])
        result.lost_seconds += state["lost"]
        result.processes_killed.append(state["processes"])
        saved.update(state["checkpoints"])
    result.restarts = result.kills
    _run_to_end(job, chaos, log)
    result.chaos_seconds = time.monotonic() - start
    result.reference_seconds = reference_seconds
    if job.units in ("checkpoints", "stages"):
        # a checkpoint written again after a restart (its trainer state rewritten): steps trained twice
        final = _checkpoints(chaos)
        result.units_repeated = sum(final.get(name) != mtime for name, mtime in saved.items())
    else:
        for line in unit_lines(chaos, job.units):
            key = _unit_key(line, job.units)
            result.units_repeated += key in seen
            seen.add(key)
    result.differing = [name for name in job.outputs if not same_output(reference / name, chaos / name)]
    result.identical = not result.differing
    return result


def same_output(reference: Path, other: Path) -> bool:
    """Whether a job's output file matches the reference's: safetensors weights within `WEIGHT_TOLERANCE` (same
    names, shapes and dtypes), a trainer_state.json's logged losses (step, loss, grad norm, learning rate, reward)
    within it, anything else byte for byte. A missing file matches nothing."""
    if not reference.is_file() or not other.is_file():
        return False
    if reference.suffix == ".safetensors":
        from safetensors.torch import load_file

        first, second = load_file(reference), load_file(other)
        return first.keys() == second.keys() and all(
            first[k].shape == second[k].shape
            and first[k].dtype == second[k].dtype
            and (first[k].double() - second[k].double()).abs().max().item() <= WEIGHT_TOLERANCE
            for k in first
        )
    if reference.name == "trainer_state.json":
        return _logged_numbers(reference) == _logged_numbers(other)
    return reference.read_bytes() == other.read_bytes()


def _logged_numbers(path: Path) -> list:
    """The trainer's per-step log entries (those with a loss), without timings, numbers rounded to 6 decimals."""
    # timings differ from run to run; TRL's running token count (`num_tokens`) restarts from 0 on a resume (TRL does
    # not checkpoint it), so it says nothing about what was trained
    timing = ("runtime", "per_second", "train_seconds", "total_flos", "time", "num_tokens")
    rows = []
    for entry in json.loads(path.read_text())["log_history"]:
        if "loss" not in entry:  # the end-of-run summary's `train_loss` averages the last start's steps only
            continue
        rows.append(
            {
                key: round(value, 6) if isinstance(value, float) else value
                for key, value in sorted(entry.items())
                if not any(word in key for word in timing)
            }
        )
    return rows


VARIED_REWARD = '''"""A reward that differs between distinct completions (benchmarks/chaos.py's GRPO job)."""

from temporal_rl.rewards.parsing import completion_text


def varied_reward(completions, **kwargs):
    return [(sum(map(ord, completion_text(c))) % 101) / 100 for c in completions]
'''


def _write_recipe(source: Path, target: Path, **changes) -> str:
    import yaml

    raw = yaml.safe_load(source.read_text())
    raw.update(changes)
    target.write_text(yaml.safe_dump(raw))
    return str(target)


def training_jobs(work: Path, model: Path, data: Path, frames: Path, quick: bool) -> dict[str, Job]:
    """SFT, GRPO (the recipes, a checkpoint every step) and a ViaRL cycle (warm starts, selector RL, selections,
    answer SFT) on the tiny model; the quick mode trains fewer steps."""
    from data_tools.synth import generate_dataset

    python = [sys.executable]
    steps = 3 if quick else 6
    common = ["--model_name_or_path", str(model), "--train_file", str(data / "data.jsonl"), "--output_dir", "{out}",
              "--frame_cache_dir", str(frames), "--max_steps", str(steps), "--save_strategy", "steps",
              "--save_steps", "1", "--logging_steps", "1", "--dataloader_num_workers", "0"]  # fmt: skip
    sft = [*python, str(RECIPES / "sft.py"), "--config", str(RECIPES / "tiny/sft_grounding.yaml"), *common,
           "--per_device_train_batch_size", "2", "--warmup_steps", "1"]  # fmt: skip
    # the untrained tiny model never earns the IoU or format reward: with zero advantages GRPO would never move the
    # weights, and any resume would look identical. A reward that differs between completions makes it train.
    (work / "chaos_rewards.py").write_text(VARIED_REWARD)
    grpo = [*python, str(RECIPES / "grpo.py"), "--config", str(RECIPES / "tiny/grpo_grounding.yaml"), *common,
            "--reward_funcs", "iou", "format", "chaos_rewards.varied_reward", "--reward_weights", "1.0", "0.5", "1.0",
            "--per_device_train_batch_size", "4", "--num_generations", "4", "--max_completion_length",
            "8"]  # fmt: skip
    trained = ("model.safetensors", "trainer_state.json")

    needle = work / "needle"
    if not (needle / "data.jsonl").is_file():
        generate_dataset("needle", "train", 4, "chaos", needle, difficulty="tiny", workers=1, progress=False)
    recipes, tiny = work / "recipes", RECIPES / "tiny"
    recipes.mkdir(exist_ok=True)
    small_sft = dict(per_device_train_batch_size=2, logging_steps=1, save_strategy="steps", save_steps=1,
                     warmup_steps=0, dataloader_num_workers=0)  # fmt: skip
    lora = dict(lora_r=4, lora_alpha=8)
    selector = _write_recipe(
        tiny / "viarl_needle_selector.yaml", recipes / "selector.yaml", **lora, per_device_train_batch_size=4,
        num_generations=4, max_completion_length=8, save_strategy="steps", save_steps=1, answer_max_new_tokens=4,
        num_candidates=8, num_frames_to_select=2, logging_steps=1, answer_model_name_or_path=str(model),
    )  # fmt: skip
    answer = _write_recipe(tiny / "viarl_needle_answer.yaml", recipes / "answer.yaml", **lora, **small_sft,
                           model_name_or_path=str(model))  # fmt: skip
    warm_answer = _write_recipe(tiny / "viarl_needle_answer_warmstart.yaml", recipes / "warm_answer.yaml", **small_sft)
    warm_selector = _write_recipe(
        tiny / "viarl_needle_selector_warmstart.yaml", recipes / "warm_selector.yaml", **small_sft
    )
    viarl_steps = "1" if quick else "2"
    viarl = [*python, str(RECIPES / "viarl.py"), "--config", str(tiny / "viarl_needle.yaml"), "--output_dir", "{out}",
             "--selector_recipe", selector, "--answer_recipe", answer, "--answer_warmstart_recipe", warm_answer,
             "--selector_warmstart_recipe", warm_selector, "--num_cycles", "1", "--train_file",
             str(needle / "data.jsonl"), "--selector_model", str(model), "--answer_model", str(model),
             "--frame_cache_dir", str(frames), "--seed", "0", "--selector_steps", viarl_steps, "--answer_steps",
             viarl_steps, "--answer_warmstart_steps", viarl_steps, "--selector_warmstart_steps", viarl_steps,
             "--selection_batch_size", "4"]  # fmt: skip
    viarl_outputs = ("cycle_1/answer/adapter_model.safetensors", "cycle_1/selector/adapter_model.safetensors",
                     "cycle_1/answer/trainer_state.json", "cycle_1/selector/trainer_state.json",
                     "cycle_1/selections/selections.rank0.jsonl")  # fmt: skip
    viarl_units = 5 + 4 * int(viarl_steps)  # 5 finished stages, a checkpoint per step of the 4 training stages
    return {
        "sft": Job("sft", sft, "checkpoints", trained, steps, first_kill_after=1),
        "grpo": Job("grpo", grpo, "checkpoints", trained, steps, first_kill_after=1, pythonpath=(str(work),)),
        "viarl": Job("viarl", viarl, "stages", viarl_outputs, viarl_units, first_kill_after=1),
    }


def prepare(work: Path, quick: bool) -> dict[str, Job]:
    """The tiny model, the synthetic data and the jobs' commands."""
    from data_tools.synth import generate_dataset
    from temporal_rl.models.tiny import build_tiny_model

    model = work / "tiny-model"
    if not (model / "config.json").is_file():
        build_tiny_model(model)
    num = 8 if quick else 16
    data = work / "data"
    if not (data / "data.jsonl").is_file():
        generate_dataset("grounding", "val", num, "chaos", data, workers=1, progress=False)
    frames = work / "frames"
    python = [sys.executable]
    video = ["--video_min_pixels", "784", "--video_max_pixels", "3136", "--span_format", "plain",
             "--video_position", "last", "--frame_cache_dir", str(frames)]  # fmt: skip
    eval_job = Job(
        "eval",
        [*python, "-m", "temporal_rl.eval.run", "--model", str(model), "--data", str(data / "data.jsonl"),
         "--out", "{out}", "--max_new_tokens", "8", "--batch_size", "1", "--dtype", "float32", "--device", "cpu",
         "--no_progress", "true", *video],
        "predictions", ("predictions.jsonl",), num,
    )  # fmt: skip
    filter_args = [
        str(RECIPES / "filter_data.py"), "--config", str(RECIPES / "tiny/filter_grounding.yaml"),
        "--model_name_or_path", str(model), "--data_file", str(data / "data.jsonl"), "--output_dir", "{out}",
        "--frame_cache_dir", str(frames), "--num_samples", "4", "--batch_size", "2", "--max_new_tokens", "8",
        "--progress", "false",
    ]  # fmt: skip
    outputs = ("scored.jsonl", "filtered.jsonl")
    return {
        **training_jobs(work, model, data, frames, quick),
        "eval": eval_job,
        "filter": Job("filter", [*python, *filter_args], "shards", outputs, num // 2),
        "filter2": Job(
            "filter2",
            [
                *python,
                "-m",
                "accelerate.commands.launch",
                "--config_file",
                str(RECIPES / "accelerate_configs/cpu_2proc.yaml"),
                *filter_args,
            ],
            "shards",
            outputs,
            num // 2,
        ),  # fmt: skip
    }


def format_table(results: list[ChaosResult]) -> str:
    rows = [
        "| job | kills | processes killed each time | restarts | outputs identical | units done at each kill (of "
        "total) | units repeated | work lost (s) | reference (s) | with kills (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        at = ", ".join(str(n) for n in r.units_at_kills) or "-"
        processes = ", ".join(str(n) for n in r.processes_killed) or "-"
        identical = "yes" if r.identical else "NO: " + ", ".join(r.differing)
        rows.append(
            f"| {r.job} | {r.kills} | {processes} | {r.restarts} | {identical} | "
            f"{at} (of {r.total_units}) | {r.units_repeated} | {r.lost_seconds:.1f} | {r.reference_seconds:.1f} | "
            f"{r.chaos_seconds:.1f} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples, one kill, eval and filter only")
    parser.add_argument("--kills", type=int, default=None, help="kills per job (default 3, quick 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--jobs", default=None, help=f"comma-separated subset of {','.join(JOBS)}")
    parser.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    names = args.jobs.split(",") if args.jobs else (["eval", "filter"] if args.quick else list(JOBS))
    unknown = [n for n in names if n not in JOBS]
    if unknown:
        parser.error(f"unknown job {unknown[0]!r}; known: {', '.join(JOBS)}")
    kills = args.kills if args.kills is not None else (1 if args.quick else 3)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="chaos_") as temporary:
        work = Path(args.work or temporary)
        work.mkdir(parents=True, exist_ok=True)
        jobs = prepare(work, args.quick)
        results = []
        for name in names:
            results.append(run_chaos(jobs[name], work, kills, rng))
            print(format_table(results[-1:]).splitlines()[-1], flush=True)
    print(format_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps([r.to_json() for r in results], indent=2) + "\n")
    return 0 if all(r.identical and r.units_repeated == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
