"""A client of a running mcpd cluster: it finds the leader and fails over by itself.

    # three nodes, as in the README
    python examples/distributed_client.py 127.0.0.1:7401 127.0.0.1:7402 127.0.0.1:7403

Kill any node (even the leader) while it runs: the calls keep succeeding.
"""

import asyncio
import sys

from mcp_rust import DistributedConfig, MCPError, MCPManager


async def main(nodes: list, rounds: int) -> None:
    dist_config = DistributedConfig(cluster_nodes=nodes, leader_election_timeout_secs=1.0)
    async with MCPManager(distributed=dist_config) as manager:
        print("Leader:", manager.leader_address)
        for member in await manager.cluster_members():
            print(f"  node {member['id']} at {member['address']}{' (leader)' if member['leader'] else ''}")
        server_id = await manager.deploy_server(
            {
                "name": "time",
                "command": sys.executable,
                "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"],
                "replicas": len(nodes),
            },
            wait_ready=True,
        )
        for i in range(rounds):
            try:
                result = await manager.execute_tool(server_id, "get_current_time", {"timezone": "UTC"})
                print(f"[{i}] {result['content'][0]['text'][:60]}...  leader={manager.leader_address}")
            except MCPError as e:
                print(f"[{i}] {type(e).__name__}: {e}")
            await asyncio.sleep(0.5)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    rounds = 5
    args = sys.argv[1:]
    if args[0].startswith("--rounds="):
        rounds = int(args.pop(0).split("=", 1)[1])
    asyncio.run(main(args, rounds))
