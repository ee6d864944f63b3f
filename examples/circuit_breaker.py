"""Circuit breaking, retries and timeouts, against a scripted server that starts failing.

    python examples/circuit_breaker.py
"""

import asyncio

from mcp_rust import (
    CircuitBreakerConfig,
    CircuitBreakerOpenError,
    MCPConfig,
    MCPError,
    RetryConfig,
)
from mcp_rust.testing import MCPTestHarness, MockMCPServer


async def main() -> None:
    cb_config = CircuitBreakerConfig(failure_threshold=3, success_threshold=2, timeout_secs=2, half_open_max_calls=1)
    async with MCPTestHarness(
        config=MCPConfig(request_timeout_ms=1000),
        circuit_breaker=cb_config,
        retry=RetryConfig(max_attempts=1),
    ) as harness:
        backend = harness.register_mock(MockMCPServer("models", tools={"list_models": "gpt, claude"}))
        manager = harness.create_manager()
        server_id = await manager.deploy_server({"name": "models", "type": "mock"}, wait_ready=True)

        print("healthy:", (await manager.execute_tool(server_id, "list_models", {}))["content"][0]["text"])

        backend.fail_http(503)
        for i in range(5):
            try:
                await manager.execute_tool(server_id, "list_models", {})
            except CircuitBreakerOpenError:
                print(f"call {i}: circuit breaker open, the server is left alone")
            except MCPError as e:
                print(f"call {i}: failed ({e.kind}): {e}")

        backend.clear_failures()
        print("server recovered; waiting for the breaker's open time...")
        await asyncio.sleep(2.5)
        for attempt in range(20):
            try:
                result = await manager.execute_tool(server_id, "list_models", {})
                print("after recovery:", result["content"][0]["text"])
                break
            except CircuitBreakerOpenError:
                await asyncio.sleep(0.5)

        backend.set_delay(3.0)
        try:
            await manager.execute_tool(server_id, "list_models", {})
        except MCPError as e:
            print("slow server:", "timeout" if e.is_timeout() else e.kind)


if __name__ == "__main__":
    asyncio.run(main())
