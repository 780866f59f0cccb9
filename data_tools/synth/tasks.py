"""The four task families and the canonical record of one sample.

`plan_sample(task, split, index, namespace, difficulty)` is the whole recipe of a sample: it seeds a generator from
the sample's identity, lets the family's builder draw a scene and a question, runs the held-out guard and returns
the record plus the scene (no pixels yet). `generate_sample` adds the frames. The families:

* grounding: a query sentence about one target's event (appear, grow, color_change); spans = the event window.
* mcq: four options and a gold letter; the evidence window is kept in `meta` only.
* needle: a long haystack with a short needle (a digit or a star of an otherwise absent colour); canonical task mcq.
  A star's wrong options are colours the clip does not show either (the haystack's colours are never the answer,
  so offering them would let a look at frames without the needle rule them out).
* grounded_qa: mcq-style question whose spans are the evidence windows (about 10% have two).

Every record's `meta` holds: family, question_type, fps, width, height, num_frames, difficulty (the whole preset),
namespace, split, index, seed, gen_version, template_key, paraphrase_id, heldout_combo, heldout_paraphrase,
background, num_distractors, distractors, and `events`: one dict per event with object, type, `frames` (half-open
[f0, f1) frame ranges), `spans` (the same in seconds) and its parameters (new_colour, direction, count). grounding
and QA add `target`; mcq adds evidence_frames/evidence_span; grounded_qa adds num_segments; needle adds needle,
needle_frames, needle_span, depth (f0 / (num_frames - needle length), uniform in [0, 1]), needle_sampled_frames and
needle_visible_at_sample_fps.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from data_tools.synth.heldout import RESERVED_PAIRS, SPLITS, check_split_allowed, is_reserved_template
from data_tools.synth.planner import (
    Pair,
    ScenePlanner,
    Window,
    enlarge_during,
    flash_during,
    recolour_during,
    show_only_during,
)
from data_tools.synth.presets import DEFAULT_DIFFICULTY, Difficulty, get_preset
from data_tools.synth.scene import ObjectTrack, Scene, new_track, render_frames
from data_tools.synth.vocab import COLOUR_NAMES, DIGIT_FONT, DIGITS, DIRECTIONS, FLASH_COLOUR, SHAPES
from temporal_rl.data import option_letter, validate_record

GEN_VERSION = 1
FAMILIES = ("grounding", "mcq", "needle", "grounded_qa")
CANONICAL_TASK = {"grounding": "grounding", "mcq": "mcq", "needle": "mcq", "grounded_qa": "grounded_qa"}
NUM_OPTIONS = 4
MAX_FLASHES = 4
NAMESPACE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

_DISTRACTOR, _TARGET, _NEEDLE = 0, 1, 2  # paint layers


@dataclass
class SamplePlan:
    """A planned sample: its canonical record (video not written yet) and the scene that renders it."""

    record: dict
    scene: Scene


@dataclass
class _Draft:
    """What a family builder decides; `plan_sample` turns it into the record."""

    question_type: str
    template_key: str
    template_id: int
    question: str
    options: list[str] | None = None
    answer: str | None = None
    spans: list[Window] | None = None
    queried_pair: Pair | None = None
    details: dict = field(default_factory=dict)


# ---- identity
def sample_seed(task: str, split: str, index: int, namespace: str) -> int:
    """The sample's seed: the first 8 bytes (little-endian) of sha256 of "namespace|task|split|index|vGEN"."""
    key = f"{namespace}|{task}|{split}|{index}|v{GEN_VERSION}"
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little")


def sample_id(task: str, split: str, index: int, namespace: str) -> str:
    return f"synth-{namespace}-{task}-{split}-{index:06d}"


def check_sample_arguments(task: str, split: str, index: int, namespace: str) -> None:
    """Raise ValueError with a clear message for an unknown task or split, a bad index or namespace."""
    if task not in FAMILIES:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(FAMILIES)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if not isinstance(index, (int, np.integer)) or isinstance(index, bool) or index < 0:
        raise ValueError(f"index must be a non-negative integer, got {index!r}")
    if not isinstance(namespace, str) or not NAMESPACE_PATTERN.fullmatch(namespace):
        raise ValueError(
            f"namespace must match {NAMESPACE_PATTERN.pattern} (letters, digits, _ . -), got {namespace!r}"
        )


