#!/usr/bin/env bash
# Installs everything loadgen needs on a fresh Debian machine: Debian packages, the Python
# environment (.venv) and the npm packages (Anvil, solc). Idempotent and quick when done.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# Debian packages: node/npm for Anvil and solc; python3-venv for the environment; Go for geth.
apt_packages=()
command -v go >/dev/null || apt_packages+=(golang-go)
command -v node >/dev/null || apt_packages+=(nodejs)
command -v npm >/dev/null || apt_packages+=(npm)
python3 -c 'import venv, ensurepip' 2>/dev/null || apt_packages+=(python3-venv)
# the metrics tests scrape a live run with a real Prometheus and check configs with promtool
command -v prometheus >/dev/null && command -v promtool >/dev/null || apt_packages+=(prometheus)
command -v chromium >/dev/null || apt_packages+=(chromium)
if [ ${#apt_packages[@]} -gt 0 ]; then
  echo "setup: apt-get install ${apt_packages[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
fi

stamp_ok() { [ -f "$1" ] && [ "$1" -nt "$2" ]; }

if ! stamp_ok .venv/.installed pyproject.toml; then
  echo "setup: Python environment in .venv"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]' 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -c 'import loadgen, ray, web3' # fail here, not later, if the install did not take
  touch .venv/.installed
fi
# pandas, for the test that reads a run's Parquet as researchers do, lives apart from .venv:
# pyarrow imports pandas the first time it builds a table whenever it can (0.25 CPU-s a run)
interop=build/interop
if [ ! -f "$interop/.pandas-3.1.1" ]; then
  echo "setup: pandas for the interoperability test in $interop"
  rm -rf "$interop"
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --target "$interop" pandas==3.1.1
  touch "$interop/.pandas-3.1.1"
fi
if .venv/bin/python -c 'import pandas' 2>/dev/null; then  # an environment made before it moved
  .venv/bin/python -m pip uninstall -q -y pandas
fi
# loadgen's own bytecode, as pip writes it for an installed package: an editable install gets it
# only from the first import, and never where PYTHONDONTWRITEBYTECODE is set (0.07 CPU-s a run)
.venv/bin/python -m compileall -q loadgen actors >/dev/null

if ! stamp_ok node_modules/.installed package-lock.json; then
  echo "setup: npm packages (Anvil, solc)"
  # --ignore-scripts: the Anvil binary comes in its platform package; its postinstall would only
  # try a download this machine may not be allowed to make.
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
  touch node_modules/.installed
fi

# geth, built once from the Go module proxy at the version chains/geth/go.mod pins (go.sum holds
# its checksums), into build/geth-<version>-<os>-<arch>/geth: the multi-node network's client.
geth_version=$(awk '$1 == "require" && $2 == "github.com/ethereum/go-ethereum" {print $3}' chains/geth/go.mod)
geth_bin="build/geth-${geth_version}-$(uname -s | tr '[:upper:]' '[:lower:]')-$(uname -m)/geth"
if [ ! -x "$geth_bin" ]; then
  echo "setup: building geth ${geth_version} (go-ethereum, pinned in chains/geth) into ${geth_bin}: about a minute, once"
  ldflags=""
  # go1.23+ refuses the go:linkname that geth 1.10's memsize dependency uses, unless told not to check
  go_minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
  [ "${go_minor:-0}" -ge 23 ] && ldflags="-checklinkname=0"
  started=$(date +%s)
  (cd chains/geth && GOFLAGS=-mod=readonly go build -trimpath -ldflags="$ldflags" -o "../../${geth_bin}.tmp" github.com/ethereum/go-ethereum/cmd/geth)
  mv "${geth_bin}.tmp" "$geth_bin"
  echo "setup: geth built in $(( $(date +%s) - started ))s: $("$geth_bin" version | awk '/^Version:/ {print $2}')"
fi
