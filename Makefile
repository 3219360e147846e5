PY ?= python3
# test-min runs on the lowest Python that requires-python claims (pyenv's 3.10 when there).
PY_MIN ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.10*/bin/python3.10) python3.10)

VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The test environment is installed from a committed lock (make lock regenerates it).
LOCK := requirements/test.lock
MIN_LOCK := requirements/min.lock
LATEST := .venv-latest
MIN := .venv-min

# uv only writes the locks; nothing else needs it.
UV_VERSION := 0.13.9
TOOLS := .venv-tools
UV := $(TOOLS)/bin/uv
LOCK_FLAGS ?=

LINT_PATHS := src tests bench tools

.PHONY: demo test lint bench bench-scaling reference clean lock test-latest test-min test-kernels

# A fresh venv from the lock, then mixedfx itself without dependencies.
$(STAMP): pyproject.toml $(LOCK)
	rm -rf $(VENV)
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mixedfx demo --force

define lint_with
	$(1)/ruff check $(LINT_PATHS)
	$(1)/ruff format --check $(LINT_PATHS)
	$(1)/mypy
endef

lint: $(STAMP)
	$(call lint_with,$(BIN))

test: lint
	$(BIN)/pytest

# The same lint and tests with the newest release of every dependency (no lock):
# finds breakage from new releases before a fresh clone does. Upgrades on every run.
test-latest:
	test -x $(LATEST)/bin/python || $(PY) -m venv $(LATEST)
	$(LATEST)/bin/pip install --quiet --upgrade pip
	$(LATEST)/bin/pip install --quiet --upgrade --upgrade-strategy eager -e ".[dev]"
	$(LATEST)/bin/pip list --format=freeze | grep -iE '^(numpy|scipy|pandas|formulaic|nlopt)=='
	$(call lint_with,$(LATEST)/bin)
	$(LATEST)/bin/pytest

# The lowest versions pyproject.toml claims (requirements/min.lock), on Python 3.10.
$(MIN)/.installed: pyproject.toml $(MIN_LOCK)
	rm -rf $(MIN)
	$(PY_MIN) -m venv $(MIN)
	$(MIN)/bin/pip install --quiet --upgrade pip
	$(MIN)/bin/pip install --quiet -r $(MIN_LOCK)
	$(MIN)/bin/pip install --quiet --no-deps -e .
	touch $@

test-min: $(MIN)/.installed
	$(MIN)/bin/python --version
	$(MIN)/bin/pytest

# The whole suite under each OpenBLAS kernel in turn (see docs/testing.md).
# PYTEST_ARGS="tests/test_gradient.py" runs a part of the suite.
KERNELS ?= SkylakeX Haswell SandyBridge Prescott
PYTEST_ARGS ?=
test-kernels: $(STAMP)
	$(BIN)/python tools/kernel_matrix.py --kernels $(KERNELS) -- $(PYTEST_ARGS)

$(UV):
	$(PY) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

# Regenerate both locks from pyproject.toml. Keeps the pins already in a lock where they
# still satisfy pyproject; LOCK_FLAGS=--upgrade moves everything to the newest releases.
lock: $(UV)
	$(UV) pip compile pyproject.toml --extra dev --universal --python-version 3.10 \
		--generate-hashes --custom-compile-command "make lock" $(LOCK_FLAGS) -o $(LOCK)
	$(UV) pip compile pyproject.toml --extra dev --resolution lowest-direct --python-version 3.10 \
		--generate-hashes --custom-compile-command "make lock" $(LOCK_FLAGS) -o $(MIN_LOCK)

# Peers side by side with every thread pool at 1 thread, then at 2, then mixedfx
# at 2 next to a CPU-bound process; the README's table from the three; then the
# Dask scaling run (1M and 4M rows by default; SIZES="1 4 16" for 16M, which
# needs ~2 GB of /tmp per 4M rows).
SIZES ?= 1 4
bench: $(STAMP)
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python bench/run.py --threads 1
	$(BIN)/python bench/run.py --threads 2
	$(BIN)/python bench/run.py --threads 2 --load --peers mixedfx
	$(BIN)/python bench/table.py --readme
	$(BIN)/python bench/scaling.py --millions $(SIZES)

bench-scaling: $(STAMP)
	$(BIN)/python bench/scaling.py --millions $(SIZES)

# Regenerate the lme4 reference values (needs R with lme4: apt-get install r-base-core r-cran-lme4).
reference:
	Rscript tests/reference/make_reference.R
	Rscript tests/reference/make_predictions.R
	Rscript tests/reference/make_formulas.R
	Rscript tests/reference/make_random_designs.R
	Rscript tests/reference/make_glmm.R
	Rscript tests/reference/make_glmm_random_designs.R
	Rscript tests/reference/make_inference.R

clean:
	rm -rf $(VENV) $(LATEST) $(MIN) $(TOOLS) build *.egg-info src/*.egg-info
