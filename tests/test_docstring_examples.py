"""The examples in the modules' docstrings run and give what they show (HF-style ``` fenced examples)."""

import doctest
import importlib
import re

import pytest


class _FencedDocTestParser(doctest.DocTestParser):
    """Reads HF-style examples: the ``` fences around them are not part of the expected output."""

    def parse(self, string, name="<string>"):
        return super().parse(re.sub(r"^[ \t]*```.*$", "", string, flags=re.MULTILINE), name)


# (modules, fewest examples they must hold together)
DOCUMENTED = [
    (("temporal_rl.advantages",), 6),
    (("temporal_rl.viarl.candidates", "temporal_rl.video.labels", "temporal_rl.video.sampling"), 4),
    (("temporal_rl.viarl.selector", "temporal_rl.rewards.selector"), 6),
    (("temporal_rl.viarl.frame_baselines",), 1),
    (
        (
            "temporal_rl.viarl.answer_stage",
            "temporal_rl.viarl.amplification",
            "temporal_rl.experiments.viarl_experiment",
        ),
        6,
    ),
    (("temporal_rl.rewards.parsing",), 0),
    (("temporal_rl.rewards.temporal",), 0),
    (("temporal_rl.rewards.scoring",), 0),
    (("temporal_rl.rewards.task_rewards",), 0),
    (("temporal_rl.rewards.registry",), 0),
    (("temporal_rl.eval.metrics",), 0),
    (("temporal_rl.eval.baselines",), 0),
    (("temporal_rl.prompts",), 0),
]


@pytest.mark.parametrize(("modules", "fewest"), DOCUMENTED, ids=[",".join(m) for m, _ in DOCUMENTED])
def test_docstring_examples(modules, fewest):
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    finder = doctest.DocTestFinder(parser=_FencedDocTestParser())
    for module in modules:
        for test in finder.find(importlib.import_module(module)):
            runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.attempted >= fewest
    assert results.failed == 0
