# Two commands from a fresh clone: `make book` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= fast
# Offline data: use the workplace copy beside the repo when RANKBOOK_DATA is unset.
export RANKBOOK_DATA ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)

LINTED := rankbook tests benchmarks $(wildcard notebooks/*.py)

.PHONY: venv lint test book run clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)

# ruff first, then every test even when ruff complains; fails if either failed (pytest's summary stays last)
test: $(STAMP)
	@status=0; $(BIN)/ruff check $(LINTED) || status=1; $(BIN)/python -m pytest -q || status=1; exit $$status

run: $(STAMP)
	$(BIN)/python -m rankbook run --profile $(PROFILE)

book: $(STAMP)
	$(BIN)/python -m rankbook build --profile $(PROFILE)

clean:
	rm -rf _build
