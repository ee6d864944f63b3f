"""Registry write throughput: N concurrent deploys against a 3-node `mcpd` cluster on
loopback, through the Python package's cluster client (`mcp_rust`, client mode), timed from
the first request to the last acknowledgement. Each acknowledged deploy is committed (on a
majority, fsynced) and applied on the leader. Usage and results: docs/benchmarks.md.

    python benches/deploys.py --mcpd target/release/mcpd --deploys 1000
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mcpd", default="target/release/mcpd")
    parser.add_argument("--deploys", type=int, default=1000)
    args = parser.parse_args()
    cluster = Cluster(args.mcpd, [])
    try:
        wait("a leader", 30, lambda: cluster.leader([1, 2, 3]))
        elapsed = asyncio.run(deploy_all(list(cluster.addrs.values()), args.deploys))
        listed = json.loads(cluster.cli(1, "ls", "--stale").stdout or "[]")
        servers = listed.get("servers", listed) if isinstance(listed, dict) else listed
        print(f"| concurrent deploys | wall time (ms) | deploys/s | servers listed after |")
        print("|---:|---:|---:|---:|")
        print(f"| {args.deploys} | {elapsed * 1000:.0f} | {args.deploys / elapsed:.0f} | {len(servers)} |")
    finally:
        cluster.close()


if __name__ == "__main__":
    main()
