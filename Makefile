# mnist-kit. `make demo` sets everything up and runs the whole cycle; `make test` runs the kit's tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# MNIST: $MNIST_DATA_DIR if set, else the offline copy beside the repo if present, else ./data (downloaded).
MNIST_DATA_DIR ?= $(if $(wildcard ../shared/mnist/MNIST/raw),$(abspath ../shared/mnist),$(abspath data))
export MNIST_DATA_DIR
# torch's OpenMP threads sleep when idle instead of spinning: on a shared or busy machine spinning threads
# made training 10-100x slower. Graded runs set this themselves; this covers the kit's own processes.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: install release demo test test-corpus test-fast bench clean

install: $(VENV)/.installed

# torch and torchvision are pinned here, in the kit's own install step (students' handouts are not pinned).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e ".[notebooks,test]"
	touch $@

release: install            ## one verified handout zip per assignment in dist/
	$(PY) -m autograder release --out dist

demo: install               ## release, build reference and stub submissions, grade them into demo/graded
	$(PY) -m autograder demo --out demo

# Two workers: the tests that run the sandbox on one, one after the other; the others beside them (tests/conftest.py).
test: install               ## the kit's test suite but the mutation corpus (CI runs both)
	$(PY) -m pytest -m "not corpus" -n 2

test-corpus: install        ## the mutation corpus: every realistic wrong and equivalent variant, graded
	$(PY) -m pytest -m corpus

test-fast: install          ## everything but the end-to-end grading runs
	$(PY) -m pytest -m "not slow"

bench: install              ## speed figures: course vs grader training, grading time, im2col vs torch
	$(PY) bench/benchmark.py

clean:
	rm -rf dist demo .pytest_cache build *.egg-info
