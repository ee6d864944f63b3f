#!/usr/bin/env bash
# The Python package suite: `pip install .` into a fresh venv (maturin is the PEP 517
# backend), then pytest against the workspace's binaries (mcpd, mcp-test-server) and real
# MCP servers from PyPI.
set -euo pipefail
cd "$(dirname "$0")/../.."

start=$(date +%s)

# mcpd and mcp-test-server for the cluster tests; `cargo test` already built most of it.
cargo build --bins --quiet

venv="$(mktemp -d)/venv"
trap 'rm -rf "$(dirname "$venv")"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip

# CI builds the extension with the dev profile (dependencies at opt-level 1, see the root
# Cargo.toml), reusing what `cargo test` compiled; users get the release profile that
# pyproject.toml names.
MATURIN_PEP517_ARGS="--profile dev" \
  "$venv/bin/pip" install --quiet --disable-pip-version-check .
"$venv/bin/pip" install --quiet --disable-pip-version-check \
  pytest "mcp==2.3.0" mcp-server-time prometheus_client

echo "python suite: installed in $(( $(date +%s) - start )) s"
MCP_RUST_BIN_DIR="$PWD/target/debug" "$venv/bin/python" -m pytest python/tests -q -p no:cacheprovider
echo "python suite: done in $(( $(date +%s) - start )) s"
