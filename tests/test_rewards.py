"""Span maths, the format check, the TRL reward functions and the reward registry.

Expected values are worked by hand (intersection and union lengths written out in the comments).
"""

import math
import pickle

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from temporal_rl.rewards import (
    REWARDS,
    accuracy_reward,
    exact_match_reward,
    format_reward,
    get_reward_funcs,
    iou_reward,
    register_reward,
    think_format_reward,
)
from temporal_rl.rewards.scoring import check_format, span_score
from temporal_rl.rewards.temporal import (
    best_iop,
    best_iou,
    clip_span,
    intersection_over_prediction,
    temporal_iou,
)

# ----------------------------------------------------------------------------------------------------------------
# temporal IoU / IoP / clipping


@pytest.mark.parametrize(
    ("pred", "gold", "expected"),
    [
        ((2.0, 6.0), (2.0, 6.0), 1.0),  # identical
        ((2.0, 6.0), (4.0, 8.0), 2 / 6),  # overlap: inter [4,6]=2, union [2,8]=6
        ((3.0, 5.0), (2.0, 10.0), 2 / 8),  # contained: inter 2, union 8
        ((2.0, 10.0), (3.0, 5.0), 2 / 8),  # containing
        ((6.0, 2.0), (4.0, 8.0), 2 / 6),  # reversed prediction is sorted
        ((2.0, 6.0), (8.0, 4.0), 2 / 6),  # reversed gold is sorted
        ((0.0, 2.0), (5.0, 8.0), 0.0),  # disjoint
        ((0.0, 5.0), (5.0, 8.0), 0.0),  # touching: inter 0
        ((4.0, 4.0), (2.0, 6.0), 0.0),  # zero-length prediction inside
        ((3.0, 3.0), (3.0, 3.0), 0.0),  # both zero-length: union 0
        ((0.5, 1.5), (1.0, 3.0), 0.5 / 2.5),  # inter [1,1.5]=0.5, union [0.5,3]=2.5
        ((0.0, 30.0), (24.3, 30.4), 5.7 / 30.4),  # inter [24.3,30]=5.7, union [0,30.4]
        ((float("nan"), 3.0), (1.0, 2.0), 0.0),
        ((1.0, float("inf")), (1.0, 2.0), 0.0),
    ],
)
def test_temporal_iou(pred, gold, expected):
    assert temporal_iou(pred, gold) == pytest.approx(expected, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(
    ("pred", "gold", "expected"),
    [
        ((4.0, 6.0), (5.0, 20.0), 0.5),  # 1 s of the 2 s prediction inside
        ((6.0, 4.0), (5.0, 20.0), 0.5),  # reversed
        ((3.0, 5.0), (2.0, 10.0), 1.0),  # prediction inside gold
        ((0.0, 10.0), (2.0, 4.0), 0.2),  # gold inside prediction: 2 / 10
        ((0.0, 2.0), (5.0, 8.0), 0.0),  # disjoint
        ((0.0, 5.0), (5.0, 8.0), 0.0),  # touching
        ((4.0, 4.0), (2.0, 6.0), 0.0),  # zero-length prediction
        ((2.0, 6.0), (4.0, 4.0), 0.0),  # zero-length gold: inter 0
    ],
)
def test_intersection_over_prediction(pred, gold, expected):
    assert intersection_over_prediction(pred, gold) == pytest.approx(expected, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(
    ("span", "duration", "expected"),
    [
        ((2.5, 7.25), 30.0, (2.5, 7.25)),
        ((40.0, 25.0), 30.0, (25.0, 30.0)),  # reversed and past the end
        ((25.0, 40.0), 30.0, (25.0, 30.0)),
        ((-2.0, 3.0), 10.0, (0.0, 3.0)),
        ((31.0, 35.0), 30.0, None),  # entirely past the end
        ((-5.0, -1.0), 10.0, None),  # entirely before the start
        ((5.0, 5.0), 10.0, None),  # zero-length
        ((5.0, 8.0), None, (5.0, 8.0)),  # no duration: clip at 0 only
        ((-1.0, 8.0), None, (0.0, 8.0)),
        ((1.0, 2.0), 0.0, None),
        ((1.0, 2.0), -3.0, None),
        ((1.0, 2.0), float("nan"), None),
        ((1.0, 2.0), "x", None),
        ((float("nan"), 2.0), 10.0, None),
        (None, 10.0, None),
    ],
)
def test_clip_span(span, duration, expected):
    assert clip_span(span, duration) == expected


def test_best_iou_and_iop_over_several_gold_spans():
    # (10,14) vs (0,2): 0; vs (11,15): inter 3, union 5 -> 0.6
    assert best_iou((10.0, 14.0), [(0.0, 2.0), (11.0, 15.0)]) == pytest.approx(0.6)
    # (10,14) vs (10,12): 2/4; vs (12,14): 2/4
    assert best_iou((10.0, 14.0), [(10.0, 12.0), (12.0, 14.0)]) == pytest.approx(0.5)
    # IoP: (10,14) vs (0,11): 1/4; vs (12,20): 2/4
    assert best_iop((10.0, 14.0), [(0.0, 11.0), (12.0, 20.0)]) == pytest.approx(0.5)
    assert best_iou(None, [(0.0, 1.0)]) == 0.0
    assert best_iou((0.0, 1.0), []) == 0.0
    assert best_iou((0.0, 1.0), None) == 0.0
    assert best_iop(None, [(0.0, 1.0)]) == 0.0


def test_span_score_clips_past_the_duration():
    # (25,40) clipped to (25,30) vs (20,30): inter 5, union 10 -> 0.5 (unclipped it would be 5/20)
    score = span_score("<answer>25 - 40</answer>", "grounding", [[20.0, 30.0]], 30.0)
    assert score.span == (25.0, 30.0)
    assert score.iou == pytest.approx(0.5)
    assert score.iop == pytest.approx(1.0)


# ----------------------------------------------------------------------------------------------------------------
# check_format


@pytest.mark.parametrize(
    ("text", "task", "require_think", "expected"),
    [
        ('<answer>{"start_time": "5.5", "end_time": "9.0"}</answer>', "grounding", False, True),
        ("<answer>5.5 - 9.0</answer>", "grounding", False, True),
        ("  <think>the light turns on</think>\n\n<answer>5.5 - 9.0</answer>\n", "grounding", False, True),
        ("<think>x</think><answer>5.5 - 9.0</answer>", "grounding", True, True),
        ("<answer>5.5 - 9.0</answer>", "grounding", True, False),  # think required
        ("<think>   </think><answer>5.5 - 9.0</answer>", "grounding", False, False),  # blank reasoning
        ("<think>a<think>b</think><answer>1 - 2</answer>", "grounding", False, False),  # nested think
        ("<think>see <answer>1 - 2</answer></think><answer>1 - 2</answer>", "grounding", False, False),
        ("<answer>5.5 - 9.0</answer> done", "grounding", False, False),  # trailing text
        ("Sure! <answer>5.5 - 9.0</answer>", "grounding", False, False),  # leading text
        ("<answer>soon</answer>", "grounding", False, False),  # payload has no span
        ("<answer>1 - 2</answer><answer>1 - 2</answer>", "grounding", False, False),
        ("<answer>1 - 2", "grounding", False, False),
        ("<Answer>1 - 2</Answer>", "grounding", False, False),  # tags are exact
        ("<answer>B</answer>", "mcq", False, True),
        ("<answer>The answer is (B).</answer>", "mcq", False, True),
        ("<answer>E</answer>", "mcq", False, False),  # not among the 4 options
        ("<answer>B</answer><time>1 - 2</time>", "mcq", False, False),
        ("<answer>B</answer><time>1 - 2</time>", "grounded_qa", False, True),
        ('<answer>B</answer> <time>{"start_time": "1", "end_time": "2"}</time>', "grounded_qa", False, True),
        ("<think>r</think><answer>B</answer>\n<time>1 - 2</time>", "grounded_qa", True, True),
        ("<answer>B</answer>", "grounded_qa", False, False),  # no time
        ("<time>1 - 2</time><answer>B</answer>", "grounded_qa", False, False),  # wrong order
        ("<answer>B</answer><time>later</time>", "grounded_qa", False, False),
        ("<answer>1 - 2</answer><time>1 - 2</time>", "grounded_qa", False, False),  # no letter
        ("<answer>red circle</answer>", "open_qa", False, True),
        ("<answer> </answer>", "open_qa", False, False),
        ("<answer>B</answer>", "no_such_task", False, False),
        ("", "grounding", False, False),
    ],
)
def test_check_format(text, task, require_think, expected):
    assert check_format(text, task, num_options=4, require_think=require_think) is expected


# ----------------------------------------------------------------------------------------------------------------
# The reward functions on a hand-worked mixed batch

OPTIONS4 = ["red", "blue", "green", "white"]
OPTIONS5 = ["up", "down", "left", "right", "still"]
# (task, answer, options, spans, duration, completion)
BATCH = [
    # 0: pred (4,8) vs gold (2,6): inter 2, union 6
    ("grounding", None, None, [[2.0, 6.0]], 10.0, '<answer>{"start_time": "4", "end_time": "8"}</answer>'),
    # 1: exact, mm:ss, with think
    ("grounding", None, None, [[2.0, 6.0]], 10.0, "<think>the light</think>\n<answer>0:02 - 0:06</answer>"),
    # 2: no tags: the IoU reward still reads the span, the format reward gives 0
    ("grounding", None, None, [[2.0, 6.0]], 10.0, "It is 2 - 6"),
    # 3: (8,12) clipped to (8,10); best gold (7,10): inter 2, union 3
    ("grounding", None, None, [[2.0, 6.0], [7.0, 10.0]], 10.0, "<answer>8 - 12</answer>"),
    # 4: right letter
    ("mcq", "C", OPTIONS4, None, 20.0, "<answer>C</answer>"),
    # 5: well-formed, wrong letter
    ("mcq", "C", OPTIONS4, None, 20.0, "<answer>The answer is B</answer>"),
    # 6: right letter without tags
    ("mcq", "C", OPTIONS4, None, 20.0, "C"),
    # 7: right letter, (15,25) vs (10,20): inter 5, union 15
    ("grounded_qa", "D", OPTIONS5, [[10.0, 20.0]], 30.0,
     '<think>x</think><answer>D</answer> <time>{"start_time": "15", "end_time": "25"}</time>'),
    # 8: right letter, no <time>: no span anywhere
    ("grounded_qa", "D", OPTIONS5, [[10.0, 20.0]], 30.0, "<answer>D</answer>"),
    # 9: open question
    ("open_qa", "red circle", None, None, 12.0, "<answer>The red circle</answer>"),
]  # fmt: skip
EXPECTED = {
    "format": [1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, None],
    "think_format": [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, None],
    "accuracy": [None, None, None, None, 1.0, 0.0, 1.0, 1.0, 1.0, None],
    "iou": [2 / 6, 1.0, 1.0, 2 / 3, None, None, None, 5 / 15, 0.0, None],
    "exact_match": [None] * 9 + [1.0],
}


def batch_columns():
    task, answer, options, spans, duration, _ = (list(column) for column in zip(*BATCH, strict=True))
    return {
        "task": task,
        "answer": answer,
        "options": options,
        "spans": spans,
        "duration": duration,
        # other columns and TRL arguments the rewards must ignore
        "id": [f"q{i}" for i in range(len(BATCH))],
        "source": ["synth"] * len(BATCH),
        "question": ["?"] * len(BATCH),
        "meta": ["{}"] * len(BATCH),
        "prompts": [[{"role": "user", "content": "?"}]] * len(BATCH),
        "completion_ids": [[1, 2, 3]] * len(BATCH),
        "trainer_state": object(),
        "log_metric": lambda *args, **kwargs: None,
        "log_extra": lambda *args, **kwargs: None,
    }


def as_conversational(text, index):
    if index % 2:
        return [{"role": "assistant", "content": [{"type": "text", "text": text}]}]
    return [{"role": "assistant", "content": text}]


def assert_rewards_equal(got, expected):
    assert len(got) == len(expected)
    for value, want in zip(got, expected, strict=True):
        if want is None:
            assert value is None
        else:
            assert isinstance(value, float)
            assert value == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("conversational", [False, True])
def test_rewards_on_mixed_batch(name, conversational):
    completions = [row[-1] for row in BATCH]
    if conversational:
        completions = [as_conversational(text, i) for i, text in enumerate(completions)]
    assert_rewards_equal(REWARDS[name](completions=completions, **batch_columns()), EXPECTED[name])


def test_rewards_reject_a_column_of_the_wrong_length():
    columns = batch_columns()
    columns["task"] = columns["task"][:-1]
    with pytest.raises(ValueError, match="'task' has 9 rows but there are 10 completions"):
        iou_reward(completions=[row[-1] for row in BATCH], **columns)


def test_rewards_without_gold_return_none():
    assert iou_reward(["<answer>1 - 2</answer>"], task=["grounding"], spans=[None], duration=[5.0]) == [None]
    assert iou_reward(["<answer>1 - 2</answer>"], task=["grounding"], spans=[[]], duration=[5.0]) == [None]
    assert accuracy_reward(["<answer>A</answer>"], task=["mcq"], answer=[None], options=[["x", "y"]]) == [None]


def test_reward_names_are_stable():
    assert {name: func.__name__ for name, func in REWARDS.items()}.items() >= {
        "format": "format_reward",
        "think_format": "think_format_reward",
        "accuracy": "accuracy_reward",
        "iou": "iou_reward",
        "exact_match": "exact_match_reward",
    }.items()
    assert REWARDS["format"] is format_reward and REWARDS["think_format"] is think_format_reward
    assert REWARDS["accuracy"] is accuracy_reward and REWARDS["iou"] is iou_reward
    assert REWARDS["exact_match"] is exact_match_reward


# ----------------------------------------------------------------------------------------------------------------
# Properties: no completion makes a reward raise; values are None or floats in [0, 1]

TOKENS = [
    "<think>", "</think>", "<answer>", "</answer>", "<time>", "</time>", "{", "}", '"start_time": ', '"end_time": ',
    '"', ":", "-", " to ", ",", "[", "]", "(", ")", ".", "0", "3", "9", "59", "1:05", "9" * 400, "1e999", "nan",
    "inf", "s", "A", "B", "C", "E", "The answer is ", "é", "İ", "\u2013", "\n", " ", "💥",
]  # fmt: skip
completion_strategy = st.one_of(
    st.text(max_size=120),
    st.lists(st.sampled_from(TOKENS), max_size=30).map("".join),
).flatmap(lambda text: st.sampled_from([text, [{"role": "assistant", "content": text}]]))

row_strategy = st.sampled_from(range(len(BATCH)))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(completion_strategy, row_strategy), min_size=1, max_size=8))
def test_rewards_never_raise_and_stay_in_range(batch):
    rows = [BATCH[index] for _, index in batch]
    completions = [completion for completion, _ in batch]
    task, answer, options, spans, duration, _ = (list(column) for column in zip(*rows, strict=True))
    applies = {
        "format": ("grounding", "mcq", "grounded_qa"),
        "think_format": ("grounding", "mcq", "grounded_qa"),
        "accuracy": ("mcq", "grounded_qa"),
        "iou": ("grounding", "grounded_qa"),
        "exact_match": ("open_qa",),
    }
    for name, tasks in applies.items():
        rewards = REWARDS[name](
            completions=completions, task=task, answer=answer, options=options, spans=spans, duration=duration
        )
        assert isinstance(rewards, list) and len(rewards) == len(completions)
        for value, row_task in zip(rewards, task, strict=True):
            if row_task in tasks:
                assert isinstance(value, float) and math.isfinite(value) and 0.0 <= value <= 1.0
            else:
                assert value is None


