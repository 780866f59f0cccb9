"""Experiments: runs that use the library to answer a question and write a report. Not part of the library's core:
nothing in `temporal_rl` imports them, and they do not import each other (each is run by its recipe).

- `demo.py`: the main job (`make demo`): does GRPO with the IoU reward improve temporal grounding?
- `filter_experiment.py`: GRPO on filtered vs random vs full training sets (`make filter-experiment`).
- `viarl_experiment.py`: does a ViaRL selector find the needle? (`make viarl-experiment`).

May import anything in `temporal_rl` and `data_tools` but another experiment.
"""
