"""Acceptance 4: a hanging tool times out in about request_timeout, an open breaker raises
CircuitBreakerOpenError, and bad configuration raises on construction naming the field."""

from __future__ import annotations

import time

import pytest

from mcp_rust import (
    CircuitBreakerConfig,
    CircuitBreakerOpenError,
    ConfigError,
    DistributedConfig,
    MCPConfig,
    MCPManager,
    MCPServerError,
    MCPTimeoutError,
    MemoryConfig,
    PoolConfig,
    RetryConfig,
    ServerNotFoundError,
)
from mcp_rust.testing import MCPTestHarness, MockMCPServer


async def test_hanging_tool_times_out_after_request_timeout(test_server_bin):
    async with MCPManager(MCPConfig(request_timeout_ms=1000)) as manager:
        await manager.deploy_server({"name": "hang", "command": test_server_bin}, wait_ready=True)
        started = time.monotonic()
        with pytest.raises(MCPTimeoutError) as info:
            await manager.execute_tool("hang", "sleep", {"ms": 60_000})
        elapsed = time.monotonic() - started
        assert 0.9 <= elapsed < 6.0, elapsed
        assert isinstance(info.value, TimeoutError)
        assert info.value.is_timeout() and not info.value.is_connection_error()
        # The instance still answers afterwards.
        assert (await manager.execute_tool("hang", "echo", {"text": "ok"}))["content"][0]["text"] == "ok"


async def test_per_call_timeout_overrides(test_server_bin):
    async with MCPManager() as manager:
        await manager.deploy_server({"name": "hang", "command": test_server_bin}, wait_ready=True)
        started = time.monotonic()
        with pytest.raises(MCPTimeoutError):
            await manager.execute_tool("hang", "sleep", {"ms": 60_000}, timeout_ms=300)
        assert time.monotonic() - started < 5.0


async def test_open_breaker_raises_circuit_breaker_open_error():
    async with MCPTestHarness(
        circuit_breaker=CircuitBreakerConfig(failure_threshold=3, timeout_secs=60),
        retry=RetryConfig(max_attempts=1),
    ) as harness:
        mock = MockMCPServer("flaky", tools={"list_models": "[]"})
        harness.register_mock(mock)
        manager = harness.create_manager()
        await manager.deploy_server({"name": "flaky", "type": "mock"}, wait_ready=True)
        assert (await manager.execute_tool("flaky", "list_models", {}))["content"][0]["text"] == "[]"

        mock.fail_http(503)
        errors = []
        for _ in range(6):
            try:
                await manager.execute_tool("flaky", "list_models", {})
            except Exception as e:  # noqa: BLE001 - collected and checked below
                errors.append(e)
        assert len(errors) == 6
        # The first failure_threshold failures reach the server and fail; then the breaker
        # opens and refuses.
        assert all(e.is_connection_error() for e in errors[:3]), errors
        assert not any(e.is_circuit_breaker_open() for e in errors[:3]), errors
        assert isinstance(errors[-1], CircuitBreakerOpenError), errors
        assert errors[-1].is_circuit_breaker_open() and not errors[-1].is_timeout()
        calls_while_open = len(mock.tool_calls("list_models"))
        with pytest.raises(CircuitBreakerOpenError):
            await manager.execute_tool("flaky", "list_models", {})
        # An open breaker keeps calls away from the server.
        assert len(mock.tool_calls("list_models")) == calls_while_open


async def test_server_errors_keep_code_and_message(test_server_bin):
    async with MCPManager() as manager:
        await manager.deploy_server({"name": "e", "command": test_server_bin}, wait_ready=True)
        with pytest.raises(MCPServerError) as info:
            await manager.execute_tool("e", "fail", {"message": "no such model"})
        assert info.value.code == -32000
        assert info.value.rpc_message == "no such model"
        # The same through execute(): the JSON-RPC error object is raised from the response.
        with pytest.raises(MCPServerError) as info:
            await manager.execute("e", {"method": "tools/call", "params": {"name": "fail", "arguments": {}}})
        assert info.value.code == -32000
        # Unknown methods are a JSON-RPC error too.
        with pytest.raises(MCPServerError) as info:
            await manager.execute("e", {"method": "no/such/method"})
        assert info.value.code == -32601
        with pytest.raises(ServerNotFoundError):
            await manager.execute_tool("nope", "echo", {})