# ---- helpers shared by the builders
def _options_with_gold(
    planner: ScenePlanner, gold: str, candidates: tuple[str, ...], preferred: list[str]
) -> tuple[list[str], str]:
    """Four options with the gold one at a uniform position; wrong options come from `preferred` first (those the
    family wants offered, e.g. things shown in the clip, which a text-only guess cannot rule out), then from the other
    candidates."""
    preferred_wrong = planner.shuffled(sorted({p for p in preferred if p != gold}))
    other_wrong = planner.shuffled([c for c in candidates if c != gold and c not in preferred_wrong])
    wrong = (preferred_wrong + other_wrong)[: NUM_OPTIONS - 1]
    position = planner.integer(0, NUM_OPTIONS - 1)
    return wrong[:position] + [gold] + wrong[position:], option_letter(position)


def _event(obj: str, kind: str, windows: list[Window], fps: int, **params: Any) -> dict:
    return {
        "object": obj,
        "type": kind,
        "frames": [[int(start), int(end)] for start, end in windows],
        "spans": [[start / fps, end / fps] for start, end in windows],
        **params,
    }


def _pair_dict(pair: Pair) -> dict:
    return {"shape": pair[0], "colour": pair[1]}


def _add_distractors(planner: ScenePlanner, pairs: list[Pair], margin_scale: float = 1.0) -> list[ObjectTrack]:
    tracks = []
    for pair in pairs:
        radius = planner.radius()
        tracks.append(planner.add(planner.drifting_object(pair, radius, radius * margin_scale), _DISTRACTOR))
    return tracks


def _fill(template: str, target: Pair | None = None, new_colour: str | None = None) -> str:
    shape, colour = target if target else (None, None)
    return template.format(shape=shape, colour=colour, new_colour=new_colour)


# ---- grounding
def _build_grounding(planner: ScenePlanner) -> _Draft:
    preset = planner.preset
    event = planner.choice(preset.grounding_events)
    target = planner.choice(planner.pairs)
    distractors = planner.distractor_pairs(target, planner.integer(*preset.num_distractors))
    window = planner.window()
    new_colour = planner.new_colour(target, distractors) if event == "color_change" else None

    margin_scale = 2.0 if event == "grow" else 1.0  # a grown object stays inside the canvas
    radius = planner.radius()
    target_track = planner.add(planner.drifting_object(target, radius, radius * margin_scale), _TARGET)
    distractor_tracks = _add_distractors(planner, distractors, margin_scale)
    _apply_object_event(target_track, event, [window], new_colour)
    events = [_event("target", event, [window], planner.fps, **({"new_colour": new_colour} if new_colour else {}))]

    if preset.confuser_events and distractors:
        # The first hard negative (same shape, near colour) shows the same event type elsewhere in the clip.
        confuser_window = planner.window_apart_from([window])
        if confuser_window is not None:
            confuser_colour = None
            if event == "color_change":
                confuser_colour = planner.new_colour(distractors[0], [target, *distractors[1:]])
            _apply_object_event(distractor_tracks[0], event, [confuser_window], confuser_colour)
            params = {"new_colour": confuser_colour} if confuser_colour else {}
            events.append(_event("distractor_0", event, [confuser_window], planner.fps, **params))

    template_key = f"grounding/{event}"
    template_id, template = planner.template(template_key)
    return _Draft(
        question_type=event,
        template_key=template_key,
        template_id=template_id,
        question=_fill(template, target, new_colour),
        spans=[window],
        queried_pair=target,
        details={
            "target": _pair_dict(target),
            "events": events,
            "distractors": [_pair_dict(p) for p in distractors],
        },
    )


def _apply_object_event(track: ObjectTrack, event: str, windows: list[Window], new_colour: str | None) -> None:
    if event == "appear":
        show_only_during(track, windows)
    elif event == "grow":
        enlarge_during(track, windows)
    elif event == "color_change":
        recolour_during(track, windows, new_colour)
    else:
        raise ValueError(f"unknown object event {event!r}")


