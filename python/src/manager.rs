//! `NativeManager`: the Python-facing handle on a [`Backend`]. Each async method hands the
//! backend's future to pyo3-async-runtimes, so the work runs on the module's tokio runtime
//! without the GIL and the caller gets an asyncio awaitable; the few methods the guide calls
//! without `await` block with the GIL released.
//!
//! `mcp_rust.MCPManager` (Python) wraps this class to add JSON conversion, the deploy
//! result type and the context-manager protocol.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;

use crate::backend::{Backend, BackendSettings};
use crate::bridge::{awaitable, awaitable_now};
use crate::config::{
    dataplane_config, CircuitBreakerConfig, MCPConfig, MemoryConfig, PoolConfig, RetryConfig,
};
use crate::distributed::DistributedConfig;
use crate::errors::ClientError;
use crate::metrics_server::MetricsEndpoint;
use crate::runtime;
use crate::types::{HealthStatus, Metrics, ServerInfo};

/// Largest replica count (as for specs).
const MAX_REPLICAS: i64 = 1000;

/// Runs a backend future to completion with the GIL released.
fn blocking<T, F>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = Result<T, ClientError>> + Send,
    T: Send,
{
    let rt = runtime::runtime()?;
    py.detach(|| rt.block_on(fut)).map_err(|e| e.to_pyerr(py))
}

fn timeout_of(timeout_ms: Option<u64>) -> PyResult<Option<Duration>> {
    match timeout_ms {
        Some(0) => Err(ClientError::config("timeout_ms", "timeout_ms must be positive").into()),
        Some(ms) => Ok(Some(Duration::from_millis(ms))),
        None => Ok(None),
    }
}

/// The native half of `MCPManager`.
#[pyclass(module = "mcp_rust._native", frozen)]
pub struct NativeManager {
    backend: Arc<Backend>,
}

impl NativeManager {
    /// A call's awaitable: on a started manager its first step (route, write the request)
    /// runs here, without waking a runtime thread; a call that would start the manager
    /// (a node, a data directory) runs on the runtime, with the GIL released.
    fn call<'py, F>(&self, py: Python<'py>, call: F) -> PyResult<Bound<'py, PyAny>>
    where
        F: Future<Output = Result<String, ClientError>> + Send + 'static,
    {
        if self.backend.is_running() {
            awaitable_now(py, call)
        } else {
            awaitable(py, call)
        }
    }
}

