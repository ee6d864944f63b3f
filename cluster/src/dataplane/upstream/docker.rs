//! The docker transport: an MCP server in a container, run through the Docker Engine API.
//!
//! Stdio mode (no `port`): the container's stdin/stdout, attached like `docker run -i`,
//! carry one JSON message per line, through the same line session core as a child
//! process ([`super::lines`]); stderr goes to the log. HTTP mode: the server listens
//! on `port` inside the container, which the engine publishes on a random loopback port of
//! the node, and the session is an [`HttpWire`] to it.
//!
//! Every container carries labels naming the cluster, the node, the node's container scope
//! (a random id kept in its data dir), the server and the instance, so [`reap`] can remove
//! what a node left behind: it removes the scope's containers that this process does not
//! own (see [`OWNED`]), at start (after a crash, none are owned yet) and periodically.
//! Shutdown: close stdin, wait, `docker stop` (SIGTERM, then SIGKILL), remove.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, CreateImageOptions, ListContainersOptions,
    RemoveContainerOptions, StopContainerOptions, WaitContainerOptions,
};
use bollard::Docker;
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use mcp_raft::registry::spec::{DockerSpec, PullPolicy, ServerSpec, Transport};
use serde_json::Value;
use tokio::sync::oneshot;

use super::http::HttpWire;
use super::lines::{LineState, Lines};
use super::{Era, SessionOptions, UpstreamError, Wire};
use crate::dataplane::jsonrpc::RawResponse;

/// Label keys every container of a node carries.
pub const LABEL_MANAGED: &str = "io.mcp-rust.managed";
/// The cluster name.
pub const LABEL_CLUSTER: &str = "io.mcp-rust.cluster";
/// The node id.
pub const LABEL_NODE: &str = "io.mcp-rust.node";
/// The node's container scope (see [`ContainerScope`]).
pub const LABEL_SCOPE: &str = "io.mcp-rust.scope";
/// The server name.
pub const LABEL_SERVER: &str = "io.mcp-rust.server";
/// The instance id.
pub const LABEL_INSTANCE: &str = "io.mcp-rust.instance";

/// File in the data dir holding the node's container scope.
const SCOPE_FILE: &str = "container-scope";
/// How long a container gets to exit after stdin closes, and again after SIGTERM.
const EXIT_GRACE: Duration = Duration::from_secs(2);
/// Longest stderr line forwarded to the log.
const STDERR_LINE_LIMIT: usize = 4096;

/// Names of the containers this process created and has not removed yet: [`reap`] spares
/// them. A name is added before the container is created and taken out after it is gone,
/// so a container the reaper lists is either owned or an orphan, never one being born.
static OWNED: Mutex<Option<HashSet<String>>> = Mutex::new(None);

fn own(name: &str) {
    OWNED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashSet::new)
        .insert(name.to_owned());
}

fn disown(name: &str) {
    if let Some(set) = OWNED.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        set.remove(name);
    }
}

fn owned(name: &str) -> bool {
    OWNED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .is_some_and(|set| set.contains(name))
}

/// Which node a container belongs to: its labels. The scope is what reaping goes by: a
/// random id written to the data dir on first start, so that two clusters (or two test
/// runs) on one engine never reap each other's containers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerScope {
    /// The cluster name label.
    pub cluster: String,
    /// The node id label.
    pub node: String,
    /// The node's scope id; empty disables reaping (nothing to tell orphans by).
    pub scope: String,
}

impl ContainerScope {
    /// The scope of node `node`, kept in `data_dir` (created on first use).
    pub fn for_node(cluster: &str, node: u64, data_dir: &Path) -> std::io::Result<Self> {
        let path = data_dir.join(SCOPE_FILE);
        let scope = match std::fs::read_to_string(&path) {
            Ok(text) if !text.trim().is_empty() => text.trim().to_owned(),
            Ok(_) => write_scope(&path)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => write_scope(&path)?,
            Err(e) => return Err(e),
        };
        Ok(Self {
            cluster: cluster.to_owned(),
            node: node.to_string(),
            scope,
        })
    }

