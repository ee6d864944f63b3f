"""``MCPManagerSync``: the same manager with blocking methods, for scripts and notebooks.

It runs the async manager on a private event loop in a background thread, so it works
where an event loop is already running in the calling thread (Jupyter) without
``nest_asyncio``. It also accepts the older ``PyMcpManager`` call shapes::

    manager = MCPManagerSync()
    manager.start()
    manager.deploy_server("time", json.dumps({"command": "python3", "args": [...]}))
    response_json = manager.execute("time", json.dumps({"method": "tools/list"}))
    health = manager.get_health_status()
    manager.stop()
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from concurrent.futures import Future
from typing import Any, Awaitable, Dict, List, Mapping, Optional, TypeVar

from . import _native
from ._native import (
    CircuitBreakerConfig,
    DistributedConfig,
    HealthStatus,
    MCPConfig,
    MemoryConfig,
    MemoryStats,
    Metrics,
    PoolConfig,
    RetryConfig,
    ServerInfo,
)
from ._spec import SpecLike
from .errors import ConfigError
from .manager import DeployResult, MCPManager, RequestLike

__all__ = ["MCPManagerSync", "PyMcpManager", "PyHealthStatus", "PyServerInfo"]

T = TypeVar("T")


class _LoopThread:
    """One daemon thread running an event loop for every sync manager of the process."""

    _instance: Optional["_LoopThread"] = None
    _guard = threading.Lock()

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, name="mcp-rust-sync", daemon=True)
        self.thread.start()
        ready.wait()

    @classmethod
    def get(cls) -> "_LoopThread":
        with cls._guard:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def run(self, coro: Awaitable[T]) -> T:
        if threading.current_thread() is self.thread:
            raise RuntimeError("MCPManagerSync methods cannot be called from its own event loop thread")
        future: Future = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]
        return future.result()


_SECTIONS = {
    "circuit_breaker": CircuitBreakerConfig,
    "retry": RetryConfig,
    "pool": PoolConfig,
    "memory": MemoryConfig,
}


def _load_config_file(path: str) -> Dict[str, Any]:
    """Manager keyword arguments from a JSON or TOML file: top-level keys are
    :class:`MCPConfig` fields; tables ``circuit_breaker``, ``retry``, ``pool``, ``memory``
    and ``distributed`` build those objects."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e}", field="config_path") from None
    if path.endswith(".toml"):
        try:
            import tomllib  # type: ignore[import-not-found]
        except ImportError:  # Python < 3.11
            raise ConfigError("TOML config files need Python 3.11+; use JSON", field="config_path") from None
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except ValueError as e:
            raise ConfigError(f"{path}: {e}", field="config_path") from None
    else:
        try:
            data = json.loads(raw)
        except ValueError as e:
            raise ConfigError(f"{path}: {e}", field="config_path") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold an object", field="config_path")
    kwargs: Dict[str, Any] = {}
    for key, cls in _SECTIONS.items():
        if key in data:
            kwargs[key] = cls(**data.pop(key))
    if "distributed" in data:
        section = dict(data.pop("distributed"))
        kwargs["distributed"] = DistributedConfig(section.pop("cluster_nodes", []), **section)
    for key in ("metrics_port", "metrics_path", "metrics_host", "data_dir"):
        if key in data:
            kwargs[key] = data.pop(key)
    if data:
        kwargs["config"] = MCPConfig(**data)
    return kwargs


class MCPManagerSync:
    """Blocking version of :class:`~mcp_rust.MCPManager`; same arguments, plus
    ``config_path`` (a JSON or TOML file with the same settings)."""

    def __init__(self, config_path: Optional[str] = None, **kwargs: Any) -> None:
        if config_path is not None:
            from_file = _load_config_file(os.fspath(config_path))
            from_file.update(kwargs)
            kwargs = from_file
        self._loop = _LoopThread.get()
        self.manager = MCPManager(**kwargs)

    def _run(self, coro: Awaitable[T]) -> T:
        return self._loop.run(coro)

    # lifecycle
    def start(self) -> None:
        """Starts the manager."""
        self._run(self.manager.start())

    def stop(self) -> None:
        """Stops the manager."""
        self._run(self.manager.stop())

    close = stop

    def __enter__(self) -> "MCPManagerSync":
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @property
    def is_running(self) -> bool:
        """True while started."""
        return self.manager.is_running

    # registry
    def deploy_server(self, config_or_id: Any, config: Optional[SpecLike] = None, **kwargs: Any) -> DeployResult:
        """``deploy_server(spec)`` or ``deploy_server(server_id, config_json)``; same
        keywords as :meth:`MCPManager.deploy_server`."""
        return self._run(self.manager.deploy_server(config_or_id, config, **kwargs))

    def wait_until_ready(self, server_id: str, timeout: float = 30.0) -> str:
        """Waits until the server has a healthy instance."""
        return self._run(self.manager.wait_until_ready(server_id, timeout))

    def undeploy_server(self, server_id: str) -> int:
        """Removes a server."""
        return self._run(self.manager.undeploy_server(server_id))

    def scale_server(self, server_id: str, instances: int) -> int:
        """Sets the number of instances."""
        return self._run(self.manager.scale_server(server_id, instances))

    def list_servers(self) -> List[ServerInfo]:
        """Every deployed server."""
        return self._run(self.manager.list_servers())

    # calls
    def execute(self, server_id: str, request: RequestLike, **kwargs: Any) -> Any:
        """JSON text in, JSON text out (the older API); or dict in, result out."""
        return self._run(self.manager.execute(server_id, request, **kwargs))

    def execute_tool(self, server_id: str, tool_name: str, params: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> Dict[str, Any]:
        """Calls a tool and returns its result."""
        return self._run(self.manager.execute_tool(server_id, tool_name, params, **kwargs))

    # observation
    def get_metrics(self) -> Metrics:
        """Request statistics."""
        return self._run(self.manager.get_metrics())

    def get_health_status(self) -> HealthStatus:
        """Health of every server."""
        return self._run(self.manager.get_health_status())

    def get_server_state(self, server_id: str) -> str:
        """One server's state word."""
        return self.manager.get_server_state(server_id)

    def export_metrics_prometheus(self) -> str:
        """Prometheus text."""
        return self.manager.export_metrics_prometheus()

    export_prometheus_metrics = export_metrics_prometheus

    def get_memory_stats(self) -> MemoryStats:
        """Memory held by the package's Rust code."""
        return _native.memory_stats()

    # the older API's async variants, for callers that have a loop
    async def start_async(self) -> None:
        """Awaitable :meth:`start` (runs in the caller's event loop)."""
        await self.manager.start()

    async def execute_async(self, server_id: str, request: RequestLike, **kwargs: Any) -> Any:
        """Awaitable :meth:`execute`."""
        return await self.manager.execute(server_id, request, **kwargs)

    async def deploy_server_async(self, config_or_id: Any, config: Optional[SpecLike] = None) -> DeployResult:
        """Awaitable :meth:`deploy_server`."""
        return await self.manager.deploy_server(config_or_id, config)

    def __repr__(self) -> str:
        return f"<MCPManagerSync mode={self.manager.mode} {'running' if self.is_running else 'stopped'}>"


#: The older bindings' names.
PyMcpManager = MCPManagerSync
PyHealthStatus = HealthStatus
PyServerInfo = ServerInfo
