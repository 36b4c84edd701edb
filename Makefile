# One command each: `make repro` runs the whole pipeline, `make test` the test suite.
# Both create the virtual environment first, so a fresh clone needs nothing but python3.
VENV := .venv
# the interpreter the virtual environment is made from: `make setup PYTHON=python3.13`
PYTHON ?= python3
# GPU=1: TensorFlow's CUDA build instead of the CPU one (an NVIDIA GPU and driver; README, "Scaling out")
REQUIREMENTS := $(if $(filter 1,$(GPU)),requirements-gpu.txt,requirements.txt)
CONSTRAINTS := $(if $(filter 1,$(GPU)),constraints-gpu.txt,constraints.txt)
export PATH := $(abspath $(VENV))/bin:$(PATH)
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: setup repro test ui plots clean-venv

setup: $(VENV)/.installed

# pipefail: a failed pip install stops here, instead of surfacing later as a missing module
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c

$(VENV)/.installed: $(REQUIREMENTS) $(CONSTRAINTS) pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "tinygray needs Python 3.11 or newer (its pinned keras, jax, numpy and scikit-learn do); $(PYTHON) here is $$($(PYTHON) --version 2>&1)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --disable-pip-version-check -r $(REQUIREMENTS) -c $(CONSTRAINTS) 2>&1 \
		| { grep -v "is ignored: it is neither a file nor a directory" || true; }
	$(VENV)/bin/python -c "import tensorflow, dvc, mlflow, ai_edge_litert, tinygray"
	touch $@

# close-stale: a kill followed by `dvc repro` that restores the stage from DVC's run cache starts no stage, so
# nothing else ends the killed stage's MLflow run (python -m tinygray.pipeline.tracking close-stale).
# verify: DVC trusts its cache; this re-hashes every output against dvc.lock (python -m tinygray.pipeline.verify)
repro: setup
	dvc repro
	python -m tinygray.pipeline.tracking close-stale
	python -m tinygray.pipeline.verify

test: setup
	python -m pytest

ui: setup
	python -m tinygray.pipeline.tracking close-stale
	@echo "MLflow UI: http://127.0.0.1:5000/#/experiments?workflowType=machine_learning (its model-training view)"
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow server --backend-store-uri sqlite:///mlflow.db \
		--host 127.0.0.1 --port 5000 --workers 1

# dvc plots show with Vega bundled into the page (DVC's own page loads it from a CDN: blank offline)
PLOTS_TEMPLATE := .dvc/tmp/offline_plots.html
plots: setup
	@test -f $(PLOTS_TEMPLATE) || python scripts/offline_plots_template.py $(PLOTS_TEMPLATE)
	dvc plots show --html-template $(abspath $(PLOTS_TEMPLATE))

clean-venv:
	rm -rf $(VENV)
