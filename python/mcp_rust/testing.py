"""Testing helpers: scripted MCP servers and a harness that deploys them for real.

A :class:`MockMCPServer` is a small Streamable HTTP MCP server (handshake era,
protocol 2025-11-25) on 127.0.0.1, run in a background thread. It answers ``tools/list``
and ``tools/call`` from a script, and records every request. The manager that
:class:`MCPTestHarness` creates turns ``{"type": "mock"}`` specs into ``http`` specs pointing
at the registered mock of that name, so calls go through the real Rust data plane (pool,
breaker, retries, timeouts)::

    harness = MCPTestHarness()
    mock = MockMCPServer("test-server")
    mock.add_tool("echo", lambda args: {"text": args["text"]})
    harness.register_mock(mock)
    manager = harness.create_manager()
    result = await manager.deploy_server({"name": "test-server", "type": "mock"})
    assert result.success and mock.was_deployed
    await manager.execute_tool("test-server", "echo", {"text": "hi"})
    assert mock.tool_calls("echo")[0].arguments == {"text": "hi"}
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

from ._spec import TRANSPORT_FIELDS, SpecLike, normalize, spec_type
from .errors import ConfigError
from .manager import DeployResult, MCPManager

__all__ = ["MockMCPServer", "MockCall", "MCPTestHarness"]

PROTOCOL_VERSION = "2025-11-25"

ToolResult = Union[Mapping[str, Any], str, Callable[[Dict[str, Any]], Any]]


@dataclass
class MockCall:
    """One request the mock received."""

    method: str
    params: Dict[str, Any]
    tool: Optional[str] = None
    arguments: Dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)


@dataclass
class _Failure:
    kind: str  # "jsonrpc" or "http"
    code: int
    message: str
    data: Any
    remaining: Optional[int]  # None: every call


class MockMCPServer:
    """A scripted MCP server over Streamable HTTP on 127.0.0.1.

    Args:
        name: the server id the harness deploys it as.
        tools: initial tools, name -> result (see :meth:`add_tool`).
    """

    def __init__(self, name: str, tools: Optional[Mapping[str, ToolResult]] = None) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._tools: Dict[str, Dict[str, Any]] = {}
        self._failures: Dict[Optional[str], _Failure] = {}
        self._delays: Dict[Optional[str], float] = {}
        self._calls: List[MockCall] = []
        self._sessions: set = set()
        self._session_seen = threading.Event()
        self._deployed = False
        self._httpd: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        for tool, result in (tools or {}).items():
            self.add_tool(tool, result)

    # ---------------------------------------------------------------- scripting

    def add_tool(self, name: str, result: ToolResult = "ok", description: str = "", input_schema: Optional[Mapping[str, Any]] = None) -> "MockMCPServer":
        """Adds a tool. ``result`` is a text (returned as one text content), a full
        ``tools/call`` result dict (``{"content": [...]}``), or a callable taking the
        arguments and returning either."""
        with self._lock:
            self._tools[name] = {
                "result": result,
                "description": description or f"mock tool {name}",
                "inputSchema": dict(input_schema or {"type": "object"}),
            }
        return self

    def set_tool_result(self, name: str, result: ToolResult) -> "MockMCPServer":
        """Changes (or adds) a tool's result."""
        with self._lock:
            if name in self._tools:
                self._tools[name]["result"] = result
                return self
        return self.add_tool(name, result)

    def fail_tool(self, name: Optional[str], code: int = -32000, message: str = "mock failure", data: Any = None, times: Optional[int] = None) -> "MockMCPServer":
        """Makes calls of tool ``name`` (every tool when None) answer a JSON-RPC error,
        ``times`` times or until :meth:`clear_failures`."""
        with self._lock:
            self._failures[name] = _Failure("jsonrpc", code, message, data, times)
        return self

    def fail_http(self, status: int = 503, times: Optional[int] = None, tool: Optional[str] = None) -> "MockMCPServer":
        """Makes ``tools/call`` requests (of ``tool``, or all) fail with an HTTP error
        status: the data plane counts these as failures of the instance (retries, breaker)."""
        with self._lock:
            self._failures[tool] = _Failure("http", status, "mock HTTP failure", None, times)
        return self

    def set_delay(self, seconds: float, tool: Optional[str] = None) -> "MockMCPServer":
        """Delays answers to ``tools/call`` of ``tool`` (all tools when None)."""
        with self._lock:
            self._delays[tool] = seconds
        return self

    def clear_failures(self) -> "MockMCPServer":
        """Removes every scripted failure and delay."""
        with self._lock:
            self._failures.clear()
            self._delays.clear()
        return self

    # ---------------------------------------------------------------- recordings

    @property
    def calls(self) -> List[MockCall]:
        """Every request received, oldest first (handshake and pings included)."""
        with self._lock:
            return list(self._calls)

    def tool_calls(self, tool: Optional[str] = None) -> List[MockCall]:
        """The ``tools/call`` requests received (of ``tool`` only, when given)."""
        return [c for c in self.calls if c.method == "tools/call" and (tool is None or c.tool == tool)]

    def was_called(self, tool: str) -> bool:
        """True when ``tool`` was called at least once."""
        return bool(self.tool_calls(tool))

    @property
    def was_deployed(self) -> bool:
        """True once a harness manager deployed this mock and the cluster opened an MCP
        session to it."""
        return self._deployed and self._session_seen.is_set()

    def reset(self) -> None:
        """Forgets recorded calls."""
        with self._lock:
            self._calls.clear()

    # ---------------------------------------------------------------- serving

    @property
    def running(self) -> bool:
        """True while serving."""
        return self._httpd is not None

    @property
    def url(self) -> str:
        """The MCP endpoint (starts the server if needed)."""
        self.start()
        assert self._httpd is not None
        port = self._httpd.server_address[1]
        return f"http://127.0.0.1:{port}/mcp"

    def start(self) -> "MockMCPServer":
        """Starts serving on a free loopback port (idempotent)."""
        if self._httpd is not None:
            return self
        handler = _make_handler(self)
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name=f"mock-mcp-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()

    def wait_for_session(self, timeout: float = 10.0) -> bool:
        """Waits until a client opened an MCP session; True if one did."""
        return self._session_seen.wait(timeout)

    def __repr__(self) -> str:
        return f"MockMCPServer({self.name!r}, tools={sorted(self._tools)}, calls={len(self._calls)})"

    # ---------------------------------------------------------------- protocol

    def _record(self, call: MockCall) -> None:
        with self._lock:
            self._calls.append(call)

    def _take_failure(self, tool: Optional[str]) -> Optional[_Failure]:
        with self._lock:
            for key in (tool, None):
                failure = self._failures.get(key)
                if failure is None:
                    continue
                if failure.remaining is not None:
                    failure.remaining -= 1
                    if failure.remaining <= 0:
                        del self._failures[key]
                return failure
        return None

    def _delay_for(self, tool: Optional[str]) -> float:
        with self._lock:
            return self._delays.get(tool, self._delays.get(None, 0.0))

    def _tool_result(self, tool: str, arguments: Dict[str, Any]) -> Any:
        with self._lock:
            entry = self._tools.get(tool)
        if entry is None:
            return None
        result = entry["result"]
        if callable(result):
            result = result(arguments)
        if isinstance(result, Mapping) and "content" in result:
            return dict(result)
        if isinstance(result, str):
            return {"content": [{"type": "text", "text": result}], "isError": False}
        return {
            "content": [{"type": "text", "text": json.dumps(result)}],
            "structuredContent": result if isinstance(result, Mapping) else {"result": result},
            "isError": False,
        }

    def _tool_list(self) -> List[Dict[str, Any]]:
        with self._lock:
            return [
                {"name": name, "description": t["description"], "inputSchema": t["inputSchema"]}
                for name, t in self._tools.items()
            ]


