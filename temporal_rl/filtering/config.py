"""`FilterConfig`: every knob of the variance-aware data filter (`recipes/filter_data.py`), parsed by `TrlParser`.

    accelerate launch recipes/filter_data.py --config recipes/tiny/filter_grounding.yaml [--any_field value ...]

Invalid values and combinations fail in `__post_init__` with a message that says how to fix them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from temporal_rl.configs import VideoArguments
from temporal_rl.filtering.selection import CONTINUOUS, DISCRETE, SelectionRule
from temporal_rl.prompts import DEFAULT_MAX_PROMPT_TOKENS

STRATA_FIELDS = ("task", "source")
DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class FilterConfig(VideoArguments):
    """The variance-aware data filter (Temporal-RLT, arXiv 2506.01908): K sampled completions per sample, scored,
    then kept or dropped by how much their rewards vary (`temporal_rl.filtering.selection`).

    > Parameters that control the model

    model_name_or_path: the base checkpoint (a Hub id or a directory with its processor).
    adapter: a PEFT (LoRA) adapter directory applied on top, or None.
    dtype: "auto" (bfloat16 on a GPU, float32 on the CPU), "float32", "bfloat16" or "float16".

    > Parameters that control the data and the outputs

    data_file: the canonical JSONL file to filter.
    output_dir: where `scored.jsonl`, `filtered.jsonl`, `report.json`, `report.png` and the resumable per-process
        shards go.
    max_samples: filter only the first N valid records.

    > Parameters that control sampling

    num_samples: K, completions sampled per sample (the GRPO group size G; the paper's released setting is 8).
    temperature, top_p, top_k: sampling settings (temperature 1.0 as in the paper's GRPO; top_k 0 disables it).
    max_new_tokens: completion length cap.
    max_prompt_tokens: the longest prompt in tokens, video included; a longer sample is skipped (stage "prepare")
        and listed, not generated for.
    batch_size: samples per `generate` call (a call holds batch_size * K sequences). It fixes which samples share
        a batch, and so the completions: a resumed run must use the same value.
    seed: batch b of the data is sampled with a seed derived from (seed, b) alone, so any process, a resumed run
        or a run with another number of processes produces the same completions. Also seeds the cap's draw.

    > Parameters that control the rewards and the selection

    reward_funcs: reward names (`temporal_rl.rewards.REWARDS`) or dotted import paths; each completion is scored by
        all of them (the reward matrix has one column per name).
    discrete_rewards: the 0/1 rewards whose pass rate decides (default `accuracy`: mcq and grounded_qa).
    continuous_rewards: the rewards whose standard deviation decides (default `iou`: grounding and grounded_qa).
    min_pass_rate, max_pass_rate: keep min_pass_rate < pass rate < max_pass_rate (exclusive; the default 0 and 1
        drop samples answered right by none or all of the K completions).
    pass_value: a completion passes a discrete reward when its reward is at least this.
    min_std: keep a continuous reward's population std strictly above this (the paper gives no value; 0.05 is
        our default: `report.json` and `report.png` show the distribution to choose from).
    min_mean, max_mean: optional inclusive band on a continuous reward's mean.
    max_kept: cap on the number of kept samples, drawn stratified by `stratify_by` (None: no cap).
    stratify_by: the fields whose combinations are the cap's strata (`task`, `source`).
    progress: show a progress bar (process 0).
    """

    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Base checkpoint: a Hub id or a directory with its processor."}
    )
    adapter: str | None = field(default=None, metadata={"help": "PEFT (LoRA) adapter directory to apply."})
    dtype: str = field(default="auto", metadata={"help": "auto (bf16 on GPU, fp32 on CPU), float32, bfloat16."})
    data_file: str | None = field(default=None, metadata={"help": "Canonical JSONL file to filter."})
    output_dir: str | None = field(default=None, metadata={"help": "Output directory (scored, filtered, report)."})
    max_samples: int | None = field(default=None, metadata={"help": "Filter only the first N valid records."})
    num_samples: int = field(default=8, metadata={"help": "K, completions sampled per sample (GRPO's G)."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature (paper: 1.0)."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling probability mass."})
    top_k: int = field(default=0, metadata={"help": "Top-k sampling (0 disables it)."})
    max_new_tokens: int = field(default=256, metadata={"help": "Maximum tokens per completion."})
    max_prompt_tokens: int = field(
        default=DEFAULT_MAX_PROMPT_TOKENS,
        metadata={"help": "Longest prompt in tokens, video included; a longer sample is skipped and listed."},
    )
    batch_size: int = field(default=8, metadata={"help": "Samples per generate call (fixes the batches)."})
    seed: int = field(default=0, metadata={"help": "Seed: batch b samples with a seed from (seed, b)."})
    reward_funcs: list[str] = field(
        default_factory=lambda: ["accuracy", "iou", "format"],
        metadata={"help": "Reward names (temporal_rl.rewards.REWARDS) or dotted import paths."},
    )
    discrete_rewards: list[str] = field(
        default_factory=lambda: ["accuracy"], metadata={"help": "Rewards decided by pass rate (0/1 rewards)."}
    )
    continuous_rewards: list[str] = field(
        default_factory=lambda: ["iou"], metadata={"help": "Rewards decided by standard deviation."}
    )
    min_pass_rate: float = field(default=0.0, metadata={"help": "Keep pass rates strictly above this."})
    max_pass_rate: float = field(default=1.0, metadata={"help": "Keep pass rates strictly below this."})
    pass_value: float = field(default=1.0, metadata={"help": "A completion passes when its reward is >= this."})
    min_std: float = field(default=0.05, metadata={"help": "Keep continuous-reward std strictly above this."})
    min_mean: float | None = field(default=None, metadata={"help": "Optional lower bound on the continuous mean."})
    max_mean: float | None = field(default=None, metadata={"help": "Optional upper bound on the continuous mean."})
    max_kept: int | None = field(default=None, metadata={"help": "Cap on kept samples (stratified draw)."})
    stratify_by: list[str] = field(
        default_factory=lambda: ["task", "source"], metadata={"help": "Strata of the cap: task and/or source."}
    )
    progress: bool = field(default=True, metadata={"help": "Show a progress bar."})

    def __post_init__(self):
        for name, hint in (
            ("model_name_or_path", "a Hub id or a model directory"),
            ("data_file", "a canonical JSONL file"),
            ("output_dir", "a directory for the outputs"),
        ):
            if not getattr(self, name):
                raise ValueError(f"FilterConfig: {name} is required ({hint}); set it in the YAML or as --{name}")
        self.validate_video()
        if self.dtype not in DTYPES:
            raise ValueError(f"FilterConfig: dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        self._validate_sampling()
        self._validate_rewards()
        try:
            self.selection_rule()
        except ValueError as err:
            raise ValueError(
                f"FilterConfig: {err}; fix min_pass_rate/max_pass_rate, min_std or min_mean/max_mean"
            ) from None
        if self.max_kept is not None and self.max_kept < 1:
            raise ValueError(f"FilterConfig: max_kept must be a positive count or null (no cap), got {self.max_kept}")
        bad = [name for name in self.stratify_by if name not in STRATA_FIELDS]
        if bad:
            raise ValueError(
                f"FilterConfig: stratify_by may name {' and '.join(STRATA_FIELDS)}, got {bad[0]!r}; "
                "use [] to draw the cap uniformly"
            )

    def _validate_sampling(self) -> None:
        if self.num_samples < 2:
            raise ValueError(
                f"FilterConfig: num_samples must be at least 2, got {self.num_samples}: a reward's spread needs "
                "several completions (use the GRPO group size, e.g. 8)"
            )
        if not self.temperature > 0:
            raise ValueError(f"FilterConfig: temperature must be > 0 (the filter samples), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"FilterConfig: top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"FilterConfig: top_k must be >= 0 (0 disables it), got {self.top_k}")
        for name in ("max_new_tokens", "max_prompt_tokens", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"FilterConfig: {name} must be a positive integer, got {getattr(self, name)}")
        if self.max_samples is not None and self.max_samples < 1:
            raise ValueError(f"FilterConfig: max_samples must be a positive count or null, got {self.max_samples}")

    def _validate_rewards(self) -> None:
        from temporal_rl.rewards import get_reward_funcs

        if not self.reward_funcs:
            raise ValueError("FilterConfig: reward_funcs is empty: name the rewards to score, e.g. [accuracy, iou]")
        if len(set(self.reward_funcs)) != len(self.reward_funcs):
            raise ValueError(f"FilterConfig: reward_funcs names a reward twice: {self.reward_funcs}")
        get_reward_funcs(self.reward_funcs)  # fails with the list of known names
        for kind, names in ((DISCRETE, self.discrete_rewards), (CONTINUOUS, self.continuous_rewards)):
            for name in names:
                if name not in self.reward_funcs:
                    raise ValueError(
                        f"FilterConfig: {kind}_rewards names {name!r}, which is not in reward_funcs "
                        f"({', '.join(self.reward_funcs)}): add it to reward_funcs or remove it from {kind}_rewards"
                    )
        both = sorted(set(self.discrete_rewards) & set(self.continuous_rewards))
        if both:
            raise ValueError(
                f"FilterConfig: {both[0]!r} is in both discrete_rewards and continuous_rewards: choose one rule"
            )
        if not self.discrete_rewards and not self.continuous_rewards:
            raise ValueError(
                "FilterConfig: discrete_rewards and continuous_rewards are both empty, so no sample could be kept: "
                "name at least one reward that decides (e.g. continuous_rewards: [iou])"
            )

    def selection_rule(self) -> SelectionRule:
        """The thresholds as `temporal_rl.filtering.selection.SelectionRule`."""
        return SelectionRule(
            min_pass_rate=self.min_pass_rate,
            max_pass_rate=self.max_pass_rate,
            pass_value=self.pass_value,
            min_std=self.min_std,
            min_mean=self.min_mean,
            max_mean=self.max_mean,
        )

    def reward_kinds(self) -> list[str | None]:
        """Per name of `reward_funcs`: "discrete", "continuous" or None (scored, decides nothing)."""
        return [
            DISCRETE if name in self.discrete_rewards else CONTINUOUS if name in self.continuous_rewards else None
            for name in self.reward_funcs
        ]

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
