# Quick start: `make demo` and `make test`. Both set everything up first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup demo test clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v verilator >/dev/null && command -v yosys >/dev/null || { \
	  echo "installing verilator and yosys with apt-get"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq verilator yosys g++ make; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q torch==2.13.0
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

demo: setup
	$(VENV)/bin/fpgacnn demo

test: setup
	$(PY) -m pytest -n 2 -q

clean:
	rm -rf $(VENV) build .pytest_cache
