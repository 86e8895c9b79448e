# dualpath: `make demo` runs the whole pipeline on the embedded default; `make test` runs the test suite.
# Both set everything up first (a .venv with the project and what it needs).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
DATA   ?= data/scenes
SEED   ?= 0
N      ?= 6000
WORKERS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: setup demo test test-all bench clean

# The stamp is rebuilt when pyproject.toml changes. torch/torchvision are pinned in pyproject's `train` extra
# (2.14.1 / 0.29.1); pip takes them from the machine's local wheel store where it has one.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet -e ".[train,export,dev]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) -m dualpath.scenes generate --n $(N) --seed $(SEED) --out $(DATA) --workers $(WORKERS)
	$(PY) -m dualpath.scenes preview --data $(DATA) --out $(DATA)/preview.png
	@echo "demo: data set in $(DATA), preview in $(DATA)/preview.png"

test: setup
	$(PY) -m pytest -q

test-all: setup
	$(PY) -m pytest -q -m ""

bench: setup
	$(PY) benchmarks/scenes.py

clean:
	rm -rf $(VENV) .pytest_cache
