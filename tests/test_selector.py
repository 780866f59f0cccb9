"""The selector's prompt, its output parser and its rewards: hand-worked tables and no-string-raises properties."""

import pickle

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from temporal_rl.rewards import REWARDS, get_reward_funcs
from temporal_rl.rewards.selector import (
    SelectorLengthReward,
    answer_reward,
    check_selector_format,
    is_valid_selection,
    parse_indices,
    selector_format_reward,
    selector_index_reward,
    selector_length_reward,
)
from temporal_rl.viarl.selector import SELECTOR_PROMPT, build_selector_messages, fallback_indices

GOOD = (
    "<think>The question asks about a red star, so I look for frames with a red star.</think><index>3, 17, 42</index>"
)

# ----------------------------------------------------------------------------------------------------------------
# Prompt


def test_selector_messages():
    record = {"id": "x", "question": "  Which digit was shown briefly? ", "options": ["three", "seven", "one", "nine"]}
    messages = build_selector_messages(record, 128, 8, video="/v.mp4")
    assert [m["role"] for m in messages] == ["system", "user"]
    system = messages[0]["content"][0]["text"]
    assert "128 frames" in system and "0 to 127" in system and "8 frames" in system
    assert "red number in the bottom-right corner" in system
    assert "<think>" in system and "<index>" in system
    for keyword in ("entities", "time", "place", "action"):
        assert keyword in system
    video_block, text_block = messages[1]["content"]
    assert video_block == {"type": "video", "video": "/v.mp4"}
    assert text_block["text"] == 'The question is: "Which digit was shown briefly?"'
    assert not any(option in text_block["text"] for option in record["options"])  # no options
    assert build_selector_messages(record, 16, 4)[1]["content"][0] == {"type": "video"}
    custom = build_selector_messages(record, 16, 4, label="white number in the top-left corner")
    assert "white number in the top-left corner" in custom[0]["content"][0]["text"]
    assert "{" not in system  # every template field filled
    assert SELECTOR_PROMPT.count("{num_select}") >= 2


@pytest.mark.parametrize(("num_candidates", "num_select"), [(8, 9), (8, 0), (8.0, 2)])
def test_selector_messages_reject_impossible_counts(num_candidates, num_select):
    with pytest.raises(ValueError, match="cannot select"):
        build_selector_messages({"question": "q"}, num_candidates, num_select)


def test_selector_messages_video_position():
    record = {"question": "What colour is the star?"}
    first = build_selector_messages(record, 16, 2, video="/v.mp4")[1]["content"]
    last = build_selector_messages(record, 16, 2, video="/v.mp4", video_position="last")[1]["content"]
    video = {"type": "video", "video": "/v.mp4"}
    text = {"type": "text", "text": 'The question is: "What colour is the star?"'}
    assert first == [video, text]
    assert last == [text, video]
    with pytest.raises(ValueError, match="unknown video_position 'middle'"):
        build_selector_messages(record, 16, 2, video_position="middle")


def test_selector_messages_need_a_question():
    with pytest.raises(ValueError, match="no question"):
        build_selector_messages({"id": "r1", "question": " "}, 8, 2)


