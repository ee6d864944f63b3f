//! The migration guide's configuration classes (`MCPConfig`, `CircuitBreakerConfig`,
//! `RetryConfig`, `PoolConfig`, `MemoryConfig`), validated on construction, and how they
//! combine into the data plane's [`DataPlaneConfig`].
//!
//! Every field means something in the data plane; the mapping is in `docs/python.md`.
//! A value out of range raises `ConfigError` naming `Class.field`. The classes are frozen:
//! a setting changes by building a new object, so a validated object stays valid.

use std::time::Duration;

use mcp_cluster::dataplane::breaker::BreakerConfig;
use mcp_cluster::dataplane::config::RetryConfig as PlaneRetry;
use mcp_cluster::dataplane::DataPlaneConfig;
use pyo3::prelude::*;

use crate::errors::ClientError;

/// Largest request timeout (one hour), as for a spec's `request_timeout_ms`.
const MAX_TIMEOUT_MS: i64 = 3_600_000;
/// How long "no periodic health checks" waits between probes (a day: never, in practice;
/// sessions are still checked when opened and by every call).
const HEALTH_CHECKS_OFF: Duration = Duration::from_secs(24 * 3600);

/// A validation failure: `Class.field` and why.
pub(crate) fn bad(class: &str, field: &str, why: impl std::fmt::Display) -> PyErr {
    ClientError::config(field, format!("{class}.{field}: {why}")).into_pyerr()
}

fn in_range(class: &str, field: &str, value: i64, min: i64, max: i64) -> PyResult<u64> {
    if value < min || value > max {
        return Err(bad(
            class,
            field,
            format!("must be between {min} and {max}, got {value}"),
        ));
    }
    u64::try_from(value)
        .map_err(|_| bad(class, field, format!("must not be negative, got {value}")))
}

fn positive_secs(class: &str, field: &str, value: f64) -> PyResult<Duration> {
    if !value.is_finite() || value <= 0.0 || value > 86_400.0 * 365.0 {
        return Err(bad(
            class,
            field,
            format!("must be a positive number of seconds, got {value}"),
        ));
    }
    Ok(Duration::from_secs_f64(value))
}

fn py_bool(value: bool) -> &'static str {
    if value {
        "True"
    } else {
        "False"
    }
}

/// Manager-wide data-plane settings (`MCPConfig`).
#[pyclass(module = "mcp_rust._native", frozen, get_all)]
#[derive(Debug, Clone)]
pub struct MCPConfig {
    /// Most sessions per remote HTTP server and node.
    pub max_connections_per_server: u64,
    /// Connect and handshake timeout.
    pub connection_timeout_ms: u64,
    /// Default per-request timeout.
    pub request_timeout_ms: u64,
    /// Health-check period.
    pub health_check_interval_secs: f64,
    /// Retries after the first attempt (so `max_retries + 1` attempts).
    pub max_retries: u64,
    /// Growth factor of the retry delay.
    pub retry_backoff_multiplier: f64,
    /// False: one session per remote HTTP server and node.
    pub enable_connection_pooling: bool,
    /// Must stay True: the data plane always balances over instances.
    pub enable_load_balancing: bool,
    /// False: no periodic health probes.
    pub enable_health_checks: bool,
    /// False: metrics are not exported (`get_metrics`, Prometheus) .
    pub enable_metrics: bool,
    /// Consecutive failures that open an instance's breaker.
    pub circuit_breaker_threshold: u64,
    /// Seconds a breaker stays open before trial calls.
    pub circuit_breaker_recovery_secs: f64,
}