    fn labels(&self, server: &str, instance: &str) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_MANAGED.to_owned(), "true".to_owned()),
            (LABEL_CLUSTER.to_owned(), self.cluster.clone()),
            (LABEL_NODE.to_owned(), self.node.clone()),
            (LABEL_SCOPE.to_owned(), self.scope.clone()),
            (LABEL_SERVER.to_owned(), server.to_owned()),
            (LABEL_INSTANCE.to_owned(), instance.to_owned()),
        ])
    }
}

fn write_scope(path: &Path) -> std::io::Result<String> {
    let scope = format!("{:016x}", rand::random::<u64>());
    std::fs::write(path, &scope)?;
    Ok(scope)
}

/// A connection to the local Docker engine at the API version both sides speak.
async fn engine() -> Result<Docker, UpstreamError> {
    let docker = Docker::connect_with_local_defaults()
        .map_err(|e| UpstreamError::Connect(format!("no Docker engine on this node: {e}")))?;
    docker
        .negotiate_version()
        .await
        .map_err(|e| UpstreamError::Connect(format!("cannot reach the Docker engine: {e}")))
}

/// The container name of an instance: readable, unique per start.
fn container_name(scope: &ContainerScope, instance: &str) -> String {
    let clean: String = instance
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let scope = if scope.scope.is_empty() {
        "noscope"
    } else {
        &scope.scope
    };
    format!("mcpd-{scope}-{clean}-{:08x}", rand::random::<u32>())
}

/// Removes the containers of `scope` that this process does not own; returns how many.
/// Does nothing (and is not an error) when the scope is empty.
pub async fn reap(scope: &ContainerScope) -> Result<usize, UpstreamError> {
    if scope.scope.is_empty() {
        return Ok(0);
    }
    let docker = engine().await?;
    let filters = HashMap::from([(
        "label".to_owned(),
        vec![format!("{LABEL_SCOPE}={}", scope.scope)],
    )]);
    let listed = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .map_err(|e| UpstreamError::Connect(format!("cannot list containers: {e}")))?;
    let mut removed = 0;
    for container in listed {
        let Some(name) = container
            .names
            .as_ref()
            .and_then(|n| n.first())
            .map(|n| n.trim_start_matches('/').to_owned())
        else {
            continue;
        };
        if owned(&name) {
            continue;
        }
        let instance = container
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_INSTANCE).cloned())
            .unwrap_or_default();
        match remove(&docker, &name).await {
            Ok(()) => {
                removed += 1;
                tracing::info!(container = %name, %instance, "removed an orphaned container");
            }
            Err(e) => {
                tracing::warn!(container = %name, error = %e, "cannot remove an orphaned container")
            }
        }
    }
    Ok(removed)
}

async fn remove(docker: &Docker, name: &str) -> Result<(), bollard::errors::Error> {
    let result = docker
        .remove_container(
            name,
            Some(RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            }),
        )
        .await;
    match result {
        Ok(()) => Ok(()),
        // Already gone (removed by someone else, or never created).
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(e) => Err(e),
    }
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Makes sure the image is on the node, pulling it only if the spec allows.
async fn ensure_image(docker: &Docker, spec: &DockerSpec) -> Result<(), UpstreamError> {
    match docker.inspect_image(&spec.image).await {
        Ok(_) => return Ok(()),
        Err(e) if is_not_found(&e) => {}
        Err(e) => {
            return Err(UpstreamError::Connect(format!(
                "cannot inspect image {:?}: {e}",
                spec.image
            )))
        }
    }
    if spec.pull == PullPolicy::Never {
        return Err(UpstreamError::Connect(format!(
            "image {:?} is not on this node and the spec's pull policy is \"never\"",
            spec.image
        )));
    }
    tracing::info!(image = %spec.image, "pulling image");
    let mut progress = docker.create_image(
        Some(CreateImageOptions {
            from_image: Some(spec.image.clone()),
            ..Default::default()
        }),
        None,
        None,
    );
    while let Some(step) = progress.next().await {
        step.map_err(|e| {
            UpstreamError::Connect(format!("cannot pull image {:?}: {e}", spec.image))
        })?;
    }
    Ok(())
}