# ---- question answering (mcq and grounded_qa share these)
_QA_EVENT = {"appear_colour": "appear", "appear_shape": "appear", "grow_shape": "grow", "color_change": "color_change"}


def _build_qa(planner: ScenePlanner, question_type: str, windows: list[Window]) -> _Draft:
    """A question about one target's event during `windows`; returns the options, the gold letter and details."""
    if question_type == "move_direction":
        return _build_move_direction(planner, windows)
    preset = planner.preset
    event = _QA_EVENT[question_type]
    target = planner.choice(planner.pairs)
    distractors = planner.distractor_pairs(target, planner.integer(*preset.num_distractors))
    new_colour = planner.new_colour(target, distractors) if event == "color_change" else None
    margin_scale = 2.0 if event == "grow" else 1.0
    radius = planner.radius()
    track = planner.add(planner.drifting_object(target, radius, radius * margin_scale), _TARGET)
    _add_distractors(planner, distractors, margin_scale)
    _apply_object_event(track, event, windows, new_colour)

    if question_type == "appear_colour":
        options, answer = _options_with_gold(planner, target[1], COLOUR_NAMES, [c for _, c in distractors])
    elif question_type == "color_change":
        options, answer = _options_with_gold(planner, new_colour, COLOUR_NAMES, [target[1]])
    else:  # appear_shape, grow_shape
        options, answer = _options_with_gold(planner, target[0], SHAPES, [s for s, _ in distractors])
    template_key = f"qa/{question_type}"
    template_id, template = planner.template(template_key)
    params = {"new_colour": new_colour} if new_colour else {}
    return _Draft(
        question_type=question_type,
        template_key=template_key,
        template_id=template_id,
        question=_fill(template, target),
        options=options,
        answer=answer,
        spans=windows,
        queried_pair=target,
        details={
            "target": _pair_dict(target),
            "events": [_event("target", event, windows, planner.fps, **params)],
            "distractors": [_pair_dict(p) for p in distractors],
        },
    )


def _build_move_direction(planner: ScenePlanner, windows: list[Window]) -> _Draft:
    target = planner.choice(planner.pairs)
    distractors = planner.distractor_pairs(target, planner.integer(*planner.preset.num_distractors))
    direction = planner.choice(tuple(DIRECTIONS))
    planner.add(planner.mover(target, planner.radius(), windows, direction), _TARGET)
    _add_distractors(planner, distractors)
    options, answer = _options_with_gold(planner, direction, tuple(DIRECTIONS), [])
    template_id, template = planner.template("qa/move_direction")
    return _Draft(
        question_type="move_direction",
        template_key="qa/move_direction",
        template_id=template_id,
        question=_fill(template, target),
        options=options,
        answer=answer,
        spans=windows,
        queried_pair=target,
        details={
            "target": _pair_dict(target),
            "events": [_event("target", "move", windows, planner.fps, direction=direction)],
            "distractors": [_pair_dict(p) for p in distractors],
        },
    )


def _build_flash_count(planner: ScenePlanner) -> _Draft:
    """Count 1..MAX_FLASHES screen flashes; the options are the counts in order, so the letter is uniform too."""
    count = planner.integer(1, MAX_FLASHES)
    windows = planner.spaced_windows(count, length=2)
    flash_during(planner.background, windows, FLASH_COLOUR)
    objects = planner.distractor_pairs(None, planner.integer(*planner.preset.num_distractors) + 1)
    _add_distractors(planner, objects)
    template_id, template = planner.template("qa/flash_count")
    options = [str(n) for n in range(1, MAX_FLASHES + 1)]
    return _Draft(
        question_type="flash_count",
        template_key="qa/flash_count",
        template_id=template_id,
        question=template,
        options=options,
        answer=option_letter(options.index(str(count))),
        spans=windows,
        details={
            "events": [_event("background", "flash", windows, planner.fps, count=count)],
            "distractors": [_pair_dict(p) for p in objects],
        },
    )


