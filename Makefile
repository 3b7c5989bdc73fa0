# Every target installs what it needs into .venv first; nothing else is required
# beyond Python >= 3.10 with venv, and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint bench models clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,ray]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/axrun devices
	$(BIN)/axrun classify models/samples/
	$(BIN)/axrun detect models/samples/ --save-dir out/demo -o out/demo/detections.jsonl --overwrite
	$(BIN)/python models/make_pan_video.py out/pan.mp4
	$(BIN)/axrun detect out/pan.mp4 --save-dir out/demo -o out/demo/pan.jsonl --overwrite
	@echo "annotated images, out/demo/pan.mp4 and the records (.jsonl) are in out/demo/"

# pytest exits 5 when it collected no tests: that is a failure here, not a pass.
test: $(STAMP)
	$(BIN)/python -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: no tests ran" >&2; exit 1; fi; exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check axrun tests
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python tests/benchmarks/run_all.py

models: $(STAMP)
	$(BIN)/python models/build.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
