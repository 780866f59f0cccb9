"""Difficulty presets: every knob of the generator that changes how hard a sample is.

A preset is a frozen dataclass; `dataclasses.asdict(preset)` is stored whole in each record's `meta["difficulty"]`,
so a record says exactly how it was made. Sizes and speeds are fractions of the canvas side, so the presets scale
with the resolution.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Difficulty:
    """The knobs of one difficulty preset.

    Attributes:
        name: the preset's name (`tiny`, `standard`, `hard`).
        size: canvas side in pixels (H = W; even, as yuv420p needs).
        fps: frames per second of the rendered video.
        sample_fps: the frame rate a model is assumed to sample at; decides `needle_visible_at_sample_fps`.
        clip_seconds: clip length range for grounding, mcq and grounded_qa (inclusive, whole frames).
        needle_seconds: haystack length range for needle samples.
        needle_length_seconds: how long the needle is shown.
        num_distractors: range of distractor objects (inclusive).
        radius_fraction: object radius range as a fraction of `size`.
        speed_fraction: distractor speed range in canvas sides per frame (0 = static objects).
        event_fraction: event length range as a fraction of the clip (the upper bound is at most 0.4).
        grounding_events: event types a grounding query may ask about.
        mcq_questions: question types of the mcq family.
        grounded_qa_questions: question types of the grounded_qa family.
        distractor_policy: `distinct_colour` (no distractor shares the target's colour), `other_pair` (any other
            (shape, colour) pair) or `hard_negatives` (same shape in a near colour and same colour in another shape).
        confuser_events: a hard negative also shows the queried event type, in another window.
        two_segment_rate: share of grounded_qa samples whose event happens twice (two evidence spans).
        whole_seconds: clip lengths are whole seconds (an even frame count at 2 fps, so a model sampling at 2 fps
            keeps every frame and its frame step is exactly 0.5 s); otherwise any whole number of frames.
        background_range: per-channel range of the clip's flat background colour (inclusive).
        background_noise: amplitude of per-pixel, per-frame uniform noise added to the background (0: flat).
        blinking_distractor_rate: share of distractors that are visible only during a window of their own, so that
            "something appears" does not locate the queried object.
    """

    name: str
    size: int
    fps: int
    sample_fps: float
    clip_seconds: tuple[int, int]
    needle_seconds: tuple[int, int]
    needle_length_seconds: tuple[int, int]
    num_distractors: tuple[int, int]
    radius_fraction: tuple[float, float]
    speed_fraction: tuple[float, float]
    event_fraction: tuple[float, float]
    grounding_events: tuple[str, ...]
    mcq_questions: tuple[str, ...]
    grounded_qa_questions: tuple[str, ...]
    distractor_policy: str
    confuser_events: bool
    two_segment_rate: float
    whole_seconds: bool = False
    background_range: tuple[int, int] = (15, 70)
    background_noise: int = 0
    blinking_distractor_rate: float = 0.0


_ALL_GROUNDING_EVENTS = ("appear", "grow", "color_change")
_ALL_MCQ_QUESTIONS = ("appear_colour", "appear_shape", "flash_count", "move_direction")
_ALL_GROUNDED_QA_QUESTIONS = ("appear_colour", "appear_shape", "color_change", "move_direction", "grow_shape")

PRESETS: dict[str, Difficulty] = {
    # What a tiny model is trained on in CI and in the demo: small static scenes, "appear" events only.
    "tiny": Difficulty(
        name="tiny",
        size=56,
        fps=2,
        sample_fps=2.0,
        clip_seconds=(8, 16),
        needle_seconds=(30, 60),
        needle_length_seconds=(2, 4),
        num_distractors=(0, 2),
        radius_fraction=(0.10, 0.14),
        speed_fraction=(0.0, 0.0),
        event_fraction=(0.15, 0.40),
        grounding_events=("appear",),
        mcq_questions=("appear_colour", "appear_shape"),
        grounded_qa_questions=("appear_colour", "appear_shape"),
        distractor_policy="distinct_colour",
        confuser_events=False,
        two_segment_rate=0.10,
    ),
    "standard": Difficulty(
        name="standard",
        size=112,
        fps=2,
        sample_fps=2.0,
        clip_seconds=(10, 20),
        needle_seconds=(60, 180),
        needle_length_seconds=(2, 4),
        num_distractors=(2, 3),
        radius_fraction=(0.08, 0.11),
        speed_fraction=(0.01, 0.03),
        event_fraction=(0.10, 0.40),
        grounding_events=_ALL_GROUNDING_EVENTS,
        mcq_questions=_ALL_MCQ_QUESTIONS,
        grounded_qa_questions=_ALL_GROUNDED_QA_QUESTIONS,
        distractor_policy="other_pair",
        confuser_events=False,
        two_segment_rate=0.10,
    ),
    "hard": Difficulty(
        name="hard",
        size=224,
        fps=2,
        sample_fps=1.0,
        clip_seconds=(20, 30),
        needle_seconds=(120, 300),
        needle_length_seconds=(2, 4),
        num_distractors=(6, 6),
        radius_fraction=(0.05, 0.08),
        speed_fraction=(0.01, 0.04),
        event_fraction=(0.05, 0.30),
        grounding_events=_ALL_GROUNDING_EVENTS,
        mcq_questions=_ALL_MCQ_QUESTIONS,
        grounded_qa_questions=_ALL_GROUNDED_QA_QUESTIONS,
        distractor_policy="hard_negatives",
        confuser_events=True,
        two_segment_rate=0.10,
    ),
}
DEFAULT_DIFFICULTY = "tiny"


def get_preset(difficulty: str | Difficulty) -> Difficulty:
    """The preset named `difficulty` (a `Difficulty` passes through)."""
    if isinstance(difficulty, Difficulty):
        return difficulty
    try:
        return PRESETS[difficulty]
    except KeyError:
        raise ValueError(f"unknown difficulty {difficulty!r}; expected one of {', '.join(PRESETS)}") from None
