# The two commands of the README: `make run` and `make test`. Both set themselves up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test system-deps benchmarks serve

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,postgres,preview]'
	touch $@

# Debian and npm packages the tests drive for real (Chromium, postfix's smtp-sink, SpamAssassin, a Bluesky PDS).
system-deps:
	bash scripts/system-deps

run: $(BIN)/.installed
	$(BIN)/pressroom publish

test: $(BIN)/.installed system-deps
	$(BIN)/pytest

serve: $(BIN)/.installed
	$(BIN)/pressroom serve

benchmarks: $(BIN)/.installed system-deps
	for script in benchmarks/*.py; do $(BIN)/python $$script || exit 1; done
