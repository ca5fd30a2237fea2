# Two commands do everything (see README.md):
#   make book   build the rendered book into _build/html
#   make test   run the unit tests and nbval over every chapter
#   make lab    open the chapters in JupyterLab
# All three create or reuse the project virtual environment in .venv and install the
# pinned dependencies from pyproject.toml into it.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: book test lab execute venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $@

book: $(STAMP)
	$(BIN)/jupyter-book build . --warningiserror --keep-going

# Two pytest workers share the machine, so each numerical library gets one
# thread by default (also keeps printed digits independent of the core count).
THREADS ?= 1

# Matplotlib builds its font cache at its first import and, where that takes
# more than a few seconds, says so on stderr; build it before the chapters run
# so that no chapter's output depends on whether this machine has run it before.
test: $(STAMP)
	$(BIN)/python -c "import matplotlib.font_manager"
	OMP_NUM_THREADS=$(THREADS) OPENBLAS_NUM_THREADS=$(THREADS) MKL_NUM_THREADS=$(THREADS) \
	$(BIN)/python -m pytest -n 2 --dist loadfile --nbval \
		--nbval-sanitize-with tests/nbval_sanitize.cfg $(PYTEST_ARGS) tests book

# JupyterLab on this folder, with the project's environment as its kernel.
lab: $(STAMP)
	$(BIN)/python -c "import matplotlib.font_manager"
	$(BIN)/jupyter lab --ServerApp.root_dir=. $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# Re-execute chapters in place, top to bottom, as they are stored and as the
# suite checks them (one thread per library): make execute NB=book/convnets/pooling_fast_layers.ipynb
NB ?=
execute: $(STAMP)
	@test -n "$(NB)" || { echo "usage: make execute NB=book/<part>/<chapter>.ipynb [NB=...]"; exit 2; }
	OMP_NUM_THREADS=$(THREADS) OPENBLAS_NUM_THREADS=$(THREADS) MKL_NUM_THREADS=$(THREADS) \
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.timeout=3600 --ExecutePreprocessor.kernel_name=python3 \
		--ExecutePreprocessor.record_timing=False $(NB)

clean:
	rm -rf _build
