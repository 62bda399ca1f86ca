# synreal: two commands matter. `make demo` runs the embedded demo study, `make test` runs the tests.
# Both call `make setup`, which builds an idempotent .venv (seconds when it is already up to date).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.synreal-installed
CORES ?= all
STUDY ?= config/studies/afhq_pets.yaml

.PHONY: setup demo rehearsal test test-slow test-all lint report clean-results

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# lightly is only a test oracle (its DINOLoss checks ours); its pins would downgrade torch.
	$(BIN)/python -m pip install --quiet --no-deps lightly==1.6.0
	@touch $(STAMP)

# Jobs call `python -m synreal`: put the venv first on PATH so that `python` is ours.
export PATH := $(CURDIR)/$(BIN):$(PATH)

demo: setup
	snakemake --cores $(CORES) --profile workflow/profiles/default

# The full study's own DAG on the CPU, tiny weights and data (rehearsal/<study>/results/).
rehearsal: setup
	snakemake --configfile $(STUDY) --config rehearsal=true --cores $(CORES)
	snakemake --configfile $(STUDY) --config rehearsal=true --cores $(CORES) --report results/report.html

# The default test run: every test but the end-to-end ones marked `slow` (~7 min on 2 cores).
# test-slow runs those: both rehearsals of the full study (locally and through the local Slurm
# cluster), the fault injections, kill-and-rerun, multi-process DINO (~50 min). CI runs both.
# --durations: CI's log names the slowest tests, what its time budget is spent on.
test: setup
	ruff check src tests bench
	python -m pytest -n 2 --dist loadfile --no-loadscope-reorder --durations=15 -m "not slow"

test-slow: setup
	python -m pytest -n 2 --dist loadfile --no-loadscope-reorder --durations=15 -m slow

test-all: setup
	ruff check src tests bench
	python -m pytest -n 2 --dist loadfile --no-loadscope-reorder --durations=15

lint: setup
	ruff check src tests bench
	snakemake --lint

report: setup
	snakemake --cores $(CORES) --profile workflow/profiles/default --report results/report.html

clean-results:
	rm -rf results/*/ .snakemake rehearsal
