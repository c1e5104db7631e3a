# make demo   set up what is missing, run the example pipeline, write the diagrams
# make test   set up what is missing (PostgreSQL, MariaDB and Chromium too), run lint, types, tests
# make proto  regenerate lineage/_proto from proto/
# make bench  run the benchmarks under bench/
# make test-wheel   build the sdist and wheel, install the wheel (not editable) in a clean
#                   venv, run the smoke test there (scripts/test_wheel.sh)
# make test-compat  test-wheel, then the second leg as root: a Debian 13 root (debootstrap,
#                   cached in .compat/) with Python 3.13 + ml-metadata 1.21, Python 3.10 +
#                   ml-metadata 1.15 on the host, stores moved between lines (scripts/compat.sh)
# make clean-compat remove .compat/ (the Debian root, venvs, wheels)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup setup-test demo test lint proto bench clean test-wheel test-compat clean-compat

setup:
	@bash scripts/setup.sh

setup-test:
	@bash scripts/setup.sh test

demo: setup
	$(BIN)/python examples/tabular/demo.py

lint: setup-test
	$(BIN)/ruff check lineage tests bench examples scripts
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q

proto: setup
	$(BIN)/python scripts/gen_proto.py

bench: setup-test
	$(BIN)/python bench/run.py

test-wheel: setup-test
	@bash scripts/test_wheel.sh

test-compat: test-wheel
	@bash scripts/compat.sh

clean-compat:
	rm -rf .compat

clean:
	rm -rf .lineage examples/tabular/out
