"""Parsers of model output: tables of every accepted format and of garbage, and never-raise properties."""

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from temporal_rl.rewards.parsing import (
    completion_text,
    extract_tag,
    normalize_answer,
    parse_free_answer,
    parse_option_letter,
    parse_seconds,
    parse_span,
    parse_task_span,
    strip_think,
)

# ----------------------------------------------------------------------------------------------------------------
# completion_text


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("<answer>B</answer>", "<answer>B</answer>"),
        ([{"role": "assistant", "content": "<answer>B</answer>"}], "<answer>B</answer>"),
        ([{"role": "assistant", "content": [{"type": "text", "text": "<answer>B</answer>"}]}], "<answer>B</answer>"),
        ([{"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}], "ab"),
        ([{"role": "assistant", "content": [{"type": "image"}, {"type": "text", "text": "x"}]}], "x"),
        ({"role": "assistant", "content": "single message"}, "single message"),
        ([{"role": "user", "content": "not me"}, {"role": "assistant", "content": "me"}], "me"),
        ([{"content": "no role"}], "no role"),
        ([{"role": "assistant", "content": None}], ""),
        ([{"role": "assistant", "content": [{"type": "text", "text": None}]}], ""),
        (None, ""),
        (42, ""),
        ([], ""),
        ([1, None, {"role": "assistant"}], ""),
    ],
)
def test_completion_text(completion, expected):
    assert completion_text(completion) == expected


# ----------------------------------------------------------------------------------------------------------------
# extract_tag and strip_think


@pytest.mark.parametrize(
    ("text", "tag", "expected"),
    [
        ("<answer>B</answer>", "answer", "B"),
        ("<answer>  B \n</answer>", "answer", "B"),
        ("<think>hmm</think><answer>C</answer>", "answer", "C"),
        ("<ANSWER>C</Answer>", "answer", "C"),
        ("<answer>first</answer> <answer>second</answer>", "answer", "second"),
        ("<answer>a<answer>b</answer>", "answer", "b"),
        ("<answer>a</answer> <answer>unclosed", "answer", "a"),
        ("<answer></answer>", "answer", ""),
        ("<answer>B", "answer", None),
        ("B</answer>", "answer", None),
        ("</answer><answer>", "answer", None),
        ("no tags at all", "answer", None),
        ("<answer>B</answer><time>1 - 2</time>", "time", "1 - 2"),
        ("<answer>B</answer>", "time", None),
    ],
)
def test_extract_tag(text, tag, expected):
    assert extract_tag(text, tag) == expected


def test_extract_tag_non_string():
    assert extract_tag(None, "answer") is None
    assert extract_tag(12, "answer") is None


def test_strip_think_removes_complete_blocks_only():
    assert strip_think("<think>a</think>B<think>c</think>").strip() == "B"
    assert strip_think("<think>unclosed B") == "<think>unclosed B"
    assert strip_think(None) == ""


# ----------------------------------------------------------------------------------------------------------------
# parse_seconds


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12.3", 12.3),
        ("12", 12.0),
        ("0", 0.0),
        ("12.3s", 12.3),
        ("12.3 s", 12.3),
        ("12.3 sec", 12.3),
        ("12.3 secs", 12.3),
        ("12.3 second", 12.3),
        ("12.3 seconds", 12.3),
        ("12.3 Seconds", 12.3),
        ("  7.25  ", 7.25),
        ('"5.5"', 5.5),
        ("'5.5'", 5.5),
        ("01:05", 65.0),
        ("1:05", 65.0),
        ("0:5", 5.0),
        ("01:05.5", 65.5),
        ("90:00", 5400.0),
        ("1:00:00", 3600.0),
        ("01:02:03.5", 3723.5),
        ("1:05 s", 65.0),
    ],
)
def test_parse_seconds_accepts(text, expected):
    assert parse_seconds(text) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "abc",
        "-3",
        "+3",
        "nan",
        "inf",
        "-inf",
        "1e3",
        "1e400",
        "9" * 400,  # finite digits, infinite float
        "1:60",  # seconds after a colon must be < 60
        "1:75",
        "1:60:00",
        "1:2:3:4",
        "1:005",
        "12.3.4",
        ".5",
        "5.",
        "5 minutes",
        "12.3 ss",
        "s",
        ":30",
        "1::2",
        None,
        12.3,
    ],
)
def test_parse_seconds_rejects(text):
    assert parse_seconds(text) is None


