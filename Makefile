# Quick start: `make run` (train, export, verify) and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
RUN    ?= runs/default

.PHONY: run train export serve protos test test-fast lint bench clean

# The stamp is rebuilt when pyproject.toml changes, so new dependencies get installed.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[all]'
	touch $@

run: train export
	@echo "training run: $(RUN)/ (metrics.json, curves.png, checkpoint.pt)"
	@echo "device bundle: models/ (manifest.json, report.md, mnist_int8.onnx, mnist_int8.ort, mnist_int8.h)"

train: $(VENV)/.installed
	$(BIN)/mnist-edge train --out $(RUN)

export: $(VENV)/.installed
	$(BIN)/mnist-edge export --checkpoint $(RUN)/checkpoint.pt --out models

serve: $(VENV)/.installed
	$(BIN)/mnist-edge serve

# After editing protos/: regenerate the committed stubs in serve/_proto/.
protos: $(VENV)/.installed
	$(BIN)/python protos/generate.py

test: lint
	$(BIN)/python -m pytest

test-fast: $(VENV)/.installed
	$(BIN)/python -m pytest -m "not slow"

lint: $(VENV)/.installed
	$(BIN)/ruff check .

# Every benchmark, one after the other so they do not share the CPU (about 25 minutes on 2 cores); each
# prints its table and saves it to benchmarks/results/.
bench: $(VENV)/.installed
	$(BIN)/python benchmarks/inference.py
	$(BIN)/python benchmarks/serving_bench.py
	$(BIN)/python benchmarks/train_speed.py --seeds 5

clean:
	rm -rf $(VENV) runs .pytest_cache
