"""Span maths: temporal IoU, intersection over prediction, clipping to the video.

This module owns the overlap measures that the IoU reward and the grounding metrics share. A span is a pair
`(start, end)` of seconds (or of any common unit, e.g. fractions of the duration); everything is plain float64
Python arithmetic, no arrays and no text. Inputs with `start > end` are sorted first; non-finite inputs give 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

Span = tuple[float, float]


def _as_sorted_span(span: Sequence[float]) -> Span | None:
    try:
        start, end = float(span[0]), float(span[1])
    except (TypeError, ValueError, IndexError):
        return None
    if not (math.isfinite(start) and math.isfinite(end)):
        return None
    return (start, end) if start <= end else (end, start)


def temporal_iou(pred: Sequence[float], gold: Sequence[float]) -> float:
    """Temporal intersection over union of two spans, in the hull form all grounding code uses.

    `IoU = max(0, min(e_p, e_g) - max(s_p, s_g)) / (max(e_p, e_g) - min(s_p, s_g))`, 0 when that union is <= 0.
    For overlapping spans the hull equals the union; for disjoint spans the intersection is 0 anyway.

    Args:
        pred: predicted `(start, end)`, seconds.
        gold: gold `(start, end)`, seconds.

    Returns:
        IoU in [0, 1].

    Example:
        ```python
        >>> temporal_iou((2.0, 6.0), (4.0, 8.0))  # intersection 2 s, union 6 s
        0.3333333333333333
        ```
    """
    p, g = _as_sorted_span(pred), _as_sorted_span(gold)
    if p is None or g is None:
        return 0.0
    intersection = max(0.0, min(p[1], g[1]) - max(p[0], g[0]))
    union = max(p[1], g[1]) - min(p[0], g[0])
    if union <= 0:
        return 0.0
    return min(1.0, intersection / union)


def intersection_over_prediction(pred: Sequence[float], gold: Sequence[float]) -> float:
    """Intersection over the prediction's length (IoP, NExT-GQA): how much of the prediction lies in the gold span.

    A zero-length prediction gives 0 (the official NExT-GQA script gives 1 to a point inside the gold span; here
    such a prediction is never rewarded, matching `clip_span`, which rejects it).

    Args:
        pred: predicted `(start, end)`, seconds.
        gold: gold `(start, end)`, seconds.

    Returns:
        IoP in [0, 1].

    Example:
        ```python
        >>> intersection_over_prediction((4.0, 6.0), (5.0, 20.0))  # 1 s of the 2 s prediction is inside
        0.5
        ```
    """
    p, g = _as_sorted_span(pred), _as_sorted_span(gold)
    if p is None or g is None:
        return 0.0
    length = p[1] - p[0]
    if length <= 0:
        return 0.0
    intersection = max(0.0, min(p[1], g[1]) - max(p[0], g[0]))
    return min(1.0, intersection / length)


def clip_span(span: Sequence[float] | None, duration: float | None) -> Span | None:
    """Sort a span and clip it to the video `[0, duration]`.

    Args:
        span: `(start, end)` in seconds, in any order, or `None`.
        duration: the video length in seconds; `None` clips at 0 only.

    Returns:
        The clipped `(start, end)`, or `None` if the span is missing, non-finite, or zero-length after clipping
        (e.g. entirely past the end of the video), or the duration is not a positive number.

    Example:
        ```python
        >>> clip_span((40.0, 25.0), 30.0), clip_span((31.0, 35.0), 30.0)
        ((25.0, 30.0), None)
        ```
    """
    if span is None:
        return None
    s = _as_sorted_span(span)
    if s is None:
        return None
    upper = math.inf
    if duration is not None:
        try:
            upper = float(duration)
        except (TypeError, ValueError):
            return None
        if not (upper > 0):  # also rejects nan
            return None
    start, end = min(max(s[0], 0.0), upper), min(max(s[1], 0.0), upper)
    if end - start <= 0:
        return None
    return (start, end)


def best_iou(pred: Sequence[float] | None, golds: Iterable[Sequence[float]] | None) -> float:
    """The largest `temporal_iou` of `pred` with any of the gold spans; 0 without a prediction or gold span.

    Example:
        ```python
        >>> best_iou((10.0, 14.0), [(0.0, 2.0), (11.0, 15.0)])
        0.6
        ```
    """
    if pred is None or golds is None:
        return 0.0
    return max((temporal_iou(pred, gold) for gold in golds), default=0.0)


def best_iop(pred: Sequence[float] | None, golds: Iterable[Sequence[float]] | None) -> float:
    """The largest `intersection_over_prediction` of `pred` with any gold span; 0 without a prediction or gold."""
    if pred is None or golds is None:
        return 0.0
    return max((intersection_over_prediction(pred, gold) for gold in golds), default=0.0)
