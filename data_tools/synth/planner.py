"""Random scene building blocks shared by the task families: event windows, object placement, distractor choice,
and the events that edit an object's per-frame arrays.

A `ScenePlanner` holds one sample's random generator, preset and split; every random draw of a sample goes through
it, in program order, so a sample is a pure function of its seed. It only ever offers the (shape, colour) pairs and
templates its split may use (`heldout.py`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

import numpy as np

from data_tools.synth.heldout import allowed_pairs, allowed_template_ids
from data_tools.synth.presets import Difficulty
from data_tools.synth.scene import ObjectTrack, Scene, bouncing_path, new_track, random_walk_path
from data_tools.synth.vocab import COLOUR_NAMES, DIRECTIONS, NEAR_COLOURS, QUESTION_TEMPLATES

T = TypeVar("T")
Pair = tuple[str, str]
Window = tuple[int, int]  # half-open frame range [f0, f1)

MIN_EVENT_FRAMES = 2  # one temporal token of Qwen2.5-VL (temporal patch of 2 frames)
MAX_EVENT_FRACTION = 0.4  # keeps the "whole clip" blind baseline's IoU at or below 0.4
MIN_GAP_FRAMES = 2  # between two windows of the same event, so they read as two occurrences
NEEDLE_WALK_SPEED = 0.02  # canvas sides per frame, the scale of the haystack's random walk
_EPS = 1e-9


class ScenePlanner:
    """Draws one sample's scene: background, objects with their motion, and event windows."""

    def __init__(self, rng: np.random.Generator, preset: Difficulty, split: str, num_frames: int):
        self.rng, self.preset, self.split = rng, preset, split
        self.size, self.fps, self.num_frames = preset.size, preset.fps, num_frames
        low, high = preset.background_range
        self.background_rgb = tuple(int(v) for v in rng.integers(low, high + 1, size=3))
        self.background = np.tile(np.array(self.background_rgb, dtype=np.uint8), (num_frames, 1))
        self.pairs: list[Pair] = allowed_pairs(split)
        self._layers: list[tuple[int, ObjectTrack]] = []
        self._occupied: list[tuple[float, float, float]] = []  # (x, y, margin) of placed objects

    # ---- plain random draws
    def integer(self, low: int, high: int) -> int:
        """Uniform integer in [low, high] (inclusive)."""
        return int(self.rng.integers(low, high + 1))

    def choice(self, items: Sequence[T]) -> T:
        return items[self.integer(0, len(items) - 1)]

    def shuffled(self, items: Sequence[T]) -> list[T]:
        return [items[i] for i in self.rng.permutation(len(items))]

    def chance(self, probability: float) -> bool:
        return bool(self.rng.random() < probability)

    def radius(self, scale: float = 1.0) -> float:
        low, high = self.preset.radius_fraction
        return float(self.rng.uniform(low, high)) * self.size * scale

    def template(self, key: str) -> tuple[int, str]:
        """A template of question type `key` that this split may use: (paraphrase id, text)."""
        template_id = self.choice(allowed_template_ids(key, self.split))
        return template_id, QUESTION_TEMPLATES[key][template_id]

    # ---- event windows
    def _length_range(self, scale: float = 1.0) -> tuple[int, int]:
        low, high = self.preset.event_fraction
        high = min(high, MAX_EVENT_FRACTION)
        shortest = max(MIN_EVENT_FRAMES, math.ceil(low * scale * self.num_frames - _EPS))
        longest = math.floor(high * scale * self.num_frames + _EPS)
        if longest < shortest:
            raise ValueError(f"a {self.num_frames}-frame clip is too short for the event lengths of this preset")
        return shortest, longest

    def window(self) -> Window:
        """One event window: length from the preset's fraction range, start uniform over the clip."""
        shortest, longest = self._length_range()
        length = self.integer(shortest, longest)
        start = self.integer(0, self.num_frames - length)
        return start, start + length

    def two_windows(self) -> list[Window]:
        """Two disjoint windows, together within the preset's fraction range, at least MIN_GAP_FRAMES apart."""
        shortest, longest = self._length_range(scale=0.5)
        first_length, second_length = self.integer(shortest, longest), self.integer(shortest, longest)
        slack = self.num_frames - first_length - second_length - MIN_GAP_FRAMES
        if slack < 0:
            raise ValueError(f"a {self.num_frames}-frame clip is too short for two events")
        cut_low, cut_high = sorted(self.integer(0, slack) for _ in range(2))
        first_start = cut_low
        second_start = first_start + first_length + MIN_GAP_FRAMES + (cut_high - cut_low)
        return [(first_start, first_start + first_length), (second_start, second_start + second_length)]

    def spaced_windows(self, count: int, length: int) -> list[Window]:
        """`count` windows of `length` frames, at least MIN_GAP_FRAMES apart, at random places."""
        slack = self.num_frames - count * length - (count - 1) * MIN_GAP_FRAMES
        if slack < 0:
            raise ValueError(f"{count} events of {length} frames do not fit into {self.num_frames} frames")
        cuts = sorted(self.integer(0, slack) for _ in range(count))
        windows, previous_cut, start = [], 0, 0
        for cut in cuts:
            start += cut - previous_cut
            windows.append((start, start + length))
            start += length + MIN_GAP_FRAMES
            previous_cut = cut
        return windows

    def window_apart_from(self, taken: list[Window], attempts: int = 30) -> Window | None:
        """A window that overlaps none of `taken` (nor touches it), or None if none is found."""
        for _ in range(attempts):
            start, end = self.window()
            if all(end < other_start or start > other_end for other_start, other_end in taken):
                return start, end
        return None

    # ---- objects
    def distractor_pairs(
        self,
        target: Pair | None,
        count: int,
        exclude_shapes: Sequence[str] = (),
        exclude_colours: Sequence[str] = (),
    ) -> list[Pair]:
        """`count` distinct (shape, colour) pairs other than `target`, following the preset's distractor policy."""
        pool = [
            pair
            for pair in self.pairs
            if pair != target and pair[0] not in exclude_shapes and pair[1] not in exclude_colours
        ]
        policy = self.preset.distractor_policy if target is not None else "other_pair"
        if policy == "distinct_colour":
            pool = [pair for pair in pool if pair[1] != target[1]]
        chosen: list[Pair] = []
        if policy == "hard_negatives":
            same_shape_near_colour = [p for p in pool if p[0] == target[0] and p[1] in NEAR_COLOURS[target[1]]]
            same_colour_other_shape = [p for p in pool if p[1] == target[1]]
            for group in (same_shape_near_colour, same_colour_other_shape):
                if group and len(chosen) < count:
                    chosen.append(self.choice(group))
        rest = [pair for pair in pool if pair not in chosen]
        picks = self.rng.choice(len(rest), size=min(count - len(chosen), len(rest)), replace=False)
        return chosen + [rest[int(i)] for i in picks]

    def new_colour(self, target: Pair, avoid: Sequence[Pair]) -> str:
        """A colour the target can turn into: not its own, and not making it look like another object."""
        shape, colour = target
        options = [c for c in COLOUR_NAMES if c != colour and (shape, c) in self.pairs and (shape, c) not in avoid]
        return self.choice(options)

    def position(self, margin: float) -> tuple[float, float]:
        """A centre at least `margin` from the walls, away from already placed objects when there is room."""
        low, high = margin, self.size - margin
        x = y = self.size / 2
        for _ in range(100):
            x, y = float(self.rng.uniform(low, high)), float(self.rng.uniform(low, high))
            if all(math.hypot(x - ox, y - oy) >= margin + other + 1 for ox, oy, other in self._occupied):
                break
        self._occupied.append((x, y, margin))
        return x, y

    def add(self, track: ObjectTrack, layer: int) -> ObjectTrack:
        """Put a track into the scene; higher layers are drawn on top (ties keep insertion order)."""
        self._layers.append((layer, track))
        return track

    def drifting_object(self, pair: Pair, radius: float, margin: float | None = None) -> ObjectTrack:
        """An always visible object, bouncing at the preset's speed (static when that speed is 0)."""
        margin = radius if margin is None else margin
        x, y = self.position(margin)
        track = new_track(pair[0], x, y, radius, pair[1], self.num_frames)
        low, high = self.preset.speed_fraction
        speed = float(self.rng.uniform(low, high)) * self.size if high > 0 else 0.0
        if speed > 0:
            angle = float(self.rng.uniform(0, 2 * math.pi))
            track.xs = bouncing_path(x, speed * math.cos(angle), self.num_frames, margin, self.size - margin)
            track.ys = bouncing_path(y, speed * math.sin(angle), self.num_frames, margin, self.size - margin)
        return track

    def walking_object(self, pair: Pair, radius: float) -> ObjectTrack:
        """An always visible random walker (the needle haystack)."""
        x, y = self.position(radius)
        track = new_track(pair[0], x, y, radius, pair[1], self.num_frames)
        speed = NEEDLE_WALK_SPEED * self.size
        track.xs = random_walk_path(self.rng, x, speed, self.num_frames, radius, self.size - radius)
        track.ys = random_walk_path(self.rng, y, speed, self.num_frames, radius, self.size - radius)
        return track

    def mover(self, pair: Pair, radius: float, windows: list[Window], direction: str) -> ObjectTrack:
        """An object that rests, except that it moves in `direction` during each window (a straight line)."""
        total = float(self.rng.uniform(0.30, 0.45)) * self.size
        dx, dy = DIRECTIONS[direction]
        along_low, along_high = radius, self.size - radius - total
        along = float(self.rng.uniform(along_low, along_high))
        across = float(self.rng.uniform(radius, self.size - radius))
        start_x, start_y = (along, across) if dx else (across, along)
        if dx < 0 or dy < 0:  # moving left/up: start at the mirrored place
            start_x, start_y = (self.size - start_x, start_y) if dx else (start_x, self.size - start_y)
        self._occupied.append((start_x, start_y, radius))
        progress = np.zeros(self.num_frames)
        step = total / len(windows)
        for start, end in windows:
            ramp = np.arange(1, end - start + 1) / (end - start)
            progress[start:end] += step * ramp
            progress[end:] += step
        track = new_track(pair[0], start_x, start_y, radius, pair[1], self.num_frames)
        track.xs = start_x + dx * progress
        track.ys = start_y + dy * progress
        return track

    def scene(self) -> Scene:
        ordered = [track for _, track in sorted(self._layers, key=lambda item: item[0])]
        noise_seed = int(self.rng.integers(2**63)) if self.preset.background_noise else 0
        return Scene(
            size=self.size,
            fps=self.fps,
            background=self.background,
            objects=ordered,
            noise=self.preset.background_noise,
            noise_seed=noise_seed,
        )


# ---- events: edit a track's per-frame arrays over half-open windows
def show_only_during(track: ObjectTrack, windows: list[Window]) -> None:
    """appear: the object is visible exactly on the frames of the windows."""
    track.visible[:] = False
    for start, end in windows:
        track.visible[start:end] = True


def enlarge_during(track: ObjectTrack, windows: list[Window], factor: float = 2.0) -> None:
    """grow: the object's radius is multiplied by `factor` during the windows."""
    for start, end in windows:
        track.radius[start:end] *= factor


def recolour_during(track: ObjectTrack, windows: list[Window], colour: str) -> None:
    """color_change: the object takes `colour` during the windows."""
    for start, end in windows:
        track.colour_ids[start:end] = COLOUR_NAMES.index(colour)


def flash_during(background: np.ndarray, windows: list[Window], rgb: tuple[int, int, int]) -> None:
    """flash: the whole background takes `rgb` during the windows."""
    for start, end in windows:
        background[start:end] = rgb
