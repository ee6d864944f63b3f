//! `DistributedConfig`: which cluster a manager talks to, and whether this process is one
//! of its nodes.
//!
//! - `cluster_nodes`: the nodes' gRPC addresses, `HOST:PORT`, or `ID=HOST:PORT` to name a
//!   founding member.
//! - `node_id` unset: the manager is a client; it finds the leader and fails over itself.
//! - `node_id` set: this process runs that node. If every entry of `cluster_nodes` names
//!   its id and this id is among them, the nodes found the cluster together (like
//!   `mcpd node --initial-cluster`); otherwise the node joins the running cluster at
//!   `cluster_nodes` as a learner and is promoted to voter.
//! - `consensus_threshold`: a write returns once at least `ceil(threshold * voters)` voters
//!   have applied it. Raft commits with a strict majority, so the threshold must be above
//!   0.5 (and at most 1.0); anything else is refused.
//! - `leader_election_timeout_secs`: the node's Raft election timeout (when it runs one),
//!   and the unit of the client's failover window: operations keep trying other nodes and
//!   waiting for a new leader for up to three of them (at least 5 s).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::config::bad;

const C: &str = "DistributedConfig";

/// Settings of distributed mode (`DistributedConfig`).
#[pyclass(module = "mcp_rust._native", frozen)]
#[derive(Clone)]
pub struct DistributedConfig {
    /// Node addresses as given.
    #[pyo3(get)]
    pub cluster_nodes: Vec<String>,
    /// This process's node id, when it runs a node.
    #[pyo3(get)]
    pub node_id: Option<u64>,
    /// Fraction of voters that must have applied a write before it returns.
    #[pyo3(get)]
    pub consensus_threshold: Option<f64>,
    /// Raft election timeout of a node run here; unit of the failover window.
    #[pyo3(get)]
    pub leader_election_timeout_secs: f64,
    /// gRPC listen address of a node run here.
    #[pyo3(get)]
    pub listen_addr: Option<String>,
    /// Address peers dial for a node run here (defaults to `listen_addr`).
    #[pyo3(get)]
    pub advertise_addr: Option<String>,
    /// Data dir of a node run here (a temporary one when unset).
    #[pyo3(get)]
    pub data_dir: Option<String>,
    /// Admin token of the cluster (never shown in repr).
    pub admin_token: Option<String>,
    /// The credential this client presents: an API token from `mcpd token create`
    /// (never shown in repr); `None` presents `admin_token`.
    pub token: Option<String>,
    /// CA certificate (PEM) the nodes' certificates are checked against: the client
    /// speaks TLS when set.
    #[pyo3(get)]
    pub tls_ca_file: Option<String>,
    /// Client certificate (PEM) presented to the nodes, with `tls_key_file`.
    #[pyo3(get)]
    pub tls_cert_file: Option<String>,
    /// Private key (PEM) of `tls_cert_file`.
    #[pyo3(get)]
    pub tls_key_file: Option<String>,
}

