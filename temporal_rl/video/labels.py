"""Index labels drawn on video frames: a built-in 5x7 bitmap font for the digits, scaled by whole pixels.

`draw_index_labels(frames, labels, LabelStyle(...))` draws each frame's label in a corner. The font is exact,
deterministic on every machine and offline, with no anti-aliasing, so every label pixel has exactly the label colour
(ViaRL draws DejaVu Sans Bold with PIL; a TrueType font's anti-aliased edges at 112 px would blend into the frame).
The synthetic benchmark draws its digits with the same glyphs (`data_tools.synth`).

This module owns the font and the drawing. numpy only: no decoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

POSITIONS = ("bottom-right", "bottom-left", "top-right", "top-left")

# A 5x7 bitmap font for the digits: "#" = ink. Glyphs sit in 5-dot cells with one blank column between digits.
DIGIT_GLYPHS: dict[str, tuple[str, ...]] = {
    "0": (".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."),
    "1": ("..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "2": (".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"),
    "3": ("#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."),
    "4": ("...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."),
    "5": ("#####", "#....", "####.", "....#", "....#", "#...#", ".###."),
    "6": ("..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."),
    "7": ("#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."),
    "8": (".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."),
    "9": (".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."),
}
GLYPH_HEIGHT, GLYPH_WIDTH, GLYPH_SPACING = 7, 5, 1


@dataclass(frozen=True)
class LabelStyle:
    """How the candidate index is drawn on each selector frame.

    Args:
        colour: RGB of the digits (ViaRL: red).
        position: the corner, one of `POSITIONS` (ViaRL: bottom-right).
        scale: pixels per font dot; a digit is 5*scale wide and 7*scale tall. None: `max(1, round(min(h, w) / 36))`,
            2 (14 px tall digits, one ViT patch) for the 56x112 frames of a 16:9 video at 112 px, 3 at 112x112.
        margin: pixels between the label and the frame's edges; None: the scale.
    """

    colour: tuple[int, int, int] = (255, 0, 0)
    position: str = "bottom-right"
    scale: int | None = None
    margin: int | None = None

    def __post_init__(self):
        colour = tuple(self.colour)
        if len(colour) != 3 or not all(isinstance(c, (int, np.integer)) and 0 <= c <= 255 for c in colour):
            raise ValueError(f"colour must be three integers in [0, 255], got {self.colour!r}")
        object.__setattr__(self, "colour", tuple(int(c) for c in colour))
        if self.position not in POSITIONS:
            raise ValueError(f"unknown position {self.position!r}; expected one of {', '.join(POSITIONS)}")
        if self.scale is not None and (not isinstance(self.scale, int) or self.scale < 1):
            raise ValueError(f"scale must be a positive integer or None, got {self.scale!r}")
        if self.margin is not None and (not isinstance(self.margin, int) or self.margin < 0):
            raise ValueError(f"margin must be a non-negative integer or None, got {self.margin!r}")

    def scale_for(self, height: int, width: int) -> int:
        """The dot size used on a `height` x `width` frame."""
        return self.scale if self.scale is not None else max(1, round(min(height, width) / 36))

    def margin_for(self, height: int, width: int) -> int:
        """The margin used on a `height` x `width` frame."""
        return self.margin if self.margin is not None else self.scale_for(height, width)


def label_mask(text: str, scale: int = 1) -> np.ndarray:
    """The ink of `text` (digits only) in the bitmap font: bool (7*scale, (6*len(text) - 1)*scale).

    Example:
        ```python
        >>> label_mask("1").astype(int)[:2]
        array([[0, 0, 1, 0, 0],
               [0, 1, 1, 0, 0]])
        ```
    """
    if not text or any(char not in DIGIT_GLYPHS for char in text):
        raise ValueError(f"labels are non-empty strings of digits, got {text!r}")
    dots = np.zeros((GLYPH_HEIGHT, len(text) * (GLYPH_WIDTH + GLYPH_SPACING) - GLYPH_SPACING), dtype=bool)
    for position, char in enumerate(text):
        glyph = np.array([[dot == "#" for dot in row] for row in DIGIT_GLYPHS[char]], dtype=bool)
        left = position * (GLYPH_WIDTH + GLYPH_SPACING)
        dots[:, left : left + GLYPH_WIDTH] = glyph
    return np.repeat(np.repeat(dots, scale, axis=0), scale, axis=1)


def label_box(height: int, width: int, text: str, style: LabelStyle) -> tuple[int, int, int, int]:
    """`(top, left, bottom, right)` pixel box of the label `text` on a `height` x `width` frame (end-exclusive).

    Raises:
        ValueError: the label does not fit in the frame.
    """
    scale, margin = style.scale_for(height, width), style.margin_for(height, width)
    label_height = GLYPH_HEIGHT * scale
    label_width = (len(text) * (GLYPH_WIDTH + GLYPH_SPACING) - GLYPH_SPACING) * scale
    if label_height + 2 * margin > height or label_width + 2 * margin > width:
        raise ValueError(
            f"label {text!r} ({label_width}x{label_height} px at scale {scale}, margin {margin}) does not fit in a "
            f"{width}x{height} frame; use a smaller LabelStyle.scale or larger frames"
        )
    top = margin if style.position.startswith("top") else height - margin - label_height
    left = margin if style.position.endswith("left") else width - margin - label_width
    return top, left, top + label_height, left + label_width


def draw_index_labels(frames: np.ndarray, labels: Sequence[int], style: LabelStyle | None = None) -> np.ndarray:
    """A copy of `frames` (N, H, W, 3) uint8 with `labels[i]` drawn on frame i in `style` (only ink pixels change).

    Example:
        ```python
        >>> labelled = draw_index_labels(np.zeros((2, 56, 112, 3), np.uint8), [0, 127])
        >>> labelled[1, 44:, 76:, 0].max(), labelled[1, :40].max()  # red ink in the bottom-right corner only
        (np.uint8(255), np.uint8(0))
        ```
    """
    style = style or LabelStyle()
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected (N, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")
    if len(labels) != len(frames):
        raise ValueError(f"{len(labels)} labels for {len(frames)} frames")
    out = frames.copy()
    height, width = frames.shape[1:3]
    scale = style.scale_for(height, width)
    colour = np.array(style.colour, dtype=np.uint8)
    for frame, label in zip(out, labels, strict=True):
        text = str(int(label))
        top, left, bottom, right = label_box(height, width, text, style)
        frame[top:bottom, left:right][label_mask(text, scale)] = colour
    return out
