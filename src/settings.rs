//! Merges `mcpd node` settings: flags, then `MCPD_*` env (clap reads both), then the
//! optional TOML file, then defaults.
//!
//! The metrics address defaults to the gRPC listen address's IP at port + 2000 (7400 ->
//! 9400, 7401 -> 9401), so several nodes on one host need no extra flag.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mcp_cluster::config::{parse_initial_cluster, DEFAULT_GRPC_ADDR};
use mcp_cluster::dataplane::DataPlaneConfig;
use mcp_cluster::gateway::session::{DEFAULT_SESSION_LIFETIME, MAX_SESSION_LIFETIME};
use mcp_cluster::tls::{ClientAuth, TlsSettings};
use mcp_cluster::{NodeConfig, RaftTuning};
use serde::Deserialize;

use crate::cli::{DataPlaneArgs, NodeArgs, TlsClientAuth};

/// Node settings as written in a TOML file; same names as the flags, with underscores.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    id: Option<u64>,
    grpc_addr: Option<SocketAddr>,
    advertise_addr: Option<String>,
    data_dir: Option<PathBuf>,
    initial_cluster: Option<String>,
    admin_token: Option<String>,
    leader_election_timeout_ms: Option<u64>,
    heartbeat_interval_ms: Option<u64>,
    snapshot_logs: Option<u64>,
    logs_to_keep: Option<u64>,
    write_timeout_ms: Option<u64>,
    metrics_addr: Option<SocketAddr>,
    node_grace_ms: Option<u64>,
    node_tags: Option<Vec<String>>,
    mcp_addr: Option<SocketAddr>,
    mcp_token: Option<String>,
    mcp_allowed_origins: Option<Vec<String>>,
    mcp_session_lifetime_secs: Option<u64>,
    audit_log: Option<PathBuf>,
    oauth_issuer: Option<String>,
    oauth_jwks: Option<String>,
    oauth_audience: Option<String>,
    oauth_scope_roles: Option<Vec<String>>,
    secrets_key_file: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_ca: Option<PathBuf>,
    tls_client_auth: Option<TlsClientAuth>,
    metrics_tls: Option<bool>,
    mcp_tls: Option<bool>,
    insecure: Option<bool>,
    /// Log level filter (`info`, `debug`, or directives); `RUST_LOG` wins. Reloadable.
    log_level: Option<String>,
    /// The `[dataplane]` table.
    #[serde(default)]
    dataplane: DataPlaneArgs,
}

/// Why settings could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Parse {
        path: String,
        source: Box<toml::de::Error>,
    },
    #[error("{0}")]
    Invalid(String),
}

fn load_file(path: &Path) -> Result<FileSettings, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
        path: path.display().to_string(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| SettingsError::Parse {
        path: path.display().to_string(),
        source: Box::new(source),
    })
}

/// Trimmed, sorted, deduplicated node tags; an empty tag is refused.
fn node_tags(tags: Vec<String>) -> Result<Vec<String>, SettingsError> {
    let mut tags: Vec<String> = tags.iter().map(|t| t.trim().to_owned()).collect();
    if tags.iter().any(String::is_empty) {
        return Err(SettingsError::Invalid(
            "node_tags: tags must not be empty (check for a stray comma)".to_owned(),
        ));
    }
    tags.sort();
    tags.dedup();
    Ok(tags)
}

/// How far above the gRPC port the metrics port is when no metrics address is given.
pub const METRICS_PORT_OFFSET: u16 = 2000;

/// The metrics address of a node listening for gRPC on `grpc`: the same IP, port + 2000.
/// Port 0 (let the OS pick) stays 0.
pub fn derived_metrics_addr(grpc: SocketAddr) -> Result<SocketAddr, SettingsError> {
    if grpc.port() == 0 {
        return Ok(grpc);
    }
    let port = grpc
        .port()
        .checked_add(METRICS_PORT_OFFSET)
        .ok_or_else(|| {
            SettingsError::Invalid(format!(
                "gRPC port {} leaves no room for the default metrics port (gRPC port + \
             {METRICS_PORT_OFFSET}); give --metrics-addr",
                grpc.port()
            ))
        })?;
    Ok(SocketAddr::new(grpc.ip(), port))
}

/// The `log_level` of the config file `args` names, if any.
pub fn file_log_level(args: &NodeArgs) -> Result<Option<String>, SettingsError> {
    match &args.config {
        Some(path) => Ok(load_file(path)?.log_level),
        None => Ok(None),
    }
}

