"""mcp_rust: run and call MCP servers on a Raft-replicated cluster, from Python.

``MCPManager`` runs an in-process single-node cluster by default (the same Rust code as
``mcpd``), or talks to a running cluster with ``distributed=DistributedConfig(...)``.
Everything is async (asyncio); ``mcp_rust.sync.MCPManagerSync`` is the blocking version.
See ``docs/python.md``.
"""

from __future__ import annotations


from . import _native
from ._native import (
    CircuitBreakerConfig,
    DistributedConfig,
    HealthStatus,
    InstanceHealth,
    MCPConfig,
    MemoryConfig,
    MemoryStats,
    Metrics,
    PoolConfig,
    RetryConfig,
    ServerHealth,
    ServerInfo,
    ServerMetrics,
    __version__,
    memory_stats,
    runtime_info,
)
from .errors import (
    CircuitBreakerOpenError,
    ClusterUnavailableError,
    ConfigError,
    InvalidRequestError,
    ManagerStoppedError,
    MCPConnectionError,
    MCPError,
    MCPServerError,
    MCPTimeoutError,
    MembershipError,
    NoHealthyInstanceError,
    RateLimitedError,
    RevisionMismatchError,
    SaturatedError,
    ServerNotFoundError,
    ToolWithheldError,
    UnauthorizedError,
)
from .manager import DeployResult, MCPManager, MCPServer
from .pool import Connection, ConnectionPool


__all__ = [
    "MCPManager",
    "MCPServer",
    "DeployResult",
    "MCPConfig",
    "CircuitBreakerConfig",
    "RetryConfig",
    "PoolConfig",
    "MemoryConfig",
    "DistributedConfig",
    "ConnectionPool",
    "Connection",
    "ServerInfo",
    "Metrics",
    "ServerMetrics",
    "HealthStatus",
    "ServerHealth",
    "InstanceHealth",
    "MemoryStats",
    "memory_stats",
    "runtime_info",
    "MCPError",
    "ConfigError",
    "ServerNotFoundError",
    "UnauthorizedError",
    "RateLimitedError",
    "ToolWithheldError",
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
    "ManagerStoppedError",
    "__version__",
]
