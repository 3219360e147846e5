PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench bench-scaling lint reference clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mixedfx demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

# Peers side by side, then the Dask scaling run (1M and 4M rows by default;
# SIZES="1 4 16" for 16M, which needs ~2 GB of /tmp per 4M rows).
SIZES ?= 1 4
bench: $(STAMP)
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python bench/run.py
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
	Rscript tests/reference/make_inference.R

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
