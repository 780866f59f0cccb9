"""Variance-aware data selection (Temporal-RLT, arXiv 2506.01908): keep the samples that give GRPO a signal.

GRPO's advantage is a completion's reward minus its group's mean, so a prompt whose K sampled completions all earn
the same reward contributes no gradient. Before RL, the filter samples K completions per training sample with the
current model, scores them with the rewards, and keeps the samples whose rewards vary:

- a **discrete** reward (0/1, e.g. `accuracy` on mcq): keep pass rates strictly inside a band, by default
  0 < p < 1 (drop "too hard", 0/K, and "too easy", K/K);
- a **continuous** reward (e.g. `iou` on grounding): keep a reward standard deviation strictly above a threshold
  (default 0.05), optionally with the mean inside a band;
- a sample scored by several selection rewards (grounded_qa: `accuracy` and `iou`) must pass every rule;
- a sample that no selection reward scores (every value None, e.g. open_qa without `exact_match`) is dropped by
  the rule `no_rule`;
- an optional cap on the kept count draws a subset stratified by (task, source), proportional within rounding and
  deterministic given the seed.

Shapes: N samples, K completions per sample, R rewards. A reward that does not apply to a sample is NaN (the TRL
contract's None). Statistics ignore NaN entries.

**Standard deviation.** The population standard deviation (`ddof=0`) of a sample's K values: the spread of the
group as the sampler produced it. For a 0/1 reward with pass rate p it is exactly sqrt(p (1 - p)), whatever K, so
one threshold means the same at K = 4 and K = 16. (TRL's GRPO normalises advantages by `torch.std`, the sample
standard deviation, which is larger by sqrt(K / (K - 1)): 1.069 at K = 8.) Computed in float64.

This module owns the keep/drop decision and nothing else: no I/O, no model, no torch. The run that generates and
scores the completions is `temporal_rl.filtering.run`; its settings are `temporal_rl.filtering.config.FilterConfig`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

DISCRETE = "discrete"
CONTINUOUS = "continuous"
RULE_KINDS = (DISCRETE, CONTINUOUS)

KEPT = "kept"
NO_RULE = "no_rule"
CAP = "cap"
TOO_HARD, TOO_EASY = "too_hard", "too_easy"
LOW_STD, MEAN_BELOW, MEAN_ABOVE = "low_std", "mean_below", "mean_above"


# ---------------------------------------------------------------------------------------------------------------
# Statistics


@dataclass(frozen=True)
class GroupStatistics:
    """Per-sample statistics of one reward over its K completions.

    Attributes:
        count: (N,) int, completions with a value (not NaN).
        mean: (N,) float64, NaN where `count` is 0.
        std: (N,) float64, population standard deviation (ddof=0), NaN where `count` is 0.
        pass_rate: (N,) float64, fraction of the valued completions with reward >= `pass_value`, NaN where
            `count` is 0.
    """

    count: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    pass_rate: np.ndarray


def group_statistics(rewards: np.ndarray | Sequence, pass_value: float = 1.0) -> GroupStatistics:
    """Mean, population std and pass rate of each row of a reward table, NaN entries ignored.

    Args:
        rewards: (N, K) rewards of N samples' K completions; NaN (or None) where the reward does not apply.
        pass_value: a completion passes when its reward is at least this (1.0: a correct answer).

    Returns:
        `GroupStatistics` with (N,) arrays.

    Example:
        ```python
        >>> s = group_statistics([[1, 0, 1, 0], [0.2, 0.2, 0.2, 0.2], [None, None, None, None]])
        >>> s.count.tolist(), s.mean.tolist()[:2], s.std.tolist()[:2], s.pass_rate.tolist()[:2]
        ([4, 4, 0], [0.5, 0.2], [0.5, 0.0], [0.5, 0.0])
        ```
    """
    table = np.asarray(rewards, dtype=np.float64)
    if table.ndim != 2:
        raise ValueError(f"rewards must be an (N, K) table, got shape {table.shape}")
    valued = ~np.isnan(table)
    count = valued.sum(axis=1)
    safe = np.where(valued, table, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = safe.sum(axis=1) / count
        deviations = np.where(valued, table - mean[:, None], 0.0)
        std = np.sqrt((deviations**2).sum(axis=1) / count)
        pass_rate = (valued & (safe >= pass_value)).sum(axis=1) / count
    empty = count == 0
    for values in (mean, std, pass_rate):
        values[empty] = np.nan
    return GroupStatistics(count=count, mean=mean, std=std, pass_rate=pass_rate)


# ---------------------------------------------------------------------------------------------------------------
# Rules


def pass_rate_band(pass_rate: np.ndarray | Sequence, min_pass_rate: float = 0.0, max_pass_rate: float = 1.0):
    """Which samples a discrete rule keeps: min_pass_rate < p < max_pass_rate (both bounds exclusive).

    Args:
        pass_rate: (N,) pass rates; NaN (no value) is never kept.

    Returns:
        (N,) bool.

    Example:
        ```python
        >>> pass_rate_band([0.0, 0.125, 0.875, 1.0]).tolist()
        [False, True, True, False]
        ```
    """
    rates = np.asarray(pass_rate, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return (rates > min_pass_rate) & (rates < max_pass_rate)


def std_threshold(
    std: np.ndarray | Sequence,
    mean: np.ndarray | Sequence | None = None,
    min_std: float = 0.05,
    min_mean: float | None = None,
    max_mean: float | None = None,
):
    """Which samples a continuous rule keeps: std > min_std and, when bounds are given, min_mean <= mean <= max_mean.

    Args:
        std: (N,) population standard deviations; NaN is never kept.
        mean: (N,) means (needed only with a mean bound).
        min_std: the std must be strictly above it (0 keeps any group that varies at all).
        min_mean, max_mean: optional inclusive band on the mean.

    Returns:
        (N,) bool.

    Example:
        ```python
        >>> std_threshold([0.0, 0.05, 0.2, 0.3], mean=[0.5, 0.5, 0.5, 0.9], min_std=0.05, max_mean=0.8).tolist()
        [False, False, True, False]
        ```
    """
    stds = np.asarray(std, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        keep = stds > min_std
        if min_mean is not None or max_mean is not None:
            if mean is None:
                raise ValueError("std_threshold: a mean bound needs the means")
            means = np.asarray(mean, dtype=np.float64)
            if min_mean is not None:
                keep &= means >= min_mean
            if max_mean is not None:
                keep &= means <= max_mean
    return keep


@dataclass(frozen=True)
class SelectionRule:
    """The thresholds of the keep/drop decision (see the module docstring).

    Attributes:
        min_pass_rate, max_pass_rate: the exclusive pass-rate band of discrete rewards.
        pass_value: a completion passes a discrete reward when its value is at least this.
        min_std: continuous rewards need a population std strictly above this.
        min_mean, max_mean: optional inclusive band on the mean of continuous rewards.
    """

    min_pass_rate: float = 0.0
    max_pass_rate: float = 1.0
    pass_value: float = 1.0
    min_std: float = 0.05
    min_mean: float | None = None
    max_mean: float | None = None

    def __post_init__(self):
        if not 0.0 <= self.min_pass_rate < self.max_pass_rate <= 1.0:
            raise ValueError(
                f"need 0 <= min_pass_rate < max_pass_rate <= 1, got {self.min_pass_rate} and {self.max_pass_rate}"
            )
        if not self.min_std >= 0.0:
            raise ValueError(f"min_std must be >= 0, got {self.min_std}")
        if self.min_mean is not None and self.max_mean is not None and self.min_mean > self.max_mean:
            raise ValueError(f"min_mean {self.min_mean} is above max_mean {self.max_mean}")


@dataclass(frozen=True)
class Selection:
    """The decision for N samples.

    Attributes:
        keep: (N,) bool.
        rule: N strings, the rule that decided: `kept`, `no_rule`, or `<reward>:<reason>` for the first failed
            check in reward order (reasons: too_hard, too_easy, low_std, mean_below, mean_above).
        failed: N lists of every failed check (`<reward>:<reason>`), in reward order; one reason per reward (for a
            continuous reward, low_std before the mean band).
        stats: R `GroupStatistics`, one per reward (every reward, used for selection or not).
    """

    keep: np.ndarray
    rule: list[str]
    failed: list[list[str]]
    stats: list[GroupStatistics]


def select_by_reward_variance(
    rewards: np.ndarray | Sequence,
    names: Sequence[str],
    kinds: Sequence[str | None],
    rule: SelectionRule = SelectionRule(),
) -> Selection:
    """The keep/drop decision for N samples from their (N, K, R) reward tensor.

    Every reward r with `kinds[r]` set is a check on the samples it scores (count > 0): a discrete check keeps the
    pass rate inside the band, a continuous one keeps the std above the threshold (and the mean inside its band).
    A sample is kept when it is scored by at least one check and passes all of its checks, so a grounded_qa sample
    (scored by a discrete `accuracy` and a continuous `iou`) must pass both. Rewards whose kind is None (`format`)
    get statistics but decide nothing.

    Args:
        rewards: (N, K, R) float rewards, NaN where a reward does not apply.
        names: R reward names (they name the rules).
        kinds: R entries: "discrete", "continuous" or None.
        rule: the thresholds.

    Returns:
        `Selection`.

    Example:
        ```python
        >>> r = [[[1.0, 0.3], [0.0, 0.1]], [[1.0, 0.5], [1.0, 0.5]]]  # 2 samples, K=2, rewards (accuracy, iou)
        >>> s = select_by_reward_variance(r, ["accuracy", "iou"], ["discrete", "continuous"])
        >>> s.keep.tolist(), s.rule, s.failed
        ([True, False], ['kept', 'accuracy:too_easy'], [[], ['accuracy:too_easy', 'iou:low_std']])
        ```
    """
    tensor = np.asarray(rewards, dtype=np.float64)
    if tensor.ndim != 3:
        raise ValueError(f"rewards must be an (N, K, R) tensor, got shape {tensor.shape}")
    n, _, r = tensor.shape
    if len(names) != r or len(kinds) != r:
        raise ValueError(f"{r} rewards in the tensor but {len(names)} names and {len(kinds)} kinds")
    unknown = [kind for kind in kinds if kind is not None and kind not in RULE_KINDS]
    if unknown:
        raise ValueError(f"unknown rule kind {unknown[0]!r}; expected one of {', '.join(RULE_KINDS)} or None")

    stats = [group_statistics(tensor[:, :, j], rule.pass_value) for j in range(r)]
    checked = np.zeros(n, dtype=bool)
    failed: list[list[str]] = [[] for _ in range(n)]
    for name, kind, stat in zip(names, kinds, stats, strict=True):
        if kind is None:
            continue
        scored = stat.count > 0
        checked |= scored
        reasons = np.full(n, "", dtype=object)
        with np.errstate(invalid="ignore"):
            if kind == DISCRETE:
                reasons[stat.pass_rate <= rule.min_pass_rate] = TOO_HARD
                reasons[stat.pass_rate >= rule.max_pass_rate] = TOO_EASY
            else:
                if rule.max_mean is not None:
                    reasons[stat.mean > rule.max_mean] = MEAN_ABOVE
                if rule.min_mean is not None:
                    reasons[stat.mean < rule.min_mean] = MEAN_BELOW
                reasons[stat.std <= rule.min_std] = LOW_STD  # the std is the first reason a group is dropped
        for i in np.flatnonzero(scored & (reasons != "")):
            failed[i].append(f"{name}:{reasons[i]}")

    keep = checked & np.array([not f for f in failed], dtype=bool)
    decided = [KEPT if k else (f[0] if f else NO_RULE) for k, f in zip(keep, failed, strict=True)]
    return Selection(keep=keep, rule=decided, failed=failed, stats=stats)


# ---------------------------------------------------------------------------------------------------------------
# Cap with stratification


def proportional_quotas(sizes: Mapping[Hashable, int], total: int) -> dict[Hashable, int]:
    """Split `total` over strata in proportion to their sizes, by largest remainder (Hamilton's method).

    Each stratum gets floor or ceil of its exact share size * total / sum(sizes); the quotas sum to `total`.
    Ties in the remainder go to the stratum that sorts first (by `repr` of its key), so the split is deterministic.

    Args:
        sizes: stratum -> number of candidates (>= 0).
        total: how many to keep, 0 <= total <= sum(sizes).

    Example:
        ```python
        >>> proportional_quotas({"a": 5, "b": 3, "c": 2}, 5)  # shares 2.5, 1.5, 1.0
        {'a': 3, 'b': 1, 'c': 1}
        ```
    """
    population = sum(sizes.values())
    if not 0 <= total <= population:
        raise ValueError(f"cannot keep {total} of {population} candidates")
    if population == 0:
        return dict.fromkeys(sizes, 0)
    quotas = {key: size * total // population for key, size in sizes.items()}
    remainders = {key: size * total % population for key, size in sizes.items()}
    left = total - sum(quotas.values())
    for key in sorted(sizes, key=lambda k: (-remainders[k], repr(k)))[:left]:
        quotas[key] += 1
    return quotas


def stratified_cap(
    keep: np.ndarray | Sequence[bool], strata: Sequence[Hashable], max_kept: int | None, seed: int = 0
) -> np.ndarray:
    """Cap the number of kept samples at `max_kept`, keeping each stratum's share (within rounding).

    When more than `max_kept` samples are kept, each stratum (e.g. its (task, source) pair) keeps its
    `proportional_quotas` share, drawn uniformly at random within the stratum with a generator seeded by `seed`
    (strata visited in sorted order): the same inputs and seed give the same subset.

    Args:
        keep: (N,) bool, the samples the rules kept.
        strata: N hashable stratum keys (only those of kept samples matter).
        max_kept: the cap; None keeps everything.
        seed: the draw's seed.

    Returns:
        (N,) bool, a subset of `keep` with at most `max_kept` True entries.

    Example:
        ```python
        >>> stratified_cap([True] * 4 + [False], ["a", "a", "b", "b", "b"], max_kept=2).tolist()
        [True, False, True, False, False]
        ```
    """
    mask = np.asarray(keep, dtype=bool).copy()
    if len(strata) != len(mask):
        raise ValueError(f"{len(mask)} keep flags but {len(strata)} strata")
    if max_kept is None or mask.sum() <= max_kept:
        return mask
    if max_kept < 0:
        raise ValueError(f"max_kept must be >= 0, got {max_kept}")
    members: dict[Hashable, list[int]] = {}
    for i in np.flatnonzero(mask):
        members.setdefault(strata[i], []).append(int(i))
    quotas = proportional_quotas({key: len(ids) for key, ids in members.items()}, max_kept)
    rng = np.random.default_rng(seed)
    capped = np.zeros_like(mask)
    for key in sorted(members, key=repr):
        ids = np.asarray(members[key])
        chosen = rng.permutation(len(ids))[: quotas[key]]
        capped[ids[chosen]] = True
    return capped
