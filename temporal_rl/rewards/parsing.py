r"""Pure text parsers: a model's completion in, a span in seconds, an option letter or an answer string out.

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

Every parser runs in time linear in the length of its input, whatever the text: a degenerate policy writes kilobytes
of spaces after "answer", or `<think>` a thousand times, and a pattern that backtracks quadratically over such a run
stalls a training step for seconds. The rules that keep it linear, and fast (`tests/test_parsing_time.py` times every
reward on such texts at 16 and 64 KB: under 10 ms at 64 KB):

- two quantifiers that can match the same characters never follow each other (`\s*:?\s*` is `\s*(?::\s*)?`);
- a pair of tags is found by locating each tag once (`strip_think`, `extract_tag`), never by a lazy `.*?` tried from
  every opening;
- the span and letter patterns read a squeezed text (`_squeeze`: every whitespace run as one character), which they
  read the same way, so long runs cost nothing;
- digit runs in times are atomic (a look-ahead and a back-reference), and a scanning pattern begins with a character
  class (its look-behind after the first character), so the regex engine skips in C what cannot start a match.
"""

from __future__ import annotations

import heapq
import math
import re
import string
from collections import deque
from collections.abc import Sequence
from typing import Any

OPTION_LETTERS = string.ascii_uppercase

# The tag that holds the span, per task.
SPAN_TAG = {"grounding": "answer", "grounded_qa": "time"}

_UNIT = r"(?:seconds?|secs?|s)\b"
# A time: 12, 12.5, mm:ss, mm:ss.f, hh:mm:ss(.f); not .5 nor 5. nor exponents or signs.
# (Optional parts are written as alternatives with an empty branch, `(?:x|)` for `(?:x)?`, and `{0,2}` as two nested
# ones: the same matches, tried in the same order, at a fraction of the regex engine's cost per number.)
_TIME_TAIL = r"(?::\d\d?(?::\d\d?|)|)"


def _time(name: str, *, first: bool = False) -> str:
    r"""A time (12, 12.5, mm:ss, mm:ss.f, hh:mm:ss(.f)) captured as group `name`.

    Its digit runs are atomic (`(?=(?P<x>\d+))(?P=x)`: a look-ahead takes the run, a back-reference consumes it).
    Wherever a time is used it must not be followed by a digit, so no shorter run could match, and on a failure the
    engine gives up at once instead of retrying every shorter run. `first`: also "not glued to a word, a number or a
    colon", checked after the first digit (`\d(?<![\w.:]\d)`), so that a pattern that begins with the time begins with
    a character class: the engine then skips every position that cannot start a match in C (a pattern that begins
    with a look-behind enters the matcher at every character).
    """
    whole = rf"\d(?<![\w.:]\d)(?=(?P<{name}_i>\d*))(?P={name}_i)" if first else rf"(?=(?P<{name}_i>\d+))(?P={name}_i)"
    return rf"(?P<{name}>{whole}{_TIME_TAIL}(?:\.(?=(?P<{name}_f>\d+))(?P={name}_f)|))"


def _time_token(name: str, *, first: bool = False) -> str:
    """A time in a span: not glued to a word, a number or a colon, not followed by more of a number, with an optional
    unit (12, 12.5s, 0:12 sec, ...)."""
    guard = "" if first else r"(?<![\w.:])"
    return rf"{guard}{_time(name, first=first)}(?![\d:]|\.\d)(?:\s*{_UNIT}|)"


_SEPARATOR = r"\s*(?:[-–—~]|\b(?:to|and|until|till|through)\b)\s*"
_SECONDS_RE = re.compile(_time("time") + rf"(?:\s*{_UNIT})?", re.IGNORECASE)
_PAIR_RE = re.compile(_time_token("start", first=True) + _SEPARATOR + _time_token("end"), re.IGNORECASE)
_BRACKET_PAIR_RE = re.compile(
    r"[\[(]\s*" + _time_token("start") + r"\s*,\s*" + _time_token("end") + r"\s*[\])]", re.IGNORECASE
)
# `start` / `end` (`_time`), not inside a word, then `:` and a time. The first letter is a plain character class (the
# case-insensitive matches of s and e, U+017F the long s included), so the engine skips other characters in C; the
# look-behind after it is "no letter or _ before the key" (case-insensitively: U+0130, U+0131, U+017F, U+212A are
# letters too). `\s*(?:["']\s*)?` is `\s*["']?\s*` without two adjacent `\s*`.
_KEY_VALUE_RE = re.compile(
    r"(?P<key>[SsEe\u017f](?<![A-Za-z_\u0130\u0131\u017f\u212a][SsEe\u017f])(?i:(?<=[s\u017f])tart|(?<=e)nd))"
    r"(?i:(?:_time)?[\"']?\s*:\s*(?:[\"']\s*)?(?P<value>\d[\d:.]*(?:\s*" + _UNIT + r")?)\s*[\"']?)"
)
_THINK_OPEN_RE = re.compile(r"<think>", re.IGNORECASE)
_THINK_CLOSE_RE = re.compile(r"</think>", re.IGNORECASE)

