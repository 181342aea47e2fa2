# keras_cxr: thin wrappers over `python -m keras_cxr`. `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PRESET ?= quick
DATA   ?=
OUT    ?= runs/$(PRESET)
DEMO_OUT ?= runs/demo
SEED   ?= 0
DATA_ARG := $(if $(DATA),--data $(DATA),)

.DEFAULT_GOAL := help
.PHONY: help install demo test test-fast train-gan evaluate-all report data-summary bench bench-pipeline clean

help:  ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'
	@echo "  variables: PRESET=$(PRESET) DATA=<folder|npz, default: bundled sample> OUT=$(OUT) SEED=$(SEED)"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip 'setuptools>=77' wheel  # the wheel test builds with this setuptools

install: $(PY)  ## create .venv and install keras_cxr with the dev extra
	@# setuptools notes, for every editable install of a flat layout, that a folder named keras_cxr in the
	@# working directory shadows the install: here that folder is the package itself, so the note is held back.
	PYTHONWARNINGS="ignore:Editable installation" $(PY) -m pip install --quiet -e '.[dev]'

demo: install  ## install, then the whole chain on the bundled sample with the demo preset (~4 min on 2 CPU cores)
	$(PY) -m keras_cxr data summary $(DATA)
	$(PY) -m keras_cxr evaluate-all --preset demo $(DATA_ARG) --seeds $(SEED) --out $(DEMO_OUT) --quiet
	$(PY) -m keras_cxr report --results $(DEMO_OUT) --n-generated 100 --extractor-seeds $(SEED)
	$(PY) -m keras_cxr generate --generator $(DEMO_OUT)/models/cdcgan_a050/1 --n 16 --label 1 --seed $(SEED) --out $(DEMO_OUT)/generated
	@sed '/^## Paired/,$$d' $(DEMO_OUT)/results.md
	@echo "demo done: $(DEMO_OUT)/results.md and $(DEMO_OUT)/report.md"

# Two pytest-xdist workers, a test file each at a time: much of the suite waits on subprocesses
# (the CLI, saved_model_cli, the wheel build), and a file's module fixtures stay on one worker.
PYTEST := $(PY) -m pytest -q -p no:cacheprovider -n 2 --dist loadfile

test: install  ## run the whole test suite (tiny preset, small data; 6-9 minutes on 2 cores)
	$(PYTEST)

test-fast: install  ## tests without the slow end-to-end ones
	$(PYTEST) -m "not slow"

data-summary:  ## counts, image modes and duplicates of DATA
	$(PY) -m keras_cxr data summary $(DATA)

train-gan:  ## train PRESET's generators (DCGAN + one cDCGAN per gan.alphas) on DATA; SavedModels in OUT/models
	$(PY) -m keras_cxr evaluate-all --only-generators --preset $(PRESET) $(DATA_ARG) --out $(OUT)

evaluate-all:  ## the 11-method x seeds matrix with PRESET on DATA into OUT, then OUT/report.md
	$(PY) -m keras_cxr evaluate-all --preset $(PRESET) $(DATA_ARG) --out $(OUT) $(if $(SEEDS),--seeds $(SEEDS),)
	$(PY) -m keras_cxr report --results $(OUT)

report:  ## rewrite OUT/report.md from an evaluate-all folder
	$(PY) -m keras_cxr report --results $(OUT)

bench:  ## GAN / ResNet18 / pipeline / generation benchmarks, same run (writes experiments/benchmarks/results/bench.*)
	$(PY) experiments/benchmarks/bench.py

bench-pipeline:  ## input pipeline throughput on DATA (writes experiments/benchmarks/results/)
	$(PY) experiments/benchmarks/pipeline_throughput.py $(DATA_ARG)

clean:  ## remove runs/ (trained models and logs)
	rm -rf runs
