"""Reward -> advantage maths: REINFORCE++ (token-level, globally whitened) and GRPO (group-normalised).

Pure `@torch.no_grad()` tensor functions, no I/O and no trainer state; the trainers call them with the rewards and
log-probs of a rollout. Shapes: `B` completions (rows), `T` completion positions; a row's valid tokens are those
where `mask` is true (TRL's `completion_mask`: a prefix of each row, padding after it).

REINFORCE++ (OpenRLHF, [arXiv 2501.03262](https://huggingface.co/papers/2501.03262); verl's
`compute_reinforce_plus_plus_outcome_advantage` agrees), for a completion i with scalar reward R_i and last valid
token L_i:

    r_{i,t} = -beta * (log pi_old(y_t) - log pi_ref(y_t)) + R_i * [t = L_i]    (k1 KL folded into the reward)
    G_{i,t} = sum_{s >= t} gamma^(s-t) r_{i,s}                                   (padding contributes nothing)
    A_{i,t} = (G_{i,t} - mean) / (std + 1e-8)                                    (mean, std over ALL valid tokens
                                                                                   of the global batch)

| function                      | in                                      | out                                  |
|-------------------------------|-----------------------------------------|--------------------------------------|
| `kl_penalized_token_rewards`  | R (B,), logp_old, logp_ref, mask (B, T) | r (B, T)                             |
| `discounted_returns`          | r, mask (B, T)                          | G (B, T)                             |
| `whiten`                      | values, mask (B, T)                     | (values - mean) / (std + eps)        |
| `group_baseline`              | R (B,)                                  | R minus its group's mean             |
| `reinforce_pp_advantages`     | R, logp_old, logp_ref, mask             | A (B, T)                             |
| `group_normalized_advantages` | R (B,)                                  | GRPO's A (B,), as TRL 1.16           |

The token-level estimators a trainer can be configured with are registered by name, like the rewards
(`ADVANTAGE_ESTIMATORS`, `register_advantage_estimator`, `get_advantage_estimator`):

| name                   | function                           | what                                                  |
|------------------------|------------------------------------|-------------------------------------------------------|
| `reinforce++`          | `reinforce_pp_advantages`          | returns whitened over the global batch                |
| `reinforce++-baseline` | `reinforce_pp_baseline_advantages` | each prompt's mean reward subtracted first            |
| `viarl-local`          | `viarl_local_advantages`           | whitened over this process's rows (ViaRL's code)      |

GRPO's own advantage is computed inside TRL's `GRPOTrainer`; `group_normalized_advantages` is its reference (tests).

Global statistics: each process holds its own rows; `whiten` sums (sum, sum of squares, count) over processes with
one `all_reduce` (or any reducer you pass, e.g. accelerate's), so N processes holding 1/N of the rows each get
exactly the advantages one process holding all rows would get.

Variance convention: the *biased* (population) variance, sum of squared deviations / count, as OpenRLHF's
REINFORCE++ normalisation and ViaRL's code (`masked_var(..., unbiased=False)`) use; verl's `masked_whiten` uses the
unbiased one (Bessel's n/(n-1)). The valid tokens of the batch are the whole population being normalised, not a
sample of it; at ~10^4 tokens the two differ by ~1e-4 relative, and the biased form is defined for a single token
(std 0, advantage 0) where the unbiased one divides by zero. `unbiased=True` gives verl's convention.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Union

import torch

GROUP_SCALES = ("group", "batch", "none")

# How `whiten` gathers its statistics: True = all processes of the default group (torch.distributed, when
# initialised), False = this process only, a ProcessGroup = the processes of that group, a callable = your own
# cross-process sum of a float64 tensor (e.g. `lambda t: accelerator.reduce(t, reduction="sum")`).
GlobalStats = Union[bool, Callable[[torch.Tensor], torch.Tensor], "torch.distributed.ProcessGroup"]  # noqa: UP007


def _as_bool_mask(mask: torch.Tensor, shape: torch.Size, name: str = "mask") -> torch.Tensor:
    if mask.shape != shape:
        raise ValueError(f"{name} has shape {tuple(mask.shape)}, expected {tuple(shape)}")
    return mask if mask.dtype == torch.bool else mask != 0


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    """At least float32 for accumulations (bf16/fp16 inputs), float64 stays float64."""
    return torch.promote_types(dtype, torch.float32)


@torch.no_grad()
def kl_penalized_token_rewards(
    rewards: torch.Tensor,
    logp_old: torch.Tensor,
    logp_ref: torch.Tensor,
    mask: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """Per-token rewards with the k1 KL penalty folded in and the sequence reward on the last valid token.

    `r_{i,t} = -beta * (logp_old[i,t] - logp_ref[i,t])` on valid tokens, plus `rewards[i]` on the last valid token
    of row i; 0 on padding whatever the log-probs hold there (even inf or NaN). A row without valid tokens gets
    nothing (its reward has no token to sit on).

    Args:
        rewards: (B,) scalar reward R_i of each completion (finite).
        logp_old: (B, T) log-probs of the sampled tokens under the sampling policy.
        logp_ref: (B, T) log-probs of the same tokens under the reference policy.
        mask: (B, T) bool or 0/1, true on valid completion tokens.
        beta: KL coefficient (OpenRLHF 0.01, ViaRL 1e-3); 0 gives the bare sequence rewards.

    Returns:
        (B, T) token rewards, in the promoted dtype of the inputs.

    Example:
        ```python
        >>> kl_penalized_token_rewards(torch.tensor([1.0]), torch.tensor([[-1.0, -2.0, 0.0]]),
        ...                            torch.tensor([[-1.5, -1.0, 0.0]]), torch.tensor([[1, 1, 0]]), beta=0.1)
        tensor([[-0.0500,  1.1000,  0.0000]])
        ```
    """
    if logp_old.dim() != 2:
        raise ValueError(f"logp_old must be (B, T), got shape {tuple(logp_old.shape)}")
    if logp_ref.shape != logp_old.shape:
        raise ValueError(f"logp_ref has shape {tuple(logp_ref.shape)}, expected {tuple(logp_old.shape)}")
    batch, length = logp_old.shape
    if rewards.shape != (batch,):
        raise ValueError(f"rewards has shape {tuple(rewards.shape)}, expected ({batch},)")
    valid = _as_bool_mask(mask, logp_old.shape)
    dtype = torch.promote_types(torch.promote_types(logp_old.dtype, logp_ref.dtype), rewards.dtype)
    kl = logp_old.to(dtype) - logp_ref.to(dtype)
    token_rewards = torch.where(valid, -beta * kl, torch.zeros((), dtype=dtype, device=kl.device))
    positions = torch.arange(length, device=valid.device).expand(batch, length)
    last = torch.where(valid, positions, torch.full_like(positions, -1)).amax(dim=1)
    rows = torch.nonzero(last >= 0).squeeze(1)
    token_rewards[rows, last[rows]] += rewards.to(dtype)[rows]
    return token_rewards


@torch.no_grad()
def discounted_returns(token_rewards: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """Reward-to-go `G_t = sum_{s >= t} gamma^(s-t) r_s` over the valid tokens of each row.

    Padding contributes nothing, whatever its value, and gets G = 0, so the sum restarts after each row's last
    valid token. A masked position inside a row (a hole, not produced by TRL) passes the return through unchanged
    except for the discount, which counts positions; verl instead restarts the sum at every masked position. For
    TRL's prefix masks the two are the same.

    Args:
        token_rewards: (B, T) per-token rewards.
        mask: (B, T) bool or 0/1, true on valid tokens.
        gamma: discount in [0, 1] (REINFORCE++ and ViaRL: 1).

    Returns:
        (B, T) returns in the dtype of `token_rewards`, 0 on padding.

    Example:
        ```python
        >>> discounted_returns(torch.tensor([[1.0, 2.0, 9.0]]), torch.tensor([[1, 1, 0]]), gamma=0.5)
        tensor([[2., 2., 0.]])
        ```
    """
    if token_rewards.dim() != 2:
        raise ValueError(f"token_rewards must be (B, T), got shape {tuple(token_rewards.shape)}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    valid = _as_bool_mask(mask, token_rewards.shape)
    work = _work_dtype(token_rewards.dtype)
    rewards = torch.where(valid, token_rewards.to(work), torch.zeros((), dtype=work, device=token_rewards.device))
    returns = torch.empty_like(rewards)
    running = torch.zeros(rewards.shape[0], dtype=work, device=rewards.device)
    for t in range(rewards.shape[1] - 1, -1, -1):
        running = rewards[:, t] + gamma * running
        returns[:, t] = running
    returns = torch.where(valid, returns, torch.zeros((), dtype=work, device=returns.device))
    return returns.to(token_rewards.dtype)


def _sum_across_processes(global_stats: GlobalStats) -> Callable[[torch.Tensor], torch.Tensor]:
    """The reducer that turns this process's float64 sums into the sums over all processes."""
    if global_stats is False:
        return lambda tensor: tensor
    if callable(global_stats) and not isinstance(global_stats, bool):
        return global_stats
    import torch.distributed as dist

    if global_stats is True:
        group = None
    elif dist.is_available() and isinstance(global_stats, dist.ProcessGroup):
        group = global_stats
    else:
        raise TypeError(
            "global_stats must be True (all processes), False (this process), a torch.distributed.ProcessGroup "
            f"or a callable that sums a tensor across processes; got {type(global_stats).__name__}"
        )
    if not (dist.is_available() and dist.is_initialized()):
        if group is not None:
            raise RuntimeError("global_stats is a ProcessGroup but torch.distributed is not initialised")
        return lambda tensor: tensor  # one process: its batch is the global batch

    def all_reduce(tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone()
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=group)
        return tensor

    return all_reduce


