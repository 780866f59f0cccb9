"""ViaRL: a frame selector trained by REINFORCE++ for a frozen answer model, in cycles of iterated amplification.

- `candidates.py`: the T candidate frames of a video, a labelled low-resolution copy and the high-resolution frames.
- `selector.py`: the selector's prompt and the fallback frames (its output format and rewards are
  `temporal_rl.rewards.selector`'s).
- `config.py`: `ViaRLSelectorConfig`.
- `selector_trainer.py`: `ViaRLSelectorTrainer` (on `TemporalGRPOTrainer`), the answer-model reward, `train_selector`.
- `answer_stage.py`: the selections file, frame sources for the answer model, its SFT and its evaluation.
- `frame_baselines.py`: uniform and CLIP top-k frame selection.
- `amplification.py`: the cycles, the model lineage and the resumable state file (`recipes/viarl.py`).

May import the foundation and `temporal_rl.grpo` (the selector trainer extends the video GRPO trainer); never
`filtering`, `eval` or `experiments`.
"""
