# The two commands of README.md: `make run` and `make test`. Both set the machine up first.
.PHONY: setup run test test-fast test-unit test-goquorum lint docs contracts

setup:
	@bash scripts/setup.sh

run: setup
	.venv/bin/loadgen run configs/quickstart.yaml

lint: setup
	.venv/bin/ruff check .
	.venv/bin/mypy

# two test files at a time (pytest-xdist, a file's tests in one process so its module fixtures
# are made once): most tests wait on blocks, and one at a time left the second core idle; then
# the `solo` tests one at a time, whose timing a second test beside them would decide
test: setup lint docs
	.venv/bin/python -m pytest -n 2 --dist loadfile -m "not goquorum and not solo"
	.venv/bin/python -m pytest -m "solo and not goquorum"

# the user guide (docs/, mkdocs.yml) into build/site/: strict, so a broken link or anchor fails it
# (not --quiet: MkDocs then stops counting the warnings strict mode turns into errors)
docs: setup
	.venv/bin/mkdocs build --strict

# the unit tests only (marker `unit`: no chain, no Ray, no subprocess): about 30 s, for the edit-test loop
test-fast: setup
	HYPOTHESIS_PROFILE=fast .venv/bin/python -m pytest -q -m unit

test-unit: test-fast

# GoQuorum's own QBFT and raft networks: needs LOADGEN_GOQUORUM=/path/to/GoQuorum's geth
test-goquorum: setup
	.venv/bin/python -m pytest -m goquorum -v

contracts: setup
	npm run --silent build:contracts
