"""The blocking API: `mcp_rust.sync.MCPManagerSync`, in plain code, inside a running event
loop (as in Jupyter), and with the older `PyMcpManager` call shapes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

import pytest

from mcp_rust import ConfigError, ServerNotFoundError
from mcp_rust.sync import MCPManagerSync
from conftest import free_port, wait_for


@pytest.fixture
def http_test_server(test_server_bin):
    """The repo's test server over Streamable HTTP."""
    port = free_port()
    proc = subprocess.Popen(
        [test_server_bin, "--transport", "http", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import socket

        def listening():
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_for("the HTTP test server", 10, listening)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.kill()
        proc.wait()


def test_migration_guide_sync_wrapper(test_server_bin):
    manager = MCPManagerSync()
    try:
        server_id = manager.deploy_server({"name": "s", "command": test_server_bin}, wait_ready=True)
        assert server_id == "s" and server_id.success
        result = manager.execute_tool("s", "add", {"a": 40, "b": 2})
        assert result["content"][0]["text"] == "42"
        assert [s.name for s in manager.list_servers()] == ["s"]
        assert manager.get_server_state("s") == "running"
        assert manager.get_metrics().total_requests == 1
    finally:
        manager.stop()


def test_older_api_call_shapes(http_test_server):
    # The older document's example, with its url pointing at a real server.
    manager = MCPManagerSync()
    manager.start()
    try:
        config = {
            "name": "docker-server",
            "server_type": "infrastructure",
            "url": http_test_server,
            "auth": {"type": "api_key", "key": "secret"},
            "priority": 10,
            "tags": ["docker"],
        }
        manager.deploy_server("docker-1", json.dumps(config))
        wait_for("docker-1 ready", 20, lambda: manager.get_server_state("docker-1") == "running")

        response = manager.execute("docker-1", json.dumps({"method": "ping"}))
        assert isinstance(response, str)
        assert json.loads(response)["result"] == {}

        health = manager.get_health_status()
        assert (health.healthy_servers, health.total_servers) == (1, 1)

        servers = manager.list_servers()
        assert [(s.server_id, s.transport, s.priority) for s in servers] == [("docker-1", "http", 10)]
        assert sorted(servers[0].tags) == ["docker", "infrastructure"]
        assert "secret" not in servers[0].spec_json

        manager.scale_server("docker-1", 2)
        assert manager.list_servers()[0].replicas == 2
        assert "mcp_requests_total" in manager.export_prometheus_metrics()

        manager.undeploy_server("docker-1")
        with pytest.raises(ServerNotFoundError):
            manager.get_server_state("docker-1")
    finally:
        manager.stop()


def test_works_inside_a_running_event_loop(test_server_bin):
    """What a notebook cell does: call blocking methods while a loop runs in this thread."""

    async def notebook_cell():
        manager = MCPManagerSync()
        try:
            manager.deploy_server({"name": "nb", "command": test_server_bin}, wait_ready=True)
            return manager.execute_tool("nb", "echo", {"text": "in a loop"})
        finally:
            manager.stop()

    result = asyncio.run(notebook_cell())
    assert result["content"][0]["text"] == "in a loop"


async def test_older_async_variants(test_server_bin):
    manager = MCPManagerSync()
    try:
        await manager.start_async()
        await manager.deploy_server_async("av", json.dumps({"command": test_server_bin}))
        await manager.manager.wait_until_ready("av")
        response = await manager.execute_async("av", json.dumps({"method": "tools/list"}))
        assert "echo" in response
    finally:
        await manager.manager.stop()


def test_config_path(tmp_path, test_server_bin):
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"request_timeout_ms": 700, "retry": {"max_attempts": 1}}))
    manager = MCPManagerSync(config_path=str(path))
    try:
        manager.deploy_server({"name": "cp", "command": test_server_bin}, wait_ready=True)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            manager.execute_tool("cp", "sleep", {"ms": 30_000})
        assert time.monotonic() - started < 6
    finally:
        manager.stop()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"request_timeout_ms": -5}))
    with pytest.raises(ConfigError) as info:
        MCPManagerSync(config_path=str(bad))
    assert info.value.field == "request_timeout_ms"
