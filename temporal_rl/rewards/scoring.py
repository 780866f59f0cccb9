"""Per-sample scores of one completion against one record's gold: the layer the rewards and the evaluator share.

This module owns turning (completion text, gold fields) into numbers: the span's IoU and IoP, whether the chosen
option is right, whether a free-text answer matches, and whether the completion has the task's exact tag
structure. The TRL reward functions (`task_rewards.py`) and the metrics (`temporal_rl.eval.metrics`) both call
these functions, so a reward during training and a metric after it read a completion the same way. Pure
functions on strings and numbers; nothing here raises on any completion text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, NamedTuple

from temporal_rl.rewards.parsing import (
    normalize_answer,
    parse_free_answer,
    parse_option_letter,
    parse_span,
    parse_task_span,
)
from temporal_rl.rewards.temporal import Span, best_iop, best_iou, clip_span

# The tags after the optional <think> block, in order, per task.
TASK_TAGS = {
    "grounding": ("answer",),
    "mcq": ("answer",),
    "grounded_qa": ("answer", "time"),
    "open_qa": ("answer",),
}
_ANY_TAG_RE = re.compile(r"</?(?:think|answer|time)>", re.IGNORECASE)


class SpanScore(NamedTuple):
    """A completion's span against the gold spans.

    Attributes:
        span: the parsed span clipped to `[0, duration]` (seconds), or `None` if none was found or it was
            zero-length after clipping.
        iou: best temporal IoU over the gold spans, 0 without a span.
        iop: best intersection over prediction over the gold spans, 0 without a span.
    """

    span: Span | None
    iou: float
    iop: float


def span_score(text: Any, task: Any, golds: Sequence[Sequence[float]] | None, duration: float | None) -> SpanScore:
    """Score the span of a completion for a grounding or grounded-QA record.

    Args:
        text: the completion text.
        task: `"grounding"` (span in `<answer>`) or `"grounded_qa"` (span in `<time>`).
        golds: the record's gold spans `[[start, end], ...]` in seconds.
        duration: the video length in seconds, to clip the prediction.

    Returns:
        A `SpanScore`.

    Example:
        ```python
        >>> span_score("<answer>5 - 9</answer>", "grounding", [[6.0, 10.0]], 30.0)
        SpanScore(span=(5.0, 9.0), iou=0.6, iop=0.75)
        ```
    """
    span = clip_span(parse_task_span(text, task), duration)
    if span is None:
        return SpanScore(None, 0.0, 0.0)
    return SpanScore(span, best_iou(span, golds), best_iop(span, golds))


def choice_score(text: Any, answer: Any, options: Sequence[str] | None) -> tuple[str | None, bool]:
    """The option letter a completion chooses and whether it is the gold `answer` letter.

    Example:
        ```python
        >>> choice_score("<answer>(B)</answer>", "B", ["red", "blue", "green"])
        ('B', True)
        ```
    """
    letter = parse_option_letter(text, len(options) if options else None, options=options)
    return letter, letter is not None and letter == answer


def free_answer_score(text: Any, answer: Any) -> tuple[str | None, bool]:
    """A free-text answer and whether it equals the gold answer after `normalize_answer` (open QA)."""
    prediction = parse_free_answer(text)
    if prediction is None:
        return None, False
    gold = normalize_answer(answer)
    return prediction, bool(gold) and normalize_answer(prediction) == gold


def _payload_parses(tag: str, payload: str, task: str, options: Sequence[str] | None, num_options: int | None):
    if tag == "time" or (tag == "answer" and task == "grounding"):
        return parse_span(payload, tag=None) is not None
    if task in ("mcq", "grounded_qa"):
        if num_options is None and options:
            num_options = len(options)
        return parse_option_letter(payload, num_options, options=options) is not None
    return bool(payload.strip())


def check_format(
    text: Any,
    task: Any,
    *,
    options: Sequence[str] | None = None,
    num_options: int | None = None,
    require_think: bool = False,
) -> bool:
    """Whether a completion is exactly the task's answer structure and its payload parses.

    The structure is an optional (with `require_think`, required) `<think>reasoning</think>` with non-blank
    reasoning, then the task's tags in order: `<answer>...</answer>` (grounding, mcq, open_qa) or
    `<answer>...</answer><time>...</time>` (grounded_qa). Whitespace may surround the tags; nothing else may.
    No tag may appear inside another. The payload must parse: a span for grounding's `<answer>` and for `<time>`,
    a valid option letter for the `<answer>` of mcq and grounded_qa, non-blank text for open_qa.

    Args:
        text: the completion text.
        task: the record's task.
        options: the option texts (mcq, grounded_qa), for the number of valid letters and answers given as text.
        num_options: the number of options, when `options` is not at hand.
        require_think: whether the `<think>` block is required.

    Returns:
        `True` if the completion has the format.

    Example:
        ```python
        >>> check_format('<think>x</think> <answer>{"start_time": "1", "end_time": "2"}</answer>', "grounding")
        True
        >>> check_format("<answer>B</answer> because", "mcq", num_options=4)
        False
        ```
    """
    if not isinstance(text, str) or task not in TASK_TAGS:
        return False
    rest = text.strip()
    if rest.startswith("<think>"):
        end = rest.find("</think>")
        if end < 0:
            return False
        reasoning = rest[len("<think>") : end]
        if not reasoning.strip() or _ANY_TAG_RE.search(reasoning):
            return False
        rest = rest[end + len("</think>") :]
    elif require_think:
        return False
    for tag in TASK_TAGS[task]:
        rest = rest.lstrip()
        opening, closing = f"<{tag}>", f"</{tag}>"
        if not rest.startswith(opening):
            return False
        end = rest.find(closing)
        if end < 0:
            return False
        payload = rest[len(opening) : end]
        if _ANY_TAG_RE.search(payload) or not _payload_parses(tag, payload, task, options, num_options):
            return False
        rest = rest[end + len(closing) :]
    return not rest.strip()
