"""Parsing time against completion length: every reward, the selector's parser and the evaluator on adversarial text.

    python benchmarks/parsing_time.py [--sizes 16384 65536] [--families answer_ws,start_ws] [--repeats 3]

A degenerate policy writes long runs of one thing: spaces after "answer", after "start:", `<think>` a thousand
times. A parser that backtracks quadratically over such a run stalls a training step for seconds (16 KB of spaces
after "answer" took 5.5 s per call before the parsers were made linear). This module holds those texts as families
of generators (one text per length) and times, for each, every callable that reads a completion:

- every registered reward (`temporal_rl.rewards.REWARDS`), once per task (grounding, mcq, grounded_qa, open_qa);
- the selector's parser (`parse_indices`, `check_selector_format`);
- the evaluator (`temporal_rl.eval.metrics.score_record`, per task).

Times are CPU time (`time.process_time`), best of `--repeats`, so a loaded machine does not inflate them. It prints,
per family, the slowest callable at each size and the ratio of the two largest sizes (4 for linear growth over a 4x
length, 16 for quadratic). `ADVERSARIAL` are the families of issue 17 and their cousins (a run at each place a
pattern repeats, tags repeated or left open); `DENSE` are texts full of legitimate tokens (thousands of numbers,
pairs, capitals), which cost more per character but grow linearly too. tests/test_parsing_time.py asserts the goals:
under `LIMIT_MS` at 64 KB for every adversarial family, linear growth for all.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

LIMIT_MS = 10.0
TASKS = ("grounding", "mcq", "grounded_qa", "open_qa")


def _repeat(unit: str, size: int, head: str = "", tail: str = "") -> str:
    return head + unit * max(1, (size - len(head) - len(tail)) // len(unit)) + tail


# name -> (what it is, text of about `size` characters)
ADVERSARIAL: dict[str, tuple[str, Callable[[int], str]]] = {
    "answer_ws": ('"answer" then spaces (issue 17: 5.5 s at 16 KB)', lambda n: _repeat(" ", n, "answer", "x")),
    "answer_is_ws": ('"The answer is" then newlines', lambda n: _repeat("\n", n, "The answer is", "x")),
    "answer_in_tag_ws": ('"<answer>answer" then spaces', lambda n: _repeat(" ", n, "<answer>answer", "x</answer>")),
    "start_ws": ('"start:" then spaces (issue 17: 1.7 s at 16 KB)', lambda n: _repeat(" ", n, "start:")),
    "start_quote_ws": ('"start_time": " then spaces', lambda n: _repeat(" ", n, '{"start_time": "', "x")),
    "start_in_tag_ws": ('"<answer>start:" then spaces', lambda n: _repeat(" ", n, "<answer>start:", "</answer>")),
    "unclosed_think": ("<think> repeated, never closed (issue 17)", lambda n: _repeat("<think>", n)),
    "think_then_answer": (
        "<think> repeated then <answer> (issue 17: 8.5 s at 64 KB)",
        lambda n: _repeat("<think>", n, "", "<answer>"),
    ),  # fmt: skip
    "think_then_answer_closed": (
        "<think> repeated then <answer>B</answer>",
        lambda n: _repeat("<think>", n, "", "<answer>B</answer>"),
    ),  # fmt: skip
    "think_blocks": ("<think>a</think> repeated", lambda n: _repeat("<think>a</think>", n)),
    "unclosed_answer": ("<answer> repeated, never closed", lambda n: _repeat("<answer>", n)),
    "closing_tags": ("</answer> repeated", lambda n: _repeat("</answer>", n)),
    "unclosed_index": ("<index> repeated, never closed", lambda n: _repeat("<index>", n)),
    "time_tags": ("<time> repeated then </time>", lambda n: _repeat("<time>", n, "<answer>B</answer>", "</time>")),
    "digit_ws": ("a number then spaces", lambda n: _repeat(" ", n, "5", "x")),
    "bracket_ws": ("[5 then spaces", lambda n: _repeat(" ", n, "[5")),
    "pair_ws": ("5 - then spaces", lambda n: _repeat(" ", n, "5 -", "x")),
    "letter_ws": ("<answer>A then spaces", lambda n: _repeat(" ", n, "<answer>A", "x</answer>")),
    "paren_ws": ("<answer>( then spaces", lambda n: _repeat(" ", n, "<answer>(", "x</answer>")),
    "index_ws": ("<index>1 then spaces", lambda n: _repeat(" ", n, "<think>a</think><index>1", "x</index>")),
    "between_blocks_ws": ("</think> then spaces", lambda n: _repeat(" ", n, "<think>a</think>", "<x")),
    "digits_colon": ("a long number then a colon", lambda n: _repeat("1", n, "", ":")),
    "decimal_colon": ("a long decimal then a colon", lambda n: _repeat("1", n, "1.", ":")),
    "key_value_digits": ('"start: " then a long number and a colon', lambda n: _repeat("1", n, "start: ", ":x")),
}
DENSE: dict[str, tuple[str, Callable[[int], str]]] = {
    "numbers": ("1 1 1 ...", lambda n: _repeat("1 ", n)),
    "pairs": ("1-2 1-2 ...", lambda n: _repeat("1-2 ", n)),
    "keys": ("start: 1 start: 1 ...", lambda n: _repeat("start: 1 ", n)),
    "key_words": ("end end ...", lambda n: _repeat("end ", n)),
    "capitals": ("A A A ...", lambda n: _repeat("A ", n)),
    "answer_words": ("answer answer ...", lambda n: _repeat("answer ", n)),
    "parens": ("(A) (A) ...", lambda n: _repeat("(A) ", n)),
    "index_list": ("<index>1, 1, ...</index>", lambda n: _repeat("1, ", n, "<think>a</think><index>", "</index>")),
    "letters": ("aaaa...", lambda n: _repeat("a", n)),
    "dots": ("....", lambda n: _repeat(".", n)),
}
FAMILIES = {**ADVERSARIAL, **DENSE}

_RECORDS = {
    "grounding": {"task": "grounding", "options": None, "answer": None, "spans": [[1.0, 2.0]]},
    "mcq": {"task": "mcq", "options": ["a", "b", "c", "d"], "answer": "B", "spans": None},
    "grounded_qa": {"task": "grounded_qa", "options": ["a", "b", "c", "d"], "answer": "B", "spans": [[1.0, 2.0]]},
    "open_qa": {"task": "open_qa", "options": None, "answer": "red circle", "spans": None},
}


def callables() -> dict[str, Callable[[str], object]]:
    """name -> f(text): each reward per task (one completion per call), the selector's parser, the evaluator."""
    from temporal_rl.eval.metrics import score_record
    from temporal_rl.rewards import REWARDS
    from temporal_rl.rewards.selector import check_selector_format, parse_indices

    found: dict[str, Callable[[str], object]] = {}
    for name in sorted(REWARDS):
        for task, record in _RECORDS.items():
            columns = {
                "task": [task],
                "options": [record["options"]],
                "answer": [record["answer"]],
                "spans": [record["spans"]],
                "duration": [10.0],
                "num_candidates": [16],
                "num_frames_to_select": [4],
                "completion_ids": [[0] * 100],
            }
            found[f"{name}/{task}"] = lambda text, f=REWARDS[name], c=columns: f(completions=[text], **c)
    found["parse_indices"] = parse_indices
    found["check_selector_format"] = check_selector_format
    for task, record in _RECORDS.items():
        full = {"id": "x", "video": "x.mp4", "duration": 10.0, "question": "q", "source": "s", "meta": {}, **record}
        found[f"score_record/{task}"] = lambda text, r=full: score_record(r, text)
    return found


