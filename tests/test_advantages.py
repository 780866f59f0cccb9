"""REINFORCE++ and GRPO advantages against plain-Python float64 references, and across 2 gloo processes.

The references below are loops over lists, written from the formulas in the module docstring and independent of
the vectorised code: token rewards, returns, whitening, group baselines. The inputs put padding in the middle of the
batch (short rows between long ones) with garbage (NaN, inf, 1e30) in the padded positions, which must not matter.
"""

import math
import random
import socket
import time
from datetime import timedelta

import pytest
import torch

from temporal_rl.advantages import (
    ADVANTAGE_ESTIMATORS,
    discounted_returns,
    get_advantage_estimator,
    group_baseline,
    group_normalized_advantages,
    kl_penalized_token_rewards,
    masked_moments,
    reinforce_pp_advantages,
    whiten,
)

# ----------------------------------------------------------------------------------------------------------------
# References: plain Python over lists, float64


def ref_token_rewards(rewards, logp_old, logp_ref, mask, beta):
    out = []
    for i, row_mask in enumerate(mask):
        valid = [t for t, m in enumerate(row_mask) if m]
        last = valid[-1] if valid else None
        row = []
        for t, m in enumerate(row_mask):
            if not m:
                row.append(0.0)
                continue
            value = -beta * (logp_old[i][t] - logp_ref[i][t])
            if t == last:
                value += rewards[i]
            row.append(value)
        out.append(row)
    return out


def ref_returns(token_rewards, mask, gamma):
    out = []
    for i, row in enumerate(token_rewards):
        returns = []
        for t in range(len(row)):
            if not mask[i][t]:
                returns.append(0.0)
                continue
            returns.append(sum(gamma ** (s - t) * row[s] for s in range(t, len(row)) if mask[i][s]))
        out.append(returns)
    return out


def ref_whiten(values, mask, unbiased=False, eps=1e-8):
    flat = [v for row, row_mask in zip(values, mask, strict=True) for v, m in zip(row, row_mask, strict=True) if m]
    n = len(flat)
    mean = sum(flat) / n
    squares = sum((v - mean) ** 2 for v in flat)
    if unbiased:
        var = squares / (n - 1) if n > 1 else 0.0
    else:
        var = squares / n
    std = math.sqrt(var)
    return [
        [(v - mean) / (std + eps) if m else 0.0 for v, m in zip(row, row_mask, strict=True)]
        for row, row_mask in zip(values, mask, strict=True)
    ]


def ref_group_centred(rewards, group_size):
    out = []
    for start in range(0, len(rewards), group_size):
        group = rewards[start : start + group_size]
        mean = sum(group) / len(group)
        out.extend(r - mean for r in group)
    return out


def ref_reinforce_pp(rewards, logp_old, logp_ref, mask, beta, gamma, baseline_group=None):
    if baseline_group is not None:
        rewards = ref_group_centred(rewards, baseline_group)
    token_rewards = ref_token_rewards(rewards, logp_old, logp_ref, mask, beta)
    return ref_whiten(ref_returns(token_rewards, mask, gamma), mask)


def ref_unbiased_std(values):
    values = [v for v in values if not math.isnan(v)]
    if len(values) < 2:
        return float("nan")
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def ref_grpo(rewards, group_size, scale, eps=1e-4):
    out = []
    batch_std = ref_unbiased_std(rewards)
    for start in range(0, len(rewards), group_size):
        group = rewards[start : start + group_size]
        present = [r for r in group if not math.isnan(r)]
        mean = sum(present) / len(present) if present else float("nan")
        std = ref_unbiased_std(group) if group_size > 1 else 0.0
        for r in group:
            advantage = r - mean
            if scale == "group":
                advantage /= std + eps
            elif scale == "batch":
                advantage /= batch_std + eps
            out.append(0.0 if math.isnan(advantage) else advantage)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Inputs

# Rows of lengths 5, 2, 4, 1, 5, 3: short rows sit between long ones.
MASK = [
    [1, 1, 1, 1, 1],
    [1, 1, 0, 0, 0],
    [1, 1, 1, 1, 0],
    [1, 0, 0, 0, 0],
    [1, 1, 1, 1, 1],
    [1, 1, 1, 0, 0],
]
REWARDS = [4.2, 0.2, 2.0, 1.2, 0.0, 3.2]
GARBAGE = [float("nan"), float("inf"), -float("inf"), 1e30]


