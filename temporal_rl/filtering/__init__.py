"""Temporal-RLT's variance-aware data filter: K sampled completions per sample, scored, kept where the rewards vary.

- `selection.py`: the keep/drop maths (pure): per-sample pass rate, mean and std, the rules, the stratified cap.
- `config.py`: `FilterConfig`, every knob of the filter run (`recipes/filter_data.py`, TrlParser).
- `run.py`: the run: data, batches, generation, scoring, the resumable shard log, the merge, report and figure.

May import the foundation (`generation`, `rewards`, `models`, `resumable`, `configs`, ...); never a trainer, `viarl`,
`eval` or `experiments`.
"""
