"""The frame selector's output format and its rule-based rewards (ViaRL).

The selector (`temporal_rl.viarl`) answers

    <think>what to look for</think><index>3, 17, 42, 58, 64, 90, 101, 120</index>

`parse_indices` reads the list back (never raises), `is_valid_selection` checks it, `check_selector_format` checks
the whole completion. The rewards, registered here and following TRL's contract
(`f(completions, **columns, **kwargs) -> list[float | None]`):

| registry name     | `__name__`               | value                                                             |
|-------------------|--------------------------|-------------------------------------------------------------------|
| `selector_format` | `selector_format_reward` | 1.0 if the completion is exactly the format above, else 0.0       |
| `selector_index`  | `selector_index_reward`  | 1.0 iff exactly N distinct integers in [0, T), else 0.0           |
| `selector_length` | `selector_length_reward` | 0.2 if the completion has 80..512 tokens, else 0.0                |

and the answer reward as a pure function, `answer_reward(index_reward, answer_correct, weight=2.0)`: the answer
model's correctness counts only with a valid index list (the selector trainer runs the answer model and calls it).
The maximum total is 2.0 + 1.0 + 1.0 + 0.2 = 4.2.

Where N and T come from: the row's columns `num_frames_to_select` (N) and `num_candidates` (T). T belongs to the row,
not to a config: a video with fewer frames than asked has fewer candidates, and only the row knows. The trainer sets
both columns when it builds the selector's prompt (TRL hands every column of a row to the reward functions); a
dataset can also carry them (`dataset.map(lambda r: {"num_candidates": 128, "num_frames_to_select": 8})`). A row
whose columns are None is not a selector row: `selector_index` returns None. The length reward's bounds are fixed per
instance (`SelectorLengthReward(min_tokens=110)` for N=16, as ViaRL).

This module owns the selector's output format and these scores: text in, scores out, no frames, no models.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from temporal_rl.rewards.parsing import completion_text, extract_tag
from temporal_rl.rewards.registry import register_reward

# Columns of a selector row that the rewards read.
NUM_CANDIDATES_COLUMN = "num_candidates"
NUM_SELECT_COLUMN = "num_frames_to_select"

# Any of the selector's tags (lower case): the blocks of `check_selector_format` hold none.
_SELECTOR_TAG_RE = re.compile(r"</?(?:think|index)>")
_INDEX_SEPARATOR_RE = re.compile(r"[,;\s]+")
_INTEGER_RE = re.compile(r"[+-]?[0-9]{1,18}")  # ASCII digits only; longer numbers are no frame index


def _parse_index_list(content: str) -> list[int] | None:
    content = content.strip()
    if content.endswith("."):
        content = content[:-1].rstrip()
    if len(content) >= 2 and (content[0], content[-1]) in (("[", "]"), ("(", ")")):
        content = content[1:-1].strip()
    if not content:
        return None
    tokens = [token for token in _INDEX_SEPARATOR_RE.split(content) if token]
    if not tokens or not all(_INTEGER_RE.fullmatch(token) for token in tokens):
        return None
    return [int(token) for token in tokens]


def parse_indices(text: Any) -> list[int] | None:
    """The frame indices in the last complete `<index>...</index>` of a completion, as written (order, repeats kept).

    The content is a list of integers separated by commas, semicolons or whitespace, optionally in `[...]` or `(...)`
    and with a final period. Anything else in it (words, decimals, ranges) and a missing or empty tag give None.
    Integers are ASCII digits with an optional sign, at most 18 of them. Never raises.

    Example:
        ```python
        >>> parse_indices("<think>the goal</think><index>3, 17, 42</index>")
        [3, 17, 42]
        >>> parse_indices("<index>[5 1 5]</index>"), parse_indices("<index>3 to 9</index>"), parse_indices(None)
        ([5, 1, 5], None, None)
        ```
    """
    if not isinstance(text, str):
        return None
    content = extract_tag(text, "index")
    if content is None:
        return None
    return _parse_index_list(content)


def is_valid_selection(indices: Any, num_candidates: Any, num_select: Any) -> bool:
    """True iff `indices` is exactly `num_select` distinct integers in `[0, num_candidates)`. Never raises."""
    if not isinstance(indices, (list, tuple)) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in indices
    ):
        return False
    try:
        num_candidates, num_select = int(num_candidates), int(num_select)
    except (TypeError, ValueError, OverflowError):
        return False
    return (
        len(indices) == num_select
        and len(set(indices)) == num_select
        and all(0 <= i < num_candidates for i in indices)
    )


def check_selector_format(text: Any) -> bool:
    """True iff `text` is `<think>reasoning</think><index>list</index>` and nothing else (whitespace aside).

    The reasoning is non-blank, neither block holds another `<think>`/`<index>` tag, the tags are lower case, and the
    list parses (`parse_indices`); its length and range are the index reward's business.
    """
    if not isinstance(text, str):
        return False
    rest = text.strip()
    blocks = []
    for tag in ("think", "index"):
        rest = rest.lstrip()
        opening, closing = f"<{tag}>", f"</{tag}>"
        if not rest.startswith(opening):
            return False
        # the block ends at the first selector tag after its opening, which must be its own closing tag
        end = _SELECTOR_TAG_RE.search(rest, len(opening))
        if end is None or end.group() != closing:
            return False
        blocks.append(rest[len(opening) : end.start()])
        rest = rest[end.end() :]
    think, index = blocks
    return not rest and bool(think.strip()) and _parse_index_list(index) is not None


# ----------------------------------------------------------------------------------------------------------------
# Rewards


def _column(values: Any, size: int, name: str) -> list:
    if values is None:
        raise ValueError(
            f"the selector rewards need the {name!r} column (set it per row when building the selector prompt)"
        )
    values = list(values)
    if len(values) != size:
        raise ValueError(f"column {name!r} has {len(values)} rows but there are {size} completions")
    return values


@register_reward("selector_format")
def selector_format_reward(completions: Sequence[Any], **kwargs) -> list[float | None]:
    """1.0 if a completion is exactly `<think>...</think><index>...</index>` (`check_selector_format`), else 0.0.

    Example:
        ```python
        >>> selector_format_reward(["<think>a red star</think><index>1, 5</index>", "<index>1, 5</index>"])
        [1.0, 0.0]
        ```
    """
    return [1.0 if check_selector_format(completion_text(completion)) else 0.0 for completion in completions]


@register_reward("selector_index")
def selector_index_reward(
    completions: Sequence[Any],
    num_candidates: Sequence[Any] | None = None,
    num_frames_to_select: Sequence[Any] | None = None,
    **kwargs,
) -> list[float | None]:
    """1.0 iff the completion's index list is exactly N distinct integers in [0, T), else 0.0.

    Args:
        completions: the completions, strings or conversational.
        num_candidates: the `num_candidates` column (T per row).
        num_frames_to_select: the `num_frames_to_select` column (N per row).
        **kwargs: other columns and TRL arguments, ignored.

    Returns:
        1.0 or 0.0 per row; None for rows whose T or N is None (not selector rows).

    Raises:
        ValueError: a column is missing or has the wrong length (a wiring error, not a model output).

    Example:
        ```python
        >>> selector_index_reward(["<index>0, 5, 7</index>", "<index>0, 5, 5</index>", "<index>0, 5, 8</index>"],
        ...                       num_candidates=[8] * 3, num_frames_to_select=[3] * 3)
        [1.0, 0.0, 0.0]
        ```
    """
    size = len(completions)
    rewards = []
    for completion, row_candidates, row_select in zip(
        completions,
        _column(num_candidates, size, NUM_CANDIDATES_COLUMN),
        _column(num_frames_to_select, size, NUM_SELECT_COLUMN),
        strict=True,
    ):
        if row_candidates is None or row_select is None:
            rewards.append(None)
            continue
        parsed = parse_indices(completion_text(completion))
        rewards.append(1.0 if is_valid_selection(parsed, row_candidates, row_select) else 0.0)
    return rewards


class SelectorLengthReward:
    """`bonus` if a completion has `min_tokens`..`max_tokens` tokens (both included), else 0.0.

    ViaRL's length reward: +0.2 for 80..512 tokens with N=8 (110..512 with N=16), so that the selector keeps
    reasoning before it lists indices. The token count is `len(completion_ids[i])`, the ids TRL passes (the
    completion up to and including its end-of-sequence token, as ViaRL counts `completion_mask.sum()`).

    Args:
        min_tokens: fewest tokens that earn the bonus.
        max_tokens: most tokens that earn it (ViaRL: the generation limit, 512).
        bonus: the reward (0.2).
    """

    __name__ = "selector_length_reward"

    def __init__(self, min_tokens: int = 80, max_tokens: int = 512, bonus: float = 0.2):
        if not 0 <= min_tokens <= max_tokens:
            raise ValueError(f"need 0 <= min_tokens <= max_tokens, got {min_tokens} and {max_tokens}")
        self.min_tokens, self.max_tokens, self.bonus = int(min_tokens), int(max_tokens), float(bonus)

    def __repr__(self) -> str:
        return f"SelectorLengthReward(min_tokens={self.min_tokens}, max_tokens={self.max_tokens}, bonus={self.bonus})"

    def __call__(
        self, completions: Sequence[Any], completion_ids: Sequence[Sequence[int]] | None = None, **kwargs
    ) -> list[float | None]:
        if completion_ids is None:
            raise ValueError("selector_length needs completion_ids (TRL passes them to every reward function)")
        ids = list(completion_ids)
        if len(ids) != len(completions):
            raise ValueError(f"{len(ids)} completion_ids for {len(completions)} completions")
        rewards = []
        for row in ids:
            try:
                count = len(row)
            except TypeError:
                count = -1
            rewards.append(self.bonus if self.min_tokens <= count <= self.max_tokens else 0.0)
        return rewards


selector_length_reward = register_reward("selector_length")(SelectorLengthReward())


def answer_reward(index_reward: float | None, answer_correct: bool | None, weight: float = 2.0) -> float | None:
    """The answer reward: `weight` if the answer model was right *and* the index list was valid, else 0.0.

    `weight * correct * index_valid` (ViaRL multiplies the accuracy reward by the index reward: no credit for a
    right answer from the uniform fallback frames). None if either input is None.

    Example:
        ```python
        >>> answer_reward(1.0, True), answer_reward(0.0, True), answer_reward(1.0, False), answer_reward(None, True)
        (2.0, 0.0, 0.0, None)
        ```
    """
    if index_reward is None or answer_correct is None:
        return None
    return float(weight) * (1.0 if answer_correct else 0.0) * (1.0 if index_reward > 0 else 0.0)