#[pymethods]
impl DistributedConfig {
    #[new]
    #[pyo3(signature = (
        cluster_nodes,
        *,
        node_id = None,
        consensus_threshold = None,
        leader_election_timeout_secs = 1.0,
        listen_addr = None,
        advertise_addr = None,
        data_dir = None,
        admin_token = None,
        token = None,
        tls_ca_file = None,
        tls_cert_file = None,
        tls_key_file = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        cluster_nodes: &Bound<'_, PyAny>,
        node_id: Option<&Bound<'_, PyAny>>,
        consensus_threshold: Option<f64>,
        leader_election_timeout_secs: f64,
        listen_addr: Option<String>,
        advertise_addr: Option<String>,
        data_dir: Option<PathBuf>,
        admin_token: Option<String>,
        token: Option<String>,
        tls_ca_file: Option<PathBuf>,
        tls_cert_file: Option<PathBuf>,
        tls_key_file: Option<PathBuf>,
    ) -> PyResult<Self> {
        if cluster_nodes.is_instance_of::<PyString>() {
            return Err(bad(
                C,
                "cluster_nodes",
                "must be a list of node addresses, not one string",
            ));
        }
        let cluster_nodes: Vec<String> = cluster_nodes.extract().map_err(|_| {
            bad(
                C,
                "cluster_nodes",
                "must be a list of strings (HOST:PORT or ID=HOST:PORT)",
            )
        })?;
        if cluster_nodes.is_empty() {
            return Err(bad(C, "cluster_nodes", "must list at least one node"));
        }
        for entry in &cluster_nodes {
            parse_entry(entry)?;
        }
        let node_id = node_id.map(parse_node_id).transpose()?;
        if let Some(t) = consensus_threshold {
            if !t.is_finite() || t <= 0.5 || t > 1.0 {
                return Err(bad(
                    C,
                    "consensus_threshold",
                    format!(
                        "must be above 0.5 and at most 1.0, got {t}: Raft commits a write only once a strict majority of voters has it, so a threshold at or below one half cannot hold"
                    ),
                ));
            }
        }
        if !leader_election_timeout_secs.is_finite()
            || !(0.05..=300.0).contains(&leader_election_timeout_secs)
        {
            return Err(bad(
                C,
                "leader_election_timeout_secs",
                format!("must be between 0.05 and 300 seconds, got {leader_election_timeout_secs}"),
            ));
        }
        for (field, value) in [
            ("listen_addr", &listen_addr),
            ("advertise_addr", &advertise_addr),
        ] {
            if value.is_some() && node_id.is_none() {
                return Err(bad(
                    C,
                    field,
                    "is only meaningful with node_id (this process runs a node)",
                ));
            }
        }
        if let Some(addr) = &listen_addr {
            addr.parse::<SocketAddr>()
                .map_err(|_| bad(C, "listen_addr", format!("must be IP:PORT, got {addr:?}")))?;
        }
        if data_dir.is_some() && node_id.is_none() {
            return Err(bad(
                C,
                "data_dir",
                "is only meaningful with node_id (this process runs a node)",
            ));
        }
        for (field, value) in [("admin_token", &admin_token), ("token", &token)] {
            if value.as_deref() == Some("") {
                return Err(bad(C, field, "must not be empty (leave it out for none)"));
            }
        }
        if tls_ca_file.is_some() && node_id.is_some() {
            return Err(bad(
                C,
                "tls_ca_file",
                "applies to a client of a TLS cluster (no node_id); a node run in this process serves plaintext",
            ));
        }
        if let Some(ca) = &tls_ca_file {
            // Read now, so a wrong path or a key that does not fit fails here, naming it.
            mcp_client::tls::ClientTls::from_files(
                ca,
                tls_cert_file.as_deref(),
                tls_key_file.as_deref(),
            )
            .map_err(|e| bad(C, &tls_field(e.field.as_deref()), e.message))?;
        } else if tls_cert_file.is_some() || tls_key_file.is_some() {
            return Err(bad(
                C,
                "tls_ca_file",
                "is needed with tls_cert_file/tls_key_file: the CA the nodes' certificates are checked against",
            ));
        }
        let path = |p: Option<PathBuf>| p.map(|p| p.display().to_string());
        let config = Self {
            cluster_nodes,
            node_id,
            consensus_threshold,
            leader_election_timeout_secs,
            listen_addr,
            advertise_addr,
            data_dir: data_dir.map(|d| d.display().to_string()),
            admin_token,
            token,
            tls_ca_file: path(tls_ca_file),
            tls_cert_file: path(tls_cert_file),
            tls_key_file: path(tls_key_file),
        };
        if let (Some(id), Some(founders)) = (config.node_id, config.founders()?) {
            if !founders.contains_key(&id) {
                return Err(bad(
                    C,
                    "node_id",
                    format!("every cluster_nodes entry names an id, but not {id}; list this node too, or give addresses without ids to join a running cluster"),
                ));
            }
        }
        Ok(config)
    }

    /// True when an admin token is set (the token itself is never readable back).
    #[getter]
    fn has_admin_token(&self) -> bool {
        self.admin_token.is_some()
    }

    /// True when an API token is set (the token itself is never readable back).
    #[getter]
    fn has_token(&self) -> bool {
        self.token.is_some()
    }

    fn __repr__(&self) -> String {
        format!(
            "DistributedConfig(cluster_nodes={:?}, node_id={}, consensus_threshold={}, leader_election_timeout_secs={}, listen_addr={}, admin_token={}, token={})",
            self.cluster_nodes,
            self.node_id.map_or("None".to_owned(), |id| id.to_string()),
            self.consensus_threshold.map_or("None".to_owned(), |t| t.to_string()),
            self.leader_election_timeout_secs,
            self.listen_addr.as_deref().map_or("None".to_owned(), |a| format!("{a:?}")),
            if self.admin_token.is_some() { "'<redacted>'" } else { "None" },
            if self.token.is_some() { "'<redacted>'" } else { "None" }
        )
    }
}