def make_logps(mask, seed):
    rng = random.Random(seed)
    rows = []
    for row_mask in mask:
        row = []
        for t, m in enumerate(row_mask):
            row.append(-rng.uniform(0.01, 4.0) if m else GARBAGE[(seed + t) % len(GARBAGE)])
        rows.append(row)
    return rows


LOGP_OLD = make_logps(MASK, 1)
LOGP_REF = make_logps(MASK, 2)


def t64(values):
    return torch.tensor(values, dtype=torch.float64)


def assert_close(actual: torch.Tensor, expected, tol=1e-12):
    assert actual.dtype == torch.float64
    expected = t64(expected)
    assert actual.shape == expected.shape
    assert torch.isfinite(actual).all()
    assert torch.allclose(actual, expected, rtol=tol, atol=tol), (actual, expected)


# ----------------------------------------------------------------------------------------------------------------
# Token rewards, returns, whitening


@pytest.mark.parametrize("beta", [0.0, 1e-3, 0.1])
def test_kl_penalized_token_rewards(beta):
    actual = kl_penalized_token_rewards(t64(REWARDS), t64(LOGP_OLD), t64(LOGP_REF), torch.tensor(MASK), beta)
    assert_close(actual, ref_token_rewards(REWARDS, LOGP_OLD, LOGP_REF, MASK, beta))


def test_token_rewards_worked_by_hand():
    # R = 1 on the last valid token (t = 1); k1 = old - ref = [0.5, -1.0]; beta 0.1 -> [-0.05, +0.1 + 1].
    actual = kl_penalized_token_rewards(
        t64([1.0]), t64([[-1.0, -2.0, -7.0]]), t64([[-1.5, -1.0, 0.0]]), torch.tensor([[True, True, False]]), 0.1
    )
    assert_close(actual, [[-0.05, 1.1, 0.0]])


def test_token_rewards_of_a_row_without_tokens_are_zero():
    actual = kl_penalized_token_rewards(
        t64([5.0, 1.0]), t64([[0.0, 0.0]] * 2), t64([[0.0, 0.0]] * 2), t64([[0, 0], [1, 0]]), 0.1
    )
    assert_close(actual, [[0.0, 0.0], [1.0, 0.0]])


@pytest.mark.parametrize("gamma", [1.0, 0.9, 0.5, 0.0])
def test_discounted_returns(gamma):
    token_rewards = ref_token_rewards(REWARDS, LOGP_OLD, LOGP_REF, MASK, 0.05)
    garbage = [
        [r if m else GARBAGE[t % 4] for t, (r, m) in enumerate(zip(row, row_mask, strict=True))]
        for row, row_mask in zip(token_rewards, MASK, strict=True)
    ]
    actual = discounted_returns(t64(garbage), torch.tensor(MASK), gamma)
    assert_close(actual, ref_returns(token_rewards, MASK, gamma))


def test_discounted_returns_worked_by_hand():
    # gamma 0.5: G_2 = 3, G_1 = 2 + 0.5 * 3 = 3.5, G_0 = 1 + 0.5 * 3.5 = 2.75; the padded 100 counts for nothing.
    actual = discounted_returns(t64([[1.0, 2.0, 3.0, 100.0]]), torch.tensor([[1, 1, 1, 0]]), 0.5)
    assert_close(actual, [[2.75, 3.5, 3.0, 0.0]])


def test_a_hole_in_the_mask_passes_the_return_through():
    # Position 1 is masked: it contributes nothing and gets 0, and the discount counts positions: G_0 = 1 + 0.25 * 4.
    actual = discounted_returns(t64([[1.0, 50.0, 4.0]]), torch.tensor([[1, 0, 1]]), 0.5)
    assert_close(actual, [[2.0, 0.0, 4.0]])


@pytest.mark.parametrize("unbiased", [False, True])
def test_whiten(unbiased):
    values = make_logps(MASK, 3)
    actual = whiten(t64(values), torch.tensor(MASK), unbiased=unbiased)
    assert_close(actual, ref_whiten(values, MASK, unbiased=unbiased))
    valid = torch.tensor(MASK, dtype=torch.bool)
    assert abs(actual[valid].mean().item()) < 1e-12
    std = actual[valid].std(unbiased=unbiased).item()
    assert std == pytest.approx(1.0, abs=1e-6)


