"""Cluster-wide guards seen from Python: a call over a server's rate limit raises
``RateLimitedError`` with the node's retry-after, on a real 3-node cluster."""

from __future__ import annotations

from mcp_rust import DistributedConfig, MCPManager, RateLimitedError
from mcp_rust.errors import MCPError


async def test_a_rate_limited_call_raises_with_retry_after(cluster3, test_server_bin):
    manager = MCPManager(distributed=DistributedConfig(cluster_nodes=cluster3.nodes))
    async with manager:
        server_id = await manager.deploy_server(
            {
                "name": "limited",
                "command": test_server_bin,
                "rate_limit": {"per_second": 1, "burst": 1},
            }
        )
        refused = None
        # One call a second for the whole cluster: a quick run of calls meets the limit.
        for _ in range(50):
            try:
                await manager.execute_tool(server_id, "echo", {"text": "x"})
            except RateLimitedError as e:
                refused = e
                break
            except MCPError as e:
                # The instance may still be starting: that is not what this test is about.
                if e.kind != "no_healthy_instance":
                    raise
        assert refused is not None, "50 quick calls never met a limit of 1/s"
        assert refused.kind == "rate_limited"
        assert refused.retry_after is not None and 0 < refused.retry_after <= 60
        assert "limited" in refused.message
