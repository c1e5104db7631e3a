# make demo   set up what is missing, run the example pipeline, write the diagrams
# make test   set up what is missing (PostgreSQL, MariaDB and Chromium too), run lint, types, tests
# make proto  regenerate lineage/_proto from proto/
# make bench  run the benchmarks under bench/
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup setup-test demo test lint proto bench clean

setup:
	@bash scripts/setup.sh

setup-test:
	@bash scripts/setup.sh test

demo: setup
	$(BIN)/python examples/tabular/demo.py

lint: setup-test
	$(BIN)/ruff check lineage tests bench examples
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q

proto: setup
	$(BIN)/python scripts/gen_proto.py

bench: setup-test
	$(BIN)/python bench/run.py

clean:
	rm -rf .lineage examples/tabular/out
