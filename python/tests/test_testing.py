"""The testing harness of the guide: mocks that are real MCP servers, deployed and called
through the real data plane."""

from __future__ import annotations

import time

import pytest

from mcp_rust import ConfigError, MCPServerError, MCPTimeoutError, MCPConfig
from mcp_rust.testing import MCPTestHarness, MockMCPServer


async def test_deployment():
    # The guide's snippet, as written.
    harness = MCPTestHarness()
    mock_server = MockMCPServer("test-server")

    harness.register_mock(mock_server)

    manager = harness.create_manager()
    result = await manager.deploy_server({"name": "test-server", "type": "mock"})

    assert result.success
    assert mock_server.was_deployed
    await harness.aclose()


async def test_scripted_results_and_recorded_calls():
    async with MCPTestHarness() as harness:
        mock = MockMCPServer("scripted")
        mock.add_tool("greet", lambda args: f"hello {args['who']}")
        mock.add_tool("stats", {"count": 3})
        harness.register_mock(mock)
        manager = harness.create_manager()
        assert not mock.was_deployed
        await manager.deploy_server({"name": "scripted", "type": "mock"}, wait_ready=True)
        assert mock.was_deployed

        greeting = await manager.execute_tool("scripted", "greet", {"who": "rust"})
        assert greeting["content"][0]["text"] == "hello rust"
        stats = await manager.execute_tool("scripted", "stats")
        assert stats["structuredContent"] == {"count": 3}
        tools = await manager.execute("scripted", {"method": "tools/list"})
        assert sorted(t["name"] for t in tools["tools"]) == ["greet", "stats"]

        calls = mock.tool_calls("greet")
        assert len(calls) == 1 and calls[0].arguments == {"who": "rust"}
        assert mock.was_called("stats")
        assert [c.method for c in mock.calls if c.method == "initialize"] == ["initialize"]

        mock.set_tool_result("greet", "changed")
        assert (await manager.execute_tool("scripted", "greet", {"who": "x"}))["content"][0]["text"] == "changed"


async def test_scripted_failures_and_delays():
    async with MCPTestHarness(config=MCPConfig(request_timeout_ms=500)) as harness:
        mock = MockMCPServer("failing", tools={"work": "done"})
        harness.register_mock(mock)
        manager = harness.create_manager()
        await manager.deploy_server({"name": "failing", "type": "mock"}, wait_ready=True)

        mock.fail_tool("work", code=-32042, message="quota exceeded", data={"retry_after": 5}, times=1)
        with pytest.raises(MCPServerError) as info:
            await manager.execute_tool("failing", "work")
        assert (info.value.code, info.value.rpc_message, info.value.data) == (-32042, "quota exceeded", {"retry_after": 5})
        # times=1: the next call succeeds.
        assert (await manager.execute_tool("failing", "work"))["content"][0]["text"] == "done"

        mock.set_delay(3.0, tool="work")
        started = time.monotonic()
        with pytest.raises(MCPTimeoutError):
            await manager.execute_tool("failing", "work")
        assert time.monotonic() - started < 3.0
        mock.clear_failures()


async def test_mock_must_be_registered():
    async with MCPTestHarness() as harness:
        manager = harness.create_manager()
        with pytest.raises(ConfigError) as info:
            await manager.deploy_server({"name": "ghost", "type": "mock"})
        assert info.value.field == "name"


async def test_harness_managers_deploy_real_servers_too(test_server_bin):
    async with MCPTestHarness() as harness:
        manager = harness.create_manager()
        await manager.deploy_server({"name": "real", "command": test_server_bin}, wait_ready=True)
        assert (await manager.execute_tool("real", "echo", {"text": "r"}))["content"][0]["text"] == "r"
