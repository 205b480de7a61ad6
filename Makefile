# The two commands of README.md: `make run` and `make test`. Both set the machine up first.
.PHONY: setup run test lint contracts

setup:
	@bash scripts/setup.sh

run: setup
	.venv/bin/loadgen devnet --port 0 --smoke

lint: setup
	.venv/bin/ruff check loadgen actors tests benchmarks

test: setup lint
	.venv/bin/python -m pytest

contracts: setup
	npm run --silent build:contracts
