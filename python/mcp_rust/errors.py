"""Exceptions raised by ``mcp_rust``.

Every error is an :class:`MCPError`. Its subclass says what went wrong, and each subclass
also derives from the matching builtin where one exists, so ``except TimeoutError`` or
``except ConnectionError`` work as well::

    MCPError
    ├── ConfigError (ValueError)              bad setting or server spec; ``.field`` names it
    ├── ServerNotFoundError (LookupError)     no server of that id
    ├── UnauthorizedError (PermissionError)   no valid token, or its role does not allow it
    ├── ClusterUnavailableError               no node reachable / no leader in time
    ├── CircuitBreakerOpenError               every instance's breaker is open
    ├── MCPTimeoutError (TimeoutError)        no answer within the request timeout
    ├── MCPConnectionError (ConnectionError)  connection to a server or node failed
    │   └── NoHealthyInstanceError            no instance can take requests right now
    ├── SaturatedError                        every instance at its in-flight limit
    ├── MCPServerError                        the MCP server answered a JSON-RPC error
    ├── InvalidRequestError (ValueError)      the request is not valid JSON-RPC
    ├── RevisionMismatchError                 compare-and-set deploy lost
    ├── MembershipError                       membership change refused
    ├── RateLimitedError                      a rate limit or concurrency quota refused the
    │                                         call; ``.retry_after`` (seconds) says when to retry
    ├── ToolWithheldError (PermissionError)   tool withheld by pinning until an operator approves it
    └── ManagerStoppedError                   the manager was stopped

The Rust side builds them through :func:`_from_native`; they can also be raised by users.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Optional, Type

__all__ = [
    "MCPError",
    "ConfigError",
    "ServerNotFoundError",
    "UnauthorizedError",
    "ClusterUnavailableError",
    "CircuitBreakerOpenError",
    "MCPTimeoutError",
    "MCPConnectionError",
    "NoHealthyInstanceError",
    "SaturatedError",
    "MCPServerError",
    "InvalidRequestError",
    "RevisionMismatchError",
    "MembershipError",
    "RateLimitedError",
    "ToolWithheldError",
    "ManagerStoppedError",
]


class MCPError(Exception):
    """Base class of every ``mcp_rust`` error.

    Attributes:
        message: what happened, for people.
        kind: the error category (``"timeout"``, ``"circuit_open"``, ``"config"``, ...).
        field: for configuration errors, the setting or spec field at fault.
        code: for server errors, the JSON-RPC error code.
        rpc_message: for server errors, the JSON-RPC error message.
        data: for server errors, the JSON-RPC error's ``data`` (or None).
    """

    kind: str = "internal"

    def __init__(
        self,
        message: str,
        *,
        kind: Optional[str] = None,
        field: Optional[str] = None,
        code: Optional[int] = None,
        rpc_message: Optional[str] = None,
        data: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if kind is not None:
            self.kind = kind
        self.field = field
        self.code = code
        self.rpc_message = rpc_message
        self.data = data

    def is_connection_error(self) -> bool:
        """True when a connection to a server or node failed (the call may be retried)."""
        return isinstance(self, (MCPConnectionError, ClusterUnavailableError))

    def is_timeout(self) -> bool:
        """True when no answer came in time."""
        return isinstance(self, MCPTimeoutError)

    def is_circuit_breaker_open(self) -> bool:
        """True when the server's circuit breakers refused the call."""
        return isinstance(self, CircuitBreakerOpenError)

    def is_server_error(self) -> bool:
        """True when the MCP server itself answered with a JSON-RPC error."""
        return isinstance(self, MCPServerError)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, kind={self.kind!r})"


class ConfigError(MCPError, ValueError):
    """A setting or a server spec is invalid; ``field`` names it."""

    kind = "config"


class ServerNotFoundError(MCPError, LookupError):
    """No server with that id is deployed."""

    kind = "server_not_found"


class UnauthorizedError(MCPError, PermissionError):
    """No valid token (missing, wrong, expired, revoked), or its role does not allow this."""

    kind = "unauthorized"