# ----------------------------------------------------------------------------------------------------------------
# The registry


@pytest.fixture
def restore_registry():
    saved = dict(REWARDS)
    yield
    REWARDS.clear()
    REWARDS.update(saved)


def test_register_reward_refuses_a_taken_name(restore_registry):
    def my_reward(completions, **kwargs):
        return [0.0] * len(completions)

    def other_reward(completions, **kwargs):
        return [1.0] * len(completions)

    assert register_reward("my_test_reward")(my_reward) is my_reward
    assert register_reward("my_test_reward")(my_reward) is my_reward  # same function again: fine
    with pytest.raises(ValueError, match="'my_test_reward' is already bound to .*my_reward"):
        register_reward("my_test_reward")(other_reward)
    with pytest.raises(ValueError, match="already bound"):
        register_reward("iou")(other_reward)
    assert REWARDS["iou"] is iou_reward
    assert get_reward_funcs(["my_test_reward"]) == [my_reward]


def test_register_reward_rejects_empty_name():
    with pytest.raises(ValueError, match="non-empty"):
        register_reward("")


def test_a_reloaded_copy_of_a_reward_may_rebind_its_name(restore_registry):
    # importlib.reload makes new function objects with the same module and qualified name
    def reloaded(completions, **kwargs):
        return [None] * len(completions)

    reloaded.__module__, reloaded.__qualname__ = iou_reward.__module__, iou_reward.__qualname__
    assert register_reward("iou")(reloaded) is reloaded
    assert REWARDS["iou"] is reloaded


