"""Prompt messages and gold answers: the exact texts, no None values, options rendered, and gold answers that the
rewards score 1.0."""

import json

import pytest

from temporal_rl.prompts import (
    GROUNDING_PROMPT,
    MCQ_PROMPT,
    THINK_SYSTEM_PROMPT,
    build_messages,
    format_answer,
    format_options,
    format_seconds,
    format_span,
)
from temporal_rl.rewards import REWARDS
from temporal_rl.rewards.parsing import parse_option_letter, parse_task_span

GROUNDING = {
    "id": "g1",
    "video": "clip.mp4",
    "duration": 20.0,
    "task": "grounding",
    "question": "the red circle appears",
    "options": None,
    "answer": None,
    "spans": [[5.5, 9.0]],
    "source": "synth",
    "meta": {},
}
MCQ = {
    "id": "m1",
    "video": "clip.mp4",
    "duration": 20.0,
    "task": "mcq",
    "question": "What colour did the square turn?",
    "options": ["red", "blue", "green", "white"],
    "answer": "C",
    "spans": None,
    "source": "synth",
    "meta": {},
}
GROUNDED_QA = {
    "id": "q1",
    "video": "clip.mp4",
    "duration": 30.0,
    "task": "grounded_qa",
    "question": "Which way did the triangle move?",
    "options": ["up", "down", "left", "right", "it did not move"],
    "answer": "D",
    "spans": [[12.25, 17.5], [20.0, 22.0]],
    "source": "synth",
    "meta": {"reasoning": "It moves right between 12 and 17 s."},
}
OPEN_QA = {
    "id": "o1",
    "video": "clip.mp4",
    "duration": 10.0,
    "task": "open_qa",
    "question": "Which shape appeared?",
    "options": None,
    "answer": "red circle",
    "spans": None,
    "source": "synth",
    "meta": {},
}
RECORDS = [GROUNDING, MCQ, GROUNDED_QA, OPEN_QA]


def contains_none(value):
    if value is None:
        return True
    if isinstance(value, dict):
        return any(contains_none(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(contains_none(v) for v in value)
    return False


def user_text(messages):
    return messages[-1]["content"][1]["text"]


# ----------------------------------------------------------------------------------------------------------------
# format_seconds / format_span / format_options


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (5.5, "5.5"),
        (12.25, "12.25"),
        (9, "9.0"),
        (9.0, "9.0"),
        (0, "0.0"),
        (-0.0, "0.0"),
        (100, "100.0"),
        (0.1 + 0.2, "0.3"),  # 0.30000000000000004
        (1 / 3, "0.33"),
        (2 / 3, "0.67"),
        (30.96, "30.96"),
        (1e-9, "0.0"),
    ],
)
def test_format_seconds(seconds, expected):
    assert format_seconds(seconds) == expected


def test_format_seconds_rejects_non_finite():
    with pytest.raises(ValueError, match="finite"):
        format_seconds(float("nan"))


def test_format_span():
    assert format_span((5.5, 9.0)) == '{"start_time": "5.5", "end_time": "9.0"}'
    assert format_span([0.1 + 0.2, 12], "plain") == "0.3 - 12.0"
    with pytest.raises(ValueError, match="unknown span_format"):
        format_span((1, 2), "csv")


def test_format_options():
    assert format_options(["red", " blue ", "green"]) == "(A) red\n(B) blue\n(C) green"


# ----------------------------------------------------------------------------------------------------------------
# build_messages


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r["task"])
@pytest.mark.parametrize("think", [False, True])
@pytest.mark.parametrize("span_format", ["json", "plain"])
def test_messages_structure(record, think, span_format):
    messages = build_messages(record, think=think, span_format=span_format)
    assert not contains_none(messages)
    assert [m["role"] for m in messages] == (["system", "user"] if think else ["user"])
    user = messages[-1]["content"]
    assert user[0] == {"type": "video"}
    assert set(user[1]) == {"type", "text"} and user[1]["type"] == "text"
    assert record["question"] in user[1]["text"]
    if think:
        assert messages[0]["content"] == [{"type": "text", "text": THINK_SYSTEM_PROMPT}]
        assert "<think>" in THINK_SYSTEM_PROMPT and "</think>" in THINK_SYSTEM_PROMPT


def test_grounding_prompt_text_json():
    expected = (
        'Find the moment in the video that matches this description: "the red circle appears"\n'
        "Give the start and end time in seconds inside <answer> </answer> tags, in this format: "
        '<answer>{"start_time": "5.5", "end_time": "9.0"}</answer>'
    )
    assert user_text(build_messages(GROUNDING)) == expected


def test_grounding_prompt_text_plain():
    text = user_text(build_messages(GROUNDING, span_format="plain"))
    assert text.endswith("in this format: <answer>5.5 - 9.0</answer>")
    assert "start_time" not in text


def test_mcq_prompt_text():
    expected = (
        "What colour did the square turn?\n"
        "Options:\n"
        "(A) red\n(B) blue\n(C) green\n(D) white\n"
        "Answer with the option's letter inside <answer> </answer> tags, in this format: <answer>B</answer>"
    )
    assert user_text(build_messages(MCQ)) == expected