def test_whiten_worked_by_hand():
    # Valid values 1, 2, 3, 6: mean 3, squared deviations 4 + 1 + 0 + 9 = 14, biased var 3.5, unbiased 14/3.
    values, mask = t64([[1.0, 2.0, -9.0], [3.0, 6.0, 7.0]]), torch.tensor([[1, 1, 0], [1, 1, 0]])
    std = math.sqrt(3.5) + 1e-8
    assert_close(whiten(values, mask), [[-2 / std, -1 / std, 0.0], [0.0, 3 / std, 0.0]])
    std = math.sqrt(14 / 3) + 1e-8
    assert_close(whiten(values, mask, unbiased=True), [[-2 / std, -1 / std, 0.0], [0.0, 3 / std, 0.0]])


def test_all_equal_values_whiten_to_zero():
    mask = torch.tensor(MASK)
    assert_close(whiten(torch.full((6, 5), 2.5, dtype=torch.float64), mask), [[0.0] * 5] * 6)
    # All-equal rewards with beta = 0: every token's return is R, so every advantage is 0.
    advantages = reinforce_pp_advantages(t64([1.0] * 6), t64(LOGP_OLD), t64(LOGP_REF), mask, beta=0.0)
    assert_close(advantages, [[0.0] * 5] * 6)


@pytest.mark.parametrize("unbiased", [False, True])
def test_one_valid_token(unbiased):
    mask = torch.zeros(3, 4, dtype=torch.bool)
    mask[1, 2] = True
    values = torch.full((3, 4), float("nan"), dtype=torch.float64)
    values[1, 2] = 7.0
    assert_close(whiten(values, mask, unbiased=unbiased), [[0.0] * 4] * 3)
    mean, var, count = masked_moments(values, mask, unbiased=unbiased)
    assert (mean.item(), var.item(), count.item()) == (7.0, 0.0, 1.0)
    advantages = reinforce_pp_advantages(t64([0.0, 3.0, 1.0]), values, values, mask, beta=0.1)
    assert_close(advantages, [[0.0] * 4] * 3)


def test_masks_may_be_bool_int_or_float():
    values = t64(make_logps(MASK, 4))
    expected = whiten(values, torch.tensor(MASK, dtype=torch.bool))
    for dtype in (torch.int64, torch.float32):
        assert torch.equal(whiten(values, torch.tensor(MASK, dtype=dtype)), expected)


def test_low_precision_inputs_keep_their_dtype():
    args = (t64(REWARDS), t64(LOGP_OLD), t64(LOGP_REF), torch.tensor(MASK))
    expected = reinforce_pp_advantages(*args, beta=0.01)
    for dtype in (torch.float32, torch.bfloat16):
        low = reinforce_pp_advantages(args[0].to(dtype), args[1].to(dtype), args[2].to(dtype), args[3], beta=0.01)
        assert low.dtype == dtype
        assert torch.allclose(low.double(), expected, atol=0.05 if dtype == torch.bfloat16 else 1e-5)


# ----------------------------------------------------------------------------------------------------------------
# REINFORCE++ variants and GRPO


@pytest.mark.parametrize(("beta", "gamma"), [(1e-3, 1.0), (0.0, 1.0), (0.05, 0.9), (0.0, 0.5)])
def test_reinforce_pp(beta, gamma):
    actual = reinforce_pp_advantages(
        t64(REWARDS), t64(LOGP_OLD), t64(LOGP_REF), torch.tensor(MASK), beta=beta, gamma=gamma
    )
    assert_close(actual, ref_reinforce_pp(REWARDS, LOGP_OLD, LOGP_REF, MASK, beta, gamma))


@pytest.mark.parametrize("group_size", [1, 2, 3, 6])
def test_reinforce_pp_baseline(group_size):
    actual = get_advantage_estimator("reinforce++-baseline")(
        t64(REWARDS), t64(LOGP_OLD), t64(LOGP_REF), torch.tensor(MASK), beta=1e-3, group_size=group_size
    )
    expected = ref_reinforce_pp(REWARDS, LOGP_OLD, LOGP_REF, MASK, 1e-3, 1.0, baseline_group=group_size)
    assert_close(actual, expected)


