# The two commands of README.md: `make run` and `make test`. Both set the machine up first.
.PHONY: setup run test lint contracts

setup:
	@bash scripts/setup.sh

run: setup
	.venv/bin/loadgen run configs/quickstart.yaml

lint: setup
	.venv/bin/ruff check .

test: setup lint
	.venv/bin/python -m pytest

contracts: setup
	npm run --silent build:contracts