/// The node configuration for `args`.
pub fn node_config(args: NodeArgs) -> Result<NodeConfig, SettingsError> {
    let file = match &args.config {
        Some(path) => load_file(path)?,
        None => FileSettings::default(),
    };
    let tls = tls_settings(&args, &file)?;
    let oauth = oauth_config(&args, &file)?;
    let data_dir = args.data_dir.or(file.data_dir).ok_or_else(|| {
        SettingsError::Invalid(
            "--data-dir (or MCPD_DATA_DIR, or data_dir in the config file) is required".to_owned(),
        )
    })?;
    let initial_cluster = match args.initial_cluster.or(file.initial_cluster) {
        Some(value) => {
            parse_initial_cluster(&value).map_err(|e| SettingsError::Invalid(e.to_string()))?
        }
        None => Default::default(),
    };
    let defaults = RaftTuning::default();
    let ms = |flag: Option<u64>, file: Option<u64>, default: Duration| {
        flag.or(file).map(Duration::from_millis).unwrap_or(default)
    };
    let raft = RaftTuning {
        leader_election_timeout: ms(
            args.leader_election_timeout_ms,
            file.leader_election_timeout_ms,
            defaults.leader_election_timeout,
        ),
        heartbeat_interval: ms(
            args.heartbeat_interval_ms,
            file.heartbeat_interval_ms,
            defaults.heartbeat_interval,
        ),
        snapshot_logs: args
            .snapshot_logs
            .or(file.snapshot_logs)
            .unwrap_or(defaults.snapshot_logs),
        logs_to_keep: args
            .logs_to_keep
            .or(file.logs_to_keep)
            .unwrap_or(defaults.logs_to_keep),
    };
    let dataplane = dataplane_config(&args.dataplane, &file.dataplane)?;
    let session_lifetime = args
        .mcp_session_lifetime_secs
        .or(file.mcp_session_lifetime_secs)
        .map_or(DEFAULT_SESSION_LIFETIME, Duration::from_secs);
    if session_lifetime.is_zero() || session_lifetime > MAX_SESSION_LIFETIME {
        return Err(SettingsError::Invalid(format!(
            "mcp_session_lifetime_secs must be 1 to {}",
            MAX_SESSION_LIFETIME.as_secs()
        )));
    }
    let gateway = args
        .mcp_addr
        .or(file.mcp_addr)
        .map(|addr| mcp_cluster::gateway::GatewayConfig {
            addr,
            token: args
                .mcp_token
                .clone()
                .or(file.mcp_token.clone())
                .filter(|t| !t.is_empty()),
            allowed_origins: args
                .mcp_allowed_origins
                .clone()
                .or(file.mcp_allowed_origins.clone())
                .unwrap_or_default(),
            session_lifetime,
            oauth: oauth.map(|mut oauth| {
                if oauth.audience.is_empty() {
                    oauth.audience = format!("http://{addr}/mcp");
                }
                oauth
            }),
        });
    Ok(NodeConfig {
        id: args.id.or(file.id),
        listen_addr: args.grpc_addr.or(file.grpc_addr),
        advertise_addr: args.advertise_addr.or(file.advertise_addr),
        data_dir,
        initial_cluster,
        admin_token: args
            .admin_token
            .or(file.admin_token)
            .filter(|t| !t.is_empty()),
        raft,
        write_timeout: ms(
            args.write_timeout_ms,
            file.write_timeout_ms,
            Duration::from_secs(5),
        ),
        dataplane,
        node_grace: ms(
            args.node_grace_ms,
            file.node_grace_ms,
            Duration::from_secs(10),
        ),
        tags: node_tags(args.node_tags.or(file.node_tags).unwrap_or_default())?,
        metrics_addr: args.metrics_addr.or(file.metrics_addr),
        gateway,
        in_process: false,
        audit_log: args.audit_log.or(file.audit_log),
        secrets_keyring: secrets_keyring(args.secrets_key_file.or(file.secrets_key_file))?,
        tls,
        insecure: args.insecure || file.insecure.unwrap_or(false),
    })
    .and_then(|mut config| {
        // A pristine node without an address gets the loopback default; a restarted one
        // keeps the address pinned in its data dir, and so the same derived metrics port.
        let stored = mcp_cluster::identity::stored(&config.data_dir)
            .map_err(|e| SettingsError::Invalid(e.to_string()))?;
        if config.listen_addr.is_none() && stored.is_none() {
            config.listen_addr = Some(DEFAULT_GRPC_ADDR);
        }
        if config.metrics_addr.is_none() {
            let grpc = config
                .listen_addr
                .or(stored.map(|identity| identity.listen_addr))
                .unwrap_or(DEFAULT_GRPC_ADDR);
            config.metrics_addr = Some(derived_metrics_addr(grpc)?);
        }
        Ok(config)
    })
}

