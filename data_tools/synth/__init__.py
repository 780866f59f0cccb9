"""SynthTemporal: a deterministic synthetic video benchmark for temporal grounding and video QA.

Coloured shapes on a dark background, rendered with numpy and encoded with PyAV (libx264), emitted as canonical
`temporal_rl.data` records. Four task families (grounding, mcq, needle, grounded_qa), three difficulty presets
(tiny, standard, hard), and fixed test-only (shape, colour) pairs and question templates.

Modules: `presets` (difficulty knobs), `vocab` (shapes, colours, templates), `heldout` (test-only combinations and
the guard), `scene` (scene model and rasterisation), `planner` (random scene building blocks), `tasks` (the task
families, seeds and records), `encode` (mp4 writing), `dataset` (parallel rendering of a split), `__main__` (CLI).
"""

from data_tools.synth.dataset import generate_dataset, render_to_disk
from data_tools.synth.encode import encode_mp4
from data_tools.synth.heldout import RESERVED_PAIRS, RESERVED_TEMPLATE_IDS, HeldOutLeakError
from data_tools.synth.presets import DEFAULT_DIFFICULTY, PRESETS, Difficulty, get_preset
from data_tools.synth.scene import Scene, render_frames
from data_tools.synth.tasks import (
    FAMILIES,
    GEN_VERSION,
    SamplePlan,
    generate_sample,
    plan_sample,
    sample_id,
    sample_seed,
)
from data_tools.synth.vocab import COLOURS, QUESTION_TEMPLATES, SHAPES

__all__ = [
    "COLOURS",
    "DEFAULT_DIFFICULTY",
    "FAMILIES",
    "GEN_VERSION",
    "PRESETS",
    "QUESTION_TEMPLATES",
    "RESERVED_PAIRS",
    "RESERVED_TEMPLATE_IDS",
    "SHAPES",
    "Difficulty",
    "HeldOutLeakError",
    "SamplePlan",
    "Scene",
    "encode_mp4",
    "generate_dataset",
    "generate_sample",
    "get_preset",
    "plan_sample",
    "render_frames",
    "render_to_disk",
    "sample_id",
    "sample_seed",
]