/// The engine's create request for an instance of `spec`.
fn create_body(spec: &DockerSpec, labels: HashMap<String, String>) -> ContainerCreateBody {
    let stdio = !spec.is_http();
    let port_key = spec.port.map(|p| format!("{p}/tcp"));
    let port_bindings = port_key.as_ref().map(|key| {
        HashMap::from([(
            key.clone(),
            Some(vec![PortBinding {
                host_ip: Some("127.0.0.1".to_owned()),
                host_port: Some(String::new()),
            }]),
        )])
    });
    let memory = spec
        .memory_mb
        .and_then(|mb| i64::try_from(mb.saturating_mul(1024 * 1024)).ok());
    let binds: Vec<String> = spec.volumes.iter().map(|v| v.bind()).collect();
    let host_config = HostConfig {
        binds: (!binds.is_empty()).then_some(binds),
        network_mode: Some(spec.network().to_owned()),
        port_bindings,
        memory,
        // No swap beyond the memory limit.
        memory_swap: memory,
        nano_cpus: spec.cpu_millis.map(|m| i64::from(m) * 1_000_000),
        pids_limit: spec.pids_limit.map(i64::from),
        readonly_rootfs: Some(spec.read_only),
        tmpfs: spec
            .read_only
            .then(|| HashMap::from([("/tmp".to_owned(), "rw,nosuid,nodev,size=64m".to_owned())])),
        // A server never gains privileges through setuid binaries.
        security_opt: Some(vec!["no-new-privileges:true".to_owned()]),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint: spec.command.clone().map(|c| vec![c]),
        cmd: (!spec.args.is_empty()).then(|| spec.args.clone()),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        working_dir: spec.cwd.clone(),
        user: spec.user.clone(),
        labels: Some(labels),
        attach_stdin: Some(stdio),
        attach_stdout: Some(stdio),
        attach_stderr: Some(true),
        open_stdin: Some(stdio),
        // Closing our end of stdin is the polite stop, as with a child process.
        stdin_once: Some(stdio),
        tty: Some(false),
        exposed_ports: port_key.map(|k| vec![k]),
        host_config: Some(host_config),
        ..Default::default()
    }
}

/// What the session handle and its tasks share: the session's life (the line core's
/// state, also used in HTTP mode for its death), and the container's exit.
struct Shared {
    life: Arc<LineState>,
    exited: tokio::sync::Notify,
    has_exited: AtomicBool,
}

impl Shared {
    fn die(&self, error: UpstreamError) {
        self.life.die(error);
    }

    fn death(&self) -> UpstreamError {
        self.life.death()
    }
}

enum Mode {
    /// Lines over the attached stdin/stdout.
    Stdio(Lines),
    /// Streamable HTTP on the published port.
    Http(Box<HttpWire>),
}

/// A container speaking MCP.
pub struct DockerWire {
    docker: Docker,
    name: String,
    shared: Arc<Shared>,
    mode: Mode,
    stopped: tokio::sync::Mutex<bool>,
}

/// Starts the container of a docker `spec` for instance `options.label`, in a task of its
/// own: a caller that gives up (a stop, a timeout) would otherwise drop the start halfway
/// and leave a container nobody stops. A start nobody waits for any more is shut down.
pub async fn start(
    spec: &ServerSpec,
    options: &SessionOptions,
) -> Result<DockerWire, UpstreamError> {
    let (tx, rx) = oneshot::channel();
    let (spec, options) = (spec.clone(), options.clone());
    tokio::spawn(async move {
        let started = DockerWire::start(&spec, &options).await;
        if let Err(Ok(wire)) = tx.send(started) {
            wire.shutdown().await;
        }
    });
    rx.await.unwrap_or_else(|_| {
        Err(UpstreamError::Connect(
            "the container start was abandoned".into(),
        ))
    })
}

impl DockerWire {
    /// Creates and starts the container of a docker `spec` for instance `options.label`.
    /// A failure leaves no container behind.
    async fn start(spec: &ServerSpec, options: &SessionOptions) -> Result<Self, UpstreamError> {
        let Transport::Docker(docker_spec) = &spec.transport else {
            return Err(UpstreamError::Connect("not a docker spec".into()));
        };
        let docker = engine().await?;
        ensure_image(&docker, docker_spec).await?;
        let scope = &options.containers;
        let name = container_name(scope, &options.label);
        own(&name);
        let started = Self::create_and_start(&docker, &name, spec, docker_spec, options).await;
        match started {
            Ok(wire) => Ok(wire),
            Err(e) => {
                if let Err(remove_error) = remove(&docker, &name).await {
                    tracing::warn!(container = %name, error = %remove_error, "cannot remove a container that failed to start");
                }
                disown(&name);
                Err(e)
            }
        }
    }

