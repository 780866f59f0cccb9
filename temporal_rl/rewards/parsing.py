"""Pure text parsers: a model's completion in, a span in seconds, an option letter or an answer string out.

This module owns reading model output. Every parser takes any string (or anything at all) and returns `None`
when it finds nothing; none of them raises. The rewards (`temporal_rl.rewards`) and the evaluator
(`temporal_rl.eval`) both read completions through these functions, so training and evaluation agree on what a
completion says.

Where each task's answer lives (the contract shared with `temporal_rl.prompts`):

| task          | completion                                                                      |
|---------------|---------------------------------------------------------------------------------|
| `grounding`   | `<answer>{"start_time": "5.5", "end_time": "9.0"}</answer>`, `<answer>5.5 - 9.0</answer>` |
| `mcq`         | `<answer>B</answer>`                                                            |
| `grounded_qa` | `<answer>B</answer><time>{"start_time": "5.5", "end_time": "9.0"}</time>`       |
| `open_qa`     | `<answer>free text</answer>`                                                    |

with an optional `<think>...</think>` first.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Sequence
from typing import Any

OPTION_LETTERS = string.ascii_uppercase

# The tag that holds the span, per task.
SPAN_TAG = {"grounding": "answer", "grounded_qa": "time"}

_UNIT = r"(?:seconds?|secs?|s)\b"
# A time: 12, 12.5, mm:ss, mm:ss.f, hh:mm:ss(.f); not .5 nor 5. nor exponents or signs.
_TIME = r"\d+(?::\d{1,2}){0,2}(?:\.\d+)?"
_TIME_TOKEN = rf"(?<![\w.:])({_TIME})(?![\d:]|\.\d)(?:\s*{_UNIT})?"
_SEPARATOR = r"\s*(?:-|–|—|~|\bto\b|\band\b|\buntil\b|\btill\b|\bthrough\b)\s*"

_SECONDS_RE = re.compile(rf"({_TIME})(?:\s*{_UNIT})?", re.IGNORECASE)
_PAIR_RE = re.compile(_TIME_TOKEN + _SEPARATOR + _TIME_TOKEN, re.IGNORECASE)
_BRACKET_PAIR_RE = re.compile(r"[\[(]\s*" + _TIME_TOKEN + r"\s*,\s*" + _TIME_TOKEN + r"\s*[\])]", re.IGNORECASE)
_KEY_VALUE_RE = re.compile(
    r"(?<![A-Za-z_])[\"']?(start|end)(?:_time)?[\"']?\s*:\s*[\"']?\s*(\d[\d:.]*(?:\s*" + _UNIT + r")?)\s*[\"']?",
    re.IGNORECASE,
)
_THINK_BLOCK_RE = re.compile(r"<think>.*?</think>", re.IGNORECASE | re.DOTALL)

_LONE_LETTER_RE = re.compile(r"\(?\s*([A-Za-z])\s*\)?\s*[.:)]?")
_LEADING_LETTER_RE = re.compile(r"(?:\(\s*([A-Z])\s*\)|([A-Z])[.:)])(?:\s|$)")
_ANSWER_PHRASE_RE = re.compile(
    r"(?i:\b(?:answer|option|choice))\s*(?i:is|:|=)?\s*(?i:option\s*)?\(?([A-Z])\)?(?![A-Za-z])"
)
_PARENTHESISED_LETTER_RE = re.compile(r"(?<![A-Za-z])\(([A-Z])\)")
_STANDALONE_CAPITAL_RE = re.compile(r"(?<![A-Za-z])([A-Z])(?![A-Za-z])")
_OPTION_LABEL_RE = re.compile(r"^\s*(?:\(\s*[A-Za-z]\s*\)|[A-Za-z][.:)])\s+")
_DECORATION = " \t\r\n*_`'\""


def completion_text(completion: Any) -> str:
    """The assistant text of a completion, as TRL hands it to reward functions.

    Args:
        completion: a plain string (standard format), or a conversational completion: a list of messages
            `{"role": "assistant", "content": ...}` whose content is a string or a list of parts
            `{"type": "text", "text": ...}`. A single message dict is accepted too.

    Returns:
        The text of the assistant messages joined by newlines; `""` for anything else (never raises).

    Example:
        ```python
        >>> completion_text([{"role": "assistant", "content": [{"type": "text", "text": "<answer>B</answer>"}]}])
        '<answer>B</answer>'
        ```
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if not isinstance(completion, (list, tuple)):
        return ""
    texts = []
    for message in completion:
        if isinstance(message, str):
            texts.append(message)
            continue
        if not isinstance(message, dict) or message.get("role", "assistant") != "assistant":
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, (list, tuple)):
            parts = [part.get("text") for part in content if isinstance(part, dict)]
            texts.append("".join(text for text in parts if isinstance(text, str)))
    return "\n".join(texts)