def cpu_ms(func: Callable[[str], object], text: str, repeats: int = 3) -> float:
    """The best CPU time of `repeats` calls, in milliseconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        func(text)
        best = min(best, time.process_time() - start)
    return best * 1000


def measure(
    family: str, sizes: tuple[int, ...] = (16384, 65536), repeats: int = 3, funcs: dict | None = None
) -> dict[str, dict]:
    """Per callable, its time at each size: {name: {size: ms}}."""
    funcs = funcs if funcs is not None else callables()
    build = FAMILIES[family][1]
    texts = {size: build(size) for size in sizes}
    return {name: {size: cpu_ms(func, texts[size], repeats) for size in sizes} for name, func in funcs.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16384, 65536])
    parser.add_argument("--families", default=None, help="comma-separated family names (default: all)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    sizes = tuple(sorted(args.sizes))
    names = args.families.split(",") if args.families else list(FAMILIES)
    funcs = callables()
    header = ["family", "kind", *[f"{s // 1024} KB (ms)" for s in sizes], "slowest at the largest", "ratio"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for family in names:
        times = measure(family, sizes, args.repeats, funcs)
        worst = {size: max(t[size] for t in times.values()) for size in sizes}
        slowest = max(times, key=lambda name: times[name][sizes[-1]])
        ratio = worst[sizes[-1]] / worst[sizes[-2]] if len(sizes) > 1 and worst[sizes[-2]] > 0 else float("nan")
        kind = "adversarial" if family in ADVERSARIAL else "dense"
        cells = [family, kind, *[f"{worst[s]:.2f}" for s in sizes], slowest, f"{ratio:.1f}"]
        print("| " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
