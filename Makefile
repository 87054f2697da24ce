# Quick start: `make run` (train, export, verify) and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
RUN    ?= runs/default
WEB_PORT ?= 8000

.PHONY: run train export serve protos test test-fast lint bench web clean

# The stamp is rebuilt when pyproject.toml changes, so new dependencies get installed.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[all]'
	touch $@

run: train export
	@echo "training run: $(RUN)/ (metrics.json, curves.png, checkpoint.pt)"
	@echo "device bundle: models/ (manifest.json, report.md, mnist_int8.onnx, mnist_int8.ort, mnist_int8.h, model_repository/)"

train: $(VENV)/.installed
	$(BIN)/mnist-edge train --out $(RUN)

export: $(VENV)/.installed
	$(BIN)/mnist-edge export --checkpoint $(RUN)/checkpoint.pt --out models

serve: $(VENV)/.installed
	$(BIN)/mnist-edge serve

# examples/web's npm packages, as its package-lock.json pins them (onnxruntime-web; playwright-core for the tests).
examples/web/node_modules/.package-lock.json: examples/web/package-lock.json
	cd examples/web && npm ci --no-audit --no-fund

# The drawing page, the int8 model in the browser. It serves the repository, not only examples/web, as the page loads
# models/mnist_int8.ort and ONNX Runtime Web's files from node_modules; on 127.0.0.1 only.
web: examples/web/node_modules/.package-lock.json
	@echo "draw a digit at http://127.0.0.1:$(WEB_PORT)/examples/web/ (Ctrl-C stops the server)"
	@$(PYTHON) -m http.server $(WEB_PORT) --bind 127.0.0.1

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
bench: $(VENV)/.installed examples/web/node_modules/.package-lock.json
	$(BIN)/python benchmarks/inference.py
	$(BIN)/python benchmarks/web_inference.py
	$(BIN)/python benchmarks/serving_bench.py
	$(BIN)/python benchmarks/train_speed.py --seeds 5

clean:
	rm -rf $(VENV) runs .pytest_cache
