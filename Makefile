# Two entry points on a fresh machine: `make train` and `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
TORCH   := torch==2.13.0
ARGS    ?=
PRESET  ?= walker2d-trpo
RUN_DIR ?= runs/$(PRESET)
# processes stepping the env copies (run.workers): the same numbers whatever this is
WORKERS ?= 2

.PHONY: install train test bench throughput clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

# torch first and pinned: the CPU wheel on disk; anything else would download a CUDA build.
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install $(TORCH)
	$(BIN)/pip install -e '.[test]'
	touch $@

install: $(VENV)/.installed

train: install
	$(BIN)/trustrl train $(PRESET) --run-dir $(RUN_DIR) --set run.workers=$(WORKERS) $(ARGS)

test: install
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q $(ARGS)

$(VENV)/.bench: $(VENV)/.installed
	$(BIN)/pip install -e '.[test,bench]'
	touch $@

bench: $(VENV)/.bench

# benchmarks/README.md: raw simulator vs trustrl vs sb3-contrib TRPO, side by side.
throughput: $(VENV)/.bench
	$(BIN)/python benchmarks/throughput.py --scaling --json $(ARGS)

clean:
	rm -rf $(VENV) build src/*.egg-info
