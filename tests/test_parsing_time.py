"""Parsing runs in time linear in the completion, and fast, on the texts a degenerate policy writes.

For each family of `benchmarks/parsing_time.py` (issue 17's: spaces after "answer", after "start:", `<think>`
repeated and left open, repeated `<think>` then `<answer>`, and their cousins), every reward on every task, the
selector's parser and the evaluator:

- at 64 KB, each call takes under 10 ms of CPU time (adversarial families); before the parsers were made linear,
  16 KB of spaces after "answer" took 5.5 s;
- from 16 KB to 64 KB, the time grows about 4x, not 16x (every family, the dense ones included);
- nothing raises.

Times are CPU time, best of three calls, so other work on the machine does not count; a quadratic parser fails
both checks by orders of magnitude. The "never raises" property tests are in test_parsing.py, test_rewards.py and
test_selector.py.
"""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.parsing_time import ADVERSARIAL, DENSE, FAMILIES, LIMIT_MS, callables, measure  # noqa: E402

SMALL, LARGE = 16384, 65536


@pytest.fixture(scope="module")
def funcs():
    return callables()


def _check_linear(times: dict[str, dict[int, float]]) -> list[str]:
    """Calls whose time grew faster than linearly from SMALL to LARGE (4x the length): more than 8x the time, with
    half a millisecond of slack for timer noise on calls that take almost nothing."""
    return [
        f"{name}: {t[SMALL]:.2f} ms at 16 KB, {t[LARGE]:.2f} ms at 64 KB"
        for name, t in times.items()
        if t[LARGE] > 8 * t[SMALL] + 0.5
    ]


def _superlinear(family: str, funcs, times: dict[str, dict[int, float]] | None = None) -> list[str]:
    """`_check_linear` on `family`, a failure confirmed by a second measurement of the calls that failed: a parser
    that is quadratic fails both by orders of magnitude, a scheduling hiccup on a loaded machine (seen once in the
    full suite, with another job on the second core) does not repeat."""
    first = _check_linear(times or measure(family, (SMALL, LARGE), repeats=3, funcs=funcs))
    if not first:
        return []
    suspects = {name: funcs[name] for name in funcs if any(line.startswith(f"{name}:") for line in first)}
    return _check_linear(measure(family, (SMALL, LARGE), repeats=3, funcs=suspects))


@pytest.mark.parametrize("family", list(ADVERSARIAL))
def test_adversarial_completion_is_parsed_fast_and_in_linear_time(family, funcs):
    times = measure(family, (SMALL, LARGE), repeats=3, funcs=funcs)
    slow = {name: t[LARGE] for name, t in times.items() if t[LARGE] >= LIMIT_MS}
    assert not slow, f"{family} at 64 KB: over {LIMIT_MS} ms: {slow}"
    assert not (superlinear := _superlinear(family, funcs, times)), superlinear


@pytest.mark.slow
@pytest.mark.parametrize("family", list(DENSE))
def test_dense_completion_is_parsed_in_linear_time(family, funcs):
    """Thousands of legitimate tokens cost more per character (each is a match to read), but no more than linearly."""
    assert not (superlinear := _superlinear(family, funcs)), superlinear


def test_the_families_are_what_they_say():
    for name, (description, build) in FAMILIES.items():
        text = build(LARGE)
        assert LARGE - 64 <= len(text) <= LARGE + 64, name
        assert description, name
    assert FAMILIES["answer_ws"][1](100).startswith("answer   ")
    assert FAMILIES["unclosed_think"][1](70) == "<think>" * 10


def test_a_quadratic_parser_would_be_caught():
    """The check itself: a parser with the old backtracking pattern (two adjacent `\\s*`) fails it."""
    import re

    quadratic = re.compile(r"answer\s*(?:is|:)?\s*\(?([A-Z])")
    text = FAMILIES["answer_ws"][1]
    times = measure("answer_ws", (1024, 4096), repeats=1, funcs={"old": quadratic.search})["old"]
    assert times[4096] > 8 * times[1024], (times, text(10))
