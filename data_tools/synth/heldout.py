"""Test-only combinations: the reserved (shape, colour) pairs and question templates, and the guard that keeps them
out of train and val.

The reserved sets are fixed constants, the same for every namespace, so a model trained on any train split has never
seen them:

* `RESERVED_PAIRS`: 10 of the 48 (shape, colour) pairs (21%). Every shape and every colour still occurs in train
  with other partners, so the test measures composition, not an unseen word. Train and val never *show* a reserved
  pair: not as the target, a distractor, a colour change or a needle.
* `RESERVED_TEMPLATE_IDS`: one question template (paraphrase) per question type: the last one of each tuple in
  `vocab.QUESTION_TEMPLATES` (11 templates: 3 grounding event types, 6 mcq/grounded_qa question types, 2 needle).

The test split draws uniformly from everything, reserved or not; a sample is flagged `heldout_combo` when the pair
the question is about is reserved and `heldout_paraphrase` when its template is.
"""

from __future__ import annotations

from collections.abc import Iterable

from data_tools.synth.vocab import COLOUR_NAMES, QUESTION_TEMPLATES, SHAPES

SPLITS = ("train", "val", "test")
TEST_SPLIT = "test"

RESERVED_PAIRS: frozenset[tuple[str, str]] = frozenset(
    {
        ("circle", "orange"),
        ("circle", "magenta"),
        ("square", "cyan"),
        ("square", "yellow"),
        ("triangle", "green"),
        ("triangle", "white"),
        ("star", "red"),
        ("star", "blue"),
        ("ring", "yellow"),
        ("cross", "red"),
    }
)

RESERVED_TEMPLATE_IDS: dict[str, int] = {key: len(templates) - 1 for key, templates in QUESTION_TEMPLATES.items()}


class HeldOutLeakError(RuntimeError):
    """A train or val sample would use a combination reserved for the test split."""


def allowed_pairs(split: str) -> list[tuple[str, str]]:
    """The (shape, colour) pairs a sample of `split` may show, in a fixed order."""
    pairs = [(shape, colour) for shape in SHAPES for colour in COLOUR_NAMES]
    if split == TEST_SPLIT:
        return pairs
    return [pair for pair in pairs if pair not in RESERVED_PAIRS]


def allowed_template_ids(key: str, split: str) -> list[int]:
    """The template indices of question type `key` that a sample of `split` may use."""
    ids = list(range(len(QUESTION_TEMPLATES[key])))
    if split == TEST_SPLIT:
        return ids
    return [i for i in ids if i != RESERVED_TEMPLATE_IDS[key]]


def is_reserved_template(key: str, template_id: int) -> bool:
    return RESERVED_TEMPLATE_IDS[key] == template_id


def check_split_allowed(
    split: str, shown_pairs: Iterable[tuple[str, str]], template_key: str, template_id: int
) -> None:
    """Raise `HeldOutLeakError` if a train/val sample shows a reserved pair or uses a reserved template."""
    if split == TEST_SPLIT:
        return
    leaked = sorted(set(shown_pairs) & RESERVED_PAIRS)
    if leaked:
        raise HeldOutLeakError(f"a {split} sample would show the test-only (shape, colour) pairs {leaked}")
    if is_reserved_template(template_key, template_id):
        raise HeldOutLeakError(f"a {split} sample would use the test-only template {template_key}#{template_id}")
