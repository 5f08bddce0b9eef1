# The two commands: `make run` (execute the notebooks in order) and `make test` (the static checks of `make lint`,
# then the whole test suite). All create .venv and install the project on first use, so a fresh clone needs nothing
# else.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NOTEBOOKS := 01_data 02_train 03_evaluate 04_predict_widget 05_update_model
FAST ?= 0
# always pass `fast`: papermill keeps an earlier run's injected parameters cell when given no parameters
PAPERMILL_FLAGS := -p fast $(if $(filter 1 true True,$(FAST)),True,False)

.PHONY: run test lint app venv system-deps clean help

help:
	@echo "make run    execute notebooks/ in order with papermill (FAST=1 for the quick CI-sized run)"
	@echo "make test   make lint, then the test suite (unit, property-based, notebooks through papermill and nbval)"
	@echo "make lint   the fast static checks: ruff check, ruff format --check, mypy, lint-imports (the layers)"
	@echo "make app    serve the upload-and-predict panel (notebooks/04_predict_widget) on http://127.0.0.1:$(APP_PORT)"
	@echo "make clean  remove generated data, caches and the virtual environment"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (mammo .venv)" >/dev/null
	@touch $(STAMP)

venv: $(STAMP)

# System packages (Debian): Graphviz draws the architecture diagrams; Chromium is the browser the web-app test
# drives with Playwright (at /usr/bin/chromium; Playwright's own browser download is not used); PostgreSQL is the
# server the submission-store tests start in a temporary folder (initdb/pg_ctl from /usr/lib/postgresql/*/bin; no
# system cluster is needed). Installed with apt-get when missing (as root, or with sudo); elsewhere install them
# with your package manager.
system-deps:
	@missing=""; command -v dot >/dev/null || missing="$$missing graphviz"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; \
	  else echo "please install:$$missing (e.g. apt-get install$$missing)"; exit 1; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

run: system-deps $(STAMP)
	@mkdir -p figures
	@set -e; for nb in $(NOTEBOOKS); do \
	  echo "== notebooks/$$nb.ipynb"; \
	  $(BIN)/papermill --cwd notebooks -k python3 $(PAPERMILL_FLAGS) notebooks/$$nb.ipynb notebooks/$$nb.ipynb; \
	done
	@# papermill's injected-parameters cell is not ruff-formatted; format it so `make lint` stays clean
	$(BIN)/ruff format -q notebooks

# The panel as a web page: Voila on localhost only, code cells hidden (Voila's default), each cell stopped after
# 300 s (time enough to train the fast fallback model when no run exists), idle kernels culled after 10 minutes,
# uploads up to 200 MB per message. tests/test_webapp.py starts Voila with these same flags.
APP_PORT ?= 8866
VOILA_FLAGS := --no-browser --Voila.ip=127.0.0.1 --VoilaExecutor.timeout=300 \
	--MappingKernelManager.cull_idle_timeout=600 --MappingKernelManager.cull_interval=60 \
	--Voila.tornado_settings="{'websocket_max_message_size': 209715200}"

app: $(STAMP)
	$(BIN)/voila notebooks/04_predict_widget.ipynb --port=$(APP_PORT) $(VOILA_FLAGS)

# The static checks, fastest failure first: lint and format (ruff), types (mypy), the layer contract (import-linter,
# contracts in pyproject.toml, see ARCHITECTURE.md). .pre-commit-config.yaml runs the same four before each commit.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint system-deps $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf data/synthetic data/synthetic_fast data/cache .pytest_cache .hypothesis .mypy_cache .ruff_cache \
		.import_linter_cache $(VENV)