@torch.no_grad()
def masked_moments(
    values: torch.Tensor, mask: torch.Tensor, *, global_stats: GlobalStats = True, unbiased: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean, variance and count of the valid entries of `values` over the global batch, in float64.

    Each process contributes (sum, sum of squares, count) of its valid entries; one cross-process sum of that
    (3,) float64 tensor gives the global moments, so the result does not depend on how rows are split over
    processes (up to float64 summation order, ~1e-16 relative). float64 keeps the one-pass variance
    `E[x^2] - E[x]^2` accurate: its relative error is ~1e-16 * E[x^2] / var, below 1e-10 for returns whose
    mean is up to 10^3 standard deviations from zero.

    Args:
        values: (B, T) or any shape.
        mask: same shape, bool or 0/1; invalid entries are ignored whatever their value.
        global_stats: where the statistics come from (see `GlobalStats`): True all processes, False this one.
        unbiased: divide the squared deviations by count - 1 (verl) instead of count (OpenRLHF, ViaRL).

    Returns:
        `(mean, var, count)` as float64 scalars; with no valid entry the mean is 0 and the variance 0, and with one
        valid entry the variance is 0 under both conventions.
    """
    valid = _as_bool_mask(mask, values.shape)
    zero = torch.zeros((), dtype=torch.float64, device=values.device)
    x = torch.where(valid, values.to(torch.float64), zero)
    local = torch.stack([x.sum(), (x * x).sum(), valid.sum().to(torch.float64)])
    total, total_sq, count = _sum_across_processes(global_stats)(local).unbind()
    safe_count = count.clamp(min=1.0)
    mean = total / safe_count
    var = (total_sq / safe_count - mean * mean).clamp(min=0.0)
    if unbiased:
        var = torch.where(count > 1, var * count / (count - 1).clamp(min=1.0), zero)
    return mean, var, count


@torch.no_grad()
def whiten(
    values: torch.Tensor,
    mask: torch.Tensor,
    *,
    global_stats: GlobalStats = True,
    unbiased: bool = False,
    eps: float = 1e-8,
) -> torch.Tensor:
    """`(values - mean) / (std + eps)` with mean and std over all valid tokens of the global batch.

    The statistics come from `masked_moments` (sums across processes, float64). Padding gets 0. A batch whose valid
    values are all equal (std 0) gets 0 everywhere; so does a batch with a single valid token.

    Args:
        values: (B, T) per-token values (the returns).
        mask: (B, T) bool or 0/1, true on valid tokens.
        global_stats: True (default): all processes (torch.distributed's default group when initialised, else this
            process alone); False: this process's rows only (ViaRL's code); a `ProcessGroup`; or a callable summing
            a float64 tensor across processes (e.g. `lambda t: accelerator.reduce(t, reduction="sum")`).
        unbiased: Bessel-corrected variance (verl's `masked_whiten`); default biased (OpenRLHF, ViaRL), see the
            module docstring.
        eps: added to the std (REINFORCE++: 1e-8).

    Returns:
        (B, T) whitened values in the dtype of `values`.

    Example:
        ```python
        >>> whiten(torch.tensor([[1.0, 3.0, 100.0]]), torch.tensor([[1, 1, 0]]))  # mean 2, std 1
        tensor([[-1.,  1.,  0.]])
        ```
    """
    valid = _as_bool_mask(mask, values.shape)
    mean, var, _ = masked_moments(values, valid, global_stats=global_stats, unbiased=unbiased)
    whitened = (values.to(torch.float64) - mean) / (var.sqrt() + eps)
    whitened = torch.where(valid, whitened, torch.zeros((), dtype=torch.float64, device=values.device))
    return whitened.to(values.dtype)


def _check_groups(rewards: torch.Tensor, group_size: int | None) -> int:
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be (B,), got shape {tuple(rewards.shape)}")
    if group_size is None or isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group_size must be a positive integer (the G completions per prompt), got {group_size!r}")
    if rewards.shape[0] % group_size:
        raise ValueError(
            f"{rewards.shape[0]} rewards do not split into groups of {group_size}: rows must come as G consecutive "
            "completions per prompt (as TRL orders them), with whole groups on each process"
        )
    return group_size


@torch.no_grad()
def group_baseline(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """Each reward minus the mean reward of its group (REINFORCE++-baseline's first step); NaN rewards (rows no reward
    function scored) are left out of the means and come back as 0.

    Args:
        rewards: (B,), G consecutive rows per prompt (TRL's order), B a multiple of G; NaN where a row has no reward.
        group_size: G.

    Returns:
        (B,) centred rewards, 0 for NaN rows.

    Example:
        ```python
        >>> group_baseline(torch.tensor([1.0, 3.0, 0.0, 0.0]), 2)
        tensor([-1.,  1.,  0.,  0.])
        >>> group_baseline(torch.tensor([1.0, float("nan"), 3.0, 2.0]), 2)  # the NaN row is out of its group's mean
        tensor([ 0.0000,  0.0000,  0.5000, -0.5000])
        ```
    """
    group_size = _check_groups(rewards, group_size)
    grouped = rewards.view(-1, group_size)
    return torch.nan_to_num((grouped - torch.nanmean(grouped, dim=1, keepdim=True)).view(-1), nan=0.0)


# ----------------------------------------------------------------------------------------------------------------
# Advantage estimators: a registry, like the rewards'

AdvantageEstimator = Callable[..., torch.Tensor]

ADVANTAGE_ESTIMATORS: dict[str, AdvantageEstimator] = {}


def register_advantage_estimator(name: str) -> Callable[[AdvantageEstimator], AdvantageEstimator]:
    """Decorator: register a token-level advantage estimator under `name` (a config's `advantage_estimator`).

    Registering the same function again is a no-op; binding a taken name to another function raises.

    Every estimator has the signature of `reinforce_pp_advantages`: the scalar rewards of the batch the groups live
    in (NaN for unscored rows), the (B, T) log-probs and mask of this process's rows, which of the rewards those rows
    are (`rows`), and keyword settings; it returns (B, T) advantages for `trl.GRPOTrainer._compute_loss`.
    """

    def decorator(func: AdvantageEstimator) -> AdvantageEstimator:
        bound = ADVANTAGE_ESTIMATORS.get(name)
        if bound is not None and bound is not func and bound.__qualname__ != func.__qualname__:
            raise ValueError(f"advantage estimator {name!r} is already bound to {bound.__qualname__}")
        ADVANTAGE_ESTIMATORS[name] = func
        return func

    return decorator


def get_advantage_estimator(name: str) -> AdvantageEstimator:
    """The estimator registered under `name`.

    Raises:
        ValueError: no estimator has that name; the message lists the known ones.
    """
    if name not in ADVANTAGE_ESTIMATORS:
        raise ValueError(
            f"unknown advantage estimator {name!r}; known: {', '.join(ADVANTAGE_ESTIMATORS)} "
            "(add one with temporal_rl.advantages.register_advantage_estimator)"
        )
    return ADVANTAGE_ESTIMATORS[name]


def _rows(rewards: torch.Tensor, rows: slice | None) -> torch.Tensor:
    """This process's rewards, 0 for unscored (NaN) rows: their tokens are masked out, the value only needs to be
    finite."""
    return torch.nan_to_num(rewards if rows is None else rewards[rows], nan=0.0)


@register_advantage_estimator("reinforce++")
@torch.no_grad()
def reinforce_pp_advantages(
    rewards: torch.Tensor,
    logp_old: torch.Tensor,
    logp_ref: torch.Tensor,
    mask: torch.Tensor,
    *,
    beta: float,
    gamma: float = 1.0,
    group_size: int | None = None,
    rows: slice | None = None,
    global_stats: GlobalStats = True,
    unbiased: bool = False,
    eps: float = 1e-8,
) -> torch.Tensor:
    """Token-level REINFORCE++ advantages (no critic) for this process's rows: token rewards with the k1 KL
    (`kl_penalized_token_rewards`), discounted returns, whitened over all valid tokens of the global batch (OpenRLHF's
    `reinforce`, verl's REINFORCE++).

    Args:
        rewards: (N,) scalar rewards R_i of the batch (NaN where no reward scored a row); N = B unless `rows` is given.
        logp_old: (B, T) log-probs of the sampled tokens under the sampling policy (ViaRL reuses one update, so these
            are the policy's own).
        logp_ref: (B, T) log-probs under the reference policy (for LoRA: the model with adapters disabled).
        mask: (B, T) bool or 0/1, true on valid completion tokens.
        beta: KL coefficient folded into the reward (ViaRL 1e-3, OpenRLHF 0.01).
        gamma: discount (1 in both).
        group_size: completions per prompt G (used by `reinforce++-baseline`; ignored here).
        rows: which of the N rewards are this process's B rows (TRL gathers the rewards of every process); None: all.
        global_stats: how the whitening reaches the other processes (see `whiten`).
        unbiased: variance convention of the whitening (see `whiten`).
        eps: added to the std.

    Returns:
        (B, T) advantages, 0 on padding, dtype of `logp_old`/`rewards` promoted.

    Example:
        ```python
        >>> zeros, mask = torch.zeros(2, 2), torch.tensor([[1, 1], [1, 0]])
        >>> reinforce_pp_advantages(torch.tensor([1.0, 0.0]), zeros, zeros, mask, beta=0.0)
        tensor([[ 0.7071,  0.7071],
                [-1.4142,  0.0000]])
        ```
    """
    token_rewards = kl_penalized_token_rewards(_rows(rewards, rows), logp_old, logp_ref, mask, beta)
    returns = discounted_returns(token_rewards, mask, gamma)
    return whiten(returns, mask, global_stats=global_stats, unbiased=unbiased, eps=eps)


@register_advantage_estimator("reinforce++-baseline")
@torch.no_grad()
def reinforce_pp_baseline_advantages(
    rewards: torch.Tensor, logp_old: torch.Tensor, logp_ref: torch.Tensor, mask: torch.Tensor, **kwargs
) -> torch.Tensor:
    """REINFORCE++-baseline: each prompt's mean reward subtracted first (`group_baseline` over all N rewards, so a
    group may span processes), then as `reinforce_pp_advantages`. Needs `group_size`."""
    group_size = kwargs.get("group_size")
    if group_size is None:
        raise ValueError("the reinforce++-baseline estimator needs group_size (completions per prompt)")
    return reinforce_pp_advantages(group_baseline(rewards, group_size), logp_old, logp_ref, mask, **kwargs)


@register_advantage_estimator("viarl-local")
@torch.no_grad()
def viarl_local_advantages(
    rewards: torch.Tensor, logp_old: torch.Tensor, logp_ref: torch.Tensor, mask: torch.Tensor, **kwargs
) -> torch.Tensor:
    """As `reinforce_pp_advantages` but whitened over this process's rows only, no baseline (ViaRL's code). Unlike
    that code, padding's KL does not leak into the returns of earlier tokens."""
    return reinforce_pp_advantages(rewards, logp_old, logp_ref, mask, **{**kwargs, "global_stats": False})


def _nanstd(values: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Unbiased std ignoring NaNs (TRL's `nanstd`): NaN where fewer than two values."""
    mean = torch.nanmean(values, dim=dim, keepdim=True)
    count = (~torch.isnan(values)).sum(dim=dim, keepdim=True)
    var = torch.nanmean((values - mean) ** 2, dim=dim, keepdim=True) * count / (count - 1)
    std = var.sqrt()
    return std.squeeze(dim) if dim is not None else std.reshape(())


@torch.no_grad()
def group_normalized_advantages(
    rewards: torch.Tensor, group_size: int, scale: str = "group", eps: float = 1e-4
) -> torch.Tensor:
    """GRPO's sequence-level advantage, as TRL 1.16's `GRPOTrainer` computes it (`sum_then_normalize`).

    `A_i = (R_i - mean of R_i's group) / (std + eps)` with the std, unbiased (Bessel), of R_i's group (`"group"`),
    of the whole batch (`"batch"`), or no division (`"none"`). NaN rewards (TRL: every reward function returned None)
    are left out of the means and stds and get advantage 0. A group of one has std 0.

    Args:
        rewards: (B,), G consecutive rows per prompt, B a multiple of G (the gathered batch, as in TRL).
        group_size: G (`num_generations`).
        scale: `"group"`, `"batch"` or `"none"` (`GRPOConfig.scale_rewards`).
        eps: added to the std (TRL: 1e-4).

    Returns:
        (B,) advantages.

    Example:
        ```python
        >>> group_normalized_advantages(torch.tensor([1.0, 0.0, 1.0, 1.0]), 2)
        tensor([ 0.7070, -0.7070,  0.0000,  0.0000])
        ```
    """
    if scale not in GROUP_SCALES:
        raise ValueError(f"unknown scale {scale!r}; expected one of {', '.join(GROUP_SCALES)}")
    group_size = _check_groups(rewards, group_size)
    grouped = rewards.view(-1, group_size)
    centred = (grouped - torch.nanmean(grouped, dim=1, keepdim=True)).view(-1)
    if scale == "group":
        std = _nanstd(grouped, dim=1) if group_size > 1 else torch.zeros(grouped.shape[0], dtype=rewards.dtype)
        advantages = centred / (std.to(rewards.device).repeat_interleave(group_size) + eps)
    elif scale == "batch":
        std = _nanstd(rewards) if rewards.numel() > 1 else torch.zeros((), dtype=rewards.dtype)
        advantages = centred / (std + eps)
    else:
        advantages = centred
    return torch.nan_to_num(advantages, nan=0.0)
