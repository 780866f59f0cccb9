"""The built-in TRL reward functions: format, think_format, accuracy, iou, exact_match.

This module owns the TRL-facing side of the rewards: each function takes a batch of completions plus the
canonical dataset columns (`task`, `answer`, `options`, `spans`, `duration`, ... as lists over the batch rows),
swallows TRL's other keyword arguments (`prompts`, `completion_ids`, `trainer_state`, `log_metric`, ...) and
returns one `float` per row, or `None` where the reward does not apply to the row's task (TRL then leaves the
row out of that reward). The per-row scoring lives in `scoring.py`, shared with the evaluator.

| registry name  | `__name__`            | rows it scores         | value                                         |
|----------------|-----------------------|------------------------|-----------------------------------------------|
| `format`       | `format_reward`       | all but open_qa        | 1 if the exact tag structure (think optional) |
| `think_format` | `think_format_reward` | all but open_qa        | same, with `<think>` required                 |
| `accuracy`     | `accuracy_reward`     | mcq, grounded_qa       | 1 if the chosen letter is the gold letter     |
| `iou`          | `iou_reward`          | grounding, grounded_qa | temporal IoU, best gold span, 0 if unparsed   |
| `exact_match`  | `exact_match_reward`  | open_qa                | 1 if the normalised answer equals the gold    |

TRL logs each as `rewards/<__name__>/mean`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from temporal_rl.rewards.parsing import completion_text
from temporal_rl.rewards.registry import register_reward
from temporal_rl.rewards.scoring import check_format, choice_score, free_answer_score, span_score

FORMAT_TASKS = ("grounding", "mcq", "grounded_qa")
CHOICE_TASKS = ("mcq", "grounded_qa")
SPAN_TASKS = ("grounding", "grounded_qa")
RECALL_THRESHOLDS = (0.3, 0.5, 0.7)
FREE_TEXT_TASKS = ("open_qa",)


def column_rows(values: Any, size: int, name: str) -> list:
    """A dataset column as a list of `size` rows (`None` rows if the column is absent)."""
    if values is None:
        return [None] * size
    values = list(values)
    if len(values) != size:
        raise ValueError(f"column {name!r} has {len(values)} rows but there are {size} completions")
    return values


def _format_rewards(completions, task, options, require_think: bool) -> list[float | None]:
    size = len(completions)
    rewards = []
    for completion, row_task, row_options in zip(
        completions, column_rows(task, size, "task"), column_rows(options, size, "options"), strict=True
    ):
        if row_task not in FORMAT_TASKS:
            rewards.append(None)
            continue
        text = completion_text(completion)
        good = check_format(text, row_task, options=row_options or None, require_think=require_think)
        rewards.append(1.0 if good else 0.0)
    return rewards


@register_reward("format")
def format_reward(
    completions: Sequence[Any], task: Sequence[str], options: Sequence[Any] | None = None, **kwargs
) -> list[float | None]:
    """1.0 if a completion is exactly the task's answer structure, with an optional leading `<think>` block.

    The structure (see `scoring.check_format`): `[<think>...</think>] <answer>...</answer>` for grounding and
    mcq, `[<think>...</think>] <answer>...</answer> <time>...</time>` for grounded_qa, whitespace allowed between
    tags, and the payloads parse (a span, a valid option letter).

    Args:
        completions: the completions, strings or conversational (lists of messages).
        task: the `task` column.
        options: the `options` column (option texts, `None` for tasks without options).
        **kwargs: other columns and TRL arguments, ignored.

    Returns:
        1.0 or 0.0 per row; `None` for open_qa rows.

    Example:
        ```python
        >>> format_reward(["<answer>B</answer>", "B", "<answer>5 - 9</answer>"], task=["mcq", "mcq", "grounding"],
        ...               options=[["x", "y"], ["x", "y"], None])
        [1.0, 0.0, 1.0]
        ```
    """
    return _format_rewards(completions, task, options, require_think=False)


@register_reward("think_format")
def think_format_reward(
    completions: Sequence[Any], task: Sequence[str], options: Sequence[Any] | None = None, **kwargs
) -> list[float | None]:
    """Like `format_reward`, but the `<think>...</think>` block (with non-blank reasoning) is required.

    Example:
        ```python
        >>> think_format_reward(["<answer>B</answer>", "<think>blue</think><answer>B</answer>"], task=["mcq"] * 2,
        ...                     options=[["x", "y"]] * 2)
        [0.0, 1.0]
        ```
    """
    return _format_rewards(completions, task, options, require_think=True)


@register_reward("accuracy")
def accuracy_reward(
    completions: Sequence[Any],
    task: Sequence[str],
    answer: Sequence[Any],
    options: Sequence[Any] | None = None,
    **kwargs,
) -> list[float | None]:
    """1.0 if the option letter of a completion (`parsing.parse_option_letter`) is the gold `answer` letter.

    Args:
        completions: the completions, strings or conversational.
        task: the `task` column.
        answer: the `answer` column (gold option letters).
        options: the `options` column (option texts; they bound the valid letters).
        **kwargs: ignored.

    Returns:
        1.0 or 0.0 for mcq and grounded_qa rows, `None` for the others.

    Example:
        ```python
        >>> accuracy_reward(["<answer>B</answer>", "<answer>A</answer>", "x"], task=["mcq", "mcq", "grounding"],
        ...                 answer=["B", "B", None], options=[["x", "y"], ["x", "y"], None])
        [1.0, 0.0, None]
        ```
    """
    size = len(completions)
    rewards = []
    for completion, row_task, row_answer, row_options in zip(
        completions,
        column_rows(task, size, "task"),
        column_rows(answer, size, "answer"),
        column_rows(options, size, "options"),
        strict=True,
    ):
        if row_task not in CHOICE_TASKS or not row_answer:
            rewards.append(None)
            continue
        _, correct = choice_score(completion_text(completion), row_answer, row_options or None)
        rewards.append(1.0 if correct else 0.0)
    return rewards


@register_reward("iou")
def iou_reward(
    completions: Sequence[Any],
    task: Sequence[str],
    spans: Sequence[Any],
    duration: Sequence[float] | None = None,
    log_metric: Callable[[str, float], None] | None = None,
    **kwargs,
) -> list[float | None]:
    """Temporal IoU of the completion's span with the gold spans (the best one), the span clipped to the video.

    The span is read from `<answer>` (grounding) or `<time>` (grounded_qa) by `parsing.parse_span`, sorted,
    clipped to `[0, duration]`; an unparseable or zero-length span scores 0.

    Args:
        completions: the completions, strings or conversational.
        task: the `task` column.
        spans: the `spans` column (gold `[[start, end], ...]` in seconds).
        duration: the `duration` column (seconds).
        log_metric: TRL's per-value metric logger; when given, each scored row logs `iou/mean` and its
            `iou/recall@{0.3,0.5,0.7}` hits, so the training logs show the IoU distribution (TRL averages the
            values over all processes).
        **kwargs: ignored.

    Returns:
        IoU in [0, 1] for grounding and grounded_qa rows with gold spans, `None` for the others.

    Example:
        ```python
        >>> iou_reward(["<answer>0 - 4</answer>", "<answer>no idea</answer>"], task=["grounding"] * 2,
        ...            spans=[[[2.0, 6.0]]] * 2, duration=[10.0] * 2)
        [0.3333333333333333, 0.0]
        ```
    """
    size = len(completions)
    rewards = []
    for completion, row_task, row_spans, row_duration in zip(
        completions,
        column_rows(task, size, "task"),
        column_rows(spans, size, "spans"),
        column_rows(duration, size, "duration"),
        strict=True,
    ):
        if row_task not in SPAN_TASKS or row_spans is None or len(row_spans) == 0:
            rewards.append(None)
            continue
        iou = span_score(completion_text(completion), row_task, row_spans, row_duration).iou
        rewards.append(iou)
        if log_metric is not None:
            log_metric("iou/mean", iou)
            for threshold in RECALL_THRESHOLDS:
                log_metric(f"iou/recall@{threshold}", float(iou >= threshold))
    return rewards


@register_reward("exact_match")
def exact_match_reward(
    completions: Sequence[Any], task: Sequence[str], answer: Sequence[Any], **kwargs
) -> list[float | None]:
    """1.0 if the free-text answer (`<answer>` content) equals the gold answer after normalisation (open_qa rows).

    Normalisation (`parsing.normalize_answer`): lower case, no punctuation, no articles, single spaces.

    Returns:
        1.0 or 0.0 for open_qa rows, `None` for the others.

    Example:
        ```python
        >>> exact_match_reward(["<answer>The red circle.</answer>"], task=["open_qa"], answer=["red circle"])
        [1.0]
        ```
    """
    size = len(completions)
    rewards = []
    for completion, row_task, row_answer in zip(
        completions, column_rows(task, size, "task"), column_rows(answer, size, "answer"), strict=True
    ):
        if row_task not in FREE_TEXT_TASKS or not row_answer:
            rewards.append(None)
            continue
        _, correct = free_answer_score(completion_text(completion), row_answer)
        rewards.append(1.0 if correct else 0.0)
    return rewards
