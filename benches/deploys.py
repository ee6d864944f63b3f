"""Registry write throughput: N concurrent deploys against a 3-node `mcpd` cluster on
loopback, through the Python package's cluster client (`mcp_rust`, client mode), timed from
the first request to the last acknowledgement. Each acknowledged deploy is committed (on a
majority, fsynced) and applied on the leader. Usage and results: docs/benchmarks.md.

    python benches/deploys.py --mcpd target/release/mcpd --deploys 1000
    python benches/deploys.py --mcpd target/release/mcpd --deploys 10000 --rss

With `--rss`, also prints each node's resident memory before and after the deploys (a
registry of that many servers held in memory on every node).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Dict

sys.path.insert(0, os.path.dirname(__file__))
from failover import Cluster, wait  # noqa: E402  (same directory)


async def deploy_all(nodes, count: int) -> float:
    from mcp_rust import DistributedConfig, MCPManager

    async with MCPManager(distributed=DistributedConfig(cluster_nodes=nodes)) as manager:
        # One write first, so the client knows the leader before the clock starts.
        await manager.deploy_server({"name": "warm-up", "command": "true", "replicas": 0})
        specs = [{"name": f"d{i}", "command": "true", "replicas": 0} for i in range(count)]
        started = time.perf_counter()
        await asyncio.gather(*(manager.deploy_server(spec) for spec in specs))
        return time.perf_counter() - started


def rss_kib(pid: int) -> Dict[str, int]:
    """Resident and anonymous resident memory of a process, in KiB (Linux)."""
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon"):
                fields[key] = int(value.split()[0])
    return fields


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mcpd", default="target/release/mcpd")
    parser.add_argument("--deploys", type=int, default=1000)
    parser.add_argument("--rss", action="store_true", help="report each node's RSS before and after")
    args = parser.parse_args()
    cluster = Cluster(args.mcpd, [])
    try:
        wait("a leader", 30, lambda: cluster.leader([1, 2, 3]))
        before = {n: rss_kib(p.pid) for n, p in cluster.procs.items()}
        elapsed = asyncio.run(deploy_all(list(cluster.addrs.values()), args.deploys))
        listed = json.loads(cluster.cli(1, "ls", "--stale").stdout or "[]")
        servers = listed.get("servers", listed) if isinstance(listed, dict) else listed
        print(f"| concurrent deploys | wall time (ms) | deploys/s | servers listed after |")
        print("|---:|---:|---:|---:|")
        print(f"| {args.deploys} | {elapsed * 1000:.0f} | {args.deploys / elapsed:.0f} | {len(servers)} |")
        if args.rss:
            print()
            print("| node | RSS before (KiB) | RSS after (KiB) | anonymous before (KiB) | anonymous after (KiB) |")
            print("|---:|---:|---:|---:|---:|")
            for node, proc in sorted(cluster.procs.items()):
                after = rss_kib(proc.pid)
                print(
                    f"| {node} | {before[node]['VmRSS']} | {after['VmRSS']} "
                    f"| {before[node]['RssAnon']} | {after['RssAnon']} |"
                )
    finally:
        cluster.close()


if __name__ == "__main__":
    main()
