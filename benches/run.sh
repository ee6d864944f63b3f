#!/usr/bin/env bash
# The one benchmark command: builds the release binaries and the release Python extension,
# runs every benchmark of docs/benchmarks.md in one go on this machine, and rewrites the
# "Latest run" section of docs/benchmarks.md (between the bench:begin/bench:end markers)
# with the results. The rest of that page (setups, history, analysis) is written by hand.
#
#   benches/run.sh                 # everything (about 10 minutes on 2 cores)
#   BENCH_TRIALS=5 benches/run.sh  # fewer failover trials
#   BENCH_FAULT_SECONDS=30 benches/run.sh  # a shorter fault run (default 90 s)
#
# Needs PyPI (the Python paths compare against the official `mcp` SDK client, mcp-proxy and
# the fastmcp proxy, each installed into its own venv under target/). Run it on an idle
# machine: every path shares the same cores, and the results are ratios from one run.
set -euo pipefail
cd "$(dirname "$0")/.."

trials="${BENCH_TRIALS:-20}"
fault_seconds="${BENCH_FAULT_SECONDS:-90}"
venv=target/bench-venv
proxy_venv=target/bench-proxy-venv
result="$(mktemp)"
trap 'rm -f "$result"' EXIT

echo "==> release build"
cargo build --release --bins --quiet

echo "==> Python venvs"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "mcp==2.3.0" "fastmcp>=4.1,<4.2" maturin
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps .
if [ ! -x "$proxy_venv/bin/mcp-proxy" ]; then
  python3 -m venv "$proxy_venv"
  "$proxy_venv/bin/pip" install --quiet --disable-pip-version-check "mcp-proxy>=0.13,<0.14"
fi

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

{
  echo "## Latest run"
  echo
  echo "Written by \`benches/run.sh\` on $(date -u +%F) ($(nproc) cores, $(uname -m)); one run, every path on the same machine."
  echo
  echo "### \`tools/call\` through one node, by gRPC \`ExecuteTool\` and by the MCP gateway, vs. a direct Rust session"
  echo
} >"$result"
echo "==> data plane (cargo bench --bench dataplane)"
cargo bench --quiet --bench dataplane 2>/dev/null | grep -E '^(\||$)' >>"$result"

echo "==> Python paths"
{
  echo
  echo "### From Python, one fast stdio backend (\`mcp-test-server\` echo)"
  echo
} >>"$result"
"$venv/bin/python" benches/python_clients.py --backend fast --concurrency 32 \
  --test-server target/release/mcp-test-server \
  --mcp-proxy "$proxy_venv/bin/mcp-proxy" --mcp-proxy-python "$proxy_venv/bin/python" >>"$result"

echo "==> failover ($trials trials)"
{
  echo
  echo "### Leader failover, 3 nodes on loopback"
  echo
} >>"$result"
python3 benches/failover.py --mcpd target/release/mcpd --trials "$trials" | sed -n '/^node flags/,$p' >>"$result"

echo "==> availability under faults (${fault_seconds} s of random kill -9s and pauses)"
{
  echo
  echo "### Availability under faults: ${fault_seconds} s of random kill -9s and pauses, 3 nodes on loopback"
  echo
} >>"$result"
# A lost acknowledged write makes faults.py exit 1; its LOST lines are in the table's notes,
# and the other benchmarks still run.
python3 benches/faults.py --mcpd target/release/mcpd --seconds "$fault_seconds" | sed -n '/^node flags/,/^faults:/p' >>"$result" ||
  echo "**faults.py: acknowledged writes were lost (LOST lines above)**" >>"$result"

echo "==> concurrent deploys"
{
  echo
  echo "### 1,000 concurrent deploys, 3 nodes on loopback (Python cluster client)"
  echo
} >>"$result"
"$venv/bin/python" benches/deploys.py --mcpd target/release/mcpd --deploys 1000 >>"$result"

echo "==> registry of 10,000 servers"
{
  echo
  echo "### A registry of 10,000 servers"
  echo
  echo "In one process, no Raft or disk (\`cargo bench --bench registry_scale\`):"
  echo
} >>"$result"
cargo bench --quiet --bench registry_scale 2>/dev/null | grep '^|' >>"$result"
{
  echo
  echo "Through a 3-node cluster on loopback (\`benches/deploys.py --deploys 10000 --rss\`):"
  echo
} >>"$result"
"$venv/bin/python" benches/deploys.py --mcpd target/release/mcpd --deploys 10000 --rss >>"$result"

echo "==> memory"
data="$(mktemp -d)"
port=$((20000 + RANDOM % 20000))
target/release/mcpd node --id 1 --grpc-addr "127.0.0.1:$port" --initial-cluster "1=127.0.0.1:$port" \
  --data-dir "$data" --metrics-addr "127.0.0.1:$((port + 1))" >/dev/null 2>&1 &
node=$!
sleep 5
idle=$(rss_kib "$node")
anon=$(awk '/^RssAnon/ {print $2}' "/proc/$node/status")
# The node's own cost of each managed stdio instance (its session, pipes, buffers and
# metrics), apart from the child process: 20 instances of the test server on this node.
instances=20
echo "{\"name\": \"mem\", \"command\": \"$PWD/target/release/mcp-test-server\", \"replicas\": $instances}" |
  target/release/mcpd --endpoint "127.0.0.1:$port" deploy -f - >/dev/null
for _ in $(seq 1 60); do
  running=$(target/release/mcpd --endpoint "127.0.0.1:$port" -o json get mem |
    python3 -c 'import json,sys; print(sum(1 for i in json.load(sys.stdin).get("instances", []) if i.get("state") == "running"))')
  [ "$running" -ge "$instances" ] && break
  sleep 1
done
sleep 2
loaded=$(rss_kib "$node")
child=$(pgrep -P "$node" -f mcp-test-server | head -1)
child_rss=$(rss_kib "$child")
kill "$node"; wait "$node" 2>/dev/null || true
pkill -f "$PWD/target/release/mcp-test-server" 2>/dev/null || true
rm -rf "$data"
{
  echo
  echo "### Memory"
  echo
  echo "| process | RSS (KiB) | of which anonymous (KiB) |"
  echo "|---|---:|---:|"
  echo "| idle \`mcpd node\` (single-node cluster, nothing deployed) | $idle | $anon |"
  echo "| the same node running $instances stdio instances ($running running) | $loaded | |"
  echo "| node memory per managed stdio instance | $(( (loaded - idle) / instances )) | |"
  echo "| one \`mcp-test-server\` child process (its own memory, for scale) | $child_rss | |"
} >>"$result"

echo "==> storage (1,000,000 registry writes)"
{
  echo
  echo "### Bounded storage: 1,000,000 registry writes, 3 nodes on loopback"
  echo
} >>"$result"
cargo bench --quiet --bench storage -- --mcpd target/release/mcpd 2>/dev/null >>"$result"

python3 - "$result" <<'EOF'
import re, sys
page = "docs/benchmarks.md"
text = open(page).read()
new = open(sys.argv[1]).read().rstrip() + "\n"
block = f"<!-- bench:begin -->\n{new}<!-- bench:end -->"
if "<!-- bench:begin -->" in text:
    text = re.sub(r"<!-- bench:begin -->.*?<!-- bench:end -->", lambda _: block, text, flags=re.S)
else:
    head, sep, rest = text.partition("\n## ")
    text = f"{head}\n{block}\n\n## {rest}" if sep else f"{text}\n{block}\n"
open(page, "w").write(text)
print(f"wrote the latest run into {page}")
EOF