/// The TLS settings: all three files or none; flag/env first, then the file.
fn tls_settings(
    args: &NodeArgs,
    file: &FileSettings,
) -> Result<Option<TlsSettings>, SettingsError> {
    let cert = args.tls_cert.clone().or(file.tls_cert.clone());
    let key = args.tls_key.clone().or(file.tls_key.clone());
    let ca = args.tls_ca.clone().or(file.tls_ca.clone());
    let client_auth = args.tls_client_auth.or(file.tls_client_auth);
    let metrics = args.metrics_tls.or(file.metrics_tls);
    let gateway = args.mcp_tls.or(file.mcp_tls);
    match (cert, key, ca) {
        (Some(cert), Some(key), Some(ca)) => Ok(Some(TlsSettings {
            cert,
            key,
            ca,
            client_auth: match client_auth {
                Some(TlsClientAuth::Required) => ClientAuth::Required,
                Some(TlsClientAuth::Optional) | None => ClientAuth::Optional,
            },
            metrics: metrics.unwrap_or(false),
            gateway: gateway.unwrap_or(false),
        })),
        (None, None, None) => {
            if client_auth.is_some() || metrics == Some(true) || gateway == Some(true) {
                return Err(SettingsError::Invalid(
                    "tls_client_auth, metrics_tls and mcp_tls need TLS: give --tls-cert, \
                     --tls-key and --tls-ca"
                        .to_owned(),
                ));
            }
            Ok(None)
        }
        _ => Err(SettingsError::Invalid(
            "TLS needs all of --tls-cert, --tls-key and --tls-ca (the CA is how peers \
             verify each other)"
                .to_owned(),
        )),
    }
}

/// The cluster secrets key ring: from `file`, else from `MCPD_SECRETS_KEY` (never a flag,
/// so a key does not show in process listings), else none.
fn secrets_keyring(
    file: Option<PathBuf>,
) -> Result<Option<std::sync::Arc<mcp_cluster::guards::secrets::Keyring>>, SettingsError> {
    use mcp_cluster::guards::secrets::Keyring;
    let ring = match (file, std::env::var("MCPD_SECRETS_KEY")) {
        (Some(path), _) => Keyring::from_file(&path),
        (None, Ok(text)) if !text.trim().is_empty() => Keyring::from_text(&text),
        _ => return Ok(None),
    };
    ring.map(|r| Some(std::sync::Arc::new(r)))
        .map_err(|e| SettingsError::Invalid(format!("secrets key: {e}")))
}

/// The OAuth settings of the gateway, if an issuer is given (the audience is left empty
/// when not set: the gateway's URL fills it in).
fn oauth_config(
    args: &NodeArgs,
    file: &FileSettings,
) -> Result<Option<mcp_cluster::gateway::oauth::OAuthConfig>, SettingsError> {
    use mcp_cluster::gateway::oauth::{JwksSource, OAuthConfig};
    let Some(issuer) = args.oauth_issuer.clone().or(file.oauth_issuer.clone()) else {
        return Ok(None);
    };
    let jwks = args
        .oauth_jwks
        .clone()
        .or(file.oauth_jwks.clone())
        .ok_or_else(|| {
            SettingsError::Invalid(
                "oauth_issuer needs oauth_jwks (the issuer's JWKS file or URL)".to_owned(),
            )
        })?;
    let scope_roles = match args
        .oauth_scope_roles
        .clone()
        .or(file.oauth_scope_roles.clone())
    {
        Some(pairs) => OAuthConfig::parse_scope_roles(&pairs).map_err(SettingsError::Invalid)?,
        None => OAuthConfig::default_scope_roles(),
    };
    Ok(Some(OAuthConfig {
        issuer,
        audience: args
            .oauth_audience
            .clone()
            .or(file.oauth_audience.clone())
            .unwrap_or_default(),
        jwks: JwksSource::parse(&jwks),
        scope_roles,
    }))
}