# ----------------------------------------------------------------------------------------------------------------
# parse_span


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Temporal-R1's JSON format and its variants
        ('<answer>{"start_time": "5.5", "end_time": "9.0"}</answer>', (5.5, 9.0)),
        ('<answer>{"start_time": 5.5, "end_time": 9}</answer>', (5.5, 9.0)),
        ('<answer>{"end_time": "9.0", "start_time": "5.5"}</answer>', (5.5, 9.0)),
        ('<answer>{"start_time": "9.0", "end_time": "5.5"}</answer>', (5.5, 9.0)),
        ('<answer>{"start_time": "00:05", "end_time": "01:02.5"}</answer>', (5.0, 62.5)),
        ('<answer>{"start_time": "5.5s", "end_time": "9 seconds"}</answer>', (5.5, 9.0)),
        ("<answer>{'start_time': '3', 'end_time': '4'}</answer>", (3.0, 4.0)),
        ('<answer>{"start": 3, "end": 4}</answer>', (3.0, 4.0)),
        ('<answer>{ "start_time" :"1.25" , "end_time" : "2.5" }</answer>', (1.25, 2.5)),
        # plain pairs
        ("<answer>5.5 - 9.0</answer>", (5.5, 9.0)),
        ("<answer>5.5-9.0</answer>", (5.5, 9.0)),
        ("<answer>5.5 – 9.0</answer>", (5.5, 9.0)),
        ("<answer>5.5 — 9.0</answer>", (5.5, 9.0)),
        ("<answer>5.5 to 9.0</answer>", (5.5, 9.0)),
        ("<answer>from 5.5 to 9.0 seconds</answer>", (5.5, 9.0)),
        ("<answer>From 5.5s to 9.0s.</answer>", (5.5, 9.0)),
        ("<answer>between 5.5 and 9.0</answer>", (5.5, 9.0)),
        ("<answer>5.5 and 9.0</answer>", (5.5, 9.0)),
        ("<answer>[5.5, 9.0]</answer>", (5.5, 9.0)),
        ("<answer>(5.5, 9.0)</answer>", (5.5, 9.0)),
        ("<answer>[(5.2, 10.4)]</answer>", (5.2, 10.4)),
        ("<answer>5.5 sec - 9 sec</answer>", (5.5, 9.0)),
        ("<answer>0:05 - 0:09.5</answer>", (5.0, 9.5)),
        ("<answer>1:00:00 - 1:00:30.5</answer>", (3600.0, 3630.5)),
        ("<answer>9.0 - 5.5</answer>", (5.5, 9.0)),
        ("<answer>at 12.3 s until 20.1 s</answer>", (12.3, 20.1)),
        ("<answer>5 - 5</answer>", (5.0, 5.0)),  # zero-length is parsed; clip_span rejects it
        # the first span inside the tag
        ("<answer>1 - 2, or maybe 3 - 4</answer>", (1.0, 2.0)),
        # JSON keys win over a plain pair in the same text
        ('<answer>1 - 2 {"start_time": "3", "end_time": "4"}</answer>', (3.0, 4.0)),
        # no tag: the text without its <think> blocks, last span
        ("The event happens from 3 to 7 seconds.", (3.0, 7.0)),
        ("<think>1 - 2</think> 3 to 4", (3.0, 4.0)),
        ("maybe 1 - 2, no: 3 - 4", (3.0, 4.0)),
        ("<answer>5.5 - 9.0", (5.5, 9.0)),  # truncated before </answer>
    ],
)
def test_parse_span_accepts(text, expected):
    assert parse_span(text) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "no numbers here",
        "<answer>5.5</answer>",
        "<answer>abc</answer> 1 - 2",  # the tag is there and says nothing: text outside it is not mined
        "<answer></answer>",
        "<think>1 - 2</think>",  # the reasoning is not the answer
        "<answer>1:75 - 2:00</answer>",
        "<answer>nan - inf</answer>",
        "<answer>1e5 - 2e5</answer>",
        "<answer>-</answer>",
        "<answer>5 -</answer>",
        "<answer>to 5</answer>",
        '<answer>{"start_time": "5.5"}</answer>',
        '<answer>{"start_time": "x", "end_time": "9"}</answer>',
        "<answer>friend: 5, end: 3</answer>",
        "<answer>5, 9</answer>",  # a comma pair needs brackets
        f"<answer>{'9' * 400} - 1</answer>",
        None,
        3.5,
    ],
)
def test_parse_span_rejects(text):
    assert parse_span(text) is None


