"""The scene model and its rasterisation: per-frame object tracks in, uint8 RGB frames out.

A `Scene` is fully planned before any pixel is drawn: each `ObjectTrack` holds per-frame arrays (position, radius,
colour, visibility), so every event (appear, grow, color_change, move, flash) is already compiled into those arrays
and rendering is a deterministic function with no randomness. Shapes are numpy boolean masks evaluated in each
object's bounding box; objects are painted in list order, so later objects are drawn on top.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from data_tools.synth.vocab import COLOUR_NAMES, COLOURS, DIGIT_FONT, SHAPES

PALETTE = np.array([COLOURS[name] for name in COLOUR_NAMES], dtype=np.uint8)  # row i = COLOUR_NAMES[i]

SQUARE_HALF_SIDE = 0.85  # in radii: a square about as large as the circle
RING_INNER = 0.5
CROSS_HALF_WIDTH = 0.33
STAR_INNER = 0.45
DIGIT_GLYPH_SHAPE = (7, 5)  # rows, columns of the bitmap font


@dataclass
class ObjectTrack:
    """One object over the whole clip; every array has one entry per frame.

    `shape` is one of `vocab.SHAPES` or "digit" (then `glyph` is the digit and `radius` is the font's cell size in
    pixels; the position is the glyph's centre).
    """

    shape: str
    xs: np.ndarray
    ys: np.ndarray
    radius: np.ndarray
    colour_ids: np.ndarray
    visible: np.ndarray
    glyph: str | None = None

    def shown_pairs(self) -> set[tuple[str, str]]:
        """The (shape, colour name) pairs this object shows on at least one frame."""
        ids = np.unique(self.colour_ids[self.visible])
        return {(self.shape, COLOUR_NAMES[int(i)]) for i in ids}


@dataclass
class Scene:
    """Everything needed to draw a clip: canvas, frame rate, per-frame background and the objects in paint order."""

    size: int
    fps: int
    background: np.ndarray  # (num_frames, 3) uint8
    objects: list[ObjectTrack]
    noise: int = 0  # amplitude of uniform per-pixel background noise, drawn from `noise_seed`
    noise_seed: int = 0

    @property
    def num_frames(self) -> int:
        return len(self.background)

    def shown_pairs(self) -> set[tuple[str, str]]:
        """All (shape, colour name) pairs visible on some frame (digits excluded)."""
        pairs: set[tuple[str, str]] = set()
        for track in self.objects:
            if track.shape in SHAPES:
                pairs |= track.shown_pairs()
        return pairs


def new_track(shape: str, x: float, y: float, radius: float, colour: str, num_frames: int) -> ObjectTrack:
    """A static, always visible object; events then edit its arrays."""
    return ObjectTrack(
        shape=shape,
        xs=np.full(num_frames, float(x)),
        ys=np.full(num_frames, float(y)),
        radius=np.full(num_frames, float(radius)),
        colour_ids=np.full(num_frames, COLOUR_NAMES.index(colour), dtype=np.int64),
        visible=np.ones(num_frames, dtype=bool),
    )


def fold_into_range(unfolded: np.ndarray, low: float, high: float) -> np.ndarray:
    """Reflect an unbounded 1-D path off the walls `low` and `high` (a bouncing object)."""
    width = high - low
    if width <= 0:
        return np.full_like(unfolded, (low + high) / 2)
    phase = np.mod(unfolded - low, 2 * width)
    return low + np.where(phase <= width, phase, 2 * width - phase)


def bouncing_path(start: float, velocity: float, num_frames: int, low: float, high: float) -> np.ndarray:
    """Positions of an object moving at constant `velocity` (pixels per frame) and bouncing between the walls."""
    return fold_into_range(start + velocity * np.arange(num_frames), low, high)


def random_walk_path(
    rng: np.random.Generator, start: float, speed: float, num_frames: int, low: float, high: float
) -> np.ndarray:
    """Positions of a random walker: the velocity drifts (AR(1) with a `speed` scale) and the walls reflect it."""
    velocity = np.empty(num_frames)
    v = rng.normal(0.0, speed)
    for t in range(num_frames):
        velocity[t] = v
        v = 0.9 * v + rng.normal(0.0, 0.45 * speed)
    unfolded = start + np.concatenate([[0.0], np.cumsum(velocity[:-1])])
    return fold_into_range(unfolded, low, high)


def _convex_polygon_mask(dx: np.ndarray, dy: np.ndarray, vertices: list[tuple[float, float]]) -> np.ndarray:
    """Points inside a convex polygon (vertices as (x, y) offsets, either winding)."""
    area2 = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(vertices, vertices[1:] + vertices[:1], strict=True))
    orientation = 1.0 if area2 >= 0 else -1.0
    inside = np.ones(np.broadcast(dx, dy).shape, dtype=bool)
    for (x0, y0), (x1, y1) in zip(vertices, vertices[1:] + vertices[:1], strict=True):
        inside &= orientation * ((x1 - x0) * (dy - y0) - (y1 - y0) * (dx - x0)) >= 0
    return inside


def _star_vertices(radius: float) -> list[tuple[float, float]]:
    vertices = []
    for k in range(10):
        angle = -math.pi / 2 + k * math.pi / 5
        r = radius if k % 2 == 0 else radius * STAR_INNER
        vertices.append((r * math.cos(angle), r * math.sin(angle)))
    return vertices


def shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, radius: float) -> np.ndarray:
    """Boolean mask of `shape` with the given radius, at offsets (dx, dy) from its centre."""
    if shape == "circle":
        return dx * dx + dy * dy <= radius * radius
    if shape == "ring":
        dist2 = dx * dx + dy * dy
        return (dist2 <= radius * radius) & (dist2 >= (RING_INNER * radius) ** 2)
    if shape == "square":
        half = SQUARE_HALF_SIDE * radius
        return (np.abs(dx) <= half) & (np.abs(dy) <= half)
    if shape == "cross":
        half_width = CROSS_HALF_WIDTH * radius
        ax, ay = np.abs(dx), np.abs(dy)
        return ((ax <= half_width) & (ay <= radius)) | ((ay <= half_width) & (ax <= radius))
    if shape == "triangle":
        return _convex_polygon_mask(dx, dy, [(0.0, -radius), (radius, 0.75 * radius), (-radius, 0.75 * radius)])
    if shape == "star":
        outline = _star_vertices(radius)
        mask = np.zeros(np.broadcast(dx, dy).shape, dtype=bool)
        for a, b in zip(outline, outline[1:] + outline[:1], strict=True):
            mask |= _convex_polygon_mask(dx, dy, [(0.0, 0.0), a, b])
        return mask
    raise ValueError(f"unknown shape {shape!r}")


def digit_bitmap(glyph: str, cell: int) -> np.ndarray:
    """The glyph of `DIGIT_FONT` scaled to `cell` pixels per font cell, as a boolean array."""
    rows = np.array([[c == "#" for c in row] for row in DIGIT_FONT[glyph]], dtype=bool)
    return np.repeat(np.repeat(rows, cell, axis=0), cell, axis=1)


def _paint_shape(frame: np.ndarray, shape: str, x: float, y: float, radius: float, rgb: np.ndarray) -> None:
    size_y, size_x = frame.shape[:2]
    y0, y1 = max(0, math.floor(y - radius)), min(size_y, math.ceil(y + radius) + 1)
    x0, x1 = max(0, math.floor(x - radius)), min(size_x, math.ceil(x + radius) + 1)
    if y0 >= y1 or x0 >= x1:
        return
    dy = np.arange(y0, y1, dtype=np.float64)[:, None] - y
    dx = np.arange(x0, x1, dtype=np.float64)[None, :] - x
    frame[y0:y1, x0:x1][shape_mask(shape, dx, dy, radius)] = rgb


def _paint_digit(frame: np.ndarray, glyph: str, x: float, y: float, cell: int, rgb: np.ndarray) -> None:
    bitmap = digit_bitmap(glyph, cell)
    height, width = bitmap.shape
    top, left = round(y - height / 2), round(x - width / 2)
    if top < 0 or left < 0 or top + height > frame.shape[0] or left + width > frame.shape[1]:
        raise ValueError("a digit must lie inside the canvas")
    frame[top : top + height, left : left + width][bitmap] = rgb


def render_frames(scene: Scene) -> np.ndarray:
    """Draw the scene: a (num_frames, size, size, 3) uint8 RGB array."""
    frames = np.empty((scene.num_frames, scene.size, scene.size, 3), dtype=np.uint8)
    frames[:] = scene.background[:, None, None, :]
    if scene.noise:
        rng = np.random.default_rng(scene.noise_seed)
        noise = rng.integers(-scene.noise, scene.noise + 1, size=frames.shape, dtype=np.int16)
        frames[:] = np.clip(frames.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    for track in scene.objects:
        for t in np.flatnonzero(track.visible):
            rgb = PALETTE[track.colour_ids[t]]
            if track.shape == "digit":
                _paint_digit(frames[t], track.glyph, track.xs[t], track.ys[t], int(track.radius[t]), rgb)
            else:
                _paint_shape(frames[t], track.shape, track.xs[t], track.ys[t], track.radius[t], rgb)
    return frames
