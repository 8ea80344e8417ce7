# Two commands do everything on a fresh machine:
#   make demo   set up .venv, then run `shiftbench run --protocol shift-noadapt` on the synthetic dataset
#   make test   set up .venv, then run the test suite
PYTHON ?= python3
VENV ?= .venv
# torch 2.14.1 / torchvision 0.29.1 install from local disk on the team's machines; override
# TORCH (e.g. TORCH="torch torchvision") elsewhere. TORCH is the whole argument list of one
# `pip install`, so it may carry pip options: CPU-only wheels (~1 GB instead of ~7 GB of CUDA
# libraries) with TORCH="torch torchvision --index-url https://download.pytorch.org/whl/cpu".
# It applies when .venv is made: `make clean-venv` first to change an existing one.
TORCH ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.shiftbench-installed

.PHONY: demo test lint bench clean-venv

# imagecorruptions: the ImageNet-C reference of tests/test_corruptions.py; --no-deps, as its
# other needs are ours already and its opencv-python would sit beside albumentations' headless one
$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet $(TORCH)
	$(VENV)/bin/python -m pip install --quiet -e ".[test]"
	$(VENV)/bin/python -m pip install --quiet --no-deps imagecorruptions==1.1.2
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/shiftbench run --protocol shift-noadapt

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check shiftbench tests benchmarks
	$(VENV)/bin/ruff format --check shiftbench tests benchmarks

clean-venv:
	rm -rf $(VENV)