@pytest.mark.parametrize("name", ["format", "think_format", "accuracy", "iou", "exact_match"])
def test_rewards_pickle_by_reference(name):
    assert pickle.loads(pickle.dumps(REWARDS[name])) is REWARDS[name]


def test_get_reward_funcs_resolves_names_paths_and_callables():
    def custom(completions, **kwargs):
        return [None] * len(completions)

    funcs = get_reward_funcs(["format", "iou", "temporal_rl.rewards.temporal.temporal_iou", custom])
    assert funcs[:2] == [format_reward, iou_reward]
    assert funcs[2] is temporal_iou
    assert funcs[3] is custom
    assert get_reward_funcs("accuracy") == [accuracy_reward]
    assert get_reward_funcs(custom) == [custom]
    assert get_reward_funcs([]) == []


@pytest.mark.parametrize(
    ("name", "detail"),
    [
        ("iuo", ""),
        ("no_such_package_xyz.module.fn", "cannot import module"),
        ("temporal_rl.rewards.temporal.no_such_function", "has no attribute"),
        ("temporal_rl.rewards.parsing.OPTION_LETTERS", "is not callable"),
        ("trailing.", ""),
    ],
)
def test_get_reward_funcs_unknown_name_lists_the_known_ones(name, detail):
    with pytest.raises(ValueError) as info:
        get_reward_funcs([name])
    message = str(info.value)
    assert repr(name) in message and detail in message
    known = message.split("known rewards: ")[1].split(";")[0].split(", ")
    assert {"accuracy", "exact_match", "format", "iou", "think_format"} <= set(known)  # other modules add more


