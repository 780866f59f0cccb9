"""The variance-aware selection maths (`temporal_rl.filtering.selection`) on hand-worked tables, plus properties of
the cap.

Every expected value below is worked out by hand in the comments (K = 4 unless said otherwise).
"""

import math
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from temporal_rl.filtering.selection import (
    SelectionRule,
    group_statistics,
    pass_rate_band,
    proportional_quotas,
    select_by_reward_variance,
    std_threshold,
    stratified_cap,
)

NAN = float("nan")


# ---------------------------------------------------------------------------------------------------------------
# Statistics


def test_group_statistics_on_a_hand_worked_table():
    table = [
        [1, 0, 0, 0],  # mean 1/4; std sqrt(1/4 * 3/4) = 0.4330127; 1 of 4 pass
        [1, 1, 1, 1],  # mean 1, std 0, all pass
        [0.2, 0.4, 0.6, 0.8],  # mean 0.5; deviations -.3 -.1 .1 .3 -> mean square .05 -> std 0.2236068; none pass
        [0.5, None, 0.5, None],  # two values: mean .5, std 0, count 2
        [None, None, None, None],  # not applicable: count 0, everything NaN
    ]
    stats = group_statistics(table)
    assert stats.count.tolist() == [4, 4, 4, 2, 0]
    np.testing.assert_allclose(stats.mean[:4], [0.25, 1.0, 0.5, 0.5])
    np.testing.assert_allclose(stats.std[:4], [math.sqrt(0.1875), 0.0, math.sqrt(0.05), 0.0])
    np.testing.assert_allclose(stats.pass_rate[:4], [0.25, 1.0, 0.0, 0.0])
    assert all(math.isnan(values[4]) for values in (stats.mean, stats.std, stats.pass_rate))


def test_pass_value_sets_what_counts_as_a_pass():
    stats = group_statistics([[0.5, 0.75, 1.0, 0.0]], pass_value=0.75)
    assert stats.pass_rate.tolist() == [0.5]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.one_of(st.none(), st.floats(-10, 10, allow_nan=False)), min_size=1, max_size=12),
        min_size=1,
        max_size=6,
    ).filter(lambda rows: len({len(r) for r in rows}) == 1)
)
def test_std_is_the_float64_population_std(rows):
    """Reference: `statistics.pstdev` (exact rational arithmetic) over each row's non-None values."""
    stats = group_statistics(rows)
    for row, std, mean, count in zip(rows, stats.std, stats.mean, stats.count, strict=True):
        values = [v for v in row if v is not None]
        assert count == len(values)
        if not values:
            assert math.isnan(std) and math.isnan(mean)
            continue
        assert std == pytest.approx(statistics.pstdev(values), rel=1e-9, abs=1e-12)
        assert mean == pytest.approx(statistics.fmean(values), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("k", [2, 4, 8, 16])
def test_population_std_of_a_binary_reward_is_sqrt_p_one_minus_p_whatever_k(k):
    """The reason for ddof=0: one threshold means the same pass-rate spread at any K."""
    rows = [[1.0] * j + [0.0] * (k - j) for j in range(k + 1)]
    stats = group_statistics(rows)
    p = np.arange(k + 1) / k
    np.testing.assert_allclose(stats.std, np.sqrt(p * (1 - p)), atol=1e-15)
    sample_std = np.asarray(rows).std(axis=1, ddof=1)  # TRL's GRPO normalises by this one
    np.testing.assert_allclose(sample_std, stats.std * math.sqrt(k / (k - 1)), atol=1e-15)


# ---------------------------------------------------------------------------------------------------------------
# Rules


@pytest.mark.parametrize(
    ("low", "high", "rates", "expected"),
    [
        (0.0, 1.0, [0.0, 0.125, 0.5, 0.875, 1.0, NAN], [False, True, True, True, False, False]),
        (0.2, 0.8, [0.2, 0.25, 0.75, 0.8], [False, True, True, False]),  # both bounds exclusive
    ],
)
def test_pass_rate_band(low, high, rates, expected):
    assert pass_rate_band(rates, low, high).tolist() == expected


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (dict(min_std=0.05), [False, False, True, True, False]),  # std strictly above; NaN never kept
        (dict(min_std=0.0), [False, True, True, True, False]),  # 0: any group that varies
        (dict(min_std=0.05, min_mean=0.3), [False, False, False, True, False]),  # mean 0.25 < 0.3
        (dict(min_std=0.05, max_mean=0.25), [False, False, True, False, False]),  # inclusive bound
    ],
)
def test_std_threshold(kwargs, expected):
    std = [0.0, 0.05, 0.2, 0.3, NAN]
    mean = [0.5, 0.5, 0.25, 0.9, NAN]
    assert std_threshold(std, mean, **kwargs).tolist() == expected