def test_viarl_local_equals_global_in_one_process():
    args = (t64(REWARDS), t64(LOGP_OLD), t64(LOGP_REF), torch.tensor(MASK))
    local = get_advantage_estimator("viarl-local")(*args, beta=1e-3)
    assert torch.equal(local, reinforce_pp_advantages(*args, beta=1e-3))


def test_group_baseline_worked_by_hand():
    assert_close(group_baseline(t64([1.0, 3.0, 0.0, 0.5, 0.5, 2.0]), 3), [-1 / 3, 5 / 3, -4 / 3, -0.5, -0.5, 1.0])
    # A NaN reward (a row no reward function scored) is out of its group's mean and gets 0.
    assert_close(group_baseline(t64([1.0, float("nan"), 3.0, 0.5, 0.5, 2.0]), 3), [-1.0, 0.0, 1.0, -0.5, -0.5, 1.0])


def test_estimators_take_the_gathered_rewards_and_their_rows():
    """A process holds rows [2, 4) of a gathered batch of 6: the baseline is taken over whole groups of the gathered
    rewards (a group may span processes), the tokens are this process's."""
    rows = slice(2, 4)
    args = (t64(LOGP_OLD)[rows], t64(LOGP_REF)[rows], torch.tensor(MASK)[rows])
    baseline = get_advantage_estimator("reinforce++-baseline")(t64(REWARDS), *args, beta=1e-3, group_size=3, rows=rows)
    centred = ref_group_centred(REWARDS, 3)[2:4]
    assert_close(baseline, ref_reinforce_pp(centred, LOGP_OLD[2:4], LOGP_REF[2:4], MASK[2:4], 1e-3, 1.0))
    # an unscored (NaN) row of another process does not move this process's baseline
    with_nan = t64(REWARDS)
    with_nan[0] = float("nan")
    mean = (REWARDS[1] + REWARDS[2]) / 2
    expected = ref_reinforce_pp([REWARDS[2] - mean, REWARDS[3] - sum(REWARDS[3:6]) / 3], LOGP_OLD[2:4], LOGP_REF[2:4],
                                MASK[2:4], 1e-3, 1.0)  # fmt: skip
    assert_close(get_advantage_estimator("reinforce++-baseline")(with_nan, *args, beta=1e-3, group_size=3, rows=rows),
                 expected)  # fmt: skip


def test_estimator_registry_refuses_rebinding_and_names_the_known_ones():
    from temporal_rl.advantages import register_advantage_estimator

    with pytest.raises(ValueError, match="already bound"):
        register_advantage_estimator("reinforce++")(lambda *args, **kwargs: None)
    with pytest.raises(ValueError, match="unknown advantage estimator 'ppo'; known: reinforce\\+\\+, "):
        get_advantage_estimator("ppo")


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
@pytest.mark.parametrize("group_size", [1, 2, 3])
def test_group_normalized_advantages(scale, group_size):
    rewards = [1.0, 0.0, 2.2, 2.2, 0.5, 4.2]
    actual = group_normalized_advantages(t64(rewards), group_size, scale)
    assert_close(actual, ref_grpo(rewards, group_size, scale))


def test_group_normalized_advantages_worked_by_hand_and_nan_rows():
    # Group [1, 0]: mean 0.5, unbiased std sqrt(0.5); group [2, 2]: std 0 -> advantage 0.
    std = math.sqrt(0.5) + 1e-4
    assert_close(group_normalized_advantages(t64([1.0, 0.0, 2.0, 2.0]), 2), [0.5 / std, -0.5 / std, 0.0, 0.0])
    # A NaN reward (unscorable row) is left out of its group's statistics and gets advantage 0, as in TRL.
    rewards = [1.0, float("nan"), 0.0, 3.0, 1.0, 2.0]
    actual = group_normalized_advantages(t64(rewards), 3)
    # Group [3, 1, 2]: mean 2, unbiased std sqrt((1 + 1 + 0) / 2) = 1.
    assert_close(actual, [0.5 / std, 0.0, -0.5 / std, 1 / (1 + 1e-4), -1 / (1 + 1e-4), 0.0])
    assert_close(actual, ref_grpo(rewards, 3, "group"))


