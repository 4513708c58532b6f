# Two commands from a fresh clone: `make book` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= fast
# Offline data: use the workplace copy beside the repo when RANKBOOK_DATA is unset.
export RANKBOOK_DATA ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)

.PHONY: venv test book run clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

run: $(STAMP)
	$(BIN)/python -m rankbook run --profile $(PROFILE)

book: $(STAMP)
	$(BIN)/python -m rankbook build --profile $(PROFILE)

clean:
	rm -rf _build
