# Set-up and the two everyday jobs. Both create and use .venv in the repo root.
#   make demo   writes the demo storyboard to boards/egg (previz renderer, no weights)
#   make test   installs everything (CPU torch included) and runs the whole test suite

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
DEMO_LOGLINE := Алдар Косе держит в руках блестящее «золотое яйцо». Бай наклоняется вперёд, глаза широко раскрыты от удивления. Слуги Бая переглядываются позади.

.PHONY: demo test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The core package: enough for the offline writer, previz renderer and exports.
$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

# Everything: the CPU torch wheel first, so the project's torch range is already met.
$(VENV)/.all: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[all]'
	touch $@ $(VENV)/.core

demo: $(VENV)/.core
	$(BIN)/autokose story "$(DEMO_LOGLINE)" --scenes 8 --out boards/egg --force

test: $(VENV)/.all
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

clean:
	rm -rf $(VENV) boards