# ----------------------------------------------------------------------------------------------------------------
# Parser


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD, [3, 17, 42]),
        ("<index>3,17,42</index>", [3, 17, 42]),
        ("<index> 3 17\n42 </index>", [3, 17, 42]),  # whitespace separates too
        ("<index>3; 17; 42</index>", [3, 17, 42]),
        ("<index>[3, 17, 42]</index>", [3, 17, 42]),
        ("<index>(3, 17, 42)</index>", [3, 17, 42]),
        ("<index>3, 17, 42.</index>", [3, 17, 42]),  # a final period
        ("<index>3, 17, 42,</index>", [3, 17, 42]),  # a trailing comma
        ("<index>5, 5, 1</index>", [5, 5, 1]),  # repeats and order kept: validity is the reward's business
        ("<index>-1, 200</index>", [-1, 200]),  # out of range still parses
        ("<index>+4</index>", [4]),
        ("<INDEX>7</INDEX>", [7]),  # tags are case-insensitive for the parser
        ("<index>1</index> then <index>2, 3</index>", [2, 3]),  # the last complete pair
        ("<think><index>9</index></think><index>4</index>", [4]),
        ("<index>" + "1" * 18 + "</index>", [int("1" * 18)]),
        ("", None),
        ("3, 17, 42", None),  # no tag
        ("<index>3, 17, 42", None),  # unclosed
        ("<index></index>", None),  # empty
        ("<index>[]</index>", None),
        ("<index>frames 3 and 17</index>", None),  # words
        ("<index>3.5, 17</index>", None),  # decimals
        ("<index>3-17</index>", None),  # a range
        ("<index>٣, ٤</index>", None),  # non-ASCII digits
        ("<index>" + "9" * 19 + "</index>", None),  # longer than any index
        ("<index>" + "9" * 5000 + "</index>", None),  # beyond int()'s digit limit, must not raise
    ],
)
def test_parse_indices(text, expected):
    assert parse_indices(text) == expected


@pytest.mark.parametrize("value", [None, 3, b"<index>1</index>", ["<index>1</index>"], {"index": 1}])
def test_parse_indices_of_non_strings(value):
    assert parse_indices(value) is None


# ----------------------------------------------------------------------------------------------------------------
# Rewards


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD, 1.0),
        ("  <think>x</think>\n<index>1</index>\n", 1.0),  # whitespace around and between the blocks
        ("<think>x</think><index>[1, 2]</index>", 1.0),
        ("<think>x</think><index>1, 1, 99</index>", 1.0),  # the format does not judge count or range
        ("<index>1, 2</index>", 0.0),  # no think
        ("<think>  </think><index>1, 2</index>", 0.0),  # blank reasoning
        ("<think>x</think><index>one, two</index>", 0.0),  # not a list of integers
        ("<think>x</think><index></index>", 0.0),
        ("<think>x</think> so <index>1</index>", 0.0),  # text between the blocks
        ("<think>x</think><index>1</index> done", 0.0),  # text after
        ("Sure! <think>x</think><index>1</index>", 0.0),  # text before
        ("<index>1</index><think>x</think>", 0.0),  # wrong order
        ("<think>x<think>y</think><index>1</index>", 0.0),  # nested tag
        ("<think>x</think><index>1<index>2</index>", 0.0),
        ("<think>x</think><index>1</index><index>2</index>", 0.0),  # two lists
        ("<THINK>x</THINK><INDEX>1</INDEX>", 0.0),  # the format asks for lower-case tags
        ("<think>x</think><index>1</index><answer>B</answer>", 0.0),
    ],
)
def test_selector_format_reward(text, expected):
    assert selector_format_reward([text]) == [expected]
    assert check_selector_format(text) is (expected == 1.0)
    # conversational completions read the same
    assert selector_format_reward([[{"role": "assistant", "content": text}]]) == [expected]


@pytest.mark.parametrize(
    ("text", "num_candidates", "num_select", "expected"),
    [
        ("<index>0, 5, 7</index>", 8, 3, 1.0),
        ("<index>7, 0, 5</index>", 8, 3, 1.0),  # any order
        ("<index>0, 5, 8</index>", 8, 3, 0.0),  # 8 is out of [0, 8)
        ("<index>-1, 5, 7</index>", 8, 3, 0.0),
        ("<index>0, 5, 5</index>", 8, 3, 0.0),  # repeated
        ("<index>0, 5</index>", 8, 3, 0.0),  # too few
        ("<index>0, 1, 2, 3</index>", 8, 3, 0.0),  # too many
        ("<index>0, 5, 7", 8, 3, 0.0),  # unparseable
        ("no list at all", 8, 3, 0.0),
        (GOOD, 128, 3, 1.0),
        (GOOD, 42, 3, 0.0),  # 42 is not below T = 42
        ("<index>0, 5, 7</index>", 8.0, "3", 1.0),  # numeric column values in other types
        ("<index>0, 5, 7</index>", "many", 3, 0.0),
        ("<index>0, 5, 7</index>", None, 3, None),  # not a selector row
        ("<index>0, 5, 7</index>", 8, None, None),
    ],
)
def test_selector_index_reward(text, num_candidates, num_select, expected):
    assert selector_index_reward([text], num_candidates=[num_candidates], num_frames_to_select=[num_select]) == [
        expected
    ]


