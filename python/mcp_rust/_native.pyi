"""Type stubs of the native module ``mcp_rust._native`` (Rust, PyO3)."""

import os
from typing import Any, Awaitable, Dict, List, Optional, Sequence, Tuple, Union

__version__: str

class MCPConfig:
    """Manager-wide data-plane settings; validated on construction (``ConfigError``)."""

    max_connections_per_server: int
    connection_timeout_ms: int
    request_timeout_ms: int
    health_check_interval_secs: float
    max_retries: int
    retry_backoff_multiplier: float
    enable_connection_pooling: bool
    enable_load_balancing: bool
    enable_health_checks: bool
    enable_metrics: bool
    circuit_breaker_threshold: int
    circuit_breaker_recovery_secs: float
    def __init__(
        self,
        *,
        max_connections_per_server: int = 20,
        connection_timeout_ms: int = 10000,
        request_timeout_ms: int = 30000,
        health_check_interval_secs: float = 10.0,
        max_retries: int = 2,
        retry_backoff_multiplier: float = 2.0,
        enable_connection_pooling: bool = True,
        enable_load_balancing: bool = True,
        enable_health_checks: bool = True,
        enable_metrics: bool = True,
        circuit_breaker_threshold: int = 5,
        circuit_breaker_recovery_secs: float = 30.0,
    ) -> None: ...

class CircuitBreakerConfig:
    """Per-instance circuit breaker settings."""

    failure_threshold: int
    success_threshold: int
    timeout_secs: float
    half_open_max_calls: int
    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        success_threshold: int = 2,
        timeout_secs: float = 30.0,
        half_open_max_calls: int = 3,
    ) -> None: ...

class RetryConfig:
    """Retries of failed calls on another instance."""

    max_attempts: int
    initial_delay_ms: int
    max_delay_ms: int
    exponential_base: float
    jitter: bool
    def __init__(
        self,
        *,
        max_attempts: int = 3,
        initial_delay_ms: int = 20,
        max_delay_ms: int = 2000,
        exponential_base: float = 2.0,
        jitter: bool = True,
    ) -> None: ...

class PoolConfig:
    """Sessions to MCP servers, and ``ConnectionPool`` limits."""

    initial_size: int
    max_size: int
    connection_timeout_ms: int
    idle_timeout_secs: float
    health_check_interval_secs: float
    enable_keepalive: bool
    keepalive_interval_secs: float
    def __init__(
        self,
        *,
        initial_size: int = 1,
        max_size: int = 20,
        connection_timeout_ms: int = 10000,
        idle_timeout_secs: float = 300.0,
        health_check_interval_secs: float = 10.0,
        enable_keepalive: bool = True,
        keepalive_interval_secs: float = 30.0,
    ) -> None: ...

class MemoryConfig:
    """Memory bounds of the data plane."""

    enable_object_pooling: bool
    pool_size: int
    enable_arena_allocation: bool
    arena_size_mb: int
    def __init__(
        self,
        *,
        enable_object_pooling: bool = True,
        pool_size: int = 512,
        enable_arena_allocation: bool = True,
        arena_size_mb: int = 16,
    ) -> None: ...

class DistributedConfig:
    """Which cluster to use, and whether this process runs one of its nodes."""

    cluster_nodes: List[str]
    node_id: Optional[int]
    consensus_threshold: Optional[float]
    leader_election_timeout_secs: float
    listen_addr: Optional[str]
    advertise_addr: Optional[str]
    data_dir: Optional[str]
    has_admin_token: bool
    has_token: bool
    tls_ca_file: Optional[str]
    tls_cert_file: Optional[str]
    tls_key_file: Optional[str]
    def __init__(
        self,
        cluster_nodes: Sequence[str],
        *,
        node_id: Union[int, str, None] = None,
        consensus_threshold: Optional[float] = None,
        leader_election_timeout_secs: float = 1.0,
        listen_addr: Optional[str] = None,
        advertise_addr: Optional[str] = None,
        data_dir: Optional[str] = None,
        admin_token: Optional[str] = None,
        token: Optional[str] = None,
        tls_ca_file: Union[str, "os.PathLike[str]", None] = None,
        tls_cert_file: Union[str, "os.PathLike[str]", None] = None,
        tls_key_file: Union[str, "os.PathLike[str]", None] = None,
    ) -> None: ...

