"""Evaluation: score a predictions file against a canonical data file (`python -m temporal_rl.eval`), and evaluate a
model with its training recipe's video and prompt settings (`python -m temporal_rl.eval.run --config RECIPE`).

- `metrics.py`: per-record scores and the benchmark metrics (R@m, mIoU, accuracy, NExT-GQA's IoP and Acc@GQA).
- `__main__.py`: the command line.
- `baselines.py`: blind baselines written as predictions (`python -m temporal_rl.eval.baselines`).
- `run.py`: evaluation runs (generate, score, report; resumable), `evaluate_model` for the experiments.

May import the foundation; never a method package (`grpo`, `filtering`, `viarl`) or `experiments`.
"""

from temporal_rl.eval.metrics import (
    accuracy,
    evaluate,
    format_report,
    grounded_qa_metrics,
    grounding_metrics,
    mean_percent,
    rate_at,
    read_predictions,
    score_record,
    task_metrics,
)

__all__ = [
    "accuracy",
    "evaluate",
    "format_report",
    "grounded_qa_metrics",
    "grounding_metrics",
    "mean_percent",
    "rate_at",
    "read_predictions",
    "score_record",
    "task_metrics",
]
