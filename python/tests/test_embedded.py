"""Embedded mode is zero-hop and closed: its node binds no socket, tool calls reach the
data plane without any connection, and only a manager asked for ``grpc_addr`` serves gRPC."""

from __future__ import annotations

import json
import os
import subprocess

from conftest import free_port

from mcp_rust import MCPManager


def _tcp_sockets_of_this_process():
    """(listening ports, number of other TCP sockets) owned by this process, from /proc."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    listening, connected = [], 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[9] not in inodes:
                    continue
                if fields[3] == "0A":  # TCP_LISTEN
                    listening.append(int(fields[1].rsplit(":", 1)[1], 16))
                else:
                    connected += 1
    return listening, connected


async def test_embedded_manager_binds_no_socket_and_calls_without_a_connection(test_server_bin):
    before = _tcp_sockets_of_this_process()
    async with MCPManager() as manager:
        server_id = await manager.deploy_server({"name": "closed", "command": test_server_bin})
        # Right after the deploy, while the instance may still be starting.
        result = await manager.execute_tool(server_id, "echo", {"text": "zero hop"})
        assert result["content"][0]["text"] == "zero hop"
        for i in range(20):
            await manager.execute_tool(server_id, "echo", {"text": str(i)})
        assert [s.name for s in await manager.list_servers()] == ["closed"]
        assert _tcp_sockets_of_this_process() == before, "the embedded node opened a TCP socket"
    assert _tcp_sockets_of_this_process() == before


async def test_grpc_addr_serves_the_embedded_node_to_the_cli(mcpd_bin, test_server_bin):
    addr = f"127.0.0.1:{free_port()}"
    async with MCPManager(grpc_addr=addr) as manager:
        await manager.deploy_server({"name": "visible", "command": test_server_bin}, wait_ready=True)
        listed = subprocess.run(
            [mcpd_bin, "--endpoint", addr, "-o", "json", "ls"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert listed.returncode == 0, listed.stderr
        assert "visible" in json.dumps(json.loads(listed.stdout))
        called = subprocess.run(
            [mcpd_bin, "--endpoint", addr, "-o", "json", "call", "visible", "echo", '{"text": "cli"}'],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert called.returncode == 0, called.stderr
        assert "cli" in called.stdout
