# make setup : virtual environment with exactly the versions of requirements.lock (installed by uv), plus Debian's fortune corpora
# make lock  : re-resolve requirements.lock from pyproject.toml's ranges (then `make setup` installs it)
# make repro : setup, compose conf/ into params.yaml, then `dvc repro` (through `llmpipe repro`)
# make test  : setup, then the test suite (make test-fast: the fast tier, under 2 minutes)
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
# The CPU build of torch by default; e.g. `make setup TORCH=torch` for your platform's CUDA build.
TORCH ?= torch==2.13.0
FORTUNE_DIR := /usr/share/games/fortunes
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# This project keeps MLflow telemetry and DVC analytics off: machines may be offline or private.
export MLFLOW_DISABLE_TELEMETRY := true
export DVC_NO_ANALYTICS := 1

.PHONY: help setup system-packages repro test test-fast lock lock-upgrade

help:
	@echo "make repro   set up, then run the whole pipeline (dvc repro) on the embedded corpus"
	@echo "make test    set up, then run the test suite"
	@echo "make test-fast  set up, then the fast tier: unit, config and model tests, no pipeline run"
	@echo "make setup   only set up: .venv from requirements.lock, llmpipe, Debian's fortunes / fortunes-zh"
	@echo "make lock    re-resolve requirements.lock after pyproject.toml changed (make lock-upgrade: newest versions)"

setup: system-packages $(VENV)/.installed

# The lock: every package llmpipe and its dev extras need, at one version each, with the SHA-256 of
# every file PyPI holds for it (all platforms), so the installer refuses anything else. torch is the one package
# left out: its build depends on the machine (CPU or CUDA), so TORCH installs it; its own dependencies
# are locked, as resolved for $(TORCH).
LOCK := requirements.lock

# uv installs the lock: the same files as pip would, checked against the same hashes, but fetched and
# unpacked in parallel (the lock's 225 packages: 39 s against pip's 2 min 6 s, benchmarks/RESULTS.md).
# torch stays with pip, which finds the CPU build where pip's configuration says (uv does not read
# it). uv itself is pinned with its hashes in tools.lock (`make lock` writes it), in a venv of its own.
UV_VERSION := 0.13.10
TOOLS := .venv-tools
UV := $(TOOLS)/bin/uv
$(UV): tools.lock
	rm -rf $(TOOLS)
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install -q --disable-pip-version-check --no-deps --require-hashes -r tools.lock
	touch $@

# A new venv whenever the lock or pyproject.toml changes, so that `pip freeze` is exactly the lock
# (installing over an old venv would keep packages the lock dropped); a finished set-up costs a
# file-date check.
$(VENV)/.installed: $(LOCK) pyproject.toml $(UV)
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"llmpipe needs Python 3.11, found {sys.version.split()[0]} at {sys.executable}"'
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(UV) pip install -q --python $(VENV)/bin/python --no-deps --require-hashes --compile-bytecode -r $(LOCK)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check "$(TORCH)"
	$(UV) pip install -q --python $(VENV)/bin/python --no-deps --compile-bytecode -e .
	$(UV) pip check -q --python $(VENV)/bin/python
	touch $@

# pip-tools, in a venv of its own so that it is not in the project's. `make lock` re-resolves the lock
# from pyproject.toml's ranges, keeping every pin that still fits them (after a range or a dependency
# changed); `make lock-upgrade` takes the newest versions the ranges allow; one package only:
# `make lock LOCK_ARGS="-P mlflow"`. Then `make setup` installs it, and `make test` tests it.
PIP_TOOLS := .venv-lock/bin/pip-compile
LOCK_ARGS ?=
$(PIP_TOOLS):
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install -q --disable-pip-version-check "pip-tools==7.6.2"

lock: $(PIP_TOOLS)
	echo "$(TORCH)" > .venv-lock/torch.txt
	$(PIP_TOOLS) -q --extra dev --generate-hashes --strip-extras --unsafe-package torch \
		--constraint .venv-lock/torch.txt --no-emit-index-url --no-emit-find-links --no-emit-options \
		$(LOCK_ARGS) -o $(LOCK) pyproject.toml
	echo "uv==$(UV_VERSION)" | $(PIP_TOOLS) -q --generate-hashes --no-emit-index-url --no-emit-find-links \
		--no-emit-options -o tools.lock -

lock-upgrade:
	$(MAKE) lock LOCK_ARGS=--upgrade

# The corpora, Chromium for the test that opens the MLflow UI in a real browser, and venv support.
system-packages:
	@missing=""; \
	$(PYTHON) -c 'import ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	[ -f $(FORTUNE_DIR)/fortunes ] || missing="$$missing fortunes"; \
	[ -f $(FORTUNE_DIR)/tang300 ] || missing="$$missing fortunes-zh"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# llmpipe repro: dvc repro with a warm stage runner (src/llmpipe/stage_server.py), the same outputs
repro: setup
	llmpipe compose
	llmpipe repro

# Two pytest workers, one per core, each test file in one worker (its module fixtures are built once);
# tests/conftest.py gives each worker one thread, so the two never compete for a core, and orders the
# files longest first, which --no-loadscope-reorder keeps (xdist would put the files of many short
# tests first and leave a long one running alone at the end).
PYTEST_WORKERS ?= -n 2 --dist loadfile --no-loadscope-reorder

# --durations: the slowest tests at the end of the log, where the 10-minute budget goes.
# llmpipe's own modules compiled once before the tests: where PYTHONDONTWRITEBYTECODE is set (as on
# some CI machines), every stage process the tests start would otherwise compile them again.
test: setup
	python -m compileall -q src
	python -m pytest $(PYTEST_WORKERS) --durations=15

test-fast: setup
	python -m compileall -q src
	python -m pytest $(PYTEST_WORKERS) -m "not slow"
