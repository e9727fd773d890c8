# Task runner: CI calls these same targets.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Any hidden hub download must fail loudly in tests and tools: the model ships in a package.
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
SHARED ?= ../shared

# `make quick`: the unit tests on fakes (no real model, no server), in well under a minute.
.PHONY: install quick test lint run index serve bench eval train-reader train-spans lock clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/install.sh
	bash scripts/install.sh $(VENV)

quick: install
	$(BIN)/pytest -m "not slow" -q

test: install
	$(BIN)/ruff check bot tests bench
	$(BIN)/ruff format --check bot tests bench
	$(BIN)/mypy
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check bot tests bench
	$(BIN)/ruff format --check bot tests bench
	$(BIN)/mypy

index: install
	$(BIN)/bot index --if-stale

run: index
	$(BIN)/bot serve

bench: install
	$(BIN)/python bench/run.py --shared $(SHARED)

# Reports, never asserts: the bot next to the bm25 and dense baselines on every set in $(SHARED)/eval
# and on the news set in $(NEWS) (each skipped when absent; README says how to build the news set).
# SQuAD is subsampled to fit two cores; EVAL_FLAGS=--full runs every question.
EVAL_FLAGS ?=
NEWS ?= build/eval/realtimeqa-2023
eval: install
	$(BIN)/bot eval --shared $(SHARED)/eval --news $(NEWS) --output build/eval-report.json $(EVAL_FLAGS)

# The reader (bot/models/training.py): pairs from a realtimeqa_public snapshot (a `git clone --bare`
# of github.com/realtimeqa/realtimeqa_public at $(RTQA)) and from SQuAD's train pages in $(SHARED)/eval,
# built into build/reader-data, trained, measured (news dev set in $(NEWS) when present), written to
# bot/models/data/reader. One training at a time: it takes both cores for ~20 min (six layers), and
# measuring it on SQuAD's held-out pages as long again.
RTQA ?= build/realtimeqa_public.git
READER_FLAGS ?=
train-reader: install
	$(BIN)/bot train-reader --snapshot $(RTQA) --shared $(SHARED)/eval $(READER_FLAGS)

# The span head (bot/models/span_training.py): the short answer inside a quote, fine-tuned on the
# `train` half of SQuAD dev's pages in $(SHARED)/eval and the news training weeks' answering
# sentences of the snapshot at $(RTQA), measured on SQuAD's held-out half, written to
# bot/models/data/spans. About ten minutes on two cores.
SPANS_FLAGS ?=
train-spans: install
	$(BIN)/bot train-spans --shared $(SHARED)/eval --snapshot $(RTQA) $(SPANS_FLAGS)

lock: install
	$(BIN)/pip freeze --exclude-editable | sed 's/+cpu//' \
	  | sed '1i # Pinned versions for `make install` (torch is the CPU build). Refresh with `make lock`.' > constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