#[pymethods]
impl MCPConfig {
    #[new]
    #[pyo3(signature = (
        *,
        max_connections_per_server = 20,
        connection_timeout_ms = 10_000,
        request_timeout_ms = 30_000,
        health_check_interval_secs = 10.0,
        max_retries = 2,
        retry_backoff_multiplier = 2.0,
        enable_connection_pooling = true,
        enable_load_balancing = true,
        enable_health_checks = true,
        enable_metrics = true,
        circuit_breaker_threshold = 5,
        circuit_breaker_recovery_secs = 30.0,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        max_connections_per_server: i64,
        connection_timeout_ms: i64,
        request_timeout_ms: i64,
        health_check_interval_secs: f64,
        max_retries: i64,
        retry_backoff_multiplier: f64,
        enable_connection_pooling: bool,
        enable_load_balancing: bool,
        enable_health_checks: bool,
        enable_metrics: bool,
        circuit_breaker_threshold: i64,
        circuit_breaker_recovery_secs: f64,
    ) -> PyResult<Self> {
        const C: &str = "MCPConfig";
        if !enable_load_balancing {
            return Err(bad(
                C,
                "enable_load_balancing",
                "False is not supported: the data plane always spreads calls over healthy instances (deploy with replicas=1 for a single instance)",
            ));
        }
        if !retry_backoff_multiplier.is_finite()
            || !(1.0..=100.0).contains(&retry_backoff_multiplier)
        {
            return Err(bad(
                C,
                "retry_backoff_multiplier",
                format!("must be between 1.0 and 100.0, got {retry_backoff_multiplier}"),
            ));
        }
        positive_secs(C, "health_check_interval_secs", health_check_interval_secs)?;
        positive_secs(
            C,
            "circuit_breaker_recovery_secs",
            circuit_breaker_recovery_secs,
        )?;
        Ok(Self {
            max_connections_per_server: in_range(
                C,
                "max_connections_per_server",
                max_connections_per_server,
                1,
                10_000,
            )?,
            connection_timeout_ms: in_range(
                C,
                "connection_timeout_ms",
                connection_timeout_ms,
                1,
                MAX_TIMEOUT_MS,
            )?,
            request_timeout_ms: in_range(
                C,
                "request_timeout_ms",
                request_timeout_ms,
                1,
                MAX_TIMEOUT_MS,
            )?,
            health_check_interval_secs,
            max_retries: in_range(C, "max_retries", max_retries, 0, 100)?,
            retry_backoff_multiplier,
            enable_connection_pooling,
            enable_load_balancing,
            enable_health_checks,
            enable_metrics,
            circuit_breaker_threshold: in_range(
                C,
                "circuit_breaker_threshold",
                circuit_breaker_threshold,
                1,
                1_000_000,
            )?,
            circuit_breaker_recovery_secs,
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "MCPConfig(max_connections_per_server={}, connection_timeout_ms={}, request_timeout_ms={}, health_check_interval_secs={}, max_retries={}, retry_backoff_multiplier={}, enable_connection_pooling={}, enable_load_balancing={}, enable_health_checks={}, enable_metrics={}, circuit_breaker_threshold={}, circuit_breaker_recovery_secs={})",
            self.max_connections_per_server,
            self.connection_timeout_ms,
            self.request_timeout_ms,
            self.health_check_interval_secs,
            self.max_retries,
            self.retry_backoff_multiplier,
            py_bool(self.enable_connection_pooling),
            py_bool(self.enable_load_balancing),
            py_bool(self.enable_health_checks),
            py_bool(self.enable_metrics),
            self.circuit_breaker_threshold,
            self.circuit_breaker_recovery_secs
        )
    }
}

impl Default for MCPConfig {
    fn default() -> Self {
        Self {
            max_connections_per_server: 20,
            connection_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
            health_check_interval_secs: 10.0,
            max_retries: 2,
            retry_backoff_multiplier: 2.0,
            enable_connection_pooling: true,
            enable_load_balancing: true,
            enable_health_checks: true,
            enable_metrics: true,
            circuit_breaker_threshold: 5,
            circuit_breaker_recovery_secs: 30.0,
        }
    }
}

