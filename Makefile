# The two set-up commands (README): `make pipeline` runs the whole pipeline on the embedded default,
# `make test` runs the test suite. Both create or reuse the virtual environment in .venv.
VENV ?= .venv
PYTHON ?= python3
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export DO_NOT_TRACK := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export MLFLOW_DISABLE_TELEMETRY := true
export GX_ANALYTICS_ENABLED := false
export DS_BUILD_OPS := 0

.PHONY: install pipeline test test-fast bench clean

include infra/dvc-plots/plots.mk

# torch first, pinned, so the resolver keeps the torch/torchvision pair; then the project and the rest.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q -e '.[dev,team]'
	$(BIN)/python -m pip check
	touch $@

install: $(VENV)/.installed

pipeline: install
	$(BIN)/vr pipeline
	$(MAKE) --no-print-directory plots

test: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q --durations=15 -n 2 --dist loadfile --no-loadscope-reorder

test-fast: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow"

bench: install
	$(BIN)/python benchmarks/generate_validate.py

clean:
	rm -rf data models reports checkpoints