class ServerInfo:
    """One server of the registry."""

    name: str
    server_id: str
    transport: str
    replicas: int
    priority: int
    tags: List[str]
    create_revision: int
    mod_revision: int
    spec_json: str
    placements: List[Tuple[str, int]]

class ServerMetrics:
    """Request statistics of one server."""

    server: str
    total_requests: int
    successful_requests: int
    failed_requests: int
    success_rate: float
    avg_latency_ms: float
    p99_latency_ms: float

class Metrics:
    """Request statistics of the cluster."""

    total_requests: int
    successful_requests: int
    failed_requests: int
    success_rate: float
    avg_latency_ms: float
    p99_latency_ms: float
    servers: Dict[str, ServerMetrics]
    nodes_reporting: int

class InstanceHealth:
    """One instance of a server on one node."""

    id: str
    node_id: int
    state: str
    breaker: str
    in_flight: int
    restarts: int
    protocol_version: str
    healthy: bool

class ServerHealth:
    """Health of one server."""

    name: str
    healthy: bool
    state: str
    desired_replicas: int
    healthy_instances: int
    instances: List[InstanceHealth]

class HealthStatus:
    """Health of every server."""

    healthy_servers: int
    total_servers: int
    servers: Dict[str, ServerHealth]
    nodes_reporting: int
    nodes_total: int
    all_healthy: bool

class MemoryStats:
    """Memory held by the package's Rust code."""

    tracking: bool
    current_bytes: int
    peak_bytes: int
    total_allocations: int
    total_deallocations: int

class NativeManager:
    """The native half of ``MCPManager`` (use ``mcp_rust.MCPManager``)."""

    mode: str
    is_running: bool
    node_addresses: List[str]
    local_node_address: Optional[str]
    leader_address: Optional[str]
    metrics_address: Optional[str]
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
    ) -> None: ...
    def start(self) -> Awaitable[None]: ...
    def stop(self) -> Awaitable[None]: ...
    def start_blocking(self) -> None: ...
    def stop_blocking(self) -> None: ...
    def deploy(self, spec_json: str) -> Awaitable[Tuple[str, int, bool, int]]: ...
    def undeploy(self, name: str) -> Awaitable[int]: ...
    def scale(self, name: str, replicas: int) -> Awaitable[int]: ...
    def list_servers(self) -> Awaitable[List[ServerInfo]]: ...
    def list_servers_blocking(self) -> List[ServerInfo]: ...
    def execute(
        self, server: str, request_json: str, timeout_ms: Optional[int] = None, retry_unsafe: bool = False
    ) -> Awaitable[str]: ...
    def execute_tool(
        self,
        server: str,
        tool: str,
        arguments_json: str,
        timeout_ms: Optional[int] = None,
        retry_unsafe: bool = False,
    ) -> Awaitable[str]: ...
    def metrics(self) -> Awaitable[Metrics]: ...
    def metrics_blocking(self) -> Metrics: ...
    def prometheus(self) -> Awaitable[str]: ...
    def prometheus_blocking(self) -> str: ...
    def health(self) -> Awaitable[HealthStatus]: ...
    def health_blocking(self) -> HealthStatus: ...
    def server_state(self, name: str) -> Awaitable[str]: ...
    def server_state_blocking(self, name: str) -> str: ...
    def members(self) -> Awaitable[Tuple[List[Tuple[int, str, bool]], Optional[int]]]: ...

def memory_stats() -> MemoryStats: ...
def runtime_info() -> Dict[str, Any]: ...