_LONE_LETTER_RE = re.compile(r"\(?\s*([A-Za-z])\s*(?:\)\s*)?[.:)]?")
_LEADING_LETTER_RE = re.compile(r"(?:\(\s*([A-Z])\s*\)|([A-Z])[.:)])(?:\s|$)")
# "answer", "option" or "choice" (any case, at a word start), "is" / ":" / "=", "option", then the letter.
_ANSWER_PHRASE_RE = re.compile(
    r"[AaOoCc](?<!\w[AaOoCc])(?i:(?<=a)nswer|(?<=o)ption|(?<=c)hoice)"
    r"\s*(?:(?i:is|:|=)\s*)?(?i:option\s*)?\(?([A-Z])\)?(?![A-Za-z])"
)
_PARENTHESISED_LETTER_RE = re.compile(r"\((?<![A-Za-z]\()([A-Z])\)")
_STANDALONE_CAPITAL_RE = re.compile(r"([A-Z])(?<![A-Za-z][A-Z])(?![A-Za-z])")
_OPTION_LABEL_RE = re.compile(r"\s*(?:\(\s*[A-Za-z]\s*\)|[A-Za-z][.:)])\s+")
_PUNCTUATION_TO_SPACE = str.maketrans(dict.fromkeys(string.punctuation, " "))
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
    closing = _last_match(rf"</{re.escape(tag)}>", text, len(text))
    if closing is None:
        return None
    opening = _last_match(rf"<{re.escape(tag)}>", text, closing.start())
    if opening is None:
        return None
    return text[opening.end() : closing.start()].strip()


def _last_match(pattern: str, text: str, end: int) -> re.Match | None:
    """The last match of a literal tag `pattern` (case-insensitive) ending by `end`, in one linear pass."""
    found = deque(re.finditer(pattern, text[:end] if end < len(text) else text, re.IGNORECASE), maxlen=1)
    return found[0] if found else None


def _tag_positions(text: str) -> tuple[list[int], list[int]]:
    """(starts of every `<think>`, starts of every `</think>`), case-insensitive: one linear pass each."""
    return (
        [match.start() for match in _THINK_OPEN_RE.finditer(text)],
        [match.start() for match in _THINK_CLOSE_RE.finditer(text)],
    )


def strip_think(text: Any) -> str:
    """The text with every complete `<think>...</think>` block removed (the reasoning, not the answer).

    A block runs from an opening tag to the first closing tag after it, and the next block is searched after that
    closing tag (the blocks a lazy `<think>.*?</think>` would find, each replaced by a space), in linear time.
    """
    if not isinstance(text, str):
        return ""
    openings, closings = _tag_positions(text)
    parts, position, next_closing = [], 0, 0
    for opening in openings:
        if opening < position:
            continue  # inside the block just removed
        while next_closing < len(closings) and closings[next_closing] < opening + len("<think>"):
            next_closing += 1
        if next_closing == len(closings):
            break  # no closing tag after this opening, nor after any later one
        parts += [text[position:opening], " "]
        position = closings[next_closing] + len("</think>")
    if not parts:
        return text
    parts.append(text[position:])
    return "".join(parts)


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
    return _time_token_to_seconds(match.group("time"))


def _ordered_pair(start: float | None, end: float | None) -> tuple[float, float] | None:
    if start is None or end is None:
        return None
    return (start, end) if start <= end else (end, start)


def _span_from_keys(text: str) -> tuple[float, float] | None:
    values = {}
    for match in _KEY_VALUE_RE.finditer(text):
        key = match.group("key").lower()
        if key not in values:
            values[key] = parse_seconds(match.group("value"))
    return _ordered_pair(values.get("start"), values.get("end"))


def _pair_span(match: re.Match) -> tuple[float, float] | None:
    return _ordered_pair(_time_token_to_seconds(match.group("start")), _time_token_to_seconds(match.group("end")))


def _span_from_pairs(text: str, *, last: bool) -> tuple[float, float] | None:
    """The first (or last) readable pair of the text, `s - e` or `[s, e]` forms alike, by where it starts."""
    if not last:
        # lazily, in order of start: the first readable pair ends the search
        for match in heapq.merge(_PAIR_RE.finditer(text), _BRACKET_PAIR_RE.finditer(text), key=re.Match.start):
            span = _pair_span(match)
            if span is not None:
                return span
        return None
    # every match is needed to know the last, but only the last readable one is read
    matches = [*_PAIR_RE.finditer(text), *_BRACKET_PAIR_RE.finditer(text)]
    matches.sort(key=re.Match.start)
    for match in reversed(matches):
        span = _pair_span(match)
        if span is not None:
            return span
    return None


def _squeeze(text: str) -> str:
    r"""Every run of whitespace as one character (a space inside the text, its own first character at either end).

    The span and letter patterns read whitespace only as runs (`\s*`, `\s+`) or single `\s`, so they find the same
    things in the squeezed text, and a degenerate completion's kilobytes of spaces cost them nothing.
    """
    words = text.split()
    if not words:
        return text[:1]
    lead = text[: len(text) - len(text.lstrip())][:1]
    trail = text[len(text.rstrip()) :][:1]
    return lead + " ".join(words) + trail


def _span_in(text: str, *, last: bool) -> tuple[float, float] | None:
    text = _squeeze(text)
    span = _span_from_keys(text)
    if span is not None:
        return span
    return _span_from_pairs(text, last=last)


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
    label = _OPTION_LABEL_RE.match(text)
    if label is not None:
        text = text[label.end() :]
    return normalize_answer(text, drop_articles=False)


def _letter_in(segment: str, letters: str, options: Sequence[str] | None) -> str | None:
    segment = _squeeze(segment.strip(_DECORATION))
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
    text = text.translate(_PUNCTUATION_TO_SPACE)
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
