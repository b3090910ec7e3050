# Quick start: `make train` (install + default training), `make test` (install + tests).
# torch==2.13.0 is pinned by constraints.txt: on this CPU-only setup it installs a CPU build
# from a local file; pyproject.toml keeps a normal range (torch>=2.4) for users elsewhere.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install train test test-ddp test-xla test-vision test-all lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e ".[dev,bench,export,mlflow,tables,hf,plot,text]"
	touch $(STAMP)

train: install
	$(VENV)/bin/dtrain

test: install
	$(PY) -m pytest

test-ddp: install
	$(PY) -m pytest -m ddp

test-slow: install
	$(PY) -m pytest -m slow

test-xla:
	bash scripts/run_xla_tests.sh

# data=image_folder, model=torchvision/timm: in the torch 2.9 venv of scripts/xla_env.sh.
test-vision:
	bash scripts/run_vision_tests.sh

test-all: test test-ddp test-slow test-xla test-vision

lint: install
	$(VENV)/bin/ruff check declarative_train tests bench examples
	$(VENV)/bin/mypy declarative_train
	$(VENV)/bin/lint-imports

bench: install
	$(PY) bench/bench_executor.py

clean:
	rm -rf $(VENV) build dist *.egg-info