#[pymethods]
impl NativeManager {
    #[new]
    #[pyo3(signature = (
        config = None,
        *,
        circuit_breaker = None,
        retry = None,
        pool = None,
        memory = None,
        distributed = None,
        enable_metrics = None,
        metrics_port = None,
        metrics_path = "/metrics".to_owned(),
        metrics_host = "127.0.0.1".to_owned(),
        data_dir = None,
        grpc_addr = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        config: Option<PyRef<'_, MCPConfig>>,
        circuit_breaker: Option<PyRef<'_, CircuitBreakerConfig>>,
        retry: Option<PyRef<'_, RetryConfig>>,
        pool: Option<PyRef<'_, PoolConfig>>,
        memory: Option<PyRef<'_, MemoryConfig>>,
        distributed: Option<PyRef<'_, DistributedConfig>>,
        enable_metrics: Option<bool>,
        metrics_port: Option<i64>,
        metrics_path: String,
        metrics_host: String,
        data_dir: Option<PathBuf>,
        grpc_addr: Option<String>,
    ) -> PyResult<Self> {
        let config: Option<MCPConfig> = config.map(|c| c.clone());
        let distributed: Option<DistributedConfig> = distributed.map(|d| d.clone());
        // Fail here, at construction, on a bad MCP_THREAD_POOL_SIZE / MCP_CPU_AFFINITY.
        runtime::runtime()?;
        let enable_metrics =
            enable_metrics.unwrap_or_else(|| config.as_ref().is_none_or(|c| c.enable_metrics));
        let metrics_endpoint = match metrics_port {
            None => None,
            Some(port) => {
                let port = u16::try_from(port).map_err(|_| {
                    ClientError::config(
                        "metrics_port",
                        format!("metrics_port must be between 0 and 65535, got {port}"),
                    )
                })?;
                if !metrics_path.starts_with('/') || metrics_path.contains(char::is_whitespace) {
                    return Err(ClientError::config(
                        "metrics_path",
                        format!("metrics_path must start with '/' and contain no spaces, got {metrics_path:?}"),
                    )
                    .into());
                }
                let host: IpAddr = metrics_host.parse().map_err(|_| {
                    ClientError::config(
                        "metrics_host",
                        format!("metrics_host must be an IP address, got {metrics_host:?}"),
                    )
                })?;
                if !enable_metrics {
                    return Err(ClientError::config(
                        "metrics_port",
                        "metrics_port is set but metrics are disabled (enable_metrics=False)",
                    )
                    .into());
                }
                Some(MetricsEndpoint {
                    addr: SocketAddr::new(host, port),
                    path: metrics_path,
                })
            }
        };
        let grpc_addr = match grpc_addr {
            None => None,
            Some(_) if distributed.is_some() => {
                return Err(ClientError::config(
                    "grpc_addr",
                    "grpc_addr is for embedded mode; a node run in distributed mode takes DistributedConfig(listen_addr=...)",
                )
                .into());
            }
            Some(addr) => Some(addr.parse::<SocketAddr>().map_err(|_| {
                ClientError::config(
                    "grpc_addr",
                    format!("grpc_addr must be IP:PORT, got {addr:?}"),
                )
            })?),
        };
        if data_dir.is_some() && distributed.is_some() {
            return Err(ClientError::config(
                "data_dir",
                "data_dir is for embedded mode; a node run in distributed mode takes DistributedConfig(data_dir=...)",
            )
            .into());
        }
        let dataplane = dataplane_config(
            config.as_ref(),
            pool.as_deref(),
            circuit_breaker.as_deref(),
            retry.as_deref(),
            memory.as_deref(),
        );
        Ok(Self {
            backend: Arc::new(Backend::new(BackendSettings {
                dataplane,
                distributed,
                data_dir,
                grpc_addr,
                metrics_endpoint,
                enable_metrics,
            })),
        })
    }

    /// `embedded`, `client` or `member`.
    #[getter]
    fn mode(&self) -> &'static str {
        self.backend.mode().as_str()
    }

    /// True while started.
    #[getter]
    fn is_running(&self) -> bool {
        self.backend.is_running()
    }

    /// Node addresses the manager talks to.
    #[getter]
    fn node_addresses(&self) -> Vec<String> {
        self.backend.endpoints().0
    }

    /// gRPC address of the node run in this process (embedded or member mode).
    #[getter]
    fn local_node_address(&self) -> Option<String> {
        self.backend.endpoints().1
    }

    /// The leader's address, as last seen.
    #[getter]
    fn leader_address(&self) -> Option<String> {
        self.backend.endpoints().2
    }

    /// `HOST:PORT` of the Prometheus endpoint while it runs.
    #[getter]
    fn metrics_address(&self) -> Option<String> {
        self.backend.metrics_addr().map(|a| a.to_string())
    }

    fn start<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let backend = Arc::clone(&self.backend);
        awaitable(py, async move { backend.start().await })
    }

    fn stop<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let backend = Arc::clone(&self.backend);
        awaitable(py, async move { backend.stop().await })
    }

    fn start_blocking(&self, py: Python<'_>) -> PyResult<()> {
        blocking(py, self.backend.start())
    }

    fn stop_blocking(&self, py: Python<'_>) -> PyResult<()> {
        blocking(py, self.backend.stop())
    }

    /// Resolves to `(name, revision, created, log_index)`.
    fn deploy<'py>(&self, py: Python<'py>, spec_json: String) -> PyResult<Bound<'py, PyAny>> {
        let backend = Arc::clone(&self.backend);
        awaitable(py, async move {
            let d = backend.deploy(&spec_json).await?;
            Ok((d.name, d.revision, d.created, d.log_index))
        })
    }

    /// Resolves to the registry revision after the removal.
    fn undeploy<'py>(&self, py: Python<'py>, name: String) -> PyResult<Bound<'py, PyAny>> {
        let backend = Arc::clone(&self.backend);
        awaitable(py, async move { backend.undeploy(&name).await })
    }

    /// Resolves to the registry revision after the change. `replicas` is the `instances`
    /// argument of `scale_server` and `MCPServer.scale`, so a bad value names that.
    fn scale<'py>(
        &self,
        py: Python<'py>,
        name: String,
        replicas: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        if !(0..=MAX_REPLICAS).contains(&replicas) {
            return Err(ClientError::config(
                "instances",
                format!(
                    "instances (the server's desired replicas) must be between 0 and {MAX_REPLICAS}, got {replicas}"
                ),
            )
            .into());
        }
        let replicas = u32::try_from(replicas).unwrap_or(0);
        let backend = Arc::clone(&self.backend);
        awaitable(py, async move { backend.scale(&name, replicas).await })
    }

    fn list_servers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let backend = Arc::clone(&self.backend);
        awaitable(py, async move { backend.list_servers().await })
    }

    /// Resolves to the server's JSON-RPC response object as JSON text.
    #[pyo3(signature = (server, request_json, timeout_ms = None, retry_unsafe = false))]
    fn execute<'py>(
        &self,
        py: Python<'py>,
        server: String,
        request_json: String,
        timeout_ms: Option<u64>,
        retry_unsafe: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let timeout = timeout_of(timeout_ms)?;
        let backend = Arc::clone(&self.backend);
        let call = async move {
            let reply = backend
                .execute(&server, &request_json, timeout, retry_unsafe)
                .await?;
            Ok(reply.response_json)
        };
        self.call(py, call)
    }

    /// Resolves to the `tools/call` response object as JSON text; a JSON-RPC error
    /// raises `MCPServerError`.
    #[pyo3(signature = (server, tool, arguments_json, timeout_ms = None, retry_unsafe = false))]
    fn execute_tool<'py>(
        &self,
        py: Python<'py>,
        server: String,
        tool: String,
        arguments_json: String,
        timeout_ms: Option<u64>,
        retry_unsafe: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let timeout = timeout_of(timeout_ms)?;
        let backend = Arc::clone(&self.backend);
        let call = async move {
            let reply = backend
                .execute_tool(&server, &tool, &arguments_json, timeout, retry_unsafe)
                .await?;
            Ok(reply.response_json)
        };
        self.call(py, call)
    }

    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let backend = Arc::clone(&self.backend);
        awaitable(py, async move { backend.metrics().await })
    }

    fn metrics_blocking(&self, py: Python<'_>) -> PyResult<Metrics> {
        blocking(py, self.backend.metrics())
    }

    fn prometheus<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let backend = Arc::clone(&self.backend);
        awaitable(py, async move { backend.prometheus().await })
    }

    fn prometheus_blocking(&self, py: Python<'_>) -> PyResult<String> {
        blocking(py, self.backend.prometheus())
    }

    fn health<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let backend = Arc::clone(&self.backend);
        awaitable(py, async move { backend.health().await })
    }

    fn health_blocking(&self, py: Python<'_>) -> PyResult<HealthStatus> {
        blocking(py, self.backend.health())
    }

    fn server_state<'py>(&self, py: Python<'py>, name: String) -> PyResult<Bound<'py, PyAny>> {
        let backend = Arc::clone(&self.backend);
        awaitable(py, async move { backend.server_state(&name).await })
    }

    fn server_state_blocking(&self, py: Python<'_>, name: String) -> PyResult<String> {
        blocking(py, self.backend.server_state(&name))
    }

    /// Resolves to `([(id, address, voter)], leader_id)`.
    fn members<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let backend = Arc::clone(&self.backend);
        awaitable(py, async move { backend.members().await })
    }

    fn list_servers_blocking(&self, py: Python<'_>) -> PyResult<Vec<ServerInfo>> {
        blocking(py, self.backend.list_servers())
    }
}

impl Drop for NativeManager {
    fn drop(&mut self) {
        // A manager dropped while running (never stopped) still stops its node and child
        // processes, in the background.
        if self.backend.is_running() {
            if let Ok(rt) = runtime::runtime() {
                let backend = Arc::clone(&self.backend);
                rt.spawn(async move {
                    if let Err(e) = backend.stop().await {
                        tracing::warn!(error = %e, "stopping a dropped manager failed");
                    }
                });
            }
        }
    }
}