def _make_handler(mock: MockMCPServer) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            pass

        def _send(self, status: int, body: Optional[dict] = None, headers: Optional[Dict[str, str]] = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            # No server-initiated stream.
            self._send(405)

        def do_DELETE(self) -> None:  # noqa: N802 - stdlib name
            session = self.headers.get("Mcp-Session-Id")
            with mock._lock:
                mock._sessions.discard(session)
            self._send(200)

        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            length = int(self.headers.get("Content-Length") or 0)
            try:
                message = json.loads(self.rfile.read(length) or b"null")
            except ValueError:
                self._send(400, {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error"}})
                return
            if not isinstance(message, dict) or "method" not in message:
                self._send(400, {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "invalid request"}})
                return
            method = message["method"]
            params = message.get("params") or {}
            msg_id = message.get("id")
            if "id" not in message:  # a notification
                mock._record(MockCall(method, params))
                self._send(202)
                return
            if method == "server/discover":
                # A handshake-era server: unknown method, the client falls back to initialize.
                self._send(200, {"jsonrpc": "2.0", "id": msg_id, "error": {"code": -32601, "message": "method not found"}})
                return
            if method == "initialize":
                session = uuid.uuid4().hex
                with mock._lock:
                    mock._sessions.add(session)
                mock._record(MockCall(method, params))
                mock._session_seen.set()
                result = {
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": f"mock-{mock.name}", "version": "1.0.0"},
                }
                self._send(200, {"jsonrpc": "2.0", "id": msg_id, "result": result}, {"Mcp-Session-Id": session})
                return
            sent_session = self.headers.get("Mcp-Session-Id")
            if not sent_session:
                self._send(400, {"jsonrpc": "2.0", "id": msg_id, "error": {"code": -32600, "message": "missing Mcp-Session-Id"}})
                return
            with mock._lock:
                known = sent_session in mock._sessions
            if not known:
                self._send(404, {"jsonrpc": "2.0", "id": msg_id, "error": {"code": -32600, "message": "unknown session"}})
                return
            tool = params.get("name") if method == "tools/call" else None
            arguments = params.get("arguments") or {} if method == "tools/call" else {}
            mock._record(MockCall(method, params, tool, dict(arguments)))
            if method == "ping":
                self._send(200, {"jsonrpc": "2.0", "id": msg_id, "result": {}})
            elif method == "tools/list":
                self._send(200, {"jsonrpc": "2.0", "id": msg_id, "result": {"tools": mock._tool_list()}})
            elif method == "tools/call":
                delay = mock._delay_for(tool)
                if delay > 0:
                    time.sleep(delay)
                failure = mock._take_failure(tool)
                if failure is not None and failure.kind == "http":
                    self._send(failure.code, {"error": failure.message})
                    return
                if failure is not None:
                    error = {"code": failure.code, "message": failure.message}
                    if failure.data is not None:
                        error["data"] = failure.data
                    self._send(200, {"jsonrpc": "2.0", "id": msg_id, "error": error})
                    return
                result = mock._tool_result(str(tool), dict(arguments))
                if result is None:
                    self._send(200, {"jsonrpc": "2.0", "id": msg_id, "error": {"code": -32602, "message": f"unknown tool {tool!r}"}})
                else:
                    self._send(200, {"jsonrpc": "2.0", "id": msg_id, "result": result})
            else:
                self._send(200, {"jsonrpc": "2.0", "id": msg_id, "error": {"code": -32601, "message": f"method not found: {method}"}})

    return Handler


class _HarnessManager(MCPManager):
    """An :class:`MCPManager` that deploys ``type: mock`` specs as the harness's mocks."""

    def __init__(self, harness: "MCPTestHarness", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._harness = harness

    async def deploy_server(self, config_or_id: Any, config: Optional[SpecLike] = None, **kwargs: Any) -> DeployResult:
        name, spec = normalize(config_or_id, config)
        if spec_type(spec) != "mock":
            return await super().deploy_server(spec, **kwargs)
        if name is None:
            raise ConfigError('missing field "name" (the mock\'s name)', field="name")
        mock = self._harness.mocks.get(name)
        if mock is None:
            raise ConfigError(
                f"no mock registered as {name!r} (harness.register_mock(MockMCPServer({name!r})))",
                field="name",
            )
        # Every other field goes to the node, which validates it as for any http server.
        http_spec: Dict[str, Any] = {
            key: value
            for key, value in spec.items()
            if not (key in TRANSPORT_FIELDS and isinstance(value, str) and value.lower() == "mock")
        }
        http_spec.update(transport="http", url=mock.url)
        kwargs.setdefault("wait_ready", True)
        kwargs.setdefault("ready_timeout", 15.0)
        # The cluster opens its session in the background; waiting for a healthy instance
        # makes the mock usable (and `was_deployed` true) when deploy returns.
        result = await super().deploy_server(http_spec, **kwargs)
        mock._deployed = True
        return result


class MCPTestHarness:
    """Runs mocks and the managers that deploy them; ``close()`` (or ``async with``)
    stops everything.

    Args:
        **manager_kwargs: defaults for :meth:`create_manager` (any ``MCPManager`` argument).
    """

    def __init__(self, **manager_kwargs: Any) -> None:
        self.mocks: Dict[str, MockMCPServer] = {}
        self.managers: List[MCPManager] = []
        self._defaults = manager_kwargs

    def register_mock(self, mock: MockMCPServer) -> MockMCPServer:
        """Makes ``mock`` deployable as ``{"name": mock.name, "type": "mock"}`` and starts it."""
        if mock.name in self.mocks and self.mocks[mock.name] is not mock:
            raise ConfigError(f"a different mock is already registered as {mock.name!r}", field="name")
        self.mocks[mock.name] = mock.start()
        return mock

    def create_manager(self, **kwargs: Any) -> MCPManager:
        """A manager (embedded unless told otherwise) that understands ``type: mock``."""
        options = dict(self._defaults)
        options.update(kwargs)
        manager = _HarnessManager(self, **options)
        self.managers.append(manager)
        return manager

    async def aclose(self) -> None:
        """Stops every manager and mock."""
        for manager in self.managers:
            await manager.stop()
        for mock in self.mocks.values():
            mock.stop()

    def close(self) -> None:
        """Stops every mock (and managers not running in an event loop)."""
        for manager in self.managers:
            manager._native.stop_blocking()
        for mock in self.mocks.values():
            mock.stop()

    async def __aenter__(self) -> "MCPTestHarness":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    def __enter__(self) -> "MCPTestHarness":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