    async fn create_and_start(
        docker: &Docker,
        name: &str,
        spec: &ServerSpec,
        docker_spec: &DockerSpec,
        options: &SessionOptions,
    ) -> Result<Self, UpstreamError> {
        let labels = options.containers.labels(&spec.name, &options.label);
        docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.to_owned()),
                    ..Default::default()
                }),
                create_body(docker_spec, labels),
            )
            .await
            .map_err(|e| UpstreamError::Connect(format!("cannot create the container: {e}")))?;
        let shared = Arc::new(Shared {
            life: LineState::new(&options.label, "container", options.list_changes.clone()),
            exited: tokio::sync::Notify::new(),
            has_exited: AtomicBool::new(false),
        });
        // Attached before the start, so no early output is lost.
        let attached = docker
            .attach_container(
                name,
                Some(AttachContainerOptions {
                    stream: true,
                    stdin: !docker_spec.is_http(),
                    stdout: true,
                    stderr: true,
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| UpstreamError::Connect(format!("cannot attach to the container: {e}")))?;
        docker
            .start_container(name, None)
            .await
            .map_err(|e| UpstreamError::Connect(format!("cannot start the container: {e}")))?;
        tracing::info!(instance = %options.label, container = %name, image = %docker_spec.image, mode = if docker_spec.is_http() { "http" } else { "stdio" }, "started container");
        tokio::spawn(watch_exit(
            docker.clone(),
            name.to_owned(),
            Arc::clone(&shared),
        ));
        let mode = if let Some(port) = docker_spec.port {
            tokio::spawn(log_output(attached.output, options.label.clone()));
            let host_port = published_port(docker, name, port).await?;
            let url = format!("http://127.0.0.1:{host_port}/mcp");
            wait_listening(&url, &shared, options.connect_timeout).await?;
            let http_spec = ServerSpec {
                transport: Transport::Http {
                    url,
                    headers: Default::default(),
                    auth: None,
                },
                ..spec.clone()
            };
            Mode::Http(Box::new(HttpWire::new(&http_spec, options)?))
        } else {
            let stdout = tokio_util::io::StreamReader::new(stdout_of(
                attached.output,
                options.label.clone(),
            ));
            Mode::Stdio(Lines::start(
                Arc::clone(&shared.life),
                stdout,
                attached.input,
                options.max_message_bytes,
            ))
        };
        Ok(Self {
            docker: docker.clone(),
            name: name.to_owned(),
            shared,
            mode,
            stopped: tokio::sync::Mutex::new(false),
        })
    }

    /// The container's name.
    pub fn container(&self) -> &str {
        &self.name
    }

    /// The line session of a stdio-mode container, for progress watching.
    pub(crate) fn lines(&self) -> Option<&Lines> {
        match &self.mode {
            Mode::Stdio(lines) => Some(lines),
            Mode::Http(_) => None,
        }
    }
}

/// The loopback port the engine published `port` on.
async fn published_port(docker: &Docker, name: &str, port: u16) -> Result<u16, UpstreamError> {
    let inspected = docker
        .inspect_container(name, None)
        .await
        .map_err(|e| UpstreamError::Connect(format!("cannot inspect the container: {e}")))?;
    inspected
        .network_settings
        .and_then(|n| n.ports)
        .and_then(|ports| ports.get(&format!("{port}/tcp")).cloned().flatten())
        .and_then(|bindings| {
            bindings
                .iter()
                .find_map(|b| b.host_port.as_deref().and_then(|p| p.parse::<u16>().ok()))
        })
        .ok_or_else(|| {
            UpstreamError::Connect(format!(
                "the engine published no port for the container's port {port}"
            ))
        })
}

