"""Quickstart: an embedded cluster in this process, one real MCP server, a few calls.

    pip install . mcp-server-time
    python examples/quickstart.py
"""

import asyncio
import sys

from mcp_rust import MCPConfig, MCPManager


async def main() -> None:
    config = MCPConfig(request_timeout_ms=5000, max_retries=2)
    async with MCPManager(config) as manager:
        server_id = await manager.deploy_server(
            {
                "name": "time",
                "command": sys.executable,
                "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"],
                "replicas": 2,
            },
            wait_ready=True,
        )
        print(f"Deployed: {server_id} (revision {server_id.revision})")

        tools = await manager.execute(server_id, {"method": "tools/list"})
        print("Tools:", ", ".join(t["name"] for t in tools["tools"]))

        result = await manager.execute_tool(server_id, "get_current_time", {"timezone": "UTC"})
        print("Now:", result["content"][0]["text"])

        calls = [manager.execute_tool(server_id, "get_current_time", {"timezone": "Europe/Paris"}) for _ in range(50)]
        await asyncio.gather(*calls)

        metrics = await manager.get_metrics()
        print(f"Requests: {metrics.total_requests}, success rate {metrics.success_rate:.1f}%, "
              f"avg {metrics.avg_latency_ms:.2f} ms, p99 {metrics.p99_latency_ms:.2f} ms")
        health = await manager.get_health_status()
        print(f"Healthy servers: {health.healthy_servers}/{health.total_servers}")


if __name__ == "__main__":
    asyncio.run(main())