impl DistributedConfig {
    /// TLS towards the nodes, when `tls_ca_file` is set.
    pub fn client_tls(&self) -> Result<Option<mcp_client::tls::ClientTls>, mcp_client::Error> {
        let Some(ca) = &self.tls_ca_file else {
            return Ok(None);
        };
        mcp_client::tls::ClientTls::from_files(
            std::path::Path::new(ca),
            self.tls_cert_file.as_deref().map(std::path::Path::new),
            self.tls_key_file.as_deref().map(std::path::Path::new),
        )
        .map(Some)
    }

    /// The credential this client presents: its API token, else the admin token.
    pub fn client_token(&self) -> Option<String> {
        self.token.clone().or_else(|| self.admin_token.clone())
    }

    /// The node addresses without ids.
    pub fn addresses(&self) -> Vec<String> {
        self.cluster_nodes
            .iter()
            .filter_map(|e| parse_entry(e).ok().map(|(_, addr)| addr))
            .collect()
    }

    /// The founding membership, when every entry names its node id.
    pub fn founders(&self) -> PyResult<Option<BTreeMap<u64, String>>> {
        let mut founders = BTreeMap::new();
        for entry in &self.cluster_nodes {
            match parse_entry(entry)? {
                (Some(id), addr) => {
                    if founders.insert(id, addr).is_some() {
                        return Err(bad(
                            C,
                            "cluster_nodes",
                            format!("node id {id} appears twice"),
                        ));
                    }
                }
                (None, _) => return Ok(None),
            }
        }
        Ok(Some(founders))
    }

    /// The Raft election timeout.
    pub fn election_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.leader_election_timeout_secs)
    }

    /// How long operations keep failing over and waiting for a leader.
    pub fn failover_window(&self) -> Duration {
        (self.election_timeout() * 3).max(Duration::from_secs(5))
    }
}

/// The keyword argument a TLS file error is about.
fn tls_field(field: Option<&str>) -> String {
    match field {
        Some("cert") => "tls_cert_file",
        Some("key") => "tls_key_file",
        _ => "tls_ca_file",
    }
    .to_owned()
}

/// `HOST:PORT` or `ID=HOST:PORT`.
fn parse_entry(entry: &str) -> PyResult<(Option<u64>, String)> {
    let (id, addr) = match entry.split_once('=') {
        Some((id, addr)) => {
            let id = id.trim().parse::<u64>().map_err(|_| {
                bad(
                    C,
                    "cluster_nodes",
                    format!("{entry:?}: the part before '=' must be a node id (a number)"),
                )
            })?;
            (Some(id), addr.trim())
        }
        None => (None, entry.trim()),
    };
    let valid = addr
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if !valid {
        return Err(bad(
            C,
            "cluster_nodes",
            format!("{entry:?} is not HOST:PORT (or ID=HOST:PORT)"),
        ));
    }
    Ok((id, addr.to_owned()))
}

/// Node ids are numbers; the guide's `'node-1'` style is accepted as the number it ends in.
fn parse_node_id(value: &Bound<'_, PyAny>) -> PyResult<u64> {
    if let Ok(id) = value.extract::<u64>() {
        if id == 0 {
            return Err(bad(C, "node_id", "must be at least 1"));
        }
        return Ok(id);
    }
    let text: String = value.extract().map_err(|_| {
        bad(
            C,
            "node_id",
            "must be a positive integer or a name ending in one, such as 'node-1'",
        )
    })?;
    let digits: String = text
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    match digits.parse::<u64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(bad(
            C,
            "node_id",
            format!("{text:?} does not end in a positive number (node ids are numbers, e.g. 'node-1' or 1)"),
        )),
    }
}