def test_invalid_arguments():
    args = (t64(REWARDS), t64(LOGP_OLD), t64(LOGP_REF), torch.tensor(MASK))
    with pytest.raises(ValueError, match="needs group_size"):
        get_advantage_estimator("reinforce++-baseline")(*args, beta=0.0)
    with pytest.raises(ValueError, match="groups of 4"):
        get_advantage_estimator("reinforce++-baseline")(*args, beta=0.0, group_size=4)
    with pytest.raises(ValueError, match="mask has shape"):
        whiten(t64(LOGP_OLD), torch.ones(6, 4))
    with pytest.raises(ValueError, match="rewards has shape"):
        kl_penalized_token_rewards(t64([1.0]), *args[1:], beta=0.0)
    with pytest.raises(ValueError, match="gamma"):
        discounted_returns(t64(LOGP_OLD), args[3], gamma=1.5)
    with pytest.raises(ValueError, match="unknown scale"):
        group_normalized_advantages(t64(REWARDS), 2, "max")
    with pytest.raises(TypeError, match="global_stats"):
        whiten(t64(LOGP_OLD), args[3], global_stats="all")


def test_estimators_are_registered():
    assert list(ADVANTAGE_ESTIMATORS) == ["reinforce++", "reinforce++-baseline", "viarl-local"]


# ----------------------------------------------------------------------------------------------------------------
# Two processes, each with half the rows, give exactly the single-process advantages

WORLD = 2
GROUP = 2
# 8 rows in 4 groups of 2, of lengths 1..7, so the two halves have different token counts and statistics.
DIST_MASK = [[1 if t < length else 0 for t in range(7)] for length in (7, 2, 5, 1, 3, 6, 4, 7)]
DIST_REWARDS = [4.2, 1.2, 0.0, 3.2, 2.2, 2.2, 0.2, 4.0]


def _dist_inputs():
    return (
        t64(DIST_REWARDS),
        t64(make_logps(DIST_MASK, 5)),
        t64(make_logps(DIST_MASK, 6)),
        torch.tensor(DIST_MASK, dtype=torch.bool),
    )


def _all_variants(rewards, logp_old, logp_ref, mask, **kwargs):
    out = {
        name: estimator(rewards, logp_old, logp_ref, mask, beta=1e-3, gamma=0.95, group_size=GROUP, **kwargs)
        for name, estimator in ADVANTAGE_ESTIMATORS.items()
    }
    out["unbiased"] = reinforce_pp_advantages(
        rewards, logp_old, logp_ref, mask, beta=1e-3, gamma=0.95, unbiased=True, **kwargs
    )
    return out


def _distributed_worker(rank: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD, timeout=timedelta(seconds=60)
    )
    try:
        rows = slice(rank * len(DIST_MASK) // WORLD, (rank + 1) * len(DIST_MASK) // WORLD)
        rewards, logp_old, logp_ref, mask = (tensor[rows] for tensor in _dist_inputs())
        results = _all_variants(rewards, logp_old, logp_ref, mask)

        def reducer(tensor):
            tensor = tensor.clone()
            dist.all_reduce(tensor)
            return tensor

        results["callable"] = _all_variants(rewards, logp_old, logp_ref, mask, global_stats=reducer)["reinforce++"]
        results["group"] = _all_variants(rewards, logp_old, logp_ref, mask, global_stats=dist.new_group([0, 1]))[
            "reinforce++"
        ]
        torch.save(results, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path):
    import torch.multiprocessing as mp

    context = mp.start_processes(
        _distributed_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + 90
    try:
        while not context.join(timeout=max(0.1, deadline - time.monotonic())):
            if time.monotonic() > deadline:
                pytest.fail("the 2-process gloo run did not finish within 90 s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
    parts = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(WORLD)]

    single = _all_variants(*_dist_inputs())
    single["callable"] = single["group"] = single["reinforce++"]
    for name, expected in single.items():
        joined = torch.cat([part[name] for part in parts])
        if name == "viarl-local":
            # Local statistics: each half is whitened by its own mean and std, so the result differs...
            assert not torch.allclose(joined, expected, atol=1e-3)
            # ...and equals whitening each half on its own.
            halves = []
            inputs = _dist_inputs()
            for rank in range(WORLD):
                rows = slice(rank * 4, (rank + 1) * 4)
                halves.append(_all_variants(*(tensor[rows] for tensor in inputs))["reinforce++"])
            assert torch.allclose(joined, torch.cat(halves), rtol=0, atol=1e-12)
        else:
            assert torch.allclose(joined, expected, rtol=0, atol=1e-12), name