/// Waits until something answers HTTP at `url` (any status): the published port accepts
/// connections before the server inside listens.
async fn wait_listening(url: &str, shared: &Shared, limit: Duration) -> Result<(), UpstreamError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| UpstreamError::Connect(format!("cannot build HTTP client: {e}")))?;
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if client.get(url).send().await.is_ok() {
            return Ok(());
        }
        if shared.has_exited.load(Ordering::SeqCst) {
            return Err(UpstreamError::Connect(format!(
                "the container exited before listening: {}",
                shared.death()
            )));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(UpstreamError::Connect(format!(
                "the container did not listen on its port within {} ms",
                limit.as_millis()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reports the container's exit: the session is dead.
async fn watch_exit(docker: Docker, name: String, shared: Arc<Shared>) {
    let mut wait = docker.wait_container(&name, None::<WaitContainerOptions>);
    let reason = match wait.next().await {
        Some(Ok(exit)) => format!("container exited (status {})", exit.status_code),
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, error })) => {
            format!("container exited (status {code}) {error}")
        }
        Some(Err(e)) => format!("lost the container: {e}"),
        None => "lost the container".to_owned(),
    };
    shared.has_exited.store(true, Ordering::SeqCst);
    shared.die(UpstreamError::Closed(reason));
    shared.exited.notify_waiters();
}

/// The attached output of a stdio-mode container as the bytes of its stdout; its stderr
/// lines go to the log on the way. A failed attach stream ends the stdout with its error.
fn stdout_of(
    output: std::pin::Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>,
    label: String,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + Unpin {
    let mut stderr = StderrLines::new(label);
    output.filter_map(move |frame| {
        let stdout = match frame {
            Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                Some(Ok(message))
            }
            Ok(LogOutput::StdErr { message }) => {
                stderr.push(&message);
                None
            }
            Ok(LogOutput::StdIn { .. }) => None,
            Err(e) => Some(Err(std::io::Error::other(e))),
        };
        futures::future::ready(stdout)
    })
}

/// The attached output of an HTTP-mode container (its MCP traffic is on the port): every
/// line of either stream goes to the log.
async fn log_output(
    mut output: std::pin::Pin<
        Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>,
    >,
    label: String,
) {
    let mut lines = StderrLines::new(label);
    while let Some(Ok(frame)) = output.next().await {
        match frame {
            LogOutput::StdOut { message }
            | LogOutput::Console { message }
            | LogOutput::StdErr { message } => lines.push(&message),
            LogOutput::StdIn { .. } => {}
        }
    }
}

/// Splits a container's log output into lines for tracing.
struct StderrLines {
    buffer: BytesMut,
    label: String,
}

impl StderrLines {
    fn new(label: String) -> Self {
        Self {
            buffer: BytesMut::new(),
            label,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
        while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
            let line = self.buffer.split_to(end + 1);
            let text: String = String::from_utf8_lossy(&line[..end])
                .chars()
                .take(STDERR_LINE_LIMIT)
                .collect();
            tracing::info!(target: "mcp_cluster::upstream::stderr", instance = %self.label, "{text}");
        }
        // A line longer than the limit is not worth holding on to.
        if self.buffer.len() > STDERR_LINE_LIMIT {
            self.buffer.clear();
        }
    }
}

impl Wire for DockerWire {
    async fn roundtrip(
        &self,
        request: Value,
        era: Option<&Era>,
    ) -> Result<RawResponse, UpstreamError> {
        if !self.is_alive() {
            return Err(UpstreamError::Connect(self.shared.death().to_string()));
        }
        match &self.mode {
            Mode::Http(http) => http.roundtrip(request, era).await,
            Mode::Stdio(lines) => lines.roundtrip(&request).await,
        }
    }

    async fn notify(&self, message: Value, era: Option<&Era>) -> Result<(), UpstreamError> {
        match &self.mode {
            Mode::Http(http) => http.notify(message, era).await,
            Mode::Stdio(lines) => lines.notify(&message).await,
        }
    }

    fn is_alive(&self) -> bool {
        self.shared.life.is_alive()
            && match &self.mode {
                Mode::Http(http) => http.is_alive(),
                Mode::Stdio(_) => true,
            }
    }

    async fn shutdown(&self) {
        let mut stopped = self.stopped.lock().await;
        if *stopped {
            return;
        }
        *stopped = true;
        if let Mode::Http(http) = &self.mode {
            http.shutdown().await;
        }
        let exited = self.shared.exited.notified();
        tokio::pin!(exited);
        exited.as_mut().enable();
        self.shared
            .die(UpstreamError::Closed("instance stopped".into()));
        self.shared.life.close_input();
        if !self.shared.has_exited.load(Ordering::SeqCst) && matches!(self.mode, Mode::Stdio(_)) {
            let _ = tokio::time::timeout(EXIT_GRACE, exited).await;
        }
        if !self.shared.has_exited.load(Ordering::SeqCst) {
            let grace = i32::try_from(EXIT_GRACE.as_secs()).unwrap_or(2);
            if let Err(e) = self
                .docker
                .stop_container(
                    &self.name,
                    Some(StopContainerOptions {
                        t: Some(grace),
                        ..Default::default()
                    }),
                )
                .await
            {
                tracing::debug!(container = %self.name, error = %e, "docker stop failed; removing by force");
            }
        }
        match remove(&self.docker, &self.name).await {
            Ok(()) => {
                tracing::info!(instance = %self.shared.life.label(), container = %self.name, "removed container")
            }
            // Disowned below: the next reap sees an orphan and removes it.
            Err(e) => {
                tracing::warn!(container = %self.name, error = %e, "cannot remove the container; the next reap will")
            }
        }
        disown(&self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_raft::registry::spec::from_value;
    use serde_json::json;

    fn docker_spec(value: Value) -> DockerSpec {
        match from_value(value).unwrap().transport {
            Transport::Docker(d) => d,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stdio_mode_attaches_stdin_and_has_no_network() {
        let spec = docker_spec(
            json!({"name": "s", "image": "img", "args": ["--x"], "env": {"A": "1"},
            "memory_mb": 64, "cpus": 0.5, "pids_limit": 10, "read_only": true, "volumes": ["/h:/c"]}),
        );
        let body = create_body(&spec, HashMap::new());
        assert_eq!(body.open_stdin, Some(true));
        assert_eq!(body.stdin_once, Some(true));
        assert_eq!(body.cmd, Some(vec!["--x".to_owned()]));
        assert_eq!(body.entrypoint, None);
        assert_eq!(body.env, Some(vec!["A=1".to_owned()]));
        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("none"));
        assert_eq!(host.memory, Some(64 * 1024 * 1024));
        assert_eq!(host.memory_swap, host.memory);
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.pids_limit, Some(10));
        assert_eq!(host.readonly_rootfs, Some(true));
        assert!(host.tmpfs.unwrap().contains_key("/tmp"));
        assert_eq!(host.binds, Some(vec!["/h:/c:ro".to_owned()]));
        assert!(host.port_bindings.is_none());
    }

    #[test]
    fn http_mode_publishes_the_port_on_loopback_only() {
        let spec =
            docker_spec(json!({"name": "s", "type": "docker", "port": 8001, "command": "/srv"}));
        let body = create_body(&spec, HashMap::new());
        assert_eq!(body.open_stdin, Some(false));
        assert_eq!(body.entrypoint, Some(vec!["/srv".to_owned()]));
        assert_eq!(body.exposed_ports, Some(vec!["8001/tcp".to_owned()]));
        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("bridge"));
        let binding = &host.port_bindings.unwrap()["8001/tcp"];
        assert_eq!(
            binding.as_ref().unwrap()[0].host_ip.as_deref(),
            Some("127.0.0.1")
        );
    }

    #[test]
    fn container_names_are_valid_and_unique() {
        let scope = ContainerScope {
            cluster: "c".into(),
            node: "1".into(),
            scope: "abc".into(),
        };
        let a = container_name(&scope, "s-0@1");
        let b = container_name(&scope, "s-0@1");
        assert_ne!(a, b);
        assert!(a.starts_with("mcpd-abc-s-0_1-"), "{a}");
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')));
    }

    #[test]
    fn the_scope_is_kept_in_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let first = ContainerScope::for_node("c", 1, dir.path()).unwrap();
        let again = ContainerScope::for_node("c", 1, dir.path()).unwrap();
        assert_eq!(first, again);
        assert_eq!(first.scope.len(), 16);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(
            ContainerScope::for_node("c", 1, other.path())
                .unwrap()
                .scope,
            first.scope
        );
    }
}