/// Per-instance circuit breaker (`CircuitBreakerConfig`).
#[pyclass(module = "mcp_rust._native", frozen, get_all)]
#[derive(Debug, Clone)]
pub struct CircuitBreakerConfig {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u64,
    /// Successful trial calls that close it again.
    pub success_threshold: u64,
    /// Seconds it stays open before admitting trial calls.
    pub timeout_secs: f64,
    /// Trial calls admitted at once while half-open.
    pub half_open_max_calls: u64,
}

#[pymethods]
impl CircuitBreakerConfig {
    #[new]
    #[pyo3(signature = (*, failure_threshold = 5, success_threshold = 2, timeout_secs = 30.0, half_open_max_calls = 3))]
    fn new(
        failure_threshold: i64,
        success_threshold: i64,
        timeout_secs: f64,
        half_open_max_calls: i64,
    ) -> PyResult<Self> {
        const C: &str = "CircuitBreakerConfig";
        positive_secs(C, "timeout_secs", timeout_secs)?;
        Ok(Self {
            failure_threshold: in_range(C, "failure_threshold", failure_threshold, 1, 1_000_000)?,
            success_threshold: in_range(C, "success_threshold", success_threshold, 1, 1_000_000)?,
            timeout_secs,
            half_open_max_calls: in_range(
                C,
                "half_open_max_calls",
                half_open_max_calls,
                1,
                1_000_000,
            )?,
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "CircuitBreakerConfig(failure_threshold={}, success_threshold={}, timeout_secs={}, half_open_max_calls={})",
            self.failure_threshold, self.success_threshold, self.timeout_secs, self.half_open_max_calls
        )
    }
}

impl CircuitBreakerConfig {
    fn to_breaker(&self) -> BreakerConfig {
        BreakerConfig {
            failure_threshold: saturate(self.failure_threshold),
            success_threshold: saturate(self.success_threshold),
            open_timeout: Duration::from_secs_f64(self.timeout_secs),
            half_open_max_calls: saturate(self.half_open_max_calls),
        }
    }
}

fn saturate(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Retries of failed calls on another instance (`RetryConfig`).
#[pyclass(module = "mcp_rust._native", frozen, get_all)]
#[derive(Debug, Clone)]
pub struct RetryConfig {
    /// Attempts in total, the first included.
    pub max_attempts: u64,
    /// Delay before the first retry.
    pub initial_delay_ms: u64,
    /// Cap on any delay.
    pub max_delay_ms: u64,
    /// Growth factor of the delay per retry.
    pub exponential_base: f64,
    /// Randomise each delay (full jitter).
    pub jitter: bool,
}

#[pymethods]
impl RetryConfig {
    #[new]
    #[pyo3(signature = (*, max_attempts = 3, initial_delay_ms = 20, max_delay_ms = 2000, exponential_base = 2.0, jitter = true))]
    fn new(
        max_attempts: i64,
        initial_delay_ms: i64,
        max_delay_ms: i64,
        exponential_base: f64,
        jitter: bool,
    ) -> PyResult<Self> {
        const C: &str = "RetryConfig";
        let initial_delay_ms =
            in_range(C, "initial_delay_ms", initial_delay_ms, 0, MAX_TIMEOUT_MS)?;
        let max_delay_ms = in_range(C, "max_delay_ms", max_delay_ms, 0, MAX_TIMEOUT_MS)?;
        if max_delay_ms < initial_delay_ms {
            return Err(bad(
                C,
                "max_delay_ms",
                format!(
                    "must be at least initial_delay_ms ({initial_delay_ms}), got {max_delay_ms}"
                ),
            ));
        }
        if !exponential_base.is_finite() || !(1.0..=100.0).contains(&exponential_base) {
            return Err(bad(
                C,
                "exponential_base",
                format!("must be between 1.0 and 100.0, got {exponential_base}"),
            ));
        }
        Ok(Self {
            max_attempts: in_range(C, "max_attempts", max_attempts, 1, 100)?,
            initial_delay_ms,
            max_delay_ms,
            exponential_base,
            jitter,
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "RetryConfig(max_attempts={}, initial_delay_ms={}, max_delay_ms={}, exponential_base={}, jitter={})",
            self.max_attempts,
            self.initial_delay_ms,
            self.max_delay_ms,
            self.exponential_base,
            py_bool(self.jitter)
        )
    }
}

impl RetryConfig {
    fn to_plane(&self) -> PlaneRetry {
        PlaneRetry {
            max_attempts: saturate(self.max_attempts),
            initial_delay: Duration::from_millis(self.initial_delay_ms),
            max_delay: Duration::from_millis(self.max_delay_ms),
            exponential_base: self.exponential_base,
            jitter: self.jitter,
        }
    }
}

/// Sessions to MCP servers, and the checkout limit of `ConnectionPool` (`PoolConfig`).
#[pyclass(module = "mcp_rust._native", frozen, get_all)]
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Fewest sessions per remote HTTP server and node.
    pub initial_size: u64,
    /// Most sessions per remote HTTP server and node; also the most connections a
    /// `ConnectionPool` lends out per server at once.
    pub max_size: u64,
    /// Connect and handshake timeout; also how long `get_connection` waits for a free slot.
    pub connection_timeout_ms: u64,
    /// Idle HTTP connections are closed after this long.
    pub idle_timeout_secs: f64,
    /// Health-check period of every session.
    pub health_check_interval_secs: f64,
    /// TCP keep-alive on HTTP connections.
    pub enable_keepalive: bool,
    /// Seconds between TCP keep-alive probes.
    pub keepalive_interval_secs: f64,
}

#[pymethods]
impl PoolConfig {
    #[new]
    #[pyo3(signature = (*, initial_size = 1, max_size = 20, connection_timeout_ms = 10_000, idle_timeout_secs = 300.0, health_check_interval_secs = 10.0, enable_keepalive = true, keepalive_interval_secs = 30.0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        initial_size: i64,
        max_size: i64,
        connection_timeout_ms: i64,
        idle_timeout_secs: f64,
        health_check_interval_secs: f64,
        enable_keepalive: bool,
        keepalive_interval_secs: f64,
    ) -> PyResult<Self> {
        const C: &str = "PoolConfig";
        let initial_size = in_range(C, "initial_size", initial_size, 1, 10_000)?;
        let max_size = in_range(C, "max_size", max_size, 1, 10_000)?;
        if max_size < initial_size {
            return Err(bad(
                C,
                "max_size",
                format!("must be at least initial_size ({initial_size}), got {max_size}"),
            ));
        }
        positive_secs(C, "idle_timeout_secs", idle_timeout_secs)?;
        positive_secs(C, "health_check_interval_secs", health_check_interval_secs)?;
        positive_secs(C, "keepalive_interval_secs", keepalive_interval_secs)?;
        Ok(Self {
            initial_size,
            max_size,
            connection_timeout_ms: in_range(
                C,
                "connection_timeout_ms",
                connection_timeout_ms,
                1,
                MAX_TIMEOUT_MS,
            )?,
            idle_timeout_secs,
            health_check_interval_secs,
            enable_keepalive,
            keepalive_interval_secs,
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "PoolConfig(initial_size={}, max_size={}, connection_timeout_ms={}, idle_timeout_secs={}, health_check_interval_secs={}, enable_keepalive={}, keepalive_interval_secs={})",
            self.initial_size,
            self.max_size,
            self.connection_timeout_ms,
            self.idle_timeout_secs,
            self.health_check_interval_secs,
            py_bool(self.enable_keepalive),
            self.keepalive_interval_secs
        )
    }
}

/// Memory bounds of the data plane (`MemoryConfig`).
#[pyclass(module = "mcp_rust._native", frozen, get_all)]
#[derive(Debug, Clone)]
pub struct MemoryConfig {
    /// True: `pool_size` bounds the requests in flight per instance.
    pub enable_object_pooling: bool,
    /// Requests in flight per instance (each holds a pending-request slot) before the
    /// instance counts as saturated.
    pub pool_size: u64,
    /// True: `arena_size_mb` bounds one message from a server.
    pub enable_arena_allocation: bool,
    /// Largest message (MiB) a server may send; a larger one ends its session.
    pub arena_size_mb: u64,
}

#[pymethods]
impl MemoryConfig {
    #[new]
    #[pyo3(signature = (*, enable_object_pooling = true, pool_size = 512, enable_arena_allocation = true, arena_size_mb = 16))]
    fn new(
        enable_object_pooling: bool,
        pool_size: i64,
        enable_arena_allocation: bool,
        arena_size_mb: i64,
    ) -> PyResult<Self> {
        const C: &str = "MemoryConfig";
        Ok(Self {
            enable_object_pooling,
            pool_size: in_range(C, "pool_size", pool_size, 1, 1_000_000)?,
            enable_arena_allocation,
            arena_size_mb: in_range(C, "arena_size_mb", arena_size_mb, 1, 1024)?,
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "MemoryConfig(enable_object_pooling={}, pool_size={}, enable_arena_allocation={}, arena_size_mb={})",
            py_bool(self.enable_object_pooling),
            self.pool_size,
            py_bool(self.enable_arena_allocation),
            self.arena_size_mb
        )
    }
}

/// The data plane's settings from the classes a manager was given. Later, more specific
/// objects win: `MCPConfig` first, then `PoolConfig`, `CircuitBreakerConfig`,
/// `RetryConfig`, `MemoryConfig`.
pub fn dataplane_config(
    base: Option<&MCPConfig>,
    pool: Option<&PoolConfig>,
    breaker: Option<&CircuitBreakerConfig>,
    retry: Option<&RetryConfig>,
    memory: Option<&MemoryConfig>,
) -> DataPlaneConfig {
    let mut plane = DataPlaneConfig::default();
    let defaults = MCPConfig::default();
    let base = base.unwrap_or(&defaults);
    plane.max_connections_per_server = usize_of(base.max_connections_per_server);
    plane.connect_timeout = Duration::from_millis(base.connection_timeout_ms);
    plane.request_timeout = Duration::from_millis(base.request_timeout_ms);
    plane.health_check_interval = Duration::from_secs_f64(base.health_check_interval_secs);
    plane.retry.max_attempts = saturate(base.max_retries.saturating_add(1));
    plane.retry.exponential_base = base.retry_backoff_multiplier;
    plane.breaker.failure_threshold = saturate(base.circuit_breaker_threshold);
    plane.breaker.open_timeout = Duration::from_secs_f64(base.circuit_breaker_recovery_secs);
    if let Some(pool) = pool {
        plane.initial_size = usize_of(pool.initial_size);
        plane.max_connections_per_server = usize_of(pool.max_size);
        plane.connect_timeout = Duration::from_millis(pool.connection_timeout_ms);
        plane.idle_timeout = Duration::from_secs_f64(pool.idle_timeout_secs);
        plane.health_check_interval = Duration::from_secs_f64(pool.health_check_interval_secs);
        plane.keepalive = pool.enable_keepalive;
        plane.keepalive_interval = Duration::from_secs_f64(pool.keepalive_interval_secs);
    }
    if !base.enable_connection_pooling {
        plane.initial_size = 1;
        plane.max_connections_per_server = 1;
    }
    if !base.enable_health_checks {
        plane.health_check_interval = HEALTH_CHECKS_OFF;
    }
    if let Some(breaker) = breaker {
        plane.breaker = breaker.to_breaker();
    }
    if let Some(retry) = retry {
        plane.retry = retry.to_plane();
    }
    if let Some(memory) = memory {
        if memory.enable_object_pooling {
            plane.max_in_flight_per_instance = usize_of(memory.pool_size);
        }
        if memory.enable_arena_allocation {
            plane.max_message_bytes = usize_of(memory.arena_size_mb.saturating_mul(1024 * 1024));
        }
    }
    plane
}

fn usize_of(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}
