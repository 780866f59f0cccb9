"""The examples in the docstrings run and give what they show (HF-style ``` fenced examples).

Every module of `temporal_rl` and `data_tools` whose source holds a `>>>` example is found and run, and each must run
exactly as many examples as its source shows: an example that the runner stops finding (a docstring moved out of the
module's own objects, a nested function, a broken fence) fails the test instead of silently counting as zero.
"""

import doctest
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_LINE = re.compile(r"^\s*>>>(?: |$)", re.MULTILINE)
# Modules that must keep examples (the documented pure maths and parsers): losing them all is a failure too.
MUST_HAVE_EXAMPLES = {
    "temporal_rl.advantages",
    "temporal_rl.filtering.selection",
    "temporal_rl.generation",
    "temporal_rl.prompts",
    "temporal_rl.resumable",
    "temporal_rl.rewards.parsing",
    "temporal_rl.rewards.selector",
    "temporal_rl.rewards.temporal",
    "temporal_rl.eval.metrics",
    "temporal_rl.video.labels",
    "temporal_rl.viarl.answer_stage",
}


class _FencedDocTestParser(doctest.DocTestParser):
    """Reads HF-style examples: the ``` fences around them are not part of the expected output."""

    def parse(self, string, name="<string>"):
        return super().parse(re.sub(r"^[ \t]*```.*$", "", string, flags=re.MULTILINE), name)


def documented_modules() -> dict[str, int]:
    """Module name -> number of `>>>` examples in its source, for every module that has any."""
    found = {}
    for package in ("temporal_rl", "data_tools"):
        for path in sorted((ROOT / package).rglob("*.py")):
            count = len(EXAMPLE_LINE.findall(path.read_text(encoding="utf-8")))
            if count:
                parts = path.relative_to(ROOT).with_suffix("").parts
                found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = count
    return found


DOCUMENTED = documented_modules()


def test_the_modules_that_must_show_examples_do():
    assert MUST_HAVE_EXAMPLES <= set(DOCUMENTED), sorted(MUST_HAVE_EXAMPLES - set(DOCUMENTED))


@pytest.mark.parametrize(("module", "examples"), sorted(DOCUMENTED.items()), ids=sorted(DOCUMENTED))
def test_docstring_examples(module, examples):
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    finder = doctest.DocTestFinder(parser=_FencedDocTestParser())
    for test in finder.find(importlib.import_module(module)):
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.attempted == examples, f"{module}: {results.attempted} of the {examples} examples in the source ran"
    assert results.failed == 0
