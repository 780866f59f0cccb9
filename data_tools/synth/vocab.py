"""The generator's vocabulary: shapes, named colours, directions, the digit font and the question templates.

Everything a question or an option can name is defined here, once. Which of these are reserved for the test split
lives in `heldout.py`.
"""

from __future__ import annotations

from temporal_rl.frames import DIGIT_GLYPHS

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "ring", "cross")

# Saturated, well separated colours: after yuv420p at crf 18 an object's interior stays within ~10 of these values.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (235, 45, 45),
    "green": (45, 210, 70),
    "blue": (55, 95, 245),
    "yellow": (245, 225, 50),
    "white": (240, 240, 240),
    "magenta": (225, 60, 225),
    "cyan": (50, 225, 235),
    "orange": (250, 145, 30),
}
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)

# The closest hues of each colour: the hard preset's same-shape negatives are drawn from these.
NEAR_COLOURS: dict[str, tuple[str, ...]] = {
    "red": ("orange", "magenta"),
    "green": ("cyan", "yellow"),
    "blue": ("cyan", "magenta"),
    "yellow": ("orange", "white"),
    "white": ("yellow", "cyan"),
    "magenta": ("red", "blue"),
    "cyan": ("blue", "green"),
    "orange": ("red", "yellow"),
}

# Image coordinates: y grows downwards, so "up" is -y.
DIRECTIONS: dict[str, tuple[int, int]] = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}

FLASH_COLOUR = (210, 210, 210)  # the whole background during a screen flash

# The needle digits use the same 5x7 bitmap font as the frame-index labels ('#' = ink).
DIGIT_FONT = DIGIT_GLYPHS
DIGITS: tuple[str, ...] = tuple(DIGIT_FONT)

# Question templates, keyed "<family>/<question type>". Placeholders: {colour}, {shape}, {new_colour}.
# mcq and grounded_qa share the "qa/..." keys. The index of a template in its tuple is the record's paraphrase_id.
# One template per key is reserved for the test split (heldout.RESERVED_TEMPLATE_IDS).
QUESTION_TEMPLATES: dict[str, tuple[str, ...]] = {
    "grounding/appear": (
        "When is the {colour} {shape} visible?",
        "During which part of the video can the {colour} {shape} be seen?",
        "Find the time span in which the {colour} {shape} is on screen.",
        "At what times does a {colour} {shape} show up in the video?",
    ),
    "grounding/grow": (
        "When is the {colour} {shape} enlarged?",
        "During which part of the video is the {colour} {shape} twice its normal size?",
        "Find the time span in which the {colour} {shape} is bigger than usual.",
        "At what times does the {colour} {shape} grow larger?",
    ),
    "grounding/color_change": (
        "When does the {colour} {shape} turn {new_colour}?",
        "During which part of the video is the {colour} {shape} coloured {new_colour}?",
        "Find the time span in which the {colour} {shape} changes to {new_colour}.",
        "At what times is the {colour} {shape} shown in {new_colour} instead?",
    ),
    "qa/appear_colour": (
        "What colour was the shape that appeared briefly?",
        "Which colour did the briefly visible shape have?",
        "A shape was visible for only part of the video. What colour was it?",
        "What was the colour of the object that showed up for a short time?",
    ),
    "qa/appear_shape": (
        "Which shape appeared briefly?",
        "What kind of shape was visible for only part of the video?",
        "A shape showed up for a short time. Which shape was it?",
        "Which object was on screen only briefly?",
    ),
    "qa/flash_count": (
        "How many times did the screen flash?",
        "How many flashes of the background were there?",
        "Count the flashes in the video. How many were there?",
        "How often did the whole screen light up?",
    ),
    "qa/move_direction": (
        "Which direction did the {colour} {shape} move?",
        "In which direction was the {colour} {shape} moving?",
        "The {colour} {shape} moved at some point. Which way did it go?",
        "Where did the {colour} {shape} head when it moved?",
    ),
    "qa/color_change": (
        "What colour did the {colour} {shape} turn?",
        "The {colour} {shape} changed colour for a while. Which colour did it become?",
        "Which colour did the {colour} {shape} take on?",
        "For a short time the {colour} {shape} looked different. What colour was it then?",
    ),
    "qa/grow_shape": (
        "Which shape grew larger for a while?",
        "What kind of shape was enlarged during the video?",
        "One shape became bigger for a short time. Which shape was it?",
        "Which object doubled in size at some point?",
    ),
    "needle/digit": (
        "A digit was briefly shown. Which digit was it?",
        "Which number appeared on screen for a short time?",
        "At some point a large digit flashed up. What was it?",
        "Somewhere in the video a digit is shown. Which one?",
    ),
    "needle/star_colour": (
        "A star appeared briefly. What colour was it?",
        "What colour was the star that was shown for a short time?",
        "Which colour did the briefly visible star have?",
        "At one point a star pops up. What is its colour?",
    ),
}
