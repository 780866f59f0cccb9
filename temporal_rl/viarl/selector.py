"""The frame selector's text side (ViaRL): its prompt, its output format, the parser and its rule-based rewards.

The selector sees T candidate frames with their index drawn on each (`temporal_rl.viarl.candidates`) and the question
without its options, and answers

    <think>what to look for</think><index>3, 17, 42, 58, 64, 90, 101, 120</index>

`parse_indices` reads the list back (never raises); `fallback_indices` turns it into the frames the answer model sees
(the list when valid, else uniform indices, as ViaRL). The rewards, registered in `temporal_rl.rewards` and following
TRL's contract (`f(completions, **columns, **kwargs) -> list[float | None]`):

| registry name     | `__name__`               | value                                                             |
|-------------------|--------------------------|-------------------------------------------------------------------|
| `selector_format` | `selector_format_reward` | 1.0 if the completion is exactly the format above, else 0.0       |
| `selector_index`  | `selector_index_reward`  | 1.0 iff exactly N distinct integers in [0, T), else 0.0           |
| `selector_length` | `selector_length_reward` | 0.2 if the completion has 80..512 tokens, else 0.0                |

and the answer reward as a pure function, `answer_reward(index_reward, answer_correct, weight=2.0)`: the answer
model's correctness counts only with a valid index list (the trainer runs the answer model and calls it). The
maximum total is 2.0 + 1.0 + 1.0 + 0.2 = 4.2.

Where N and T come from: the row's columns `num_frames_to_select` (N) and `num_candidates` (T). T belongs to the row,
not to a config: a video with fewer frames than asked has fewer candidates (`CandidateFrames.num_candidates`), and
only the row knows. The trainer sets both columns when it builds the selector's prompt (TRL hands every column of a
row to the reward functions); a dataset can also carry them (`dataset.map(lambda r: {"num_candidates": 128,
"num_frames_to_select": 8})`). A row whose columns are None is not a selector row: `selector_index` returns None.
The length reward's bounds are fixed per instance (`SelectorLengthReward(min_tokens=110)` for N=16, as ViaRL).

This module owns the selector's wording, its output format and these scores. It does not draw frames
(`temporal_rl.viarl.candidates`) nor run models.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from temporal_rl.rewards.parsing import completion_text, extract_tag
from temporal_rl.rewards.registry import register_reward
from temporal_rl.viarl.candidates import uniform_indices

SELECTOR_PROMPT = (
    "You select the video frames that best answer a question about a video.\n"
    "The video has {num_candidates} frames. The {label} of each frame is its index, an integer from 0 to "
    "{last_index}.\n"
    "Choose the {num_select} frames that help most to answer the question:\n"
    "1. Find the keywords of the question: the entities (people, objects), the time, the place and the action it "
    "mentions.\n"
    "2. Describe what the frames you need look like, based on those keywords and on the video.\n"
    "3. List the indices of the {num_select} frames that show it.\n"
    "Write your reasoning inside <think> </think> tags, then exactly {num_select} different frame indices, separated "
    "by commas, inside <index> </index> tags, in this format: "
    "<think>your reasoning</think><index>index_1, index_2, ..., index_{num_select}</index>"
)
SELECTOR_USER_PROMPT = 'The question is: "{question}"'
# How the prompt names the drawn index; matches `temporal_rl.viarl.candidates.LabelStyle()` (change both together).
DEFAULT_LABEL_DESCRIPTION = "red number in the bottom-right corner"

# Columns of a selector row that the rewards read.
NUM_CANDIDATES_COLUMN = "num_candidates"
NUM_SELECT_COLUMN = "num_frames_to_select"

# `<think>reasoning</think><index>list</index>`, nothing else but whitespace around and between the blocks.
_FORMAT_RE = re.compile(
    r"\s*<think>(?P<think>(?:(?!</?think>|</?index>).)*)</think>\s*"
    r"<index>(?P<index>(?:(?!</?think>|</?index>).)*)</index>\s*",
    re.DOTALL,
)
_INDEX_SEPARATOR_RE = re.compile(r"[,;\s]+")
_INTEGER_RE = re.compile(r"[+-]?[0-9]{1,18}")  # ASCII digits only; longer numbers are no frame index


def selector_system_prompt(num_candidates: int, num_select: int, label: str = DEFAULT_LABEL_DESCRIPTION) -> str:
    """`SELECTOR_PROMPT` for T candidates and N frames to select; `label` says where the index is drawn."""
    return SELECTOR_PROMPT.format(
        num_candidates=num_candidates, last_index=num_candidates - 1, num_select=num_select, label=label
    )


def build_selector_messages(
    record: dict,
    num_candidates: int,
    num_select: int,
    *,
    video: str | None = None,
    label: str = DEFAULT_LABEL_DESCRIPTION,
) -> list[dict]:
    """The selector's chat messages for a canonical record: the system prompt, then the video and the question.

    The question is shown without its options (ViaRL): the selector looks for evidence, the answer model chooses.

    Args:
        record: a canonical record (`temporal_rl.data`); its `question` is used, its `options` are not.
        num_candidates: T, the number of labelled frames in the video.
        num_select: N, the number of indices to output.
        video: the video path to carry in the video block, for a trainer that loads the frames itself.
        label: where and how the index is drawn on the frames, as the prompt says it (see `LabelStyle`).

    Returns:
        `[system, user]`, the user content `[{"type": "video"}, {"type": "text", "text": ...}]`; no value is None.

    Example:
        ```python
        >>> record = {"question": "What colour is the star?", "options": ["red", "blue"]}
        >>> build_selector_messages(record, 128, 8)[1]["content"][1]["text"]
        'The question is: "What colour is the star?"'
        ```
    """
    if not isinstance(num_candidates, int) or not isinstance(num_select, int) or not 1 <= num_select <= num_candidates:
        raise ValueError(f"cannot select {num_select!r} of {num_candidates!r} frames")
    question = str(record.get("question") or "").strip()
    if not question:
        raise ValueError(f"record {record.get('id')!r} has no question")
    video_block = {"type": "video"} if video is None else {"type": "video", "video": video}
    return [
        {
            "role": "system",
            "content": [{"type": "text", "text": selector_system_prompt(num_candidates, num_select, label)}],
        },
        {
            "role": "user",
            "content": [video_block, {"type": "text", "text": SELECTOR_USER_PROMPT.format(question=question)}],
        },
    ]


# ----------------------------------------------------------------------------------------------------------------
# Parsing


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


def fallback_indices(parsed: list[int] | None, num_candidates: int, num_select: int) -> list[int]:
    """The frames the answer model gets: `parsed` if it is a valid selection, else `uniform_indices(T, N)` (ViaRL).

    Example:
        ```python
        >>> fallback_indices([9, 2, 5], 16, 3), fallback_indices([9, 9, 5], 16, 3), fallback_indices(None, 16, 4)
        ([9, 2, 5], [0, 5, 10], [0, 4, 8, 12])
        ```
    """
    if is_valid_selection(parsed, num_candidates, num_select):
        return list(parsed)
    return uniform_indices(num_candidates, num_select)


def check_selector_format(text: Any) -> bool:
    """True iff `text` is `<think>reasoning</think><index>list</index>` and nothing else (whitespace aside).

    The reasoning is non-blank, neither block holds another `<think>`/`<index>` tag, the tags are lower case, and the
    list parses (`parse_indices`); its length and range are the index reward's business.
    """
    if not isinstance(text, str):
        return False
    match = _FORMAT_RE.fullmatch(text)
    return bool(match and match.group("think").strip() and _parse_index_list(match.group("index")) is not None)


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
