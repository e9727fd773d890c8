# Task runner: CI calls these same targets.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Any hidden hub download must fail loudly in tests and tools: the model ships in a package.
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
SHARED ?= ../shared

.PHONY: install test lint run index serve bench eval lock clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/install.sh
	bash scripts/install.sh $(VENV)

test: install
	$(BIN)/ruff check bot tests
	$(BIN)/mypy
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check bot tests
	$(BIN)/ruff format --check bot tests
	$(BIN)/mypy

index: install
	$(BIN)/bot index --if-stale

run: index
	$(BIN)/bot serve

bench: install
	$(BIN)/python bench/run.py --shared $(SHARED)

eval: install
	$(BIN)/python -m bot.evaluation_report --shared $(SHARED)

lock: install
	$(BIN)/pip freeze --exclude-editable | sed 's/+cpu//' \
	  | sed '1i # Pinned versions for `make install` (torch is the CPU build). Refresh with `make lock`.' > constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