/// Total attempts per request set by one layer of settings: `max_attempts` counts the first
/// attempt, `max_retries` does not (attempts = retries + 1), as in Python. Both at once is
/// an error, whatever their values.
fn max_attempts(layer: &DataPlaneArgs) -> Result<Option<u32>, SettingsError> {
    match (layer.max_attempts, layer.max_retries) {
        (Some(_), Some(_)) => Err(SettingsError::Invalid(
            "max_attempts and max_retries are one setting (attempts = retries + 1): give one"
                .to_owned(),
        )),
        (Some(0), None) => Err(SettingsError::Invalid(
            "max_attempts must be at least 1 (the first attempt counts)".to_owned(),
        )),
        (Some(attempts), None) => Ok(Some(attempts)),
        (None, Some(retries)) => Ok(Some(retries.saturating_add(1))),
        (None, None) => Ok(None),
    }
}

/// The data-plane settings: flag/env first, then the file's `[dataplane]` table.
fn dataplane_config(
    args: &DataPlaneArgs,
    file: &DataPlaneArgs,
) -> Result<DataPlaneConfig, SettingsError> {
    let mut config = DataPlaneConfig::default();
    let positive = |name: &str, value: u64| {
        if value == 0 {
            Err(SettingsError::Invalid(format!("{name} must be at least 1")))
        } else {
            Ok(value)
        }
    };
    if let Some(v) = args.request_timeout_ms.or(file.request_timeout_ms) {
        config.request_timeout = Duration::from_millis(positive("request_timeout_ms", v)?);
    }
    if let Some(v) = args.connection_timeout_ms.or(file.connection_timeout_ms) {
        config.connect_timeout = Duration::from_millis(positive("connection_timeout_ms", v)?);
    }
    if let Some(v) = args
        .health_check_interval_secs
        .or(file.health_check_interval_secs)
    {
        config.health_check_interval =
            Duration::from_secs(positive("health_check_interval_secs", v)?);
    }
    if let Some(v) = args
        .max_in_flight_per_instance
        .or(file.max_in_flight_per_instance)
    {
        config.max_in_flight_per_instance =
            positive("max_in_flight_per_instance", v as u64)? as usize;
    }
    if let Some(v) = args
        .max_connections_per_server
        .or(file.max_connections_per_server)
    {
        config.max_connections_per_server =
            positive("max_connections_per_server", v as u64)? as usize;
    }
    if let Some(v) = args.initial_size.or(file.initial_size) {
        config.initial_size = v;
    }
    if let Some(v) = args.idle_timeout_secs.or(file.idle_timeout_secs) {
        config.idle_timeout = Duration::from_secs(positive("idle_timeout_secs", v)?);
    }
    if let Some(v) = args.enable_keepalive.or(file.enable_keepalive) {
        config.keepalive = v;
    }
    if let Some(v) = args.max_message_bytes.or(file.max_message_bytes) {
        config.max_message_bytes = positive("max_message_bytes", v as u64)? as usize;
    }
    if let Some(v) = max_attempts(args)?.or(max_attempts(file)?) {
        config.retry.max_attempts = v;
    }
    if let Some(v) = args
        .circuit_breaker_threshold
        .or(file.circuit_breaker_threshold)
    {
        config.breaker.failure_threshold =
            positive("circuit_breaker_threshold", u64::from(v))? as u32;
    }
    if let Some(v) = args
        .circuit_breaker_recovery_secs
        .or(file.circuit_breaker_recovery_secs)
    {
        config.breaker.open_timeout =
            Duration::from_secs(positive("circuit_breaker_recovery_secs", v)?);
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(
            &file,
            "id = 7\ndata_dir = \"/tmp/x\"\nleader_election_timeout_ms = 3000\nsnapshot_logs = 5\n",
        )
        .unwrap();
        let args = NodeArgs {
            config: Some(file),
            id: Some(2),
            ..NodeArgs::default()
        };
        let config = node_config(args).unwrap();
        assert_eq!(config.id, Some(2));
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(
            config.raft.leader_election_timeout,
            Duration::from_millis(3000)
        );
        assert_eq!(config.raft.snapshot_logs, 5);
        assert_eq!(config.listen_addr, Some(DEFAULT_GRPC_ADDR));
    }

    #[test]
    fn oauth_needs_keys_and_defaults_its_audience_to_the_gateway() {
        let dir = tempfile::tempdir().unwrap();
        let args = |jwks: Option<&str>, roles: Option<Vec<String>>| NodeArgs {
            data_dir: Some(dir.path().to_owned()),
            mcp_addr: Some("127.0.0.1:7480".parse().unwrap()),
            oauth_issuer: Some("https://idp.example".into()),
            oauth_jwks: jwks.map(str::to_owned),
            oauth_scope_roles: roles,
            ..NodeArgs::default()
        };
        let refused = node_config(args(None, None)).expect_err("no keys");
        assert!(refused.to_string().contains("oauth_jwks"), "{refused}");
        let config = node_config(args(Some("https://idp.example/jwks"), None)).unwrap();
        let oauth = config.gateway.unwrap().oauth.unwrap();
        assert_eq!(oauth.audience, "http://127.0.0.1:7480/mcp");
        assert_eq!(
            oauth.jwks,
            mcp_cluster::gateway::oauth::JwksSource::Url("https://idp.example/jwks".into())
        );
        let bad = node_config(args(Some("/k.json"), Some(vec!["x=root".into()])));
        assert!(bad.expect_err("bad role").to_string().contains("x=root"));
    }

    #[test]
    fn gateway_is_off_unless_given_an_address() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(&file, "data_dir = \"/tmp/x\"\n").unwrap();
        let off = node_config(NodeArgs {
            config: Some(file.clone()),
            mcp_token: Some("t".into()),
            ..NodeArgs::default()
        })
        .unwrap();
        assert!(off.gateway.is_none());

        std::fs::write(
            &file,
            "data_dir = \"/tmp/x\"\nmcp_addr = \"127.0.0.1:7480\"\nmcp_token = \"from-file\"\n\
             mcp_allowed_origins = [\"https://a.example\"]\n",
        )
        .unwrap();
        let on = node_config(NodeArgs {
            config: Some(file.clone()),
            mcp_token: Some("from-flag".into()),
            ..NodeArgs::default()
        })
        .unwrap();
        let gateway = on.gateway.unwrap();
        assert_eq!(gateway.addr, "127.0.0.1:7480".parse().unwrap());
        assert_eq!(gateway.token.as_deref(), Some("from-flag"));
        assert_eq!(gateway.allowed_origins, ["https://a.example"]);
        assert_eq!(gateway.session_lifetime, DEFAULT_SESSION_LIFETIME);

        // The session lifetime: seconds, from 1 to 7 days' worth.
        let lifetime = |secs: u64| {
            node_config(NodeArgs {
                config: Some(file.clone()),
                mcp_session_lifetime_secs: Some(secs),
                ..NodeArgs::default()
            })
            .map(|c| c.gateway.map(|g| g.session_lifetime))
        };
        assert_eq!(lifetime(3600).unwrap(), Some(Duration::from_secs(3600)));
        for refused in [0, MAX_SESSION_LIFETIME.as_secs() + 1] {
            assert!(
                matches!(lifetime(refused), Err(SettingsError::Invalid(m)) if m.contains("mcp_session_lifetime_secs")),
                "{refused}"
            );
        }
    }

    #[test]
    fn metrics_port_follows_the_grpc_port_unless_given() {
        let dir = tempfile::tempdir().unwrap();
        let config = |grpc: Option<&str>, metrics: Option<&str>| {
            node_config(NodeArgs {
                id: Some(1),
                data_dir: Some(dir.path().join("n")),
                grpc_addr: grpc.map(|a| a.parse().unwrap()),
                metrics_addr: metrics.map(|a| a.parse().unwrap()),
                ..NodeArgs::default()
            })
        };
        let metrics = |grpc, metrics| config(grpc, metrics).unwrap().metrics_addr.unwrap();
        assert_eq!(metrics(None, None), "127.0.0.1:9400".parse().unwrap());
        assert_eq!(
            metrics(Some("127.0.0.1:7402"), None),
            "127.0.0.1:9402".parse().unwrap()
        );
        assert_eq!(
            metrics(Some("0.0.0.0:7400"), None),
            "0.0.0.0:9400".parse().unwrap()
        );
        assert_eq!(
            metrics(Some("127.0.0.1:7402"), Some("127.0.0.1:9999")),
            "127.0.0.1:9999".parse().unwrap()
        );
        let err = config(Some("127.0.0.1:65000"), None).unwrap_err();
        assert!(err.to_string().contains("--metrics-addr"), "{err}");
    }

    #[test]
    fn restarted_node_keeps_the_metrics_port_of_its_stored_address() {
        let dir = tempfile::tempdir().unwrap();
        let first = mcp_cluster::NodeConfig {
            id: Some(3),
            listen_addr: Some("127.0.0.1:7403".parse().unwrap()),
            ..mcp_cluster::NodeConfig::new(dir.path())
        };
        mcp_cluster::identity::NodeIdentity::load_or_create(&first).unwrap();
        let restarted = node_config(NodeArgs {
            data_dir: Some(dir.path().to_owned()),
            ..NodeArgs::default()
        })
        .unwrap();
        assert_eq!(restarted.listen_addr, None);
        assert_eq!(
            restarted.metrics_addr,
            Some("127.0.0.1:9403".parse().unwrap())
        );
    }

    #[test]
    fn max_attempts_counts_the_first_attempt_and_max_retries_does_not() {
        let attempts = |flags: DataPlaneArgs, file: &str| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("node.toml");
            std::fs::write(&path, format!("data_dir = \"/tmp/x\"\n[dataplane]\n{file}")).unwrap();
            node_config(NodeArgs {
                config: Some(path),
                dataplane: flags,
                ..NodeArgs::default()
            })
            .map(|c| c.dataplane.retry.max_attempts)
            .map_err(|e| e.to_string())
        };
        let flags = |max_attempts, max_retries| DataPlaneArgs {
            max_attempts,
            max_retries,
            ..DataPlaneArgs::default()
        };
        assert_eq!(attempts(flags(None, None), ""), Ok(3));
        assert_eq!(attempts(flags(Some(1), None), ""), Ok(1));
        assert_eq!(attempts(flags(None, Some(0)), ""), Ok(1));
        assert_eq!(attempts(flags(None, Some(2)), ""), Ok(3));
        assert_eq!(attempts(flags(None, None), "max_attempts = 4\n"), Ok(4));
        assert_eq!(attempts(flags(None, None), "max_retries = 4\n"), Ok(5));
        // A flag wins over the file whichever name each uses.
        assert_eq!(attempts(flags(None, Some(1)), "max_attempts = 5\n"), Ok(2));
        let both = attempts(flags(Some(2), Some(1)), "").unwrap_err();
        assert!(both.contains("max_attempts and max_retries"), "{both}");
        let both = attempts(flags(None, None), "max_attempts = 2\nmax_retries = 1\n");
        assert!(both.is_err(), "{both:?}");
        let zero = attempts(flags(Some(0), None), "").unwrap_err();
        assert!(zero.contains("max_attempts must be at least 1"), "{zero}");
    }

    #[test]
    fn unknown_file_key_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(&file, "data_dir = \"/tmp/x\"\nelection_timeout = 3\n").unwrap();
        let err = node_config(NodeArgs {
            config: Some(file),
            ..NodeArgs::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("election_timeout"), "{err}");
    }
    #[test]
    fn tls_takes_all_three_files_and_insecure_comes_from_flag_or_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(
            &file,
            "data_dir = \"/tmp/x\"\ntls_cert = \"n.pem\"\ntls_key = \"n-key.pem\"\n\
             tls_ca = \"ca.pem\"\ntls_client_auth = \"required\"\nmcp_tls = true\ninsecure = true\n",
        )
        .unwrap();
        let config = node_config(NodeArgs {
            config: Some(file.clone()),
            ..NodeArgs::default()
        })
        .unwrap();
        let tls = config.tls.expect("tls");
        assert_eq!(tls.ca, PathBuf::from("ca.pem"));
        assert_eq!(tls.client_auth, ClientAuth::Required);
        assert!(tls.gateway && !tls.metrics);
        assert!(config.insecure);

        let partial = node_config(NodeArgs {
            data_dir: Some(dir.path().join("d")),
            tls_cert: Some("n.pem".into()),
            tls_key: Some("n-key.pem".into()),
            ..NodeArgs::default()
        })
        .unwrap_err();
        assert!(partial.to_string().contains("--tls-ca"), "{partial}");
        let without = node_config(NodeArgs {
            data_dir: Some(dir.path().join("d")),
            mcp_tls: Some(true),
            ..NodeArgs::default()
        })
        .unwrap_err();
        assert!(without.to_string().contains("need TLS"), "{without}");
        let plain = node_config(NodeArgs {
            data_dir: Some(dir.path().join("d")),
            ..NodeArgs::default()
        })
        .unwrap();
        assert!(plain.tls.is_none() && !plain.insecure);
    }
}
