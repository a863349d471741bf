# edgeport: `make demo` exports and verifies densenet121; `make test` runs the tests.
# Both create the virtual environment in .venv first when needed (make setup).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.edgeport-installed
ARCH := $(shell uname -m)
# PyTorch builds known to work here: CUDA build on x86_64 (runs on the CPU too), CPU build on aarch64.
ifeq ($(ARCH),aarch64)
TORCH_PIN := torch==2.9.1 torchvision==0.24.1
else
TORCH_PIN := torch==2.14.1 torchvision==0.29.1
endif

.PHONY: setup demo test test-fast clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_PIN)
	$(PIP) install -q -e '.[cpu,export,test]'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/edgeport export --model densenet121 --weights auto --fp16 --output exports

test: setup
	$(PY) -m pytest -q

clean:
	rm -rf exports .pytest_cache