class ClusterUnavailableError(MCPError):
    """No node could serve the request: all unreachable, or no leader elected in time."""

    kind = "cluster_unavailable"


class CircuitBreakerOpenError(MCPError):
    """Every instance's circuit breaker is open: the server failed repeatedly and is
    given time to recover before calls reach it again."""

    kind = "circuit_open"


class MCPTimeoutError(MCPError, TimeoutError):
    """The server did not answer within the request timeout."""

    kind = "timeout"


class MCPConnectionError(MCPError, ConnectionError):
    """The connection to a server (or to a node) failed or broke."""

    kind = "connection"


class NoHealthyInstanceError(MCPConnectionError):
    """The server has no instance able to take requests (starting, crashed, unhealthy)."""

    kind = "no_healthy_instance"


class SaturatedError(MCPError):
    """Every instance of the server is at its in-flight request limit."""

    kind = "saturated"


class MCPServerError(MCPError):
    """The MCP server answered with a JSON-RPC error: ``code``, ``rpc_message``, ``data``."""

    kind = "server_error"


class InvalidRequestError(MCPError, ValueError):
    """The request is not a valid JSON-RPC request, or tool arguments are not an object."""

    kind = "invalid_request"


class RevisionMismatchError(MCPError):
    """A compare-and-set write found another revision; nothing changed."""

    kind = "revision_mismatch"


class MembershipError(MCPError):
    """A cluster membership change was refused."""

    kind = "membership"


class RateLimitedError(MCPError):
    """A cluster-wide rate limit or concurrency quota refused the call; nothing ran.

    ``retry_after`` is the number of seconds after which the node expects to admit a call
    (None if it did not say).
    """

    kind = "rate_limited"

    def __init__(self, message: str, *, retry_after: Optional[float] = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ToolWithheldError(MCPError, PermissionError):
    """The tool's definition changed since it was pinned (or it awaits approval under
    ``pin: strict``); an operator must approve it with ``mcpd tools approve``."""

    kind = "tool_withheld"


class ManagerStoppedError(MCPError):
    """The manager is stopped."""

    kind = "stopped"


_BY_KIND: Dict[str, Type[MCPError]] = {
    cls.kind: cls
    for cls in (
        ConfigError,
        ServerNotFoundError,
        UnauthorizedError,
        ClusterUnavailableError,
        CircuitBreakerOpenError,
        MCPTimeoutError,
        MCPConnectionError,
        NoHealthyInstanceError,
        SaturatedError,
        MCPServerError,
        InvalidRequestError,
        RevisionMismatchError,
        MembershipError,
        RateLimitedError,
        ToolWithheldError,
        ManagerStoppedError,
    )
}


def _from_native(
    kind: str,
    message: str,
    field: Optional[str],
    code: Optional[int],
    rpc_message: Optional[str],
    rpc_json: Optional[str],
    retry_after_ms: Optional[int] = None,
) -> MCPError:
    """Builds the exception for an error category reported by the Rust side."""
    cls = _BY_KIND.get(kind, MCPError)
    data = None
    if rpc_json:
        try:
            data = json.loads(rpc_json).get("data")
        except (ValueError, AttributeError):
            data = None
    if cls is RateLimitedError:
        retry_after = None if retry_after_ms is None else retry_after_ms / 1000.0
        return RateLimitedError(
            message,
            retry_after=retry_after,
            kind=kind,
            field=field,
            code=code,
            rpc_message=rpc_message,
            data=data,
        )
    return cls(message, kind=kind, field=field, code=code, rpc_message=rpc_message, data=data)


def server_error_from_response(server_id: str, error: Dict[str, Any]) -> MCPServerError:
    """The exception for a JSON-RPC ``error`` object found in a response."""
    code = error.get("code")
    message = str(error.get("message", ""))
    return MCPServerError(
        f"server {server_id!r} answered error {code}: {message}",
        code=code if isinstance(code, int) else None,
        rpc_message=message,
        data=error.get("data"),
    )
