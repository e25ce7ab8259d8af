# Two entry points on a fresh machine: `make train` and `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
LOCK    := requirements.lock
ARGS    ?=
PRESET  ?= walker2d-trpo
RUN_DIR ?= runs/$(PRESET)
# processes stepping the env copies (run.workers): the same numbers whatever this is
WORKERS ?= 2

.PHONY: install lock train test bench throughput clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# Exactly the files $(LOCK) names (pip among them), checked against their hashes; nothing is resolved.
# torch first, alone: the CPU wheel on disk, whose hash no CUDA build can match.
$(VENV)/.installed: $(BIN)/python pyproject.toml $(LOCK)
	grep '^torch==' $(LOCK) > $(VENV)/torch.lock
	$(BIN)/pip install --require-hashes --no-deps -r $(VENV)/torch.lock
	$(BIN)/pip install --require-hashes --no-deps -r $(LOCK)
	$(BIN)/pip install --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	touch $@

install: $(VENV)/.installed

# Resolve the default install afresh and rewrite $(LOCK) and requirements-bench.lock (tools/lock.py).
lock: $(BIN)/python
	$(BIN)/python tools/lock.py

train: install
	$(BIN)/trustrl train $(PRESET) --run-dir $(RUN_DIR) --set run.workers=$(WORKERS) $(ARGS)

test: install
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q $(ARGS)

$(VENV)/.bench: $(VENV)/.installed requirements-bench.lock
	$(BIN)/pip install --require-hashes --no-deps -r requirements-bench.lock
	$(BIN)/pip check
	touch $@

bench: $(VENV)/.bench

# benchmarks/README.md: raw simulator vs trustrl vs sb3-contrib TRPO, side by side.
throughput: $(VENV)/.bench
	$(BIN)/python benchmarks/throughput.py --scaling --json $(ARGS)

clean:
	rm -rf $(VENV) build src/*.egg-info
