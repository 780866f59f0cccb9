"""Prompts and gold answers: a canonical record -> chat messages for Qwen2.5-VL, and -> the gold completion.

This module owns the wording the model sees and the answer format it must produce (the contract the parsers in
`temporal_rl.rewards.parsing` read back). The texts are module constants so they can be read and overridden in
one place:

| task          | user text            | gold completion (JSON spans)                                       |
|---------------|----------------------|--------------------------------------------------------------------|
| `grounding`   | `GROUNDING_PROMPT`   | `<answer>{"start_time": "5.5", "end_time": "9.0"}</answer>`        |
| `mcq`         | `MCQ_PROMPT`         | `<answer>B</answer>`                                               |
| `grounded_qa` | `GROUNDED_QA_PROMPT` | `<answer>B</answer><time>{"start_time": ..., "end_time": ...}</time>` |
| `open_qa`     | `OPEN_QA_PROMPT`     | `<answer>free text</answer>`                                       |

`span_format="plain"` writes spans as `5.5 - 9.0` instead of the JSON object (the default, Temporal-R1's
released format). `think=True` adds `THINK_SYSTEM_PROMPT` as a system message and a `<think>...</think>` block
before the gold answer.

Messages never hold `None` values: Arrow adds `None`-valued keys to the parts of a stored prompt, and Qwen's chat
template then emits extra video placeholders, so the trainer strips them; nothing here adds any. The system
message's content is a list of text parts like the user's, so a column of prompts keeps one Arrow type.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

# The default prompt-length limit (tokens, video included) of generation (evaluation, the filter): Qwen2.5-VL's
# context is 32768 tokens, and a prompt past this is a broken record (a 1 MB question), not a question; one such
# record must be skipped and listed, not take its batch down.
DEFAULT_MAX_PROMPT_TOKENS = 16384

SPAN_FORMATS = ("json", "plain")
# Where the video goes in the user message. "last" keeps the distance from the video to the answer fixed, which
# a small model needs to read times off the rotary positions when query lengths vary.
VIDEO_POSITIONS = ("first", "last")

THINK_SYSTEM_PROMPT = (
    "Think about the question before you answer. First write your reasoning inside <think> </think> tags, "
    "then give the final answer in the tags and the format the question asks for."
)

GROUNDING_PROMPT = (
    'Find the moment in the video that matches this description: "{query}"\n'
    "Give the start and end time in seconds inside <answer> </answer> tags, in this format: {answer_example}"
)

MCQ_PROMPT = (
    "{question}\n"
    "Options:\n"
    "{options}\n"
    "Answer with the option's letter inside <answer> </answer> tags, in this format: {answer_example}"
)

GROUNDED_QA_PROMPT = (
    "{question}\n"
    "Options:\n"
    "{options}\n"
    "Answer with the option's letter inside <answer> </answer> tags, then give the start and end time in seconds "
    "of the moment that supports your answer inside <time> </time> tags, in this format: {answer_example}"
)

OPEN_QA_PROMPT = "{question}\nAnswer with a short phrase inside <answer> </answer> tags."

# The example values shown in the prompts' format examples.
EXAMPLE_SPAN = (5.5, 9.0)
EXAMPLE_LETTER = "B"

# The reasoning of a gold completion with think=True when the record carries none in meta["reasoning"].
DEFAULT_REASONING = {
    "grounding": "I look for the part of the video where the described event happens and note when it starts "
    "and ends.",
    "mcq": "I watch the video, compare what happens with each option and pick the one that matches.",
    "grounded_qa": "I find the moment the question is about, compare it with each option, and note when that "
    "moment starts and ends.",
    "open_qa": "I watch the video and look for what the question asks about.",
}


def format_seconds(seconds: float, decimals: int = 2) -> str:
    """A time in seconds as short text: at most `decimals` decimals, trailing zeros dropped, at least one kept.

    Args:
        seconds: a finite time in seconds.
        decimals: the precision (2 by default, TimeZero's "precise to two decimal places").

    Returns:
        The text, e.g. `"5.5"`, `"12.25"`, `"9.0"`, `"0.33"` (never float noise such as `"0.30000000000000004"`).

    Raises:
        ValueError: `seconds` is not finite.

    Example:
        ```python
        >>> format_seconds(12.25), format_seconds(9), format_seconds(0.1 + 0.2), format_seconds(1 / 3)
        ('12.25', '9.0', '0.3', '0.33')
        ```
    """
    value = float(seconds)
    if not math.isfinite(value):
        raise ValueError(f"a time must be finite, got {seconds!r}")
    text = f"{value:.{max(1, int(decimals))}f}".rstrip("0")
    if text.endswith("."):
        text += "0"
    if text in ("-0.0", "-0"):
        text = "0.0"
    return text


def _check_span_format(span_format: str) -> None:
    if span_format not in SPAN_FORMATS:
        raise ValueError(f"unknown span_format {span_format!r}; expected one of {', '.join(SPAN_FORMATS)}")


def format_span(span: Sequence[float], span_format: str = "json") -> str:
    """A span as it appears inside `<answer>` / `<time>`.

    Example:
        ```python
        >>> format_span((5.5, 9.0))
        '{"start_time": "5.5", "end_time": "9.0"}'
        >>> format_span((5.5, 9.0), "plain")
        '5.5 - 9.0'
        ```
    """
    _check_span_format(span_format)
    start, end = format_seconds(span[0]), format_seconds(span[1])
    if span_format == "json":
        return json.dumps({"start_time": start, "end_time": end})
    return f"{start} - {end}"


def format_options(options: Sequence[str]) -> str:
    """Option texts rendered one per line with their letters: `"(A) red\\n(B) blue"`."""
    return "\n".join(f"({chr(ord('A') + i)}) {str(option).strip()}" for i, option in enumerate(options))


def answer_example(task: str, span_format: str = "json") -> str:
    """The format example a task's prompt shows (always without `<think>`)."""
    _check_span_format(span_format)
    span = format_span(EXAMPLE_SPAN, span_format)
    if task == "grounding":
        return f"<answer>{span}</answer>"
    if task == "mcq":
        return f"<answer>{EXAMPLE_LETTER}</answer>"
    if task == "grounded_qa":
        return f"<answer>{EXAMPLE_LETTER}</answer><time>{span}</time>"
    if task == "open_qa":
        return "<answer>a short phrase</answer>"
    raise ValueError(f"unknown task {task!r}")


def _options_of(record: dict) -> list[str]:
    options = record.get("options")
    if not options:
        raise ValueError(f"record {record.get('id')!r}: a {record.get('task')} record needs its options")
    return list(options)


def task_text(record: dict, span_format: str = "json") -> str:
    """The text of the user message for a record (the question and the answer-format instruction)."""
    task, question = record.get("task"), str(record.get("question", "")).strip()
    example = answer_example(task, span_format) if task in ("grounding", "mcq", "grounded_qa", "open_qa") else ""
    if task == "grounding":
        return GROUNDING_PROMPT.format(query=question, answer_example=example)
    if task == "mcq":
        options = format_options(_options_of(record))
        return MCQ_PROMPT.format(question=question, options=options, answer_example=example)
    if task == "grounded_qa":
        options = format_options(_options_of(record))
        return GROUNDED_QA_PROMPT.format(question=question, options=options, answer_example=example)
    if task == "open_qa":
        return OPEN_QA_PROMPT.format(question=question)
    raise ValueError(f"record {record.get('id')!r}: unknown task {task!r}")


def build_messages(
    record: dict,
    *,
    think: bool = False,
    span_format: str = "json",
    video: str | None = None,
    video_position: str = "first",
) -> list[dict]:
    """Conversational prompt messages for Qwen2.5-VL's chat template.

    Args:
        record: a canonical record (`temporal_rl.data`), or a row of `temporal_rl.data.load_dataset`.
        think: add `THINK_SYSTEM_PROMPT` as a system message.
        span_format: `"json"` or `"plain"`, the span format the prompt asks for.
        video: the video path to carry in the video block (`{"type": "video", "video": path}`), for a trainer
            that loads the frames itself; by default the block carries no path.
        video_position: `"first"` (video, then the text) or `"last"` (the text, then the video).

    Returns:
        `[system?, user]`; the user content is `[{"type": "video"}, {"type": "text", "text": ...}]`. No value is
        `None`.

    Example:
        ```python
        >>> build_messages({"task": "open_qa", "question": "What moves?"})[0]["content"][0]
        {'type': 'video'}
        ```
    """
    _check_span_format(span_format)
    messages = []
    if think:
        messages.append({"role": "system", "content": [{"type": "text", "text": THINK_SYSTEM_PROMPT}]})
    messages.append({"role": "user", "content": user_content(task_text(record, span_format), video, video_position)})
    return messages


def user_content(text: str, video: str | None = None, video_position: str = "first") -> list[dict]:
    """A user turn's content: a video block (carrying `video`, the path, when given) and a text block, in the order
    `video_position` says (`VIDEO_POSITIONS`). No value is None.

    Example:
        ```python
        >>> user_content("When?", video_position="last")
        [{'type': 'text', 'text': 'When?'}, {'type': 'video'}]
        ```
    """
    if video_position not in VIDEO_POSITIONS:
        raise ValueError(f"unknown video_position {video_position!r}; expected one of {', '.join(VIDEO_POSITIONS)}")
    video_block = {"type": "video"} if video is None else {"type": "video", "video": video}
    text_block = {"type": "text", "text": text}
    return [video_block, text_block] if video_position == "first" else [text_block, video_block]


def _reasoning(record: dict) -> str:
    meta = record.get("meta")
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except json.JSONDecodeError:
            meta = None
    reasoning = meta.get("reasoning") if isinstance(meta, dict) else None
    if isinstance(reasoning, str) and reasoning.strip():
        return reasoning.strip()
    return DEFAULT_REASONING[record["task"]]


def _first_span(record: dict) -> Sequence[float]:
    spans = record.get("spans")
    if not spans:
        raise ValueError(f"record {record.get('id')!r}: a {record.get('task')} record needs a gold span")
    return spans[0]


def format_answer(record: dict, *, think: bool = False, span_format: str = "json") -> str:
    """The gold completion of a record, in the format its prompt asks for (SFT targets, tests).

    The span is the record's first gold span. With `think`, a `<think>` block comes first holding
    `record["meta"]["reasoning"]` if present, else `DEFAULT_REASONING[task]`.

    Example:
        ```python
        >>> format_answer({"task": "grounded_qa", "answer": "C", "spans": [[1.5, 4.0]]}, span_format="plain")
        '<answer>C</answer><time>1.5 - 4.0</time>'
        ```
    """
    _check_span_format(span_format)
    task = record.get("task")
    if task == "grounding":
        body = f"<answer>{format_span(_first_span(record), span_format)}</answer>"
    elif task == "mcq":
        body = f"<answer>{record['answer']}</answer>"
    elif task == "grounded_qa":
        body = f"<answer>{record['answer']}</answer><time>{format_span(_first_span(record), span_format)}</time>"
    elif task == "open_qa":
        body = f"<answer>{str(record['answer']).strip()}</answer>"
    else:
        raise ValueError(f"record {record.get('id')!r}: unknown task {task!r}")
    if think:
        return f"<think>{_reasoning(record)}</think>{body}"
    return body


@dataclass(frozen=True)
class PromptOptions:
    """How a record becomes a prompt and a gold completion; the one place these three settings travel together.

    Args:
        think: ask for a `<think>` block before the answer.
        span_format: `"json"` or `"plain"`, the span format the prompt asks for.
        video_position: `"first"` or `"last"`: where the video goes in the user message.
    """

    think: bool = False
    span_format: str = "json"
    video_position: str = "first"

    def __post_init__(self):
        _check_span_format(self.span_format)
        if self.video_position not in VIDEO_POSITIONS:
            raise ValueError(
                f"unknown video_position {self.video_position!r}; expected one of {', '.join(VIDEO_POSITIONS)}"
            )

    def messages(self, record: dict, *, video: str | None = None) -> list[dict]:
        """`build_messages` with these options (`video`: the path to carry in the video block, if any)."""
        return build_messages(
            record, think=self.think, span_format=self.span_format, video=video, video_position=self.video_position
        )

    def answer(self, record: dict) -> str:
        """`format_answer` with these options: the gold completion."""
        return format_answer(record, think=self.think, span_format=self.span_format)
