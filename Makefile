# The README's two commands: `make demo` (the sentiment sample, end to end) and `make test`.
# Both create the project's own virtual environment first; nothing else needs to be installed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv test test-fast demo lint bench bench-tools clean

venv: $(STAMP)

# uv when the machine has it, else a plain venv that installs uv for the rest.
$(STAMP): pyproject.toml
	@if command -v uv >/dev/null 2>&1; then \
		uv venv -q --allow-existing --python $(PYTHON) $(VENV); \
	else \
		$(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install -q uv; \
	fi
	@UV=$$(command -v uv || echo $(BIN)/uv); \
		$$UV pip install -q --python $(BIN)/python -e '.[server,dev,kubernetes]'
	@touch $@

test: $(STAMP)
	$(BIN)/pytest

test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow and not docker"

demo: $(STAMP)
	$(BIN)/python samples/sentiment/demo.py

lint: $(STAMP)
	$(BIN)/ruff check mlcli tests samples bench
	$(BIN)/ruff format --check mlcli tests samples bench

bench: $(STAMP)
	$(BIN)/python bench/cli.py

# The load generator the server benches drive (Debian's wrk; needs root, as .ci/run does).
bench-tools:
	@command -v wrk >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk; }

clean:
	rm -rf $(VENV) .pytest_cache
