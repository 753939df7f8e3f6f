# Two entry points that work on a fresh machine: `make demo` and `make test`.
# TORCH may be overridden, e.g. `make test TORCH=torch` on a machine with CUDA wheels wanted.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
DEMO_DIR ?= demo

.PHONY: install demo results test lint typecheck bench clean

$(BIN)/uticompile: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch pinned in the SAME command as everything that depends on it (the dev extra's SNN peers),
	# or pip would swap it for the newest (CUDA) build.
	$(BIN)/pip install --quiet "$(TORCH)" -e '.[dev,train]'
	touch $@

install: $(BIN)/uticompile

# §1 of docs/results.md: lottery tickets on digits, pruned with plain LTH and with u-Ticket,
# mapped to 16 (and 2..64) PEs, run on the modeled accelerator; tables + PNGs in demo/compare/.
# The commands live in docs/sections/demo.py (one place); `make results` regenerates the doc.
demo: install
	$(BIN)/python docs/regen.py demo --run-only --keep --workdir $(DEMO_DIR)

# Regenerate docs/results.md's generated sections (all, or SECTIONS="demo et-ticket").
results: install
	$(BIN)/python docs/regen.py $(SECTIONS)

test: install
	$(BIN)/python -m pytest -q

lint: install typecheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy cannot follow setuptools' editable finder for the remapped packages, so type-check a
# link tree laid out as installed (uticompile/{passes,runtime,models} -> top-level folders).
typecheck: install
	rm -rf build/typecheck && mkdir -p build/typecheck/uticompile
	for f in uticompile/*; do ln -s ../../../$$f build/typecheck/uticompile/; done
	for d in passes runtime models; do ln -s ../../../$$d build/typecheck/uticompile/$$d; done
	cd build/typecheck && ../../$(BIN)/mypy --config-file ../../pyproject.toml -p uticompile

clean:
	rm -rf build $(DEMO_DIR)
