# The two commands of README.md: `make run` and `make test`. Both set the machine up first.
.PHONY: setup run test test-unit test-goquorum lint contracts

setup:
	@bash scripts/setup.sh

run: setup
	.venv/bin/loadgen run configs/quickstart.yaml

lint: setup
	.venv/bin/ruff check .

test: setup lint
	.venv/bin/python -m pytest

# the pure tests only (no chain, no Ray): seconds, for the edit-test loop
test-unit: setup
	.venv/bin/python -m pytest -q tests/test_plan.py tests/test_model.py tests/test_config.py tests/test_estimate.py tests/test_signer.py -k "not cli"

# GoQuorum's own QBFT and raft networks: needs LOADGEN_GOQUORUM=/path/to/GoQuorum's geth
test-goquorum: setup
	.venv/bin/python -m pytest -m goquorum -v

contracts: setup
	npm run --silent build:contracts