def test_selector_index_reward_needs_its_columns():
    with pytest.raises(ValueError, match="num_candidates"):
        selector_index_reward([GOOD], num_frames_to_select=[3])
    with pytest.raises(ValueError, match="num_frames_to_select"):
        selector_index_reward([GOOD], num_candidates=[128])
    with pytest.raises(ValueError, match="has 2 rows"):
        selector_index_reward([GOOD], num_candidates=[128, 128], num_frames_to_select=[3])


@pytest.mark.parametrize(("length", "expected"), [(0, 0.0), (79, 0.0), (80, 0.2), (200, 0.2), (512, 0.2), (513, 0.0)])
def test_selector_length_reward(length, expected):
    assert selector_length_reward(["x"], completion_ids=[list(range(length))]) == [expected]


def test_selector_length_reward_bounds_and_errors():
    reward = SelectorLengthReward(min_tokens=110)  # ViaRL's bound for N = 16
    assert reward(["a", "b"], completion_ids=[[0] * 109, [0] * 110]) == [0.0, 0.2]
    assert SelectorLengthReward(10, 20, bonus=1.0)(["a"], completion_ids=[[1] * 15]) == [1.0]
    assert selector_length_reward(["a"], completion_ids=[None]) == [0.0]  # no ids, no bonus
    with pytest.raises(ValueError, match="completion_ids"):
        selector_length_reward(["a"])
    with pytest.raises(ValueError, match="1 completion_ids for 2"):
        selector_length_reward(["a", "b"], completion_ids=[[1]])
    with pytest.raises(ValueError, match="min_tokens"):
        SelectorLengthReward(min_tokens=600)
    assert pickle.loads(pickle.dumps(selector_length_reward)).max_tokens == 512


@pytest.mark.parametrize(
    ("index_reward", "correct", "weight", "expected"),
    [
        (1.0, True, 2.0, 2.0),
        (1.0, False, 2.0, 0.0),
        (0.0, True, 2.0, 0.0),  # a right answer from the fallback frames earns nothing
        (0.0, False, 2.0, 0.0),
        (1.0, 1, 3.0, 3.0),
        (None, True, 2.0, None),
        (1.0, None, 2.0, None),
    ],
)
def test_answer_reward(index_reward, correct, weight, expected):
    assert answer_reward(index_reward, correct, weight) == expected


def test_maximum_total_reward_is_4_2():
    text = "<think>" + "look " * 100 + "</think><index>1, 2, 3, 4, 5, 6, 7, 8</index>"
    columns = {"num_candidates": [128], "num_frames_to_select": [8]}
    index = selector_index_reward([text], **columns)[0]
    total = (
        selector_format_reward([text])[0]
        + index
        + selector_length_reward([text], completion_ids=[[0] * 120])[0]
        + answer_reward(index, True)
    )
    assert total == pytest.approx(4.2)


