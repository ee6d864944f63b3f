"""``MCPManager``: deploy, scale and call MCP servers on an embedded or remote cluster."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
import weakref
from typing import Any, Dict, List, Mapping, Optional, Union

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
from ._spec import SpecLike, normalize
from .errors import InvalidRequestError, MCPTimeoutError, server_error_from_response

__all__ = ["MCPManager", "MCPServer", "DeployResult"]

RequestLike = Union[Mapping[str, Any], str, bytes]

# The package's Python-side events (start, stop, deploys); the Rust side logs to stderr
# under MCP_LOG.
log = logging.getLogger("mcp_rust")

_lock = threading.Lock()
_running: "weakref.WeakSet[MCPManager]" = weakref.WeakSet()
_last_started: Optional["weakref.ReferenceType[MCPManager]"] = None


def default_manager() -> Optional["MCPManager"]:
    """The most recently started manager that is still running, if any."""
    with _lock:
        manager = _last_started() if _last_started is not None else None
        if manager is not None and manager.is_running:
            return manager
        for other in list(_running):
            if other.is_running:
                return other
    return None


class DeployResult(str):
    """What ``deploy_server`` returns: the server id (it *is* a ``str``), plus details.

    Attributes:
        success: always True (a failed deploy raises instead).
        server_id: the server id, as a plain ``str``.
        revision: registry revision after the write.
        created: True if the server was new, False if an existing one was replaced.
        log_index: Raft log index of the committed write.
    """

    success: bool
    server_id: str
    revision: int
    created: bool
    log_index: int

    def __new__(cls, server_id: str, revision: int, created: bool, log_index: int) -> "DeployResult":
        obj = super().__new__(cls, server_id)
        obj.success = True
        obj.server_id = str(server_id)
        obj.revision = revision
        obj.created = created
        obj.log_index = log_index
        return obj

    def __repr__(self) -> str:
        return (
            f"DeployResult({self.server_id!r}, revision={self.revision}, "
            f"created={self.created}, log_index={self.log_index})"
        )


_request_ids = itertools.count(1)


def _request_text(request: RequestLike) -> str:
    """The request as JSON text, with ``jsonrpc`` and an ``id`` added when missing
    (``{"method": "tools/list"}`` is a request, not a notification; a ``notifications/...``
    method without id stays a notification)."""
    if isinstance(request, (bytes, bytearray)):
        request = request.decode("utf-8")
    if isinstance(request, str):
        try:
            parsed = json.loads(request)
        except ValueError as e:
            raise InvalidRequestError(f"the request is not valid JSON: {e}") from None
        if not isinstance(parsed, dict):
            raise InvalidRequestError("a request must be a JSON object")
        request = parsed
    if not isinstance(request, Mapping):
        raise InvalidRequestError(
            f"a request must be a dict or JSON text, got {type(request).__name__}"
        )
    message = dict(request)
    message.setdefault("jsonrpc", "2.0")
    method = message.get("method")
    if "id" not in message and not (isinstance(method, str) and method.startswith("notifications/")):
        message["id"] = next(_request_ids)
    return json.dumps(message)


class MCPManager:
    """Manages MCP servers on a cluster.

    Without ``distributed``, the manager runs an in-process single-node cluster (the same
    Rust code as ``mcpd``), with its data in a temporary directory unless ``data_dir`` is
    given. With ``distributed=DistributedConfig(...)`` it is a client of a running cluster,
    or, with ``node_id`` set, one of its nodes.

    The manager starts on first use (or with ``await start()`` / ``async with``). Every
    coroutine runs its work on the module's Rust runtime without holding the GIL.

    Args:
        config: data-plane settings (:class:`MCPConfig`).
        circuit_breaker: per-instance breaker settings; override ``config``'s.
        retry: retry settings; override ``config``'s ``max_retries`` / backoff.
        pool: session pool settings (also used by :class:`~mcp_rust.ConnectionPool`).
        memory: memory bounds (:class:`MemoryConfig`).
        distributed: cluster to use instead of the embedded one.
        enable_metrics: False turns metrics reads and the endpoint off (default: ``config``'s).
        metrics_port: serve Prometheus text on this port (0 picks one; see ``metrics_address``).
        metrics_path: URL path of that endpoint.
        metrics_host: IP the endpoint binds (default 127.0.0.1).
        data_dir: embedded mode's data directory (kept across restarts).
    """

    def __init__(
        self,
        config: Optional[MCPConfig] = None,
        *,
        circuit_breaker: Optional[CircuitBreakerConfig] = None,
        retry: Optional[RetryConfig] = None,
        pool: Optional[PoolConfig] = None,
        memory: Optional[MemoryConfig] = None,
        distributed: Optional[DistributedConfig] = None,
        enable_metrics: Optional[bool] = None,
        metrics_port: Optional[int] = None,
        metrics_path: str = "/metrics",
        metrics_host: str = "127.0.0.1",
        data_dir: Optional[str] = None,
        grpc_addr: Optional[str] = None,
    ) -> None:
        self._native = _native.NativeManager(
            config,
            circuit_breaker=circuit_breaker,
            retry=retry,
            pool=pool,
            memory=memory,
            distributed=distributed,
            enable_metrics=enable_metrics,
            metrics_port=metrics_port,
            metrics_path=metrics_path,
            metrics_host=metrics_host,
            data_dir=None if data_dir is None else str(data_dir),
            grpc_addr=grpc_addr,
        )
        self.config = config
        self.pool_config = pool
        self.distributed = distributed

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Starts the manager (the embedded node, the connection to the cluster, the
        metrics endpoint). Idempotent; operations start it themselves when needed."""
        await self._native.start()
        self._started()
        log.debug("manager started: mode=%s nodes=%s", self.mode, self.node_addresses)

    async def stop(self) -> None:
        """Stops the metrics endpoint and the in-process node (its server instances
        exit). A later operation starts the manager again."""
        await self._native.stop()
        log.debug("manager stopped: mode=%s", self.mode)

    def _started(self) -> None:
        global _last_started
        with _lock:
            _running.add(self)
            _last_started = weakref.ref(self)

    async def __aenter__(self) -> "MCPManager":
        await self.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.stop()

    @property
    def is_running(self) -> bool:
        """True while started."""
        return self._native.is_running

    @property
    def mode(self) -> str:
        """``"embedded"``, ``"client"`` (of a remote cluster) or ``"member"`` (runs a node)."""
        return self._native.mode

    @property
    def node_addresses(self) -> List[str]:
        """gRPC addresses of the nodes the manager talks to."""
        return self._native.node_addresses

    @property
    def local_node_address(self) -> Optional[str]:
        """gRPC address of the node running in this process (embedded or member mode)."""
        return self._native.local_node_address

    @property
    def leader_address(self) -> Optional[str]:
        """The Raft leader's address as last seen."""
        return self._native.leader_address

    @property
    def metrics_address(self) -> Optional[str]:
        """``HOST:PORT`` of the Prometheus endpoint while it runs."""
        return self._native.metrics_address

    # ------------------------------------------------------------------ registry

    async def deploy_server(
        self,
        config_or_id: Any,
        config: Optional[SpecLike] = None,
        *,
        wait_ready: bool = False,
        ready_timeout: float = 30.0,
    ) -> DeployResult:
        """Deploys (creates or replaces) a server; returns its id as a :class:`DeployResult`.

        ``deploy_server(spec)`` takes the spec as a dict or JSON text (fields in
        ``docs/specs.md``; ``type`` / ``server_type`` are accepted for ``transport``).
        ``deploy_server(server_id, spec)`` takes the id separately. An invalid spec raises
        :class:`~mcp_rust.errors.ConfigError` naming the field; nothing is stored.

        The deploy returns once the cluster committed it; instances start right after.
        ``wait_ready=True`` also waits (up to ``ready_timeout`` seconds) until the server
        has a healthy instance.
        """
        _, spec = normalize(config_or_id, config)
        name, revision, created, log_index = await self._native.deploy(json.dumps(spec))
        self._started()
        log.debug("deployed %s (revision %d, %s)", name, revision, "created" if created else "replaced")
        if wait_ready:
            await self.wait_until_ready(name, ready_timeout)
        return DeployResult(name, revision, created, log_index)

    async def wait_until_ready(self, server_id: str, timeout: float = 30.0) -> str:
        """Waits until the server has a healthy instance; returns its state
        (``running`` or ``degraded``). Raises :class:`~mcp_rust.errors.MCPTimeoutError`
        naming the last state when it does not get there in ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        state = "unknown"
        while True:
            state = await self._native.server_state(str(server_id))
            if state in ("running", "degraded"):
                return state
            if loop.time() >= deadline:
                raise MCPTimeoutError(
                    f"server {server_id!r} has no healthy instance after {timeout} s (state: {state})"
                )
            await asyncio.sleep(0.05)

    async def undeploy_server(self, server_id: str) -> int:
        """Removes a server (its instances stop); returns the registry revision."""
        return await self._native.undeploy(str(server_id))

    async def scale_server(self, server_id: str, instances: int) -> int:
        """Sets the server's desired replicas to ``instances``; returns the registry revision."""
        return await self._native.scale(str(server_id), int(instances))

    async def list_servers(self) -> List[ServerInfo]:
        """Every deployed server (a list: iterate it)."""
        return await self._native.list_servers()

    async def cluster_members(self) -> List[Dict[str, Any]]:
        """The cluster's nodes: ``[{"id", "address", "voter", "leader"}]``."""
        members, leader = await self._native.members()
        return [
            {"id": node_id, "address": addr, "voter": voter, "leader": node_id == leader}
            for node_id, addr, voter in members
        ]

    def server(self, server_id: str) -> "MCPServer":
        """A handle on one deployed server."""
        return MCPServer(self, server_id)

    # ------------------------------------------------------------------ calls

    async def execute(
        self,
        server_id: str,
        request: RequestLike,
        *,
        timeout_ms: Optional[int] = None,
        retry_unsafe: bool = False,
    ) -> Any:
        """Sends one JSON-RPC request (``{"method": ..., "params": ...}``) to a server.

        With a dict, returns the response's ``result`` and raises
        :class:`~mcp_rust.errors.MCPServerError` on a JSON-RPC error. With JSON text (the
        older API), returns the whole response object as JSON text, error or not.
        """
        as_text = isinstance(request, (str, bytes, bytearray))
        text = await self._native.execute(
            str(server_id), _request_text(request), timeout_ms, retry_unsafe
        )
        if as_text:
            return text
        response = json.loads(text)
        error = response.get("error") if isinstance(response, dict) else None
        if error is not None:
            raise server_error_from_response(str(server_id), error)
        return response.get("result") if isinstance(response, dict) else response

    async def execute_tool(
        self,
        server_id: str,
        tool_name: str,
        params: Optional[Mapping[str, Any]] = None,
        *,
        timeout_ms: Optional[int] = None,
        retry_unsafe: bool = False,
    ) -> Dict[str, Any]:
        """Calls a tool and returns its result (``content``, ``isError``, ...).

        A JSON-RPC error from the server raises :class:`~mcp_rust.errors.MCPServerError`
        with its ``code``; a hanging tool raises
        :class:`~mcp_rust.errors.MCPTimeoutError` after the request timeout.
        A ``tools/call`` is never silently re-sent after it may have reached the server,
        unless ``retry_unsafe=True``.
        """
        arguments = json.dumps(dict(params or {}))
        text = await self._native.execute_tool(
            str(server_id), str(tool_name), arguments, timeout_ms, retry_unsafe
        )
        response = json.loads(text)
        return response.get("result", response) if isinstance(response, dict) else response

    # ------------------------------------------------------------- observation

    async def get_metrics(self) -> Metrics:
        """Request totals, success rate (percent), mean and p99 latency, per server too."""
        return await self._native.metrics()

    def export_metrics_prometheus(self) -> str:
        """Prometheus text of every node (blocks briefly; the GIL is released)."""
        return self._native.prometheus_blocking()

    async def get_health_status(self) -> HealthStatus:
        """Healthy and total servers, and each server's instances."""
        return await self._native.health()

    def get_server_state(self, server_id: str) -> str:
        """``running``, ``degraded``, ``starting``, ``restarting``, ``crash_loop``,
        ``circuit_open``, ``unavailable`` or ``stopped``; raises
        :class:`~mcp_rust.errors.ServerNotFoundError` for an unknown id. Blocks briefly."""
        return self._native.server_state_blocking(str(server_id))

    async def get_server_state_async(self, server_id: str) -> str:
        """Awaitable form of :meth:`get_server_state`."""
        return await self._native.server_state(str(server_id))

    def get_memory_stats(self) -> MemoryStats:
        """Memory held by the package's Rust code (set ``MCP_TRACK_MEMORY=1`` before
        importing ``mcp_rust`` to collect; otherwise ``tracking`` is False)."""
        return _native.memory_stats()

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"<MCPManager mode={self.mode} {state}>"


class MCPServer:
    """A handle on one deployed server: ``manager.server("time").execute_tool(...)``."""

    def __init__(self, manager: MCPManager, server_id: str) -> None:
        self.manager = manager
        self.server_id = str(server_id)

    async def execute_tool(self, tool_name: str, params: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> Dict[str, Any]:
        """Calls one of the server's tools (see :meth:`MCPManager.execute_tool`)."""
        return await self.manager.execute_tool(self.server_id, tool_name, params, **kwargs)

    async def execute(self, request: RequestLike, **kwargs: Any) -> Any:
        """Sends a JSON-RPC request (see :meth:`MCPManager.execute`)."""
        return await self.manager.execute(self.server_id, request, **kwargs)

    async def list_tools(self) -> List[Dict[str, Any]]:
        """The server's tools (``tools/list``)."""
        result = await self.execute({"method": "tools/list"})
        return list(result.get("tools", []))

    async def scale(self, instances: int) -> int:
        """Sets the number of instances."""
        return await self.manager.scale_server(self.server_id, instances)

    async def undeploy(self) -> int:
        """Removes the server."""
        return await self.manager.undeploy_server(self.server_id)

    def state(self) -> str:
        """See :meth:`MCPManager.get_server_state`."""
        return self.manager.get_server_state(self.server_id)

    def __repr__(self) -> str:
        return f"MCPServer({self.server_id!r})"
