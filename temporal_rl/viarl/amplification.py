"""ViaRL's iterated amplification: cycles of {selector RL, selection sampling, answer tuning}, resumable.

ViaRL (arXiv 2505.15447) alternates two stages: the frame selector M1 is trained by REINFORCE++ against a frozen
answer model M2 (`temporal_rl.viarl.selector_trainer.train_selector`), then M2 is tuned on the frames M1 picks
(`temporal_rl.viarl.answer_stage`). `run_viarl(config)` runs `num_cycles` cycles, each of three stages:

| stage                  | what                                                  | output                           |
|------------------------|-------------------------------------------------------|----------------------------------|
| `cycle_<c>/selector`   | selector RL against the answer model of cycle c-1     | the selector's adapter or model  |
| `cycle_<c>/selections` | one sampled selection per training record (temp. 1)   | `selections.rank<r>.jsonl`       |
| `cycle_<c>/answer`     | answer SFT on those frames, answer tokens only        | the answer's adapter or model    |

Cycle c's selector continues cycle c-1's selector adapter and trains against cycle c-1's answer model (base +
adapter); cycle c's answer stage continues cycle c-1's answer adapter. Two optional warm starts come first, for tiny
random models that can do neither job at the start:

- `warmstart/answer`: SFT of the answer model on needle QA, shown the frames that hold the evidence
  (`answer_stage.OracleFrames`; or uniform frames), so it learns to read what it sees;
- `warmstart/selector`: SFT of the selector on random valid index lists behind a fixed short reasoning
  (`SelectorFormatExamples`): it learns the output FORMAT only, no location knowledge (the indices are random).

Every stage writes under `output_dir/<stage>/`. `output_dir/viarl_state.json` (written atomically by the main
process) holds the finished stages, their outputs and summaries, and a fingerprint of the config and of the recipe
files. Started again, the run skips finished stages, resumes the stage it was in (a training stage from its last TRL
checkpoint, the selections from their JSONL files), and refuses a changed config unless `overwrite` (which deletes
the earlier stages' outputs and state).

The stage settings come from recipe YAMLs the config points to (`selector_recipe`: a `ViaRLSelectorConfig`;
`answer_recipe`: a `TemporalSFTConfig`; the warm-start recipes: `TemporalSFTConfig`s), each with `DataArguments` and
`TemporalModelConfig`; the config's own fields override their paths, steps and seed. T, N, the frame sizes and the
label come from the selector recipe alone (`CandidateSpec.from_config`), so every stage sees the same candidates.

Multi-process (`accelerate launch`): every process reads the state and runs the same stages (the trainers are
data-parallel; each process samples the selections of its share of the records into its own file); only the main
process writes the state file, between barriers.

This module owns the stage sequence, the model lineage between stages, the state file and the selector's format
warm start. Training is `temporal_rl.training`'s and `temporal_rl.viarl.answer_stage`'s.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporal_rl.configs import parse_recipe
from temporal_rl.resumable import changed_settings, write_json_atomic
from temporal_rl.training import newest_complete_checkpoint, train_sft
from temporal_rl.viarl.answer_stage import (
    ANSWER_TARGETS,
    CandidateSpec,
    OracleFrames,
    SelectedFrames,
    SometimesWithoutEvidence,
    UniformFrames,
    answer_completion,
    read_selections,
    sample_selections,
)
from temporal_rl.viarl.candidates import CandidateFrames
from temporal_rl.viarl.selector import build_selector_messages

STATE_FILE = "viarl_state.json"
STATE_VERSION = 1
SELECTIONS_PREFIX = "selections"
WARM_ANSWER, WARM_SELECTOR = "warmstart/answer", "warmstart/selector"
WARMSTART_FRAMES = ("oracle", "evidence", "uniform")
FINAL = "final"  # `model_lineage` key of the models after the last stage
SELECTOR_FORMAT_THINK = "I look for what the question asks about."


@dataclass
class ViaRLConfig:
    """The amplification run; each stage's settings come from its recipe YAML, with the overrides below.

    > Recipes

    selector_recipe: `ViaRLSelectorConfig` YAML of the selector RL stage (also fixes T, N, sizes, the label and the
        answer model's prompt options).
    answer_recipe: `TemporalSFTConfig` YAML of the answer stage.
    answer_warmstart_recipe, selector_warmstart_recipe: `TemporalSFTConfig` YAMLs of the optional warm starts (none:
        no warm start).
    answer_warmstart_frames: the frames of the answer warm start: `oracle` (the candidates showing the evidence,
        `OracleFrames`), `evidence` (N frames inside the evidence window, from all the video's frames: the densest
        view, `OracleFrames(every_frame=True)`) or `uniform`.
    answer_warmstart_num_frames: how many frames the answer warm start shows (default N). More evidence frames per
        example teach a tiny model faster: on the needle task (T=32, N=2, 1000 steps, measured here), tiny answerers
        trained on 4 frames inside the needle answered 31% and 42% of held-out clips right from 2 oracle frames
        (12% from 2 uniform ones; chance 25%), one trained on 2 frames 22%.
    answer_warmstart_without_evidence: the share of the answer warm start's rows shown N random candidates outside
        the evidence window instead (`SometimesWithoutEvidence`): taught only on the evidence, the answer model names
        a colour it sees when the needle is not there (never an option: below chance on uniform frames); these rows
        teach it to guess among the options then.
    answer_target: what the answer stages teach the answer model to write inside `<answer>`: `letter` (the option's
        letter, as the prompt asks) or `option` (the option's text; scored the same by the selector's answer reward,
        and much easier for a tiny random model, which binds a seen colour to its option letter poorly).

    > Overrides (None: the recipe's value)

    train_file: canonical JSONL of every stage. selector_model, answer_model: the two base models.
    frame_cache_dir, seed: shared by every stage.
    selector_steps, answer_steps, answer_warmstart_steps, selector_warmstart_steps: `max_steps` per stage.
    """

    output_dir: str = field(default="runs/viarl", metadata={"help": "Where every stage and the state file go."})
    selector_recipe: str | None = field(default=None, metadata={"help": "Selector RL recipe (ViaRLSelectorConfig)."})
    answer_recipe: str | None = field(default=None, metadata={"help": "Answer SFT recipe (TemporalSFTConfig)."})
    answer_warmstart_recipe: str | None = field(
        default=None, metadata={"help": "Answer-model warm-start SFT recipe (none: no warm start)."}
    )
    selector_warmstart_recipe: str | None = field(
        default=None, metadata={"help": "Selector format warm-start SFT recipe (none: no warm start)."}
    )
    answer_warmstart_frames: str = field(
        default="oracle", metadata={"help": "Frames of the answer warm start: oracle, evidence or uniform."}
    )
    answer_warmstart_num_frames: int | None = field(
        default=None, metadata={"help": "Frames the answer warm start shows (default: N, the selector's count)."}
    )
    answer_warmstart_without_evidence: float = field(
        default=0.0,
        metadata={"help": "Share of answer warm-start rows shown candidates outside the evidence window, in [0, 1)."},
    )
    answer_target: str = field(
        default="letter",
        metadata={"help": "What the answer stages teach inside <answer>: letter (the prompt's) or option (its text)."},
    )
    num_cycles: int = field(default=2, metadata={"help": "Cycles of {selector, selections, answer} (ViaRL: 2)."})
    train_file: str | None = field(default=None, metadata={"help": "Training JSONL of every stage."})
    selector_model: str | None = field(default=None, metadata={"help": "Selector base model."})
    answer_model: str | None = field(default=None, metadata={"help": "Answer base model."})
    frame_cache_dir: str | None = field(default=None, metadata={"help": "Frame cache of every stage."})
    seed: int | None = field(default=None, metadata={"help": "Seed of every stage."})
    selector_steps: int | None = field(default=None, metadata={"help": "max_steps of each selector stage."})
    answer_steps: int | None = field(default=None, metadata={"help": "max_steps of each answer stage."})
    answer_warmstart_steps: int | None = field(default=None, metadata={"help": "max_steps of the answer warm start."})
    selector_warmstart_steps: int | None = field(
        default=None, metadata={"help": "max_steps of the selector warm start."}
    )
    selection_batch_size: int = field(default=8, metadata={"help": "Records per selector generate call."})
    selection_temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of the selections."})
    overwrite: bool = field(
        default=False, metadata={"help": "Start again: delete the outputs and state of an earlier, different run."}
    )

    def __post_init__(self):
        for name in ("selector_recipe", "answer_recipe"):
            if not getattr(self, name):
                raise ValueError(
                    f"ViaRLConfig: {name} is required (a recipe YAML; see recipes/tiny/viarl_needle.yaml)"
                )
        for name in ("selector_recipe", "answer_recipe", "answer_warmstart_recipe", "selector_warmstart_recipe"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"ViaRLConfig: {name} {path!r} is not a file")
        if not isinstance(self.num_cycles, int) or self.num_cycles < 1:
            raise ValueError(f"ViaRLConfig: num_cycles must be a positive integer, got {self.num_cycles!r}")
        if self.answer_target not in ANSWER_TARGETS:
            raise ValueError(
                f"ViaRLConfig: answer_target must be one of {', '.join(ANSWER_TARGETS)}, got {self.answer_target!r}"
            )
        if self.answer_warmstart_frames not in WARMSTART_FRAMES:
            raise ValueError(
                f"ViaRLConfig: answer_warmstart_frames must be one of {', '.join(WARMSTART_FRAMES)}, "
                f"got {self.answer_warmstart_frames!r}"
            )
        for name in (
            "selector_steps",
            "answer_steps",
            "answer_warmstart_steps",
            "selector_warmstart_steps",
            "selection_batch_size",
            "answer_warmstart_num_frames",
        ):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"ViaRLConfig: {name} must be a positive integer or null, got {value!r}")
        if not 0 <= self.answer_warmstart_without_evidence < 1:
            raise ValueError(
                "ViaRLConfig: answer_warmstart_without_evidence must be in [0, 1), got "
                f"{self.answer_warmstart_without_evidence!r}"
            )
        if not self.selection_temperature > 0:
            raise ValueError(f"ViaRLConfig: selection_temperature must be > 0, got {self.selection_temperature}")


# ----------------------------------------------------------------------------------------------------------------
# The plan and the model lineage (pure)


@dataclass(frozen=True)
class Stage:
    """One stage of the run. `kind`: answer_warmstart, selector_warmstart, selector, selections or answer."""

    name: str
    kind: str
    cycle: int = 0


def plan_stages(num_cycles: int, answer_warmstart: bool = False, selector_warmstart: bool = False) -> list[Stage]:
    """The stages in order.

    Example:
        ```python
        >>> [s.name for s in plan_stages(1, answer_warmstart=True)]
        ['warmstart/answer', 'cycle_1/selector', 'cycle_1/selections', 'cycle_1/answer']
        ```
    """
    stages = []
    if answer_warmstart:
        stages.append(Stage(WARM_ANSWER, "answer_warmstart"))
    if selector_warmstart:
        stages.append(Stage(WARM_SELECTOR, "selector_warmstart"))
    for cycle in range(1, num_cycles + 1):
        for kind in ("selector", "selections", "answer"):
            stages.append(Stage(f"cycle_{cycle}/{kind}", kind, cycle))
    return stages


@dataclass(frozen=True)
class ModelRef:
    """A model as a base checkpoint plus an optional LoRA adapter directory on top of it."""

    base: str
    adapter: str | None = None

    def after(self, output_dir: str, use_peft: bool) -> ModelRef:
        """The model a training stage writes to `output_dir`: a LoRA adapter continues on the same base (the
        adapter replaces the previous one, which it was initialised from); a full fine-tune is a new base."""
        if use_peft:
            return ModelRef(self.base, output_dir)
        if self.adapter is not None:
            raise ValueError(
                f"a full fine-tuning stage ({output_dir}) cannot continue the LoRA adapter {self.adapter}: use LoRA "
                "(use_peft: true) in every stage after a LoRA stage, or full fine-tuning in the earlier one too"
            )
        return ModelRef(output_dir, None)


def model_lineage(
    stages: Sequence[Stage],
    output_dir: str,
    selector: ModelRef,
    answer: ModelRef,
    use_peft: Mapping[str, bool],
) -> dict[str, tuple[ModelRef, ModelRef]]:
    """The (selector, answer) models each stage starts from, and under `FINAL` those after the last stage.

    Args:
        stages: the plan.
        output_dir: the run's folder (stage outputs are `output_dir/<stage name>`).
        selector, answer: the base models.
        use_peft: stage kind -> whether that kind trains a LoRA adapter (`selections` trains nothing).

    Example:
        ```python
        >>> lineage = model_lineage(plan_stages(2), "out", ModelRef("s"), ModelRef("a"),
        ...                         {"selector": True, "answer": True})
        >>> lineage["cycle_2/selector"]
        (ModelRef(base='s', adapter='out/cycle_1/selector'), ModelRef(base='a', adapter='out/cycle_1/answer'))
        ```
    """
    lineage = {}
    for stage in stages:
        lineage[stage.name] = (selector, answer)
        out = str(Path(output_dir) / stage.name)
        if stage.kind in ("selector", "selector_warmstart"):
            selector = selector.after(out, use_peft[stage.kind])
        elif stage.kind in ("answer", "answer_warmstart"):
            answer = answer.after(out, use_peft[stage.kind])
    lineage[FINAL] = (selector, answer)
    return lineage


def fingerprint(config: ViaRLConfig) -> dict[str, Any]:
    """What must not change between a run and its resumption: every field but `overwrite`, and the SHA-256 of each
    recipe file's bytes."""
    fields = {k: v for k, v in dataclasses.asdict(config).items() if k != "overwrite"}
    recipes = {}
    for name in ("selector_recipe", "answer_recipe", "answer_warmstart_recipe", "selector_warmstart_recipe"):
        path = getattr(config, name)
        recipes[name] = None if path is None else hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return {"config": fields, "recipe_sha256": recipes}


def fingerprint_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between two fingerprints ("field: old -> new")."""
    return changed_settings(old.get("config", {}), new.get("config", {})) + changed_settings(
        old.get("recipe_sha256", {}), new.get("recipe_sha256", {}), label=lambda key: f"{key} file contents"
    )


# ----------------------------------------------------------------------------------------------------------------
# The state file


def read_state(output_dir: str | os.PathLike) -> dict | None:
    """The state file of a run (None if there is none)."""
    path = Path(output_dir) / STATE_FILE
    if not path.exists():
        return None
    state = json.loads(path.read_text())
    if state.get("version") != STATE_VERSION:
        raise ValueError(f"{path}: state version {state.get('version')!r}, expected {STATE_VERSION}; use --overwrite")
    return state


def new_state(config: ViaRLConfig, stages: Sequence[Stage]) -> dict:
    return {
        "version": STATE_VERSION,
        "fingerprint": fingerprint(config),
        "plan": [stage.name for stage in stages],
        "stages": {},
        "current": None,
    }


# ----------------------------------------------------------------------------------------------------------------
# Recipes


def _common_overrides(config: ViaRLConfig, output_dir: Path, steps: int | None) -> dict:
    return {
        "output_dir": output_dir,
        "train_file": config.train_file,
        "frame_cache_dir": config.frame_cache_dir,
        "seed": config.seed,
        "max_steps": steps,
    }


def last_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The stage's newest complete TRL checkpoint (`temporal_rl.training.newest_complete_checkpoint`: a save torn by a
    kill is skipped), or None."""
    return newest_complete_checkpoint(output_dir)[0]


# ----------------------------------------------------------------------------------------------------------------
# The selector's format warm start


class SelectorFormatExamples:
    """SFT rows for the selector's format warm start: its real prompt on the labelled candidates, and a completion
    `<think>SELECTOR_FORMAT_THINK</think><index>i_1, ..., i_N</index>` with N distinct random indices.

    The indices are drawn afresh each time a row is seen (a generator seeded with `seed`; sorted, so the list reads
    like a choice): they carry no knowledge of where anything is, and the model learns to spread its choices
    uniformly, which is what RL exploration starts from. It learns the format, not the task.
    """

    def __init__(self, spec: CandidateSpec, cache, seed: int = 0, think: str = SELECTOR_FORMAT_THINK):
        self.spec, self.cache, self.think = spec, cache, think
        self.rng = random.Random(int(seed))
        self._last: tuple[str, CandidateFrames] | None = None

    def _candidates(self, row: Mapping[str, Any]) -> CandidateFrames:
        if self._last is None or self._last[0] != row["video"]:
            self._last = (row["video"], self.spec.candidates(row["video"], self.cache))
        return self._last[1]

    def frames(self, row: Mapping[str, Any]):
        return self._candidates(row).selector_video()

    def messages(self, row: Mapping[str, Any]) -> list[dict]:
        count = self._candidates(row).num_candidates
        return build_selector_messages(
            dict(row), count, min(self.spec.num_select, count), label=self.spec.label,
            video_position=self.spec.video_position,
        )  # fmt: skip

    def indices(self, row: Mapping[str, Any]) -> list[int]:
        """N distinct random candidate indices of the row's video (new ones at each call), increasing."""
        count = self._candidates(row).num_candidates
        return sorted(self.rng.sample(range(count), min(self.spec.num_select, count)))

    def completion(self, row: Mapping[str, Any]) -> str:
        return f"<think>{self.think}</think><index>{', '.join(map(str, self.indices(row)))}</index>"


# ----------------------------------------------------------------------------------------------------------------
# Running


def _distributed():
    from accelerate import PartialState

    return PartialState()


def _print_main(message: str) -> None:
    if _distributed().is_main_process:
        print(f"[viarl] {message}", flush=True)  # noqa: T201


def selection_files(stage_dir: Path) -> list[Path]:
    return sorted(stage_dir.glob(f"{SELECTIONS_PREFIX}*.jsonl"))


def read_stage_selections(stage_dir: str | os.PathLike) -> dict[str, dict]:
    """Record id -> selection row, merged over the stage's per-rank files."""
    rows = {}
    for path in selection_files(Path(stage_dir)):
        rows.update(read_selections(path))
    return rows


class ViaRLRun:
    """One amplification run: the parsed recipes, the plan, the lineage and the state (see the module docstring).

    Args:
        config: the run's config.
        log: progress lines (default: printed by the main process).
    """

    def __init__(self, config: ViaRLConfig, log: Callable[[str], None] | None = None):
        from temporal_rl.configs import TemporalSFTConfig
        from temporal_rl.viarl.config import ViaRLSelectorConfig

        self.config, self.log = config, log or _print_main
        self.out = Path(config.output_dir)
        self.stages = plan_stages(
            config.num_cycles, config.answer_warmstart_recipe is not None, config.selector_warmstart_recipe is not None
        )
        # Parse every recipe up front: a bad recipe fails before anything runs.
        self.selector_args = parse_recipe(
            config.selector_recipe, ViaRLSelectorConfig, self.overrides("cycle_1/selector", config.selector_steps)
        )
        self.answer_args = parse_recipe(
            config.answer_recipe, TemporalSFTConfig, self.overrides("cycle_1/answer", config.answer_steps)
        )
        self.warm_args = {}
        if config.answer_warmstart_recipe:
            self.warm_args["answer_warmstart"] = parse_recipe(
                config.answer_warmstart_recipe,
                TemporalSFTConfig,
                self.overrides(WARM_ANSWER, config.answer_warmstart_steps),
            )
        if config.selector_warmstart_recipe:
            self.warm_args["selector_warmstart"] = parse_recipe(
                config.selector_warmstart_recipe,
                TemporalSFTConfig,
                self.overrides(WARM_SELECTOR, config.selector_warmstart_steps),
            )
        selector_config = self.selector_args[1]
        self.spec = CandidateSpec.from_config(selector_config)
        self.check_prompts()
        use_peft = {
            "selector": self.selector_args[2].use_peft,
            "answer": self.answer_args[2].use_peft,
            **{kind: args[2].use_peft for kind, args in self.warm_args.items()},
        }
        selector_base = config.selector_model or self.selector_args[2].model_name_or_path
        answer_base = config.answer_model or self.answer_args[2].model_name_or_path
        named = selector_config.answer_model_name_or_path
        if config.answer_model is None and str(named) != str(answer_base):
            raise ValueError(
                f"the selector recipe's answer_model_name_or_path ({named}) is not the answer recipe's "
                f"model_name_or_path ({answer_base}): name the same answer model in both, or set answer_model"
            )
        self.lineage = model_lineage(
            self.stages, str(self.out), ModelRef(str(selector_base)), ModelRef(str(answer_base)), use_peft
        )

    def overrides(self, stage: str, steps: int | None) -> dict:
        return _common_overrides(self.config, self.out / stage, steps)

    def stage_recipe(
        self, stage: Stage, recipe: str, config_cls: type, steps: int | None, model: str, **overrides
    ) -> tuple:
        """(DataArguments, config, TemporalModelConfig) of a training stage: its recipe with the run's overrides and
        `model` as the base, set to resume from the stage's last complete checkpoint when there is one."""
        args = parse_recipe(
            recipe, config_cls, {**self.overrides(stage.name, steps), "model_name_or_path": model, **overrides}
        )
        checkpoint = last_checkpoint(self.stage_dir(stage))
        if checkpoint is not None:
            self.log(f"resuming from {checkpoint}")
        args[1].resume_from_checkpoint = checkpoint
        return args

    def check_prompts(self) -> None:
        """The answer model is tuned with the prompt the selector trainer asks it with: same prompt options."""
        asked = self.selector_args[1].prompt_options()
        for name, args in (("answer_recipe", self.answer_args), *self.warm_args.items()):
            if name == "selector_warmstart":
                continue
            tuned = args[1].prompt_options()
            if tuned != asked:
                raise ValueError(
                    f"the {name} words the answer model's prompt as {tuned} but the selector recipe asks it as "
                    f"{asked}: set think, span_format and video_position alike in both recipes"
                )

    # -- state ------------------------------------------------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        return self.out / STATE_FILE

    def prepare_state(self) -> dict:
        """Read the state (every process), check its fingerprint, and start afresh under `overwrite` (main only)."""
        distributed = _distributed()
        existing = read_state(self.out)
        current = fingerprint(self.config)
        if existing is not None and existing["fingerprint"] != current:
            if not self.config.overwrite:
                changes = "; ".join(fingerprint_changes(existing["fingerprint"], current))
                raise ValueError(
                    f"{self.state_path} belongs to a run with another config ({changes}); resume with the same config "
                    "and recipes, use another output_dir, or pass --overwrite to delete that run and start again"
                )
        if existing is not None and (self.config.overwrite and existing["fingerprint"] != current):
            if distributed.is_main_process:
                self.log(f"--overwrite: deleting the outputs of the earlier run in {self.out}")
                self.remove_outputs()
            existing = None
        distributed.wait_for_everyone()
        if existing is None:
            existing = new_state(self.config, self.stages)
            if distributed.is_main_process:
                write_json_atomic(self.state_path, existing)
        distributed.wait_for_everyone()
        return existing

    def remove_outputs(self) -> None:
        """Delete the state file and every stage folder (`warmstart/`, `cycle_*/`) of the run."""
        self.state_path.unlink(missing_ok=True)
        for path in [self.out / "warmstart", *self.out.glob("cycle_*")]:
            if path.is_dir():
                shutil.rmtree(path)

    def save_state(self, state: dict) -> None:
        if _distributed().is_main_process:
            write_json_atomic(self.state_path, state)

    # -- stages -----------------------------------------------------------------------------------------------------

    def stage_dir(self, stage: Stage) -> Path:
        return self.out / stage.name

    def run(self) -> dict:
        """Run (or resume) every stage; returns the final state."""
        state = self.prepare_state()
        distributed = _distributed()
        for stage in self.stages:
            if state["stages"].get(stage.name, {}).get("status") == "done":
                if not self.stage_dir(stage).is_dir():
                    raise FileNotFoundError(
                        f"{self.state_path} says {stage.name} is done but {self.stage_dir(stage)} is gone; "
                        "restore it, or pass --overwrite to start the run again"
                    )
                self.log(f"{stage.name}: done earlier, skipped")
                continue
            state["current"] = stage.name
            self.save_state(state)
            self.log(f"{stage.name}: starting")
            start = time.perf_counter()
            summary = run_stage(self, stage)
            distributed.wait_for_everyone()
            seconds = round(time.perf_counter() - start, 1)
            state["stages"][stage.name] = {
                "status": "done",
                "output": str(self.stage_dir(stage)),
                "seconds": seconds,
                "summary": summary,
            }
            state["current"] = None
            self.save_state(state)
            distributed.wait_for_everyone()
            self.log(f"{stage.name}: done in {seconds:.1f} s")
        return state

    def models(self, stage: Stage) -> tuple[ModelRef, ModelRef]:
        """The (selector, answer) models the stage starts from."""
        return self.lineage[stage.name]

    def models_after(self, stage_name: str) -> tuple[ModelRef, ModelRef]:
        """The (selector, answer) models once `stage_name` is done (`FINAL`: after the last stage)."""
        names = [stage.name for stage in self.stages] + [FINAL]
        return self.lineage[names[names.index(stage_name) + 1]]


def _trainer_summary(trainer) -> dict:
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    return {"global_step": trainer.state.global_step, "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None}  # fmt: skip


def run_selector_stage(run: ViaRLRun, stage: Stage) -> dict:
    """Selector RL against the current answer model, continuing the current selector adapter."""
    from temporal_rl.viarl.config import ViaRLSelectorConfig
    from temporal_rl.viarl.selector_trainer import train_selector

    selector, answer = run.models(stage)
    data_args, config, model_args = run.stage_recipe(
        stage, run.config.selector_recipe, ViaRLSelectorConfig, run.config.selector_steps, selector.base,
        answer_model_name_or_path=answer.base,
    )  # fmt: skip
    config.answer_adapter = answer.adapter
    trainer = train_selector(data_args, config, model_args, adapter=selector.adapter)
    return _trainer_summary(trainer)


def load_selector(selector: ModelRef, model_args):
    """The selector model (base with its adapter, not merged), in eval mode, on this process's device.

    `model_args`: the selector recipe's `TemporalModelConfig` (dtype, quantization); its model path is replaced.
    """
    from temporal_rl.models.loading import load_model, load_processor

    model_args = dataclasses.replace(model_args, model_name_or_path=selector.base)
    model = load_model(model_args, adapter=selector.adapter, device=_distributed().device)
    return model.eval(), load_processor(model_args)


def run_selections_stage(run: ViaRLRun, stage: Stage) -> dict:
    """One sampled selection per training record from this cycle's selector; each process samples its share."""
    from temporal_rl.data import read_records
    from temporal_rl.generation import GenerationOptions

    distributed = _distributed()
    selector_ref = run.models_after(f"cycle_{stage.cycle}/selector")[0]
    data_args, selector_config, _ = run.selector_args
    records = read_records(data_args.train_file)
    if data_args.max_train_samples:
        records = records[: data_args.max_train_samples]
    share = records[distributed.process_index :: distributed.num_processes]
    model, processor = load_selector(selector_ref, run.selector_args[2])
    stage_dir = run.stage_dir(stage)
    generation = GenerationOptions(
        do_sample=True,
        temperature=run.config.selection_temperature,
        max_new_tokens=selector_config.max_completion_length,
        batch_size=run.config.selection_batch_size,
    )
    output = stage_dir / f"{SELECTIONS_PREFIX}.rank{distributed.process_index}.jsonl"
    seed = selector_config.seed if run.config.seed is None else run.config.seed
    summary = sample_selections(
        model, processor, share, output, run.spec, selector_config.frame_cache(), generation=generation,
        seed=seed + stage.cycle, log=run.log,
    )  # fmt: skip
    distributed.wait_for_everyone()
    merged = read_stage_selections(stage_dir)
    missing = [r["id"] for r in records if r["id"] not in merged]
    if missing:
        raise RuntimeError(f"{stage.name}: {len(missing)} records have no selection, e.g. {missing[0]!r}")
    valid = sum(bool(merged[r["id"]]["valid"]) for r in records)
    run.log(f"{stage.name}: {valid}/{len(records)} valid selections, {len(records) - valid} fell back to uniform")
    return {"records": len(records), "valid": valid, "fallback": len(records) - valid, "this_process": summary.total}


def run_answer_stage(run: ViaRLRun, stage: Stage) -> dict:
    """Answer SFT on this cycle's selections, continuing the current answer adapter."""
    from temporal_rl.configs import TemporalSFTConfig

    answer = run.models(stage)[1]
    data_args, config, model_args = run.stage_recipe(
        stage, run.config.answer_recipe, TemporalSFTConfig, run.config.answer_steps, answer.base
    )
    selections = read_stage_selections(run.out / f"cycle_{stage.cycle}/selections")
    frames = SelectedFrames(selections, run.spec, config.frame_cache())
    adapter = answer.adapter if model_args.use_peft else None
    trainer = train_sft(
        data_args, config, model_args, frames=frames, completion=_answer_target(run, config), adapter=adapter
    )
    return _trainer_summary(trainer)


def run_answer_warmstart(run: ViaRLRun, stage: Stage) -> dict:
    """SFT of the answer model on the frames that show the evidence (or uniform ones)."""
    answer = run.models(stage)[1]
    data_args, config, model_args = run.stage_recipe(
        stage, run.config.answer_warmstart_recipe, _sft_config_cls(), run.config.answer_warmstart_steps, answer.base
    )
    kind, cache = run.config.answer_warmstart_frames, config.frame_cache()
    spec = dataclasses.replace(run.spec, num_select=run.config.answer_warmstart_num_frames or run.spec.num_select)
    if kind == "uniform":
        frames = UniformFrames(spec, cache)
    else:
        frames = OracleFrames(spec, cache, every_frame=kind == "evidence")
    if run.config.answer_warmstart_without_evidence:
        frames = SometimesWithoutEvidence(
            frames, spec, cache, run.config.answer_warmstart_without_evidence, seed=config.seed
        )
    trainer = train_sft(data_args, config, model_args, frames=frames, completion=_answer_target(run, config))
    return _trainer_summary(trainer)


def run_selector_warmstart(run: ViaRLRun, stage: Stage) -> dict:
    """SFT of the selector on random valid index lists: the output format only."""
    selector = run.models(stage)[0]
    data_args, config, model_args = run.stage_recipe(
        stage, run.config.selector_warmstart_recipe, _sft_config_cls(), run.config.selector_warmstart_steps,
        selector.base,
    )  # fmt: skip
    examples = SelectorFormatExamples(run.spec, config.frame_cache(), seed=config.seed)
    trainer = train_sft(
        data_args, config, model_args, frames=examples.frames, messages=examples.messages,
        completion=examples.completion,
    )  # fmt: skip
    return _trainer_summary(trainer)


def _answer_target(run: ViaRLRun, config) -> Callable[[Mapping[str, Any]], str]:
    prompt, target = config.prompt_options(), run.config.answer_target
    return lambda row: answer_completion(row, prompt, target)


def _sft_config_cls():
    from temporal_rl.configs import TemporalSFTConfig

    return TemporalSFTConfig


STAGE_RUNNERS: dict[str, Callable[[ViaRLRun, Stage], dict]] = {
    "answer_warmstart": run_answer_warmstart,
    "selector_warmstart": run_selector_warmstart,
    "selector": run_selector_stage,
    "selections": run_selections_stage,
    "answer": run_answer_stage,
}


def run_stage(run: ViaRLRun, stage: Stage) -> dict:
    """Run one stage by its kind (looked up in `STAGE_RUNNERS` at call time)."""
    return STAGE_RUNNERS[stage.kind](run, stage)


def run_viarl(config: ViaRLConfig, log: Callable[[str], None] | None = None) -> dict:
    """Run (or resume) the whole amplification; returns the state (finished stages, outputs, summaries)."""
    return ViaRLRun(config, log).run()
