# Both first commands create .venv and install into it; nothing else needs installing by hand.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# the demo needs the package alone, not the test tools (nor Playwright): a quicker first run
DEMO_STAMP := $(VENV)/.installed-demo
# rss2email 3.14 in a venv of its own, for the re-poll benchmark's side-by-side
R2E    := .bench/rss2email
R2E_STAMP := $(R2E)/.installed

.PHONY: demo test lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP) $(DEMO_STAMP)

$(DEMO_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e .
	touch $(DEMO_STAMP)

$(R2E_STAMP):
	$(PYTHON) -m venv $(R2E)
	$(R2E)/bin/pip install --quiet rss2email==3.14
	touch $(R2E_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/newsletter demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP) $(R2E_STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) .bench build dist *.egg-info .pytest_cache .ruff_cache