@pytest.mark.parametrize(
    "build, field",
    [
        (lambda: MCPConfig(request_timeout_ms=0), "request_timeout_ms"),
        (lambda: MCPConfig(max_connections_per_server=-1), "max_connections_per_server"),
        (lambda: MCPConfig(retry_backoff_multiplier=0.5), "retry_backoff_multiplier"),
        (lambda: MCPConfig(enable_load_balancing=False), "enable_load_balancing"),
        (lambda: MCPConfig(circuit_breaker_recovery_secs=-1), "circuit_breaker_recovery_secs"),
        (lambda: CircuitBreakerConfig(failure_threshold=0), "failure_threshold"),
        (lambda: CircuitBreakerConfig(timeout_secs=0), "timeout_secs"),
        (lambda: RetryConfig(max_attempts=0), "max_attempts"),
        (lambda: RetryConfig(initial_delay_ms=500, max_delay_ms=100), "max_delay_ms"),
        (lambda: PoolConfig(initial_size=10, max_size=5), "max_size"),
        (lambda: PoolConfig(idle_timeout_secs=0), "idle_timeout_secs"),
        (lambda: MemoryConfig(arena_size_mb=0), "arena_size_mb"),
        (lambda: DistributedConfig(cluster_nodes=[]), "cluster_nodes"),
        (lambda: DistributedConfig(cluster_nodes="a:1"), "cluster_nodes"),
        (lambda: DistributedConfig(cluster_nodes=["no-port"]), "cluster_nodes"),
        (lambda: DistributedConfig(cluster_nodes=["a:1"], node_id="node-x"), "node_id"),
        (lambda: DistributedConfig(cluster_nodes=["a:1"], leader_election_timeout_secs=0), "leader_election_timeout_secs"),
        (lambda: DistributedConfig(cluster_nodes=["1=127.0.0.1:1", "2=127.0.0.1:2"], node_id=3), "node_id"),
        (lambda: MCPManager(metrics_port=70000), "metrics_port"),
        (lambda: MCPManager(metrics_port=9, metrics_path="metrics"), "metrics_path"),
        (lambda: MCPManager(enable_metrics=False, metrics_port=9090), "metrics_port"),
    ],
)
def test_bad_config_raises_on_construction_naming_the_field(build, field):
    with pytest.raises(ConfigError) as info:
        build()
    assert info.value.field == field
    assert field in str(info.value)
    assert isinstance(info.value, ValueError)


def test_config_objects_are_readable_and_frozen():
    config = PoolConfig(max_size=7)
    assert config.max_size == 7
    with pytest.raises(AttributeError):
        config.max_size = 8  # type: ignore[misc]
    assert "max_size=7" in repr(config)


def test_secrets_never_in_repr():
    config = DistributedConfig(cluster_nodes=["127.0.0.1:1"], admin_token="s3cret")
    assert "s3cret" not in repr(config)
    assert config.has_admin_token


async def test_bad_spec_names_the_field(test_server_bin):
    async with MCPManager() as manager:
        with pytest.raises(ConfigError) as info:
            await manager.deploy_server({"name": "x", "transport": "stdio"})
        assert info.value.field == "command"
        with pytest.raises(ConfigError) as info:
            await manager.deploy_server({"name": "x", "command": test_server_bin, "replicaz": 2})
        assert info.value.field == "replicaz"
        with pytest.raises(ConfigError) as info:
            await manager.scale_server("x", -1)
        # The error names the argument the caller passed (the server's desired replicas).
        assert info.value.field == "instances"