def _evidence(windows: list[Window], fps: int) -> dict:
    """The evidence of an mcq sample: from the first event frame to the end of the last."""
    start, end = windows[0][0], windows[-1][1]
    return {"evidence_frames": [int(start), int(end)], "evidence_span": [start / fps, end / fps]}


def _build_mcq(planner: ScenePlanner) -> _Draft:
    question_type = planner.choice(planner.preset.mcq_questions)
    if question_type == "flash_count":
        draft = _build_flash_count(planner)
    else:
        draft = _build_qa(planner, question_type, [planner.window()])
    draft.details.update(_evidence(draft.spans, planner.fps))
    draft.spans = None
    return draft


def _build_grounded_qa(planner: ScenePlanner) -> _Draft:
    question_type = planner.choice(planner.preset.grounded_qa_questions)
    two = planner.chance(planner.preset.two_segment_rate)
    windows = planner.two_windows() if two else [planner.window()]
    draft = _build_qa(planner, question_type, windows)
    draft.details["num_segments"] = len(windows)
    return draft


# ---- needle
def _sampled_frames_within(window: Window, fps: int, sample_fps: float) -> int:
    """How many frames a model sampling at `sample_fps` (times k / sample_fps) sees inside the window."""
    rate = Fraction(sample_fps).limit_denominator(1000)
    start, end = Fraction(window[0], fps), Fraction(window[1], fps)
    return math.ceil(end * rate) - math.ceil(start * rate)


def _build_needle(planner: ScenePlanner) -> _Draft:
    preset = planner.preset
    kind = planner.choice(("digit", "star_colour"))
    length_low, length_high = preset.needle_length_seconds
    length = planner.integer(length_low * planner.fps, length_high * planner.fps)
    start = planner.integer(0, planner.num_frames - length)
    window = (start, start + length)
    num_walkers = max(1, planner.integer(*preset.num_distractors))

    if kind == "digit":
        digit = planner.choice(DIGITS)
        colour = planner.choice(COLOUR_NAMES)
        walkers = planner.distractor_pairs(None, num_walkers)
        needle = _digit_track(planner, digit, colour)
        options, answer = _options_with_gold(planner, digit, DIGITS, [])
        queried_pair, needle_info = None, {"kind": "digit", "digit": digit, "colour": colour}
    else:
        star_colours = [c for s, c in planner.pairs if s == "star"]
        colour = planner.choice(star_colours)
        walkers = planner.distractor_pairs(None, num_walkers, exclude_shapes=("star",), exclude_colours=(colour,))
        radius = preset.radius_fraction[1] * planner.size * 1.5
        x, y = planner.position(radius)
        needle = new_track("star", x, y, radius, colour, planner.num_frames)
        # Wrong options from the colours the clip does not show: the star's colour is never a walker's, so a walker's
        # colour offered as an option is ruled out by any frame without the needle (a model answering "a colour I
        # see" would be wrong by construction there, one eliminating the seen ones right above chance). Seen colours
        # fill in only when too few are unseen (many walkers).
        seen = {c for _, c in walkers}
        options, answer = _options_with_gold(planner, colour, COLOUR_NAMES, [c for c in COLOUR_NAMES if c not in seen])
        queried_pair, needle_info = ("star", colour), {"kind": "star", "colour": colour}
    show_only_during(needle, [window])
    planner.add(needle, _NEEDLE)
    for pair in walkers:
        planner.add(planner.walking_object(pair, planner.radius()), _DISTRACTOR)

    template_key = f"needle/{kind}"
    template_id, template = planner.template(template_key)
    sampled = _sampled_frames_within(window, planner.fps, preset.sample_fps)
    return _Draft(
        question_type=kind,
        template_key=template_key,
        template_id=template_id,
        question=template,
        options=options,
        answer=answer,
        queried_pair=queried_pair,
        details={
            "needle": needle_info,
            "needle_frames": [int(window[0]), int(window[1])],
            "needle_span": [window[0] / planner.fps, window[1] / planner.fps],
            "depth": window[0] / (planner.num_frames - length) if planner.num_frames > length else 0.0,
            "needle_sampled_frames": sampled,
            "needle_visible_at_sample_fps": sampled >= 1,
            "distractors": [_pair_dict(p) for p in walkers],
            "events": [_event("needle", "appear", [window], planner.fps)],
        },
    )


