"""Testing code that uses mcp_rust with scripted MCP servers (run with pytest).

    pytest examples/test_with_mocks.py
"""

import asyncio

from mcp_rust import MCPServerError
from mcp_rust.testing import MCPTestHarness, MockMCPServer


async def summarize(manager, server_id: str, text: str) -> str:
    """The code under test: calls a tool, falls back on a server error."""
    try:
        result = await manager.execute_tool(server_id, "summarize", {"text": text})
        return result["content"][0]["text"]
    except MCPServerError:
        return text[:10]


def test_summarize_uses_the_tool_and_falls_back():
    async def scenario():
        async with MCPTestHarness() as harness:
            mock = MockMCPServer("summarizer")
            mock.add_tool("summarize", lambda args: args["text"].upper())
            harness.register_mock(mock)
            manager = harness.create_manager()
            result = await manager.deploy_server({"name": "summarizer", "type": "mock"})
            assert result.success and mock.was_deployed

            assert await summarize(manager, "summarizer", "hello") == "HELLO"
            assert mock.tool_calls("summarize")[0].arguments == {"text": "hello"}

            mock.fail_tool("summarize", code=-32000, message="model overloaded", times=1)
            assert await summarize(manager, "summarizer", "a long text to cut") == "a long tex"

    asyncio.run(scenario())
