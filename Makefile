# The two commands of the README: `make run` and `make test`. Both set themselves up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run stop test gates system-deps benchmarks serve

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,postgres,preview]'
	touch $@

# Debian and npm packages the tests drive for real (Chromium, postfix's smtp-sink, SpamAssassin, a Bluesky PDS).
system-deps:
	bash scripts/system-deps

# A local Prefect server under var/prefect/ (started once, found again by every later run) spares
# each run Prefect's 7-19 s temporary-server start; `make stop` ends it. Its UI shows the runs.
run: $(BIN)/.installed
	$(BIN)/pressroom prefect-server
	$(BIN)/pressroom publish

stop: $(BIN)/.installed
	$(BIN)/pressroom prefect-server --stop

# The house habits, in seconds, before the suite (docs/development.md, "The gates"): the plan's import
# arrows (import-linter, contracts in pyproject.toml), ruff, and the complexity and module-size gates.
gates: $(BIN)/.installed
	$(BIN)/lint-imports
	$(BIN)/ruff check pressroom flows tests benchmarks scripts/complexity.py
	$(BIN)/python scripts/complexity.py

test: $(BIN)/.installed gates system-deps
	$(BIN)/pytest

serve: $(BIN)/.installed
	$(BIN)/pressroom serve

# Each script prints its figures as it goes and its one summary line last; the summary lines are printed
# again together at the end (each figure the median of 3 rounds, with the load average the run saw).
benchmarks: $(BIN)/.installed system-deps
	@mkdir -p var && : > var/benchmarks.log
	for script in benchmarks/*.py; do { $(BIN)/python $$script || echo "failed: $$script"; } | tee -a var/benchmarks.log; done
	@echo; echo "Summary ($$(date -u '+%Y-%m-%d %H:%M UTC'), load average $$(cut -d' ' -f1-3 /proc/loadavg)):"
	@grep -E '^(build|compose|fanout|overhead|web): ' var/benchmarks.log
	@! grep -q '^failed: ' var/benchmarks.log