def _digit_track(planner: ScenePlanner, digit: str, colour: str) -> ObjectTrack:
    cell = max(2, planner.size // 12)
    rows, columns = len(DIGIT_FONT[digit]), len(DIGIT_FONT[digit][0])
    half_width, half_height = columns * cell / 2, rows * cell / 2
    x = float(planner.integer(math.ceil(half_width), math.floor(planner.size - half_width)))
    y = float(planner.integer(math.ceil(half_height), math.floor(planner.size - half_height)))
    track = new_track("digit", x, y, cell, colour, planner.num_frames)
    track.glyph = digit
    return track


_BUILDERS = {
    "grounding": _build_grounding,
    "mcq": _build_mcq,
    "needle": _build_needle,
    "grounded_qa": _build_grounded_qa,
}


# ---- the record
def _to_builtin(value: Any) -> Any:
    """Numpy scalars, arrays and tuples to plain JSON types."""
    if isinstance(value, dict):
        return {str(k): _to_builtin(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_to_builtin(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _clip_frames(rng: np.random.Generator, preset: Difficulty, task: str) -> int:
    """The clip length in frames: uniform over the preset's seconds range, in whole frames."""
    low, high = preset.needle_seconds if task == "needle" else preset.clip_seconds
    return int(rng.integers(low * preset.fps, high * preset.fps + 1))


def plan_sample(
    task: str, split: str, index: int, namespace: str, difficulty: str | Difficulty = DEFAULT_DIFFICULTY
) -> SamplePlan:
    """Plan sample `index` of (`namespace`, `task`, `split`): its canonical record and its scene, without pixels.

    Raises:
        ValueError: for a bad argument.
        HeldOutLeakError: if a train/val sample would use a test-only combination (a generator bug).
    """
    check_sample_arguments(task, split, index, namespace)
    preset = get_preset(difficulty)
    seed = sample_seed(task, split, index, namespace)
    rng = np.random.default_rng(seed)
    planner = ScenePlanner(rng, preset, split, _clip_frames(rng, preset, task))
    draft = _BUILDERS[task](planner)
    scene = planner.scene()
    check_split_allowed(split, scene.shown_pairs(), draft.template_key, draft.template_id)

    identifier = sample_id(task, split, index, namespace)
    fps = preset.fps
    meta = {
        "family": task,
        "question_type": draft.question_type,
        "fps": fps,
        "width": preset.size,
        "height": preset.size,
        "num_frames": scene.num_frames,
        "difficulty": asdict(preset),
        "namespace": namespace,
        "split": split,
        "index": int(index),
        "seed": seed,
        "gen_version": GEN_VERSION,
        "template_key": draft.template_key,
        "paraphrase_id": draft.template_id,
        "heldout_combo": draft.queried_pair in RESERVED_PAIRS,
        "heldout_paraphrase": is_reserved_template(draft.template_key, draft.template_id),
        "background": list(planner.background_rgb),
        "num_distractors": len(draft.details.get("distractors", [])),
        **draft.details,
    }
    record = {
        "id": identifier,
        "video": f"videos/{identifier}.mp4",
        "duration": scene.num_frames / fps,
        "task": CANONICAL_TASK[task],
        "question": draft.question,
        "options": draft.options,
        "answer": draft.answer,
        "spans": [[start / fps, end / fps] for start, end in draft.spans] if draft.spans else None,
        "source": f"synth/{task}",
        "meta": meta,
    }
    record = _to_builtin(record)
    validate_record(record, check_video=False)
    return SamplePlan(record=record, scene=scene)


def generate_sample(
    task: str, split: str, index: int, namespace: str, difficulty: str | Difficulty = DEFAULT_DIFFICULTY
) -> tuple[dict, np.ndarray]:
    """One sample, regenerated on its own: its record and its (num_frames, H, W, 3) uint8 RGB frames."""
    plan = plan_sample(task, split, index, namespace, difficulty)
    return plan.record, render_frames(plan.scene)
