"""The reward registry: names a recipe's `reward_funcs` list can use, mapped to TRL reward functions.

This module owns the name -> function table and its two rules: a name is bound once (registering another
function under a taken name raises), and an unknown name is either a dotted import path (`"pkg.module.fn"`, the
escape hatch for a user's own reward) or an error that lists the known names. Weights are not here: they come
from `GRPOConfig.reward_weights`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable

RewardFunc = Callable[..., list]

REWARDS: dict[str, RewardFunc] = {}


def _qualified_name(func: object) -> str:
    module = getattr(func, "__module__", None) or "?"
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or type(func).__name__
    return f"{module}.{name}"


def register_reward(name: str) -> Callable[[RewardFunc], RewardFunc]:
    """Decorator: register a reward function under `name`.

    Registering the same function again (or its reloaded copy: same module and qualified name) is a no-op;
    binding a taken name to another function raises.

    Args:
        name: the name recipes use in `reward_funcs`.

    Raises:
        ValueError: `name` is already bound to a different function.

    Example:
        ```python
        @register_reward("length_penalty")
        def length_penalty_reward(completions, **kwargs):
            return [-len(c) / 1000 for c in completions]
        ```
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"a reward name must be a non-empty string, got {name!r}")

    def decorator(func: RewardFunc) -> RewardFunc:
        bound = REWARDS.get(name)
        if bound is not None and bound is not func and _qualified_name(bound) != _qualified_name(func):
            raise ValueError(
                f"reward name {name!r} is already bound to {_qualified_name(bound)}; "
                f"cannot bind it to {_qualified_name(func)} (choose another name)"
            )
        REWARDS[name] = func
        return func

    return decorator


def _unknown(name: str, reason: str = "") -> ValueError:
    known = ", ".join(sorted(REWARDS)) or "(none)"
    detail = f" ({reason})" if reason else ""
    return ValueError(
        f"unknown reward {name!r}{detail}; known rewards: {known}; "
        "or give the dotted import path of a function, e.g. 'my_package.my_rewards.my_reward'"
    )


def _import_reward(path: str) -> RewardFunc:
    module_name, _, attribute = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise _unknown(path, f"cannot import module {module_name!r}: {err}") from err
    func = getattr(module, attribute, None)
    if func is None:
        raise _unknown(path, f"module {module_name!r} has no attribute {attribute!r}")
    if not callable(func):
        raise _unknown(path, f"{path!r} is not callable")
    return func


def get_reward_funcs(names: str | RewardFunc | Iterable[str | RewardFunc]) -> list[RewardFunc]:
    """Resolve reward names to the functions to hand to `GRPOTrainer(reward_funcs=...)`.

    Args:
        names: registered names, dotted import paths `"package.module.function"`, or callables (passed through);
            a single one or an iterable of them.

    Returns:
        The functions, in the order given.

    Raises:
        ValueError: a name is neither registered nor an importable callable; the message lists the known names.

    Example:
        ```python
        >>> [f.__name__ for f in get_reward_funcs(["format", "iou"])]
        ['format_reward', 'iou_reward']
        ```
    """
    if isinstance(names, str) or callable(names):
        names = [names]
    funcs = []
    for name in names:
        if callable(name):
            funcs.append(name)
        elif not isinstance(name, str):
            raise _unknown(repr(name), f"expected a name or a callable, got {type(name).__name__}")
        elif name in REWARDS:
            funcs.append(REWARDS[name])
        elif "." in name.strip(".") and "" not in name.split("."):
            funcs.append(_import_reward(name))
        else:
            raise _unknown(name)
    return funcs