def test_get_reward_funcs_rejects_non_names():
    with pytest.raises(ValueError, match="expected a name or a callable"):
        get_reward_funcs([3])


def test_rewards_on_columns_from_an_arrow_dataset(tmp_path):
    """The columns as TRL hands them over from `temporal_rl.data.load_dataset` (Arrow types, meta as JSON)."""
    pytest.importorskip("datasets")
    from temporal_rl.data import load_dataset, write_jsonl

    rows = []
    for i, (task, answer, options, spans, duration, _) in enumerate(BATCH):
        rows.append(
            {"id": f"q{i}", "video": "missing.mp4", "duration": duration, "task": task, "question": "?",
             "options": options, "answer": answer, "spans": spans, "source": "synth", "meta": {"i": i}}
        )  # fmt: skip
    path = tmp_path / "batch.jsonl"
    write_jsonl(path, rows)
    columns = load_dataset(path, check_video=False)[:]
    completions = [row[-1] for row in BATCH]
    for name, expected in EXPECTED.items():
        assert_rewards_equal(REWARDS[name](completions=completions, **columns), expected)


def test_every_reward_resolves_in_a_fresh_interpreter_without_the_video_stack(fresh_python):
    """Rewards register where they are defined: `import temporal_rl.rewards` alone registers them all (the selector's
    too), and pulls in neither torch, nor PyAV, nor a method's package."""
    fresh_python(
        """
import sys
from temporal_rl.rewards import get_reward_funcs
names = ["selector_format", "selector_index", "selector_length", "format", "think_format", "accuracy", "iou"]
assert [f.__name__ for f in get_reward_funcs(names)][:2] == ["selector_format_reward", "selector_index_reward"]
heavy = ("av", "torch", "transformers", "temporal_rl.viarl", "temporal_rl.video.decode")
heavy = [m for m in heavy if m in sys.modules]
assert not heavy, heavy
"""
    )


@pytest.mark.slow
def test_data_tools_and_the_light_video_modules_load_without_the_decoder(fresh_python):
    """The converters and the numpy-only video modules do not import PyAV; the synthetic benchmark (which encodes its
    clips with PyAV itself) takes its digit font from `temporal_rl.video.labels`, not through the decoder."""
    fresh_python(
        """
import sys
import data_tools.convert, temporal_rl.video.sampling, temporal_rl.video.labels, temporal_rl.video.inputs
assert "av" not in sys.modules, "PyAV imported"
import data_tools.synth
assert "temporal_rl.video.decode" not in sys.modules and "temporal_rl.video.cache" not in sys.modules
"""
    )
