# edgeport: `make demo` exports and verifies densenet121; `make test` runs the tests.
# Both create the virtual environment in .venv first when needed (make setup).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.edgeport-installed
ARCH := $(shell uname -m)
# PyTorch builds known to work here: CUDA build on x86_64 (runs on the CPU too), CPU build on aarch64.
# TensorRT-RTX (edgeport[rtx]: real NVIDIA engine builds in `make test`, no GPU needed) has x86_64
# wheels only; on aarch64 its tests skip with that reason.
# edgeport[openvino] (OpenVINO + NNCF: --backend openvino, export --int8-openvino, the OpenVINO rows
# of make bench) is installed on x86_64 only, where it was checked (a clean 10 s install).
ifeq ($(ARCH),aarch64)
TORCH_PIN := torch==2.9.1 torchvision==0.24.1
EXTRAS := cpu,export,test,triton,sign
else
TORCH_PIN := torch==2.14.1 torchvision==0.29.1
EXTRAS := cpu,export,test,triton,rtx,sign,openvino
endif

# A second environment for a real Triton server in the tests (tests/triton_server.py): pytriton's
# tritonserver runs python-backend models with the first python on PATH, which needs numpy < 2.
TRITON_VENV := .venv-triton
TRITON_STAMP := $(TRITON_VENV)/.edgeport-installed
WHEELHOUSE := .wheelhouse-py310

.PHONY: setup system-tools demo test test-fast clean gpu-check bench triton-bench conformance

setup: $(STAMP) $(TRITON_STAMP) $(WHEELHOUSE)/.done system-tools

# The runtime side's dependencies as Python 3.10 wheels (JetPack 6's Python), so the wheel test
# installs edgeport[cpu] on Python 3.10 without reaching the network from inside a test.
$(WHEELHOUSE)/.done: pyproject.toml
	$(PIP) download -q --only-binary=:all: --python-version 3.10 -d $(WHEELHOUSE) onnxruntime numpy click pillow
	touch $@

# Chromium (report.html screenshots) and strace (signal injection in the commit tests): apt-get
# where this runs as root, else
# the tests skip with the reason (never installed from inside a test).
system-tools:
	@bash scripts/install_system_tools.sh

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_PIN)
	$(PIP) install -q -e '.[$(EXTRAS)]'
	touch $(STAMP)

$(TRITON_STAMP): tests/triton-requirements.txt
	test -x $(TRITON_VENV)/bin/python || $(PYTHON) -m venv $(TRITON_VENV)
	$(TRITON_VENV)/bin/python -m pip install -q -r tests/triton-requirements.txt
	cp tests/triton-requirements.txt $(TRITON_STAMP)

demo: setup
	$(VENV)/bin/edgeport export --model densenet121 --weights auto --fp16 --int8 --output exports

test: setup
	$(PY) -m pytest -q

# The fast subset while developing: everything but the tests marked slow (full-size torchvision
# exports, the wheel builds). CI runs the whole suite (make test).
test-fast: setup
	$(PY) -m pytest -q -m "not slow"

# Every torchvision classifier through export, verify and TensorRT-RTX builds for 7.5/8.6/12.0
# (not part of `make test`; hours on 2 cores): docs/conformance.md and .json. Results are kept per
# model in conformance-results/, so a rerun resumes where the last one stopped.
conformance: setup
	nice -n 10 $(PY) scripts/conformance.py

# Speed on this machine (not part of `make test`): PyTorch eager vs edgeport's FP32/FP16/INT8/INT8-CPU
# for resnet18/resnet50/densenet121, the export's wall time and peak RSS per stage, and the
# issue's targets (met / NOT met); with edgeport[openvino] (x86_64 here) also OpenVINO FP32/INT8 (NNCF)
# beside edgeport's CPU variants at batch 1 and 8 (docs/benchmarks.md). Several minutes on 2 cores;
# results in benchmarks/results/.
bench: setup
	$(PY) benchmarks/run.py

# Triton (python backend, HTTP and gRPC) vs the same artifact in-process, at concurrency 1/4/8
# (docs/triton.md). Needs a bundle: BUNDLE=exports/resnet18 make triton-bench
triton-bench: setup
	$(TRITON_VENV)/bin/python benchmarks/triton_bench.py $(BUNDLE) --edgeport-python $(PY)

# On a machine with an NVIDIA GPU and TensorRT (docs/tensorrt.md; on a Jetson create .venv with
# --system-site-packages first): export -> build fp16/int8 -> verify -> bench for resnet50 and
# densenet121, report in gpu-check/report.md. Exits 2 when TensorRT or the GPU is missing.
gpu-check: setup
	$(PY) scripts/gpu_check.py --out gpu-check

clean:
	rm -rf exports .pytest_cache $(WHEELHOUSE)