def test_parse_span_tag_none_reads_whole_text_first_span():
    assert parse_span("1 - 2 then 3 - 4", tag=None) == (1.0, 2.0)
    assert parse_span("<answer>9 - 10</answer> 1 - 2", tag=None) == (9.0, 10.0)


@pytest.mark.parametrize(
    ("text", "task", "expected"),
    [
        ("<answer>3 - 4</answer><time>1 - 2</time>", "grounded_qa", (1.0, 2.0)),
        ("<answer>3 - 4</answer><time>1 - 2</time>", "grounding", (3.0, 4.0)),
        ('<answer>B</answer><time>{"start_time": "1", "end_time": "2"}</time>', "grounded_qa", (1.0, 2.0)),
        ("<answer>B</answer>", "grounded_qa", None),
        ("<answer>B</answer><time>nothing</time>", "grounded_qa", None),
        ("<answer>1 - 2</answer>", "mcq", None),
        ("<answer>1 - 2</answer>", "open_qa", None),
        ("<answer>1 - 2</answer>", None, None),
    ],
)
def test_parse_task_span(text, task, expected):
    assert parse_task_span(text, task) == expected


# ----------------------------------------------------------------------------------------------------------------
# parse_option_letter

OPTIONS = ["a red circle", "a blue square", "a green triangle", "a white star"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("B", "B"),
        ("<answer>B</answer>", "B"),
        ("(B)", "B"),
        ("B.", "B"),
        ("B)", "B"),
        ("b", "B"),
        ("**B**", "B"),
        ("B) a blue square", "B"),
        ("(B) a blue square", "B"),
        ("B. a blue square", "B"),
        ("Answer: B", "B"),
        ("answer: (B)", "B"),
        ("The answer is B", "B"),
        ("The answer is (B).", "B"),
        ("The best answer is option B.", "B"),
        ("Option C", "C"),
        ("I think it is C", "C"),  # "I" is not a valid letter among 4 options
        ("I choose (D) because it moves", "D"),
        ("B, because the square is blue", "B"),
        ("<think>A or C?</think><answer>C</answer>", "C"),
        ("<think>The answer is A</think>B", "B"),  # reasoning is ignored without an <answer> tag
        ("<answer>a green triangle</answer>", "C"),  # an option's exact text
        ("<answer>A Green Triangle.</answer>", "C"),
        ("<answer>(C) a green triangle</answer>", "C"),
        ("D", "D"),
    ],
)
def test_parse_option_letter_accepts(text, expected):
    assert parse_option_letter(text, 4, options=OPTIONS) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "E",  # beyond 4 options
        "<answer>E</answer>",
        "Z",
        "(E)",
        "I don't know",
        "Because it moves",  # the B of "Because" is not a letter
        "it is the blue thing",
        "The video shows a person walking into the room and then turning around to look at the camera slowly",
        "<answer></answer>",
        "<answer>a purple hexagon</answer>",
        "<think>B</think>",  # only reasoning
        None,
    ],
)
def test_parse_option_letter_rejects(text):
    assert parse_option_letter(text, 4, options=OPTIONS) is None


