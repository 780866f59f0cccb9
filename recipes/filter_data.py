"""Variance-aware data selection (Temporal-RLT): K sampled completions per sample, scored, kept where they vary.

accelerate launch [--config_file recipes/accelerate_configs/ddp.yaml] recipes/filter_data.py \
    --config recipes/tiny/filter_grounding.yaml [--any_field value ...]

Writes scored.jsonl, filtered.jsonl (a GRPO train_file as it is), report.json and report.png in output_dir; a
killed run started again with the same command resumes (see temporal_rl/filtering/run.py).
"""

from pathlib import Path

from trl import TrlParser

from temporal_rl.filtering.config import FilterConfig
from temporal_rl.filtering.run import FIGURE_FILE, FILTERED_FILE, REPORT_FILE, SCORED_FILE, format_summary, run_filter

if __name__ == "__main__":
    (config,) = TrlParser((FilterConfig,)).parse_args_and_config()
    report = run_filter(config)
    if report is not None:  # process 0
        out = Path(config.output_dir)
        print(format_summary(report))
        print(f"wrote {', '.join(str(out / name) for name in (FILTERED_FILE, SCORED_FILE, REPORT_FILE, FIGURE_FILE))}")
