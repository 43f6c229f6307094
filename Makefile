# The two commands of the README: `make demo` and `make test` (`make test-fast` while editing).
# Both create .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Installing also compiles librosa's numba kernels into its cache (features.compile_librosa).
$(VENV)/.runtime: $(BIN)/python requirements.txt pyproject.toml
	$(BIN)/pip install --quiet -r requirements.txt -e .
	$(BIN)/python -c "from hotdance_jax.audio.features import compile_librosa; compile_librosa()"
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

demo: $(VENV)/.runtime
	$(BIN)/python -m hotdance_jax.demo --config configs/tiny_cpu.py --out demo_out

# Tests run in one process per core (up to 4), a whole test file to each, the files with slow
# tests first (tests/conftest.py): most of a test's time is one core compiling.
PYTEST := $(BIN)/pytest -n auto --maxprocesses 4 --dist loadfile --no-loadscope-reorder

test: $(VENV)/.dev
	$(BIN)/ruff check .
	$(PYTEST)

# The edit-test loop: every test not marked slow (those that train runs, start Python processes or
# go through every real dance).
test-fast: $(VENV)/.dev
	$(BIN)/ruff check .
	$(PYTEST) -m "not slow"

clean:
	rm -rf $(VENV) demo_out .pytest_cache .ruff_cache
