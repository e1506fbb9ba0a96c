# Set-up and the two everyday jobs. Both create and use .venv in the repo root.
#   make demo   writes the demo storyboard to boards/egg (previz renderer, no weights)
#   make test   installs everything (CPU torch included) and runs the whole test suite
#   make lock   re-resolves requirements/lock.txt from pyproject.toml's ranges (then run make test)
# Every install goes through requirements/lock.txt, the versions the test suite passed with.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements/lock.txt
PIP := $(BIN)/python -m pip install -q -c $(LOCK)
DEMO_LOGLINE := Алдар Косе держит в руках блестящее «золотое яйцо». Бай наклоняется вперёд, глаза широко раскрыты от удивления. Слуги Бая переглядываются позади.

.PHONY: demo test lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip

# The core package: enough for the offline writer, previz renderer and exports.
$(VENV)/.core: pyproject.toml $(LOCK) | $(BIN)/python
	$(PIP) -e .
	touch $@

# Everything: the CPU torch wheel first, so the project's torch range is already met.
$(VENV)/.all: pyproject.toml $(LOCK) | $(BIN)/python
	$(PIP) torch==2.13.0
	$(PIP) -e '.[all]'
	touch $@ $(VENV)/.core

demo: $(VENV)/.core
	$(BIN)/autokose story "$(DEMO_LOGLINE)" --scenes 8 --out boards/egg --force

test: $(VENV)/.all
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install -q --upgrade pip
	.lock-venv/bin/python -m pip install -q torch==2.13.0
	.lock-venv/bin/python -m pip install -q -e '.[all]'
	{ grep '^#' $(LOCK); .lock-venv/bin/python -m pip freeze --all --exclude-editable \
	    | grep -v '^#' | sed 's/+cpu$$//'; } > $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) boards