@pytest.mark.parametrize(
    ("parsed", "expected"),
    [
        ([9, 2, 5, 0], [9, 2, 5, 0]),  # valid: as given
        ([9, 2, 5], [0, 4, 8, 12]),  # too few: uniform
        ([9, 9, 5, 0], [0, 4, 8, 12]),  # repeated
        ([9, 2, 5, 16], [0, 4, 8, 12]),  # out of range
        (None, [0, 4, 8, 12]),
        ([True, 2, 5, 0], [0, 4, 8, 12]),  # a bool is not an index
    ],
)
def test_fallback_indices(parsed, expected):
    assert fallback_indices(parsed, 16, 4) == expected


def test_is_valid_selection_never_raises_on_odd_inputs():
    assert not is_valid_selection("1,2", 8, 2)
    assert not is_valid_selection([1, 2.0], 8, 2)
    assert not is_valid_selection([1, 2], float("inf"), 2)
    assert not is_valid_selection([1, 2], 8, object())
    assert is_valid_selection((1, 2), 8, 2)


def test_registry():
    funcs = get_reward_funcs(["selector_format", "selector_index", "selector_length"])
    assert [f.__name__ for f in funcs] == ["selector_format_reward", "selector_index_reward", "selector_length_reward"]
    assert REWARDS["selector_length"] is selector_length_reward
    # TRL calls every reward with the same keyword arguments: extra columns and TRL's own are swallowed.
    kwargs = {
        "prompts": ["p"],
        "completion_ids": [[1] * 90],
        "num_candidates": [128],
        "num_frames_to_select": [3],
        "task": ["mcq"],
        "answer": ["B"],
        "trainer_state": None,
        "log_metric": None,
    }
    assert [f([GOOD], **kwargs) for f in funcs] == [[1.0], [1.0], [0.2]]


# ----------------------------------------------------------------------------------------------------------------
# No string makes the parser or the rewards raise

_PIECES = st.sampled_from(
    ["<think>", "</think>", "<index>", "</index>", "<INDEX>", "[", "]", "(", ")", ",", ";", ".", " ", "\n", "-", "+"]
)
_NUMBERS = st.integers(min_value=-(10**25), max_value=10**25).map(str)
_COMPLETIONS = st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(_PIECES, _NUMBERS, st.text(max_size=5)), max_size=30).map("".join),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_COMPLETIONS, num_candidates=st.one_of(st.none(), st.integers(-3, 300)), num_select=st.integers(0, 20))
def test_no_string_makes_parser_or_rewards_raise(text, num_candidates, num_select):
    parsed = parse_indices(text)
    assert parsed is None or (isinstance(parsed, list) and parsed and all(isinstance(i, int) for i in parsed))
    assert selector_format_reward([text]) in ([0.0], [1.0])
    index = selector_index_reward([text], num_candidates=[num_candidates], num_frames_to_select=[num_select])
    assert index in ([0.0], [1.0], [None])
    assert selector_length_reward([text], completion_ids=[list(text)]) in ([0.0], [0.2])
    if num_candidates is not None and 1 <= num_select <= num_candidates:
        chosen = fallback_indices(parsed, num_candidates, num_select)
        assert is_valid_selection(chosen, num_candidates, num_select)
        # the index reward is 1 exactly when the fallback keeps the model's own list
        assert (index == [1.0]) == (parsed is not None and chosen == parsed)
    if check_selector_format(text):
        assert parsed is not None


@settings(max_examples=100, deadline=None)
@given(
    indices=st.lists(st.integers(0, 127), min_size=1, max_size=10),
    separator=st.sampled_from([", ", ",", " ", "; ", ",\n"]),
    brackets=st.sampled_from([("", ""), ("[", "]"), ("(", ")")]),
    reasoning=st.text(alphabet=st.characters(blacklist_characters="<>"), min_size=1, max_size=50).filter(str.strip),
)
def test_written_lists_read_back(indices, separator, brackets, reasoning):
    body = brackets[0] + separator.join(str(i) for i in indices) + brackets[1]
    text = f"<think>{reasoning}</think><index>{body}</index>"
    assert parse_indices(text) == indices
    assert selector_format_reward([text]) == [1.0]
