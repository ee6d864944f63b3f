"""Every snippet of the migration guide (the Python API that `mcp_rust` keeps, described in
docs/python.md), run as written where it is real code; pseudo-code (`create_config(i)`,
`...`) is filled in with real servers."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import urllib.request
from os import cpu_count
from pathlib import Path

import pytest

from mcp_rust import (
    CircuitBreakerConfig,
    CircuitBreakerOpenError,
    ConfigError,
    ConnectionPool,
    MCPConfig,
    MCPError,
    MCPManager,
    MCPServer,
    MemoryConfig,
    PoolConfig,
    RetryConfig,
)


async def test_step2_imports():
    try:
        from mcp_rust import MCPManager, MCPServer, MCPConfig  # noqa: F401,F811

        implementation = "rust"
    except ImportError:
        implementation = "python"
    assert implementation == "rust"


def test_step3_config_takes_the_guide_keywords():
    config = MCPConfig(
        max_connections_per_server=20,
        connection_timeout_ms=1000,
        request_timeout_ms=5000,
        health_check_interval_secs=60,
        max_retries=2,
        retry_backoff_multiplier=1.5,
        enable_connection_pooling=True,
        enable_load_balancing=True,
        enable_health_checks=True,
        enable_metrics=True,
        circuit_breaker_threshold=5,
        circuit_breaker_recovery_secs=30,
    )
    assert config.request_timeout_ms == 5000
    assert config.retry_backoff_multiplier == 1.5
    manager = MCPManager(config)
    assert manager.mode == "embedded"


def test_step4_async_deploy_and_sync_compatibility(test_server_bin):
    spec = {"name": "step4", "command": test_server_bin}

    async def deploy_server(config):
        manager = MCPManager()
        try:
            server_id = await manager.deploy_server(config)
            return server_id
        finally:
            await manager.stop()

    def deploy_server_sync(config):
        return asyncio.run(deploy_server(config))

    assert deploy_server_sync(spec) == "step4"


async def test_step5_error_categories(test_server_bin):
    async with MCPManager(MCPConfig(request_timeout_ms=500)) as manager:
        server_id = await manager.deploy_server(
            {"name": "errs", "command": test_server_bin}, wait_ready=True
        )
        seen = []
        for tool_name, params in [("sleep", {"ms": 3000}), ("fail", {"message": "nope"}), ("missing-server", {})]:
            target = server_id if tool_name != "missing-server" else "no-such-server"
            try:
                await manager.execute_tool(target, tool_name, params)
            except MCPError as e:
                if e.is_connection_error():
                    seen.append("connection")
                elif e.is_timeout():
                    seen.append("timeout")
                elif e.is_circuit_breaker_open():
                    seen.append("circuit")
                else:
                    seen.append(type(e).__name__)
        assert seen == ["timeout", "MCPServerError", "ServerNotFoundError"]


@pytest.fixture(scope="session")
def docker_server_image(test_server_bin):
    """The image Example 1 deploys by name (``docker-server``): built offline, FROM scratch
    with the repo's test server serving Streamable HTTP on port 8001. Needs a Docker engine
    (CI has one); without one the test says so and is skipped."""
    engine = subprocess.run(
        ["docker", "version", "--format", "{{.Server.APIVersion}}"], capture_output=True
    )
    if engine.returncode != 0:
        pytest.skip("no Docker engine answers on this machine: Example 1 needs one")
    script = Path(__file__).resolve().parents[2] / "tests" / "docker" / "build-test-image.sh"
    subprocess.run(
        [str(script), "--bin", test_server_bin, "--tag", "mcp-rust/test-server:python",
         "--http-tag", "docker-server:latest"],
        check=True,
        capture_output=True,
    )
    return "docker-server"


def _containers(label: str) -> list:
    out = subprocess.run(
        ["docker", "ps", "-a", "-q", "--filter", f"label={label}"],
        check=True, capture_output=True, text=True,
    )
    return out.stdout.split()


async def test_example1_docker_server_runs_end_to_end(docker_server_image):
    # As the guide writes it: the image is named after the server, which listens on 8001.
    manager = MCPManager()
    try:
        server_config = {
            "name": "docker-server",
            "type": "docker",
            "port": 8001,
            "env": {"API_KEY": "secret"},
        }
        server_id = await manager.deploy_server(server_config)
        assert server_id == "docker-server"
        # The first call waits for the container to come up.
        result = await manager.execute_tool(server_id, "echo", {"text": "from the container"})
        assert result["isError"] is False
        assert "from the container" in json.dumps(result)
        # The spec's env reached the container.
        env = await manager.execute_tool(server_id, "env", {"name": "API_KEY"})
        assert env["content"][0]["text"] == "secret"
        assert len(_containers("io.mcp-rust.server=docker-server")) == 1
        listed = {s.name: s for s in await manager.list_servers()}
        assert listed["docker-server"].transport == "docker"
        assert "secret" not in listed["docker-server"].spec_json
        await manager.undeploy_server(server_id)
        deadline = asyncio.get_running_loop().time() + 30
        while _containers("io.mcp-rust.server=docker-server"):
            assert asyncio.get_running_loop().time() < deadline, "the container outlived undeploy"
            await asyncio.sleep(0.2)
    finally:
        await manager.stop()
    assert _containers("io.mcp-rust.server=docker-server") == []


async def test_example1_same_flow_with_a_real_stdio_server(time_server_spec):
    manager = MCPManager()
    try:
        server_config = time_server_spec("time-server", env={"API_KEY": "secret"})
        server_id = await manager.deploy_server(server_config, wait_ready=True)
        assert server_id == "time-server"
        result = await manager.execute_tool(server_id, "get_current_time", {"timezone": "UTC"})
        assert result["isError"] is False
        assert "UTC" in json.dumps(result)
        listed = {s.name: s for s in await manager.list_servers()}
        assert "secret" not in listed["time-server"].spec_json
    finally:
        await manager.stop()


async def test_guide_pattern_call_right_after_deploy(time_server_spec):
    """The guide's own first pattern: deploy, then call at once, without ``wait_ready``.
    The call waits for the instance that is still starting."""
    async with MCPManager() as manager:
        server_id = await manager.deploy_server(time_server_spec("quick-time"))
        result = await manager.execute_tool(server_id, "get_current_time", {"timezone": "UTC"})
        assert result["isError"] is False
        assert "UTC" in json.dumps(result)


async def test_example2_connection_pool(test_server_bin):
    async with MCPManager() as manager:
        await manager.deploy_server({"name": "server-1", "command": test_server_bin}, wait_ready=True)
        request = {"method": "tools/call", "params": {"name": "echo", "arguments": {"text": "pooled"}}}

        config = PoolConfig(
            initial_size=10,
            max_size=100,
            connection_timeout_ms=1000,
            idle_timeout_secs=300,
            health_check_interval_secs=30,
            enable_keepalive=True,
        )

        pool = ConnectionPool(config)
        async with pool.get_connection("server-1") as conn:
            result = await conn.execute(request)
            assert pool.in_use("server-1") == 1
        assert pool.in_use("server-1") == 0
        assert result["content"][0]["text"] == "pooled"


async def test_pool_waits_at_most_connection_timeout_for_a_slot(test_server_bin):
    async with MCPManager() as manager:
        await manager.deploy_server({"name": "server-1", "command": test_server_bin})
        pool = ConnectionPool(PoolConfig(max_size=1, connection_timeout_ms=200), manager=manager)
        async with pool.get_connection("server-1"):
            with pytest.raises(MCPError) as info:
                async with pool.get_connection("server-1"):
                    pass
            assert info.value.is_timeout()


async def test_example3_circuit_breaker_opens(test_server_bin):
    cb_config = CircuitBreakerConfig(
        failure_threshold=3,
        success_threshold=2,
        timeout_secs=30,
        half_open_max_calls=3,
    )
    manager = MCPManager(circuit_breaker=cb_config, retry=RetryConfig(max_attempts=1))
    try:
        server_id = await manager.deploy_server(
            {"name": "flaky", "command": test_server_bin}, wait_ready=True
        )
        # `garbage` breaks the session (output that is not JSON-RPC): a failure of the
        # instance. It restarts, and the breaker counts; soon it is open.
        opened = False
        for _ in range(20):
            try:
                await manager.execute_tool(server_id, "garbage", {})
            except CircuitBreakerOpenError:
                opened = True
                break
            except MCPError:
                await asyncio.sleep(0.3)
        assert opened
        try:
            result = await manager.execute_tool(server_id, "list_models", {})
        except CircuitBreakerOpenError as e:
            assert e.is_circuit_breaker_open()
            result = None
        assert result is None
        assert manager.get_server_state(server_id) in ("circuit_open", "restarting", "starting")
    finally:
        await manager.stop()


async def test_example4_metrics_and_prometheus(test_server_bin):
    manager = MCPManager(enable_metrics=True)
    try:
        await manager.deploy_server({"name": "m", "command": test_server_bin}, wait_ready=True)
        for i in range(10):
            await manager.execute_tool("m", "add", {"a": i, "b": 1})
        with pytest.raises(MCPError) as info:
            await manager.execute_tool("m", "sleep", {"ms": 2000}, timeout_ms=100)
        assert info.value.is_timeout()

        metrics = await manager.get_metrics()
        assert metrics.total_requests == 11
        assert metrics.successful_requests == 10
        assert metrics.success_rate == pytest.approx(100 * 10 / 11)
        assert metrics.avg_latency_ms > 0
        assert metrics.p99_latency_ms >= metrics.avg_latency_ms * 0.5
        assert metrics.servers["m"].total_requests == 11

        prometheus_data = manager.export_metrics_prometheus()
        assert 'mcp_requests_total{' in prometheus_data
        assert 'server="m"' in prometheus_data
    finally:
        await manager.stop()


async def test_metrics_disabled_is_refused():
    manager = MCPManager(enable_metrics=False)
    try:
        with pytest.raises(ConfigError) as info:
            await manager.get_metrics()
        assert info.value.field == "enable_metrics"
    finally:
        await manager.stop()


async def test_batch_deploy_of_1000_configs():
    def create_config(i):
        # replicas 0: registered, nothing started (1,000 processes would not be a test of
        # the deploy path).
        return {"name": f"batch-{i}", "command": "/bin/true", "replicas": 0, "tags": ["batch"]}

    async def batch_deploy(configs):
        manager = MCPManager()
        try:
            tasks = [manager.deploy_server(config) for config in configs]
            results = await asyncio.gather(*tasks)
            listed = await manager.list_servers()
            return results, listed
        finally:
            await manager.stop()

    configs = [create_config(i) for i in range(1000)]
    results, listed = await batch_deploy(configs)
    assert sorted(results) == sorted(f"batch-{i}" for i in range(1000))
    assert all(r.success and r.created for r in results)
    assert len(listed) == 1000


async def test_memory_config(test_server_bin):
    mem_config = MemoryConfig(
        enable_object_pooling=True,
        pool_size=10000,
        enable_arena_allocation=True,
        arena_size_mb=1,
    )
    manager = MCPManager(memory=mem_config)
    try:
        await manager.deploy_server({"name": "mem", "command": test_server_bin}, wait_ready=True)
        small = await manager.execute_tool("mem", "huge", {"bytes": 1000})
        assert small["isError"] is False
        # A message above arena_size_mb ends the session: the call fails.
        with pytest.raises(MCPError):
            await manager.execute_tool("mem", "huge", {"bytes": 2 * 1024 * 1024})
    finally:
        await manager.stop()


def _run_python(code: str, **env) -> str:
    full_env = dict(os.environ)
    full_env.update(env)
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_cpu_affinity_and_thread_pool_size_take_effect():
    out = _run_python(
        """
        import os
        os.environ['MCP_CPU_AFFINITY'] = '0'
        os.environ['MCP_THREAD_POOL_SIZE'] = '3'
        import asyncio, json, pathlib
        from mcp_rust import MCPManager, runtime_info
        manager = MCPManager()
        async def use():
            await manager.start()
            await manager.stop()
        asyncio.run(use())
        info = runtime_info()
        workers = []
        for task in pathlib.Path('/proc/self/task').iterdir():
            name = (task / 'comm').read_text().strip()
            if name.startswith('mcp-rust-worker'):
                status = (task / 'status').read_text()
                cpus = [l.split(':')[1].strip() for l in status.splitlines() if l.startswith('Cpus_allowed_list')][0]
                workers.append(cpus)
        print(json.dumps({"info": info, "workers": workers}))
        """
    )
    data = json.loads(out)
    assert data["info"] == {"worker_threads": 3, "cpu_affinity": [0]}
    # The 3 workers (and any blocking-pool threads, which share the name), all on CPU 0.
    assert len(data["workers"]) >= 3
    assert set(data["workers"]) == {"0"}


def test_bad_thread_pool_size_is_a_config_error():
    out = _run_python(
        """
        import os
        os.environ['MCP_THREAD_POOL_SIZE'] = 'lots'
        from mcp_rust import MCPManager, ConfigError
        try:
            MCPManager()
        except ConfigError as e:
            print(e.field)
        """
    )
    assert out.strip() == "MCP_THREAD_POOL_SIZE"


def test_memory_tracking(test_server_bin):
    out = _run_python(
        f"""
        import os, asyncio, json
        os.environ['MCP_TRACK_MEMORY'] = '1'
        from mcp_rust import MCPManager
        async def main():
            async with MCPManager() as manager:
                await manager.deploy_server({{"name": "t", "command": {test_server_bin!r}}}, wait_ready=True)
                await manager.execute_tool("t", "huge", {{"bytes": 4000000}})
                stats = manager.get_memory_stats()
                print(json.dumps([stats.tracking, stats.current_bytes, stats.peak_bytes, stats.total_allocations]))
        asyncio.run(main())
        """
    )
    tracking, current, peak, allocations = json.loads(out.strip().splitlines()[-1])
    assert tracking is True
    assert current > 0
    # The 4 MB answer passed through Rust buffers.
    assert peak >= 4_000_000
    assert allocations > 1000


def test_memory_stats_without_tracking_say_so():
    out = _run_python(
        """
        from mcp_rust import MCPManager
        stats = MCPManager().get_memory_stats()
        print(stats.tracking, stats.total_allocations)
        """,
        MCP_TRACK_MEMORY="0",
    )
    assert out.split() == ["False", "0"]


async def test_best_practice_context_manager_and_explicit_lifecycle(test_server_bin):
    async with MCPManager() as manager:
        await manager.deploy_server({"name": "ctx", "command": test_server_bin}, wait_ready=True)
        result = await manager.execute_tool("ctx", "echo", {"text": "ctx"})
        assert result["content"][0]["text"] == "ctx"
        assert manager.is_running
    assert not manager.is_running

    manager = MCPManager()
    await manager.start()
    try:
        assert manager.is_running
        assert (await manager.get_health_status()).total_servers == 0
    finally:
        await manager.stop()
    assert not manager.is_running


async def test_best_practice_retry_config(test_server_bin):
    retry_config = RetryConfig(
        max_attempts=3,
        initial_delay_ms=100,
        max_delay_ms=5000,
        exponential_base=2.0,
        jitter=True,
    )
    manager = MCPManager(retry=retry_config)
    try:
        await manager.deploy_server(
            {"name": "r", "command": test_server_bin, "replicas": 2}, wait_ready=True
        )
        # tools/list is safe to repeat; whoami shows both replicas answer.
        tools = await manager.execute("r", {"method": "tools/list"})
        assert any(t["name"] == "whoami" for t in tools["tools"])
    finally:
        await manager.stop()


async def test_best_practice_metrics_port_serves_prometheus(test_server_bin):
    prometheus_client = pytest.importorskip("prometheus_client")
    manager = MCPManager(metrics_port=0, metrics_path="/metrics")
    try:
        await manager.start()
        await manager.deploy_server({"name": "p", "command": test_server_bin}, wait_ready=True)

        custom_counter = prometheus_client.Counter(
            "mcp_custom_operations_total", "Custom operation counter"
        )

        @custom_counter.count_exceptions()
        async def custom_operation():
            return await manager.execute_tool("p", "echo", {"text": "x"})

        await custom_operation()
        url = f"http://{manager.metrics_address}/metrics"
        body = await asyncio.get_running_loop().run_in_executor(
            None, lambda: urllib.request.urlopen(url, timeout=5).read().decode()
        )
        assert 'mcp_requests_total{' in body and 'server="p"' in body
        assert "# TYPE mcp_requests_total counter" in body
    finally:
        await manager.stop()


async def test_performance_tuning_pool_config():
    pool_config = PoolConfig(
        initial_size=cpu_count() * 2,
        max_size=cpu_count() * 10,
        connection_timeout_ms=500,
        idle_timeout_secs=600,
        health_check_interval_secs=30,
        enable_keepalive=True,
        keepalive_interval_secs=60,
    )
    manager = MCPManager(pool=pool_config)
    assert manager.pool_config.max_size == cpu_count() * 10


async def test_mcp_server_handle(test_server_bin):
    async with MCPManager() as manager:
        await manager.deploy_server({"name": "h", "command": test_server_bin}, wait_ready=True)
        server = manager.server("h")
        assert isinstance(server, MCPServer)
        assert (await server.execute_tool("add", {"a": 2, "b": 3}))["content"][0]["text"] == "5"
        assert "echo" in [t["name"] for t in await server.list_tools()]
        await server.scale(2)
        assert [s.replicas for s in await manager.list_servers()] == [2]
        await server.undeploy()
        assert await manager.list_servers() == []


def test_a_manager_never_stopped_exits_cleanly(test_server_bin):
    """Example 1 never stops its manager: the script still exits 0, and the server
    process it started does not outlive it."""
    out = _run_python(
        f"""
        import asyncio
        from mcp_rust import MCPManager

        async def main():
            manager = MCPManager()
            await manager.deploy_server({{"name": "left", "command": {test_server_bin!r}}}, wait_ready=True)
            who = await manager.execute_tool("left", "whoami", {{}})
            print(who["content"][0]["text"])

        asyncio.run(main())
        """
    )
    pid = int(out.strip().rsplit("pid=", 1)[1])

    def gone():
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().split(")")[-1].split()[0] == "Z"
        except OSError:
            return True

    from conftest import wait_for

    wait_for("the server process to exit with its parent", 10, gone)


async def test_troubleshooting_debug_logging(test_server_bin, caplog):
    import logging

    logging.getLogger("mcp_rust").setLevel(logging.DEBUG)
    with caplog.at_level(logging.DEBUG, logger="mcp_rust"):
        async with MCPManager() as manager:
            await manager.deploy_server({"name": "logged", "command": test_server_bin})
    messages = [r.getMessage() for r in caplog.records if r.name == "mcp_rust"]
    assert any(m.startswith("manager started: mode=embedded") for m in messages), messages
    assert any(m.startswith("deployed logged (revision") for m in messages), messages


async def test_embedded_data_dir_survives_a_restart(tmp_path, test_server_bin):
    async with MCPManager(data_dir=str(tmp_path / "state")) as manager:
        await manager.deploy_server({"name": "kept", "command": test_server_bin, "replicas": 0})
    async with MCPManager(data_dir=str(tmp_path / "state")) as manager:
        assert [s.name for s in await manager.list_servers()] == ["kept"]
