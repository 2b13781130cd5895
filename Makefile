# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv at the repository root when it is missing: torch first (the CPU build that
# lies on this machine's disk; elsewhere set TORCH_SPEC / TORCH_INDEX), then the project with
# everything the app, training and tests need.

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

.PHONY: demo test bench install clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_INDEX) "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[all]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) app.py

test: $(STAMP)
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadgroup --durations=15 tests

bench: $(STAMP)
	@set -e; for b in bench/*.py; do echo "== $$b"; $(PY) $$b; done

clean-venv:
	rm -rf $(VENV)