NAMES = ["accuracy", "iou", "format"]
KINDS = ["discrete", "continuous", None]
N_ = None

# (task, accuracy x4, iou x4, format x4) -> (keep, rule, failed)
MIXED_TABLE = [
    # grounding: iou [0, .5, 0, .5] has std .25 > .05 -> kept; format varies but decides nothing
    ("grounding", [N_] * 4, [0, 0.5, 0, 0.5], [1, 0, 1, 1], True, "kept", []),
    # grounding: constant iou -> std 0
    ("grounding", [N_] * 4, [0.3] * 4, [1, 0, 1, 0], False, "iou:low_std", ["iou:low_std"]),
    # grounding: iou [.1, .1, .1, .2]: mean .125, std sqrt(3/4 * 1/4) * .1 = .0433 <= .05
    ("grounding", [N_] * 4, [0.1, 0.1, 0.1, 0.2], [0] * 4, False, "iou:low_std", ["iou:low_std"]),
    # mcq: 1 of 4 right -> p = .25 inside (0, 1)
    ("mcq", [1, 0, 0, 0], [N_] * 4, [1] * 4, True, "kept", []),
    ("mcq", [1, 1, 1, 1], [N_] * 4, [1] * 4, False, "accuracy:too_easy", ["accuracy:too_easy"]),
    ("mcq", [0, 0, 0, 0], [N_] * 4, [1] * 4, False, "accuracy:too_hard", ["accuracy:too_hard"]),
    # grounded_qa: both rules must pass
    ("grounded_qa", [1, 0, 0, 0], [0, 0.5, 0, 0.5], [1] * 4, True, "kept", []),
    ("grounded_qa", [1, 0, 1, 0], [0.1] * 4, [1] * 4, False, "iou:low_std", ["iou:low_std"]),
    ("grounded_qa", [1, 1, 1, 1], [0, 0.5, 0, 0.5], [1] * 4, False, "accuracy:too_easy", ["accuracy:too_easy"]),
    (
        "grounded_qa",
        [0, 0, 0, 0],
        [0.2] * 4,
        [1] * 4,
        False,
        "accuracy:too_hard",  # the first failed check in reward order decides; both are listed
        ["accuracy:too_hard", "iou:low_std"],
    ),
    # open_qa: no selection reward scores it
    ("open_qa", [N_] * 4, [N_] * 4, [N_] * 4, False, "no_rule", []),
]


def _tensor(rows):
    """(N, K, R) from per-sample reward columns."""
    return np.array(
        [[[NAN if v is None else v for v in triple] for triple in zip(*row[1:4], strict=True)] for row in rows],
        dtype=np.float64,
    )


def test_mixed_table_each_task_gets_its_rule():
    selection = select_by_reward_variance(_tensor(MIXED_TABLE), NAMES, KINDS)
    assert selection.keep.tolist() == [row[4] for row in MIXED_TABLE]
    assert selection.rule == [row[5] for row in MIXED_TABLE]
    assert selection.failed == [row[6] for row in MIXED_TABLE]
    # statistics come for every reward, the ones that decide nothing included
    assert selection.stats[2].mean[0] == 0.75 and selection.stats[1].count[3] == 0


def test_mixed_table_with_a_band_and_a_mean_bound():
    rule = SelectionRule(min_pass_rate=0.25, max_pass_rate=1.0, min_std=0.05, min_mean=0.3)
    selection = select_by_reward_variance(_tensor(MIXED_TABLE), NAMES, KINDS, rule)
    # grounding [0, .5, 0, .5]: std .25 passes but mean .25 < .3; mcq p = .25 is now on the (exclusive) bound
    assert selection.rule[0] == "iou:mean_below"
    assert selection.rule[3] == "accuracy:too_hard"
    # grounded_qa p = .25 fails the band and its iou mean .25 fails the bound: both listed
    assert selection.failed[6] == ["accuracy:too_hard", "iou:mean_below"]
    assert selection.rule == [
        "iou:mean_below",
        "iou:low_std",
        "iou:low_std",
        "accuracy:too_hard",
        "accuracy:too_easy",
        "accuracy:too_hard",
        "accuracy:too_hard",
        "iou:low_std",  # p = .5 passes the band, the constant iou does not
        "accuracy:too_easy",
        "accuracy:too_hard",
        "no_rule",
    ]
    assert not selection.keep.any()