def test_parse_option_letter_number_of_options():
    assert parse_option_letter("E", 5) == "E"
    assert parse_option_letter("E", 4) is None
    assert parse_option_letter("B", 1) is None
    assert parse_option_letter("B", 0) is None
    assert parse_option_letter("Z") == "Z"  # no bound given: all 26 letters
    assert parse_option_letter("C", options=["x", "y", "z"]) == "C"
    assert parse_option_letter("D", options=["x", "y", "z"]) is None
    assert parse_option_letter("B", "four") is None  # a nonsense bound does not raise


def test_parse_option_letter_ambiguous_option_text_is_not_a_match():
    assert parse_option_letter("<answer>same</answer>", options=["same", "same", "other"]) is None


# ----------------------------------------------------------------------------------------------------------------
# free-text answers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Red  Circle!", "red circle"),
        ("an apple", "apple"),
        ("  A, B; c.  ", "b c"),
        ("", ""),
        (None, ""),
    ],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<answer> red circle </answer>", "red circle"),
        ("<think>blue?</think> red circle", "red circle"),
        ("<answer></answer>", None),
        ("<think>only thinking</think>", None),
        (None, None),
    ],
)
def test_parse_free_answer(text, expected):
    assert parse_free_answer(text) == expected


# ----------------------------------------------------------------------------------------------------------------
# Properties: no parser raises on any text, and what they return is well-formed

TOKENS = [
    "<think>", "</think>", "<answer>", "</answer>", "<time>", "</time>", "<ANSWER>", "<answer", "answer>",
    "{", "}", '"start_time": ', '"end_time": ', "'start'", "end:", ":", "::", "-", "–", " to ", " and ", ",", "[",
    "]", "(", ")", ".", "0", "5", "9", "59", "60", "99", "12.5", "1:05", "1:60", "00:00:01", "9" * 400, "1e999",
    "nan", "inf", "-inf", "NaN", "s", " seconds", "sec", "A", "B", "E", "Z", "b", "(C)", "D.", "The answer is ",
    "Answer: ", "option ", "Because ", "é", "İ", "ß", "\u2013", "\u00a0", "\x00", "\n", " ", "\t", "💥", "\\", '"',
]  # fmt: skip
adversarial_text = st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)
any_text = st.one_of(st.text(max_size=200), adversarial_text)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(any_text)
def test_parse_seconds_never_raises(text):
    value = parse_seconds(text)
    assert value is None or (isinstance(value, float) and math.isfinite(value) and value >= 0)


@FAST
@given(any_text, st.sampled_from(["answer", "time", None]))
def test_parse_span_never_raises(text, tag):
    span = parse_span(text, tag=tag)
    if span is not None:
        start, end = span
        assert math.isfinite(start) and math.isfinite(end)
        assert 0 <= start <= end


@FAST
@given(any_text, st.integers(min_value=-3, max_value=30), st.none() | st.lists(st.text(max_size=12), max_size=6))
def test_parse_option_letter_never_raises(text, num_options, options):
    letter = parse_option_letter(text, num_options, options=options)
    assert letter is None or letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[: max(0, num_options)]


@FAST
@given(any_text, st.sampled_from(["answer", "think", "time", "a.b", "[x]"]))
def test_tag_and_text_helpers_never_raise(text, tag):
    content = extract_tag(text, tag)
    assert content is None or isinstance(content, str)
    assert isinstance(strip_think(text), str)
    assert isinstance(normalize_answer(text), str)
    answer = parse_free_answer(text)
    assert answer is None or (isinstance(answer, str) and answer)
    assert parse_task_span(text, "grounded_qa") == parse_span(text, tag="time")


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(
        ["role", "content", "type", "text", "image"]) | st.text(max_size=5), children, max_size=4),
    max_leaves=12,
)  # fmt: skip


@FAST
@given(json_like)
def test_completion_text_never_raises(completion):
    assert isinstance(completion_text(completion), str)
