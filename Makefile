# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The SMART JS client's test app (npm fhirclient, installed from its package-lock.json).
JS_APP := tests/browser/js-app

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

# The browser tests drive Debian's chromium (never Playwright's downloaded browsers) and load the npm
# fhirclient from $(JS_APP)/node_modules; CI runs as root.
test: $(STAMP)
	command -v chromium >/dev/null || (apt-get install -y chromium || (apt-get update && apt-get install -y chromium))
	test -d $(JS_APP)/node_modules || npm ci --prefix $(JS_APP) --no-audit --no-fund
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python bench/bench_crud.py
	$(BIN)/python bench/bench_search.py
	$(BIN)/python bench/bench_extract.py
	$(BIN)/python bench/bench_ingest.py

clean:
	rm -rf $(VENV) .fhir-data .pytest_cache