def test_selection_rejects_bad_shapes_and_rules():
    with pytest.raises(ValueError, match=r"\(N, K, R\)"):
        select_by_reward_variance(np.zeros((2, 4)), ["iou"], ["continuous"])
    with pytest.raises(ValueError, match="1 rewards in the tensor but 2 names"):
        select_by_reward_variance(np.zeros((2, 4, 1)), ["iou", "x"], ["continuous", None])
    with pytest.raises(ValueError, match="unknown rule kind 'variance'"):
        select_by_reward_variance(np.zeros((2, 4, 1)), ["iou"], ["variance"])
    with pytest.raises(ValueError, match="min_pass_rate < max_pass_rate"):
        SelectionRule(min_pass_rate=0.5, max_pass_rate=0.5)
    with pytest.raises(ValueError, match="min_mean 0.6 is above max_mean 0.4"):
        SelectionRule(min_mean=0.6, max_mean=0.4)


# ---------------------------------------------------------------------------------------------------------------
# Cap with stratification


@pytest.mark.parametrize(
    ("sizes", "total", "expected"),
    [
        # shares 2.5, 1.5, 1.0: floors 2 + 1 + 1 = 4, one left; a and b tie on remainder .5, a sorts first
        ({"a": 5, "b": 3, "c": 2}, 5, {"a": 3, "b": 1, "c": 1}),
        # shares 2.1, 0.6, 0.3: floors 2 + 0 + 0, the one left goes to the largest remainder (b)
        ({"a": 7, "b": 2, "c": 1}, 3, {"a": 2, "b": 1, "c": 0}),
        ({"a": 4, "b": 4}, 8, {"a": 4, "b": 4}),
        ({"a": 4, "b": 0}, 0, {"a": 0, "b": 0}),
    ],
)
def test_proportional_quotas(sizes, total, expected):
    assert proportional_quotas(sizes, total) == expected


def test_stratified_cap_on_a_hand_worked_case():
    # kept: 6 grounding/charades, 3 mcq/synth, 1 grounding/synth (and 2 dropped); cap 5 -> shares 3, 1.5, .5
    strata = [("grounding", "charades")] * 6 + [("mcq", "synth")] * 3 + [("grounding", "synth")] + [("mcq", "x")] * 2
    keep = [True] * 10 + [False] * 2
    capped = stratified_cap(keep, strata, max_kept=5, seed=0)
    counts = {key: sum(c for c, s in zip(capped, strata, strict=True) if s == key) for key in set(strata)}
    # floors 3, 1, 0 = 4; remainders .0, .5, .5: the tie goes to ('grounding', 'synth'), which sorts first
    assert counts == {("grounding", "charades"): 3, ("mcq", "synth"): 1, ("grounding", "synth"): 1, ("mcq", "x"): 0}
    assert not capped[10:].any()
    assert stratified_cap(keep, strata, 5, seed=0).tolist() == capped.tolist()  # deterministic given the seed
    assert stratified_cap(keep, strata, None).tolist() == keep
    assert stratified_cap(keep, strata, 10).tolist() == keep


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.sampled_from(["a", "b", "c", "d"])), min_size=1, max_size=60),
    st.integers(0, 70),
    st.integers(0, 2**31),
)
def test_stratified_cap_never_exceeds_and_keeps_proportions(pairs, cap, seed):
    keep = [k for k, _ in pairs]
    strata = [s for _, s in pairs]
    capped = stratified_cap(keep, strata, cap, seed)
    kept = sum(keep)
    assert capped.sum() == min(cap, kept)  # never above the cap; nothing lost below it
    assert not (capped & ~np.asarray(keep)).any()  # a subset of what the rules kept
    if kept > cap:
        for stratum in set(strata):
            size = sum(1 for k, s in pairs if k and s == stratum)
            got = sum(1 for c, s in zip(capped, strata, strict=True) if c and s == stratum)
            share = size * cap / kept
            assert math.floor(share) <= got <= math.ceil(share)  # proportional within rounding
    assert stratified_cap(keep, strata, cap, seed).tolist() == capped.tolist()