def extract_tag(text: Any, tag: str) -> str | None:
    """The content of the last complete `<tag>...</tag>` pair (tag names case-insensitive), stripped.

    With nested or repeated opening tags the innermost content before the last closing tag is taken:
    `"<answer>a<answer>b</answer>"` gives `"b"`.

    Args:
        text: the completion text.
        tag: the tag name without brackets, e.g. `"answer"`.

    Returns:
        The stripped content, or `None` when there is no complete pair.

    Example:
        ```python
        >>> extract_tag("<think>hmm</think><answer> B </answer>", "answer")
        'B'
        ```
    """
    if not isinstance(text, str):
        return None
    closings = list(re.finditer(rf"</{re.escape(tag)}>", text, re.IGNORECASE))
    if not closings:
        return None
    end = closings[-1].start()
    openings = list(re.finditer(rf"<{re.escape(tag)}>", text[:end], re.IGNORECASE))
    if not openings:
        return None
    return text[openings[-1].end() : end].strip()


def strip_think(text: Any) -> str:
    """The text with every complete `<think>...</think>` block removed (the reasoning, not the answer)."""
    if not isinstance(text, str):
        return ""
    return _THINK_BLOCK_RE.sub(" ", text)


def _time_token_to_seconds(token: str) -> float | None:
    fields = token.split(":")
    try:
        values = [float(field) for field in fields]
    except ValueError:
        return None
    if any(value >= 60 for value in values[1:]):
        return None  # minutes and seconds after a colon are below 60
    seconds = 0.0
    for value in values:
        seconds = seconds * 60.0 + value
    return seconds if math.isfinite(seconds) else None


def parse_seconds(text: Any) -> float | None:
    """A time in seconds from one time expression.

    Accepts `"12.3"`, `"12.3s"`, `"12.3 sec"`, `"12.3 seconds"`, `"mm:ss"`, `"mm:ss.f"` and `"hh:mm:ss(.f)"`,
    optionally quoted; minutes and seconds after a colon must be below 60. Negative, non-finite or malformed
    times give `None`.

    Args:
        text: the time expression (surrounding whitespace and quotes are ignored).

    Returns:
        Seconds as a float64 Python float, or `None`.

    Example:
        ```python
        >>> parse_seconds("01:05.5"), parse_seconds("12.3 seconds"), parse_seconds("nan")
        (65.5, 12.3, None)
        ```
    """
    if not isinstance(text, str):
        return None
    match = _SECONDS_RE.fullmatch(text.strip().strip("\"'").strip())
    if match is None:
        return None
    return _time_token_to_seconds(match.group(1))


def _ordered_pair(start: float | None, end: float | None) -> tuple[float, float] | None:
    if start is None or end is None:
        return None
    return (start, end) if start <= end else (end, start)


def _span_from_keys(text: str) -> tuple[float, float] | None:
    values = {}
    for match in _KEY_VALUE_RE.finditer(text):
        key = match.group(1).lower()
        if key not in values:
            values[key] = parse_seconds(match.group(2))
    return _ordered_pair(values.get("start"), values.get("end"))


def _spans_from_pairs(text: str) -> list[tuple[float, float]]:
    matches = [*_PAIR_RE.finditer(text), *_BRACKET_PAIR_RE.finditer(text)]
    matches.sort(key=lambda match: match.start())
    spans = []
    for match in matches:
        span = _ordered_pair(_time_token_to_seconds(match.group(1)), _time_token_to_seconds(match.group(2)))
        if span is not None:
            spans.append(span)
    return spans


def _span_in(text: str, *, last: bool) -> tuple[float, float] | None:
    span = _span_from_keys(text)
    if span is not None:
        return span
    spans = _spans_from_pairs(text)
    if not spans:
        return None
    return spans[-1] if last else spans[0]


def parse_span(text: Any, tag: str | None = "answer") -> tuple[float, float] | None:
    """A (start, end) span in seconds from a completion.

    Formats: a JSON-like object with `start_time`/`end_time` (or `start`/`end`) keys whose values may be quoted
    and may be `mm:ss`; `"s - e"`, `"s – e"`, `"s to e"`, `"from s to e"`, `"between s and e"`, `"[s, e]"`,
    `"(s, e)"`, each time optionally with a unit (`s`, `sec`, `seconds`) and in any form `parse_seconds` reads.
    A reversed pair is sorted. The pair may be zero-length: clip it with `temporal.clip_span` before scoring.

    Where it looks: with `tag`, inside the last complete `<tag>...</tag>` (first span found there; `None` if
    that content has none); if the tag is absent, in the text without its `<think>` blocks (the last span found,
    the model's conclusion). With `tag=None`, the whole text (first span).

    Args:
        text: the completion text.
        tag: the tag that holds the answer (`"answer"` for grounding, `"time"` for grounded QA), or `None`.

    Returns:
        `(start, end)` with `start <= end`, in seconds, or `None`.

    Example:
        ```python
        >>> parse_span('<answer>{"start_time": "9.0", "end_time": "5.5"}</answer>')
        (5.5, 9.0)
        >>> parse_span("It happens from 0:05 to 0:09.5 in the clip.")
        (5.0, 9.5)
        ```
    """
    if not isinstance(text, str):
        return None
    if tag is None:
        return _span_in(text, last=False)
    content = extract_tag(text, tag)
    if content is not None:
        return _span_in(content, last=False)
    return _span_in(strip_think(text), last=True)


