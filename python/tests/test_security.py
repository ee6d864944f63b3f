"""API tokens with roles through the Python client (issue 12): a caller token allowed
`time__*` calls the real PyPI `mcp-server-time`, is refused another server's tools, and is
refused on every node once revoked; the token never shows in a repr or an error."""

import asyncio
import json
import os
import subprocess
import time

import pytest

from mcp_rust import DistributedConfig, MCPManager, UnauthorizedError

from conftest import Cluster
from test_distributed import wait_healthy_instances

ADMIN = "adm1n-python-security-s3cret"


def mcpd(mcpd_bin: str, endpoint: str, *args: str) -> dict:
    env = dict(os.environ, MCPD_ADMIN_TOKEN=ADMIN)
    out = subprocess.run(
        [mcpd_bin, "--endpoint", endpoint, "-o", "json", *args],
        env=env, capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout)


async def test_a_caller_token_calls_only_its_tools_until_revoked(
    mcpd_bin, test_server_bin, time_server_spec
):
    cluster = Cluster(mcpd_bin, 3, extra_args=["--admin-token", ADMIN])
    try:
        admin = MCPManager(distributed=DistributedConfig(cluster_nodes=cluster.nodes, admin_token=ADMIN))
        async with admin:
            await admin.deploy_server(time_server_spec("time"))
            await admin.deploy_server({"name": "notes", "command": test_server_bin})
            await wait_healthy_instances(admin, "time", 1)
            await wait_healthy_instances(admin, "notes", 1)
        created = mcpd(
            mcpd_bin, cluster.nodes[0], "token", "create", "py-app", "--role", "caller", "--allow", "time__*"
        )
        token = created["token"]
        for node in cluster.nodes:
            config = DistributedConfig(cluster_nodes=[node], token=token)
            assert token not in repr(config) and config.has_token
            app = MCPManager(distributed=config)
            async with app:
                result = await app.execute_tool("time", "get_current_time", {"timezone": "UTC"})
                assert "UTC" in result["content"][0]["text"]
                with pytest.raises(UnauthorizedError) as refused:
                    await app.execute_tool("notes", "echo", {"text": "no"})
                assert token not in str(refused.value)
                with pytest.raises(UnauthorizedError):
                    await app.deploy_server({"name": "x", "command": test_server_bin})
        mcpd(mcpd_bin, cluster.nodes[1], "token", "revoke", "py-app")
        # Every node refuses the token once it has applied the revocation (milliseconds).
        for node in cluster.nodes:
            app = MCPManager(distributed=DistributedConfig(cluster_nodes=[node], token=token))
            async with app:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        await app.execute_tool("time", "get_current_time", {"timezone": "UTC"})
                    except UnauthorizedError:
                        break
                    assert time.monotonic() < deadline, f"{node} still accepts a revoked token"
                    await asyncio.sleep(0.05)
    finally:
        cluster.close()
