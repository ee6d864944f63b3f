//! `mcp_rust._native`: the Rust half of the `mcp_rust` Python package.
//!
//! - [`manager`]: `NativeManager`, the awaitable API over a [`backend::Backend`].
//! - [`bridge`]: Rust futures as asyncio awaitables, safe at interpreter exit.
//! - [`backend`]: the three modes (embedded, client, member) and every operation.
//! - [`client`]: the gRPC client with leader discovery and failover that all modes use.
//! - [`embedded`]: a `ClusterNode` run inside the Python process.
//! - [`config`] / [`distributed`]: the guide's configuration classes, validated.
//! - [`types`]: result objects (servers, metrics, health).
//! - [`errors`]: the error type and its mapping to `mcp_rust.errors` exceptions.
//! - [`runtime`]: the module's tokio runtime (`MCP_THREAD_POOL_SIZE`, `MCP_CPU_AFFINITY`).
//! - [`memory`]: allocation tracking (`MCP_TRACK_MEMORY`).
//! - [`metrics_server`]: the manager's Prometheus endpoint.
//!
//! The Python half (`python/mcp_rust/`) adds what is easier in Python: JSON conversion,
//! the exception classes, the sync wrapper and the testing harness.

pub mod backend;
pub mod bridge;
pub mod config;
pub mod distributed;
pub mod embedded;
pub mod errors;
pub mod manager;
pub mod memory;
pub mod metrics_server;
pub mod runtime;
pub mod types;

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// A node in a Python process logs its routine warnings (instances stopping, peers
/// unreachable) at `warn`; only errors reach a user's terminal unless they ask.
const DEFAULT_LOG_FILTER: &str = "error,_native=warn";

#[global_allocator]
static ALLOCATOR: memory::TrackingAllocator = memory::TrackingAllocator;

/// Allocation statistics of the package's Rust code (`MCP_TRACK_MEMORY=1` to collect).
#[pyfunction]
fn memory_stats() -> memory::MemoryStats {
    memory::snapshot()
}

/// How the module's runtime was built: `worker_threads` and `cpu_affinity`.
#[pyfunction]
fn runtime_info(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let shape = runtime::shape()?;
    let info = PyDict::new(py);
    info.set_item("worker_threads", shape.worker_threads)?;
    info.set_item("cpu_affinity", shape.cpu_affinity)?;
    Ok(info)
}

/// Sends the Rust side's logs to stderr, filtered by `MCP_LOG` (default: errors, and this
/// package's warnings), e.g. `MCP_LOG=info` or `MCP_LOG=mcp_cluster=debug`.
fn init_logging() {
    let filter = std::env::var("MCP_LOG").unwrap_or_else(|_| DEFAULT_LOG_FILTER.to_owned());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    // Err: the host process already installed a subscriber; keep it.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    memory::init_from_env();
    init_logging();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<manager::NativeManager>()?;
    m.add_class::<config::MCPConfig>()?;
    m.add_class::<config::CircuitBreakerConfig>()?;
    m.add_class::<config::RetryConfig>()?;
    m.add_class::<config::PoolConfig>()?;
    m.add_class::<config::MemoryConfig>()?;
    m.add_class::<distributed::DistributedConfig>()?;
    m.add_class::<types::ServerInfo>()?;
    m.add_class::<types::Metrics>()?;
    m.add_class::<types::ServerMetrics>()?;
    m.add_class::<types::HealthStatus>()?;
    m.add_class::<types::ServerHealth>()?;
    m.add_class::<types::InstanceHealth>()?;
    m.add_class::<memory::MemoryStats>()?;
    m.add_function(wrap_pyfunction!(memory_stats, m)?)?;
    m.add_function(wrap_pyfunction!(runtime_info, m)?)?;
    Ok(())
}
