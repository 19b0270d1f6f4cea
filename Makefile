# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[embedded,test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/fhir-server serve --seed-demo

# The browser tests drive Debian's chromium (never Playwright's downloaded browsers); CI runs as root.
test: $(STAMP)
	command -v chromium >/dev/null || (apt-get install -y chromium || (apt-get update && apt-get install -y chromium))
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python bench/bench_crud.py
	$(BIN)/python bench/bench_search.py
	$(BIN)/python bench/bench_extract.py
	$(BIN)/python bench/bench_ingest.py

clean:
	rm -rf $(VENV) .fhir-data .pytest_cache