def parse_task_span(text: Any, task: Any) -> tuple[float, float] | None:
    """The span of a completion for `task`: `<answer>` for grounding, `<time>` for grounded QA (see `parse_span`).

    Returns `None` for tasks without a span (mcq, open_qa).
    """
    tag = SPAN_TAG.get(task) if isinstance(task, str) else None
    if tag is None:
        return None
    return parse_span(text, tag=tag)


def _normalise_option_text(text: str) -> str:
    text = _OPTION_LABEL_RE.sub("", text)
    return normalize_answer(text, drop_articles=False)


def _letter_in(segment: str, letters: str, options: Sequence[str] | None) -> str | None:
    segment = segment.strip(_DECORATION)
    lone = _LONE_LETTER_RE.fullmatch(segment)
    if lone is not None:
        letter = lone.group(1).upper()
        return letter if letter in letters else None
    leading = _LEADING_LETTER_RE.match(segment)
    if leading is not None:
        letter = leading.group(1) or leading.group(2)
        if letter in letters:
            return letter
    for pattern in (_ANSWER_PHRASE_RE, _PARENTHESISED_LETTER_RE):
        for match in pattern.finditer(segment):
            if match.group(1) in letters:
                return match.group(1)
    if options:
        wanted = _normalise_option_text(segment)
        matches = [i for i, option in enumerate(options) if isinstance(option, str) and wanted]
        matches = [i for i in matches if _normalise_option_text(options[i]) == wanted and i < len(letters)]
        if len(matches) == 1:
            return letters[matches[0]]
    for match in _STANDALONE_CAPITAL_RE.finditer(segment):
        if match.group(1) in letters:
            return match.group(1)
    return None


def parse_option_letter(
    text: Any, num_options: int | None = None, *, options: Sequence[str] | None = None
) -> str | None:
    """The option letter a completion chooses.

    Reads the last complete `<answer>...</answer>` if there is one, else the text without its `<think>` blocks,
    and tries in order: a lone letter (`"B"`, `"(B)"`, `"B."`, `"b"`); a leading label (`"B) text"`,
    `"(B) text"`, `"B. text"`); a phrase (`"Answer: B"`, `"The answer is B"`, `"option B"`); a parenthesised
    letter anywhere (`"... (B) ..."`); the exact text of one option (needs `options`; case, punctuation and an
    option label are ignored); and last the first standalone capital letter (not part of a word) that is a valid
    option, as lmms-eval does (so text without a valid letter, long or short, gives `None`; unlike lmms-eval,
    the "B" of "Because" is not a letter). Only letters of the first `num_options` options count.

    Args:
        text: the completion text.
        num_options: how many options the question has (letters A.. up to it); defaults to `len(options)`,
            else all 26 letters.
        options: the option texts, to match an answer given as text.

    Returns:
        The upper-case letter, or `None`.

    Example:
        ```python
        >>> parse_option_letter("<think>not A</think><answer>The answer is (C).</answer>", 4)
        'C'
        >>> parse_option_letter("<answer>a red square</answer>", options=["a blue circle", "A red square"])
        'B'
        ```
    """
    if not isinstance(text, str):
        return None
    if num_options is None:
        num_options = len(options) if options else len(OPTION_LETTERS)
    try:
        letters = OPTION_LETTERS[: max(0, min(int(num_options), len(OPTION_LETTERS)))]
    except (TypeError, ValueError):
        return None
    content = extract_tag(text, "answer")
    segment = content if content is not None else strip_think(text)
    return _letter_in(segment, letters, options)


def normalize_answer(text: Any, *, drop_articles: bool = True) -> str:
    """A free-text answer normalised for exact match: lower case, no punctuation, no articles, single spaces.

    Example:
        ```python
        >>> normalize_answer("  The Red  Circle! ")
        'red circle'
        ```
    """
    if not isinstance(text, str):
        return ""
    text = text.lower()
    text = "".join(" " if char in string.punctuation else char for char in text)
    words = text.split()
    if drop_articles:
        words = [word for word in words if word not in ("a", "an", "the")]
    return " ".join(words)


def parse_free_answer(text: Any) -> str | None:
    """A free-text answer: the last `<answer>` content, else the text without `<think>` blocks; `None` if blank."""
    if not isinstance(text, str):
        return None
    content = extract_tag(text, "answer")
    if content is None:
        content = strip_think(text).strip()
    return content or None