def test_grounded_qa_prompt_text():
    text = user_text(build_messages(GROUNDED_QA))
    assert text.startswith("Which way did the triangle move?\nOptions:\n(A) up\n(B) down\n(C) left\n(D) right\n")
    assert "(E) it did not move\n" in text
    assert "start and end time in seconds" in text and "<time> </time>" in text
    assert text.endswith('<answer>B</answer><time>{"start_time": "5.5", "end_time": "9.0"}</time>')
    plain = user_text(build_messages(GROUNDED_QA, span_format="plain"))
    assert plain.endswith("<answer>B</answer><time>5.5 - 9.0</time>")


def test_open_qa_prompt_text():
    assert user_text(build_messages(OPEN_QA)) == (
        "Which shape appeared?\nAnswer with a short phrase inside <answer> </answer> tags."
    )


def test_prompt_constants_have_their_placeholders():
    assert "{query}" in GROUNDING_PROMPT and "{answer_example}" in GROUNDING_PROMPT
    assert "{question}" in MCQ_PROMPT and "{options}" in MCQ_PROMPT


def test_question_with_braces_is_kept_verbatim():
    record = {**GROUNDING, "question": 'the sign reads "{x}" then {y}'}
    assert 'the sign reads "{x}" then {y}' in user_text(build_messages(record))


def test_build_messages_errors():
    with pytest.raises(ValueError, match="needs its options"):
        build_messages({**MCQ, "options": None})
    with pytest.raises(ValueError, match="unknown task"):
        build_messages({**MCQ, "task": "captioning"})
    with pytest.raises(ValueError, match="unknown span_format"):
        build_messages(GROUNDING, span_format="xml")


def test_prompts_of_a_mixed_task_column_fit_arrow():
    datasets = pytest.importorskip("datasets")
    rows = [{"prompt": build_messages(r, think=think)} for r in RECORDS for think in (False, True)]
    dataset = datasets.Dataset.from_list(rows)
    assert len(dataset) == 8
    # Arrow merges the parts' keys and fills the gaps with None: the reason the trainer strips None values.
    stored = dataset[0]["prompt"][-1]["content"]
    assert stored[1]["text"] == user_text(rows[0]["prompt"])


# ----------------------------------------------------------------------------------------------------------------
# format_answer


def test_format_answer_texts():
    assert format_answer(GROUNDING) == '<answer>{"start_time": "5.5", "end_time": "9.0"}</answer>'
    assert format_answer(GROUNDING, span_format="plain") == "<answer>5.5 - 9.0</answer>"
    assert format_answer(MCQ) == "<answer>C</answer>"
    assert format_answer(GROUNDED_QA) == '<answer>D</answer><time>{"start_time": "12.25", "end_time": "17.5"}</time>'
    assert format_answer(GROUNDED_QA, span_format="plain") == "<answer>D</answer><time>12.25 - 17.5</time>"
    assert format_answer(OPEN_QA) == "<answer>red circle</answer>"
    assert format_answer(GROUNDED_QA, think=True).startswith(
        "<think>It moves right between 12 and 17 s.</think><answer>D</answer><time>"
    )
    assert format_answer(MCQ, think=True).startswith("<think>") and format_answer(MCQ, think=True).endswith(
        "</think><answer>C</answer>"
    )


def test_format_answer_reads_meta_as_json_text():
    row = {**GROUNDED_QA, "meta": json.dumps({"reasoning": "From the dataset row."})}
    assert format_answer(row, think=True).startswith("<think>From the dataset row.</think>")


def test_format_answer_errors():
    with pytest.raises(ValueError, match="needs a gold span"):
        format_answer({**GROUNDING, "spans": None})
    with pytest.raises(ValueError, match="unknown task"):
        format_answer({**GROUNDING, "task": "x"})


@pytest.mark.parametrize("think", [False, True])
@pytest.mark.parametrize("span_format", ["json", "plain"])
def test_gold_answers_score_full_marks(think, span_format):
    completions = [format_answer(r, think=think, span_format=span_format) for r in RECORDS]
    columns = {name: [r[name] for r in RECORDS] for name in ("task", "answer", "options", "spans", "duration")}
    assert REWARDS["format"](completions, **columns) == [1.0, 1.0, 1.0, None]
    assert REWARDS["think_format"](completions, **columns) == ([1.0, 1.0, 1.0, None] if think else [0.0] * 3 + [None])
    assert REWARDS["accuracy"](completions, **columns) == [None, 1.0, 1.0, None]
    assert REWARDS["iou"](completions, **columns) == [1.0, None, 1.0, None]
    assert REWARDS["exact_match"](completions, **columns) == [None, None, None, 1.0]
    # and the parsers read back exactly the gold values
    assert parse_task_span(completions[0], "grounding") == (5.5, 9.0)
    assert parse_task_span(completions[2], "grounded_qa") == (12.25, 17.5)
    assert parse_option_letter(completions[1], 4) == "C"
    assert parse_option_letter(completions[2], 5) == "D"
