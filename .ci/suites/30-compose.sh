#!/usr/bin/env bash
# Compose cluster suite: builds the release binaries, builds the mcpd image offline (and a
# Prometheus image when this machine has the Debian `prometheus` binary), then runs the
# failover driver (cluster/compose/failover.py) against three containers under a unique
# compose project. Whatever happens, the project's containers, network, volumes and the
# images built here are removed.
set -euo pipefail
cd "$(dirname "$0")/../.."

suite_start=$(date +%s)
project="mcpdci$(date +%s)$$"
image="mcp-rust/mcpd:$project"
prom_image="mcp-rust/prometheus:$project"

if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
else
  compose=(docker-compose)
fi

cleanup() {
  local rc=$?
  MCPD_IMAGE="$image" PROMETHEUS_IMAGE="$prom_image" \
    "${compose[@]}" -p "$project" -f docker-compose.yml --profile monitoring \
    down -v --remove-orphans >/dev/null 2>&1 || true
  docker image rm -f "$image" "$prom_image" >/dev/null 2>&1 || true
  echo "30-compose: $(( $(date +%s) - suite_start )) s in total"
  exit "$rc"
}
trap cleanup EXIT

t=$(date +%s)
cargo build --release --bins
echo "30-compose: release build took $(( $(date +%s) - t )) s"

t=$(date +%s)
prom_args=()
if command -v prometheus >/dev/null 2>&1; then
  prom_args=(--prometheus-tag "$prom_image")
fi
cluster/compose/build-image.sh --bin-dir target/release --tag "$image" "${prom_args[@]}"
echo "30-compose: image build took $(( $(date +%s) - t )) s"

driver_args=(--mcpd target/release/mcpd --project "$project" --image "$image")
if docker image inspect "$prom_image" >/dev/null 2>&1; then
  driver_args+=(--prometheus-image "$prom_image")
fi
python3 cluster/compose/failover.py "${driver_args[@]}"
