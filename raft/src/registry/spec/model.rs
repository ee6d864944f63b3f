//! The server spec model: the validated types the Raft log stores, their limits, and the
//! error a refused spec reports. `Debug` of a transport never shows a secret.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use super::docker::{DockerSpec, PullPolicy, Volume};
use super::guards::GuardSpec;

/// Largest replica count a spec may ask for.
pub const MAX_REPLICAS: u32 = 1000;
/// Longest server name.
pub const MAX_NAME_LEN: usize = 63;
/// Longest request timeout a spec may set (one hour).
pub const MAX_REQUEST_TIMEOUT_MS: u64 = 3_600_000;
/// Longest idle timeout of an on-demand server (one week).
pub const MAX_IDLE_TIMEOUT_SECS: u64 = 7 * 24 * 3600;
/// Idle timeout of an on-demand server whose spec gives none.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 300;
/// What listings show instead of a secret.
pub const REDACTED: &str = "<redacted>";
/// The node's environment variables every stdio server inherits (when the node has them):
/// what a program needs to find its interpreter, files and locale, and nothing that is
/// commonly a credential. Anything else must be named in `inherit_env` or set in `env`.
pub const INHERITED_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
];

/// Whether `name` is one of the node's own variables (`MCPD_*`, the admin token among
/// them), which no server inherits whatever its spec says. Any case: a variable named
/// `mcpd_admin_token` is refused too, as it was almost certainly meant to be the same.
pub fn is_node_private(name: &str) -> bool {
    name.get(..5)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("MCPD_"))
}

/// A validated server spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerSpec {
    /// Unique name: 1-63 chars of `[a-z0-9._-]`, starting and ending alphanumeric.
    pub name: String,
    /// How to reach the server.
    pub transport: Transport,
    /// Desired number of running instances.
    pub replicas: u32,
    /// Higher priority instances are preferred by load balancing.
    pub priority: i32,
    /// Free-form labels.
    pub tags: Vec<String>,
    /// Where instances may run.
    pub placement: PlacementConstraints,
    /// Per-request timeout override.
    pub request_timeout_ms: Option<u64>,
    /// Human description.
    pub description: Option<String>,
    /// Scale to zero: the first call to a server without instances starts one, and
    /// instances idle for `idle_timeout_secs` stop (see `docs/specs.md`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub on_demand: bool,
    /// How long an on-demand instance may go without a request before it stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_secs: Option<u64>,
    /// Tool pinning, rate limits and the concurrency quota (see `guards.rs`).
    #[serde(default, skip_serializing_if = "GuardSpec::is_default")]
    pub guards: GuardSpec,
    /// Write tool call arguments into the audit log (off: they may hold anything a caller
    /// typed, secrets included).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub audit_arguments: bool,
}

/// How a server is reached. Its `Debug` output redacts secrets (env values, header values,
/// credentials), so that a spec in a log line or an error message never leaks one.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Transport {
    /// A child process speaking MCP over stdin/stdout, spawned by argv (never a shell).
    Stdio {
        /// Program to run.
        command: String,
        /// Its arguments.
        args: Vec<String>,
        /// Extra environment variables.
        env: BTreeMap<String, String>,
        /// Names of node environment variables passed on beyond [`INHERITED_ENV`]. Absent
        /// in entries written before the field existed, which therefore read as empty.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        inherit_env: Vec<String>,
        /// Working directory.
        cwd: Option<String>,
        /// What the process runs with (user, limits, `no_new_privs`); absent in entries
        /// written before it existed, which read as the default.
        #[serde(default, skip_serializing_if = "super::sandbox::Sandbox::is_default")]
        sandbox: super::sandbox::Sandbox,
    },
    /// A remote Streamable HTTP endpoint.
    Http {
        /// Endpoint URL.
        url: String,
        /// Extra request headers.
        headers: BTreeMap<String, String>,
        /// Credentials sent with every request.
        auth: Option<Auth>,
    },
    /// A container run through the Docker Engine API, reached over its stdin/stdout or,
    /// with a `port`, over Streamable HTTP (see [`DockerSpec`]).
    Docker(DockerSpec),
}

/// Credentials for an HTTP server (`Debug` shows the kind, never the secret).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Auth {
    /// A key sent in a header (`X-API-Key` unless `header` says otherwise).
    ApiKey {
        /// The key.
        key: String,
        /// Header name.
        header: Option<String>,
    },
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: String,
    },
    /// HTTP basic authentication.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
}

/// The keys of `map`, each with [`REDACTED`] for a value.
fn redacted_map(map: &BTreeMap<String, String>) -> BTreeMap<&str, &str> {
    map.keys().map(|k| (k.as_str(), REDACTED)).collect()
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Stdio {
                command,
                args,
                env,
                inherit_env,
                cwd,
                sandbox,
            } => f
                .debug_struct("Stdio")
                .field("command", command)
                .field("args", args)
                .field("env", &redacted_map(env))
                .field("inherit_env", inherit_env)
                .field("cwd", cwd)
                .field("sandbox", sandbox)
                .finish(),
            Transport::Http { url, headers, auth } => f
                .debug_struct("Http")
                .field("url", url)
                .field("headers", &redacted_map(headers))
                .field("auth", auth)
                .finish(),
            Transport::Docker(docker) => docker.fmt(f),
        }
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::ApiKey { header, .. } => f
                .debug_struct("ApiKey")
                .field("key", &REDACTED)
                .field("header", header)
                .finish(),
            Auth::Bearer { .. } => f.debug_struct("Bearer").field("token", &REDACTED).finish(),
            Auth::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &REDACTED)
                .finish(),
        }
    }
}

/// Placement constraints; both empty means "any node".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementConstraints {
    /// Only these node ids.
    pub allowed_nodes: Vec<u64>,
    /// Only nodes carrying all these tags.
    pub node_tags: Vec<String>,
}

/// Why a spec was refused. Every variant names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The input is not JSON at all.
    #[error("malformed JSON: {0}")]
    Malformed(String),
    /// The input is JSON but not an object.
    #[error("a server spec must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    /// A required field is absent.
    #[error("missing field \"{field}\"{context}")]
    MissingField {
        /// Field name.
        field: &'static str,
        /// Why it is required, e.g. ` (required for transport "stdio")`.
        context: String,
    },
    /// A field has a bad value.
    #[error("invalid field \"{field}\": {reason}")]
    InvalidField {
        /// Field name (dotted for nested fields).
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A field this spec format does not have.
    #[error("unknown field \"{0}\"")]
    UnknownField(String),
    /// The transport is not one we know.
    #[error("unknown transport \"{value}\" in field \"{field}\" (expected stdio, http or docker)")]
    UnknownTransport {
        /// The field that named it.
        field: String,
        /// The value.
        value: String,
    },
    /// A known but not yet supported feature.
    #[error("unsupported value in field \"{field}\": {reason}")]
    Unsupported {
        /// Field name.
        field: String,
        /// What is not supported.
        reason: String,
    },
}

impl SpecError {
    /// The field the error is about, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            SpecError::Malformed(_) | SpecError::NotAnObject(_) => None,
            SpecError::MissingField { field, .. } => Some(field),
            SpecError::InvalidField { field, .. }
            | SpecError::UnknownTransport { field, .. }
            | SpecError::Unsupported { field, .. } => Some(field),
            SpecError::UnknownField(field) => Some(field),
        }
    }
}

impl ServerSpec {
    /// "stdio", "http" or "docker".
    pub fn transport_kind(&self) -> &'static str {
        match self.transport {
            Transport::Stdio { .. } => "stdio",
            Transport::Http { .. } => "http",
            Transport::Docker(_) => "docker",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{full_specs, SECRETS};
    use super::{is_node_private, Transport, REDACTED};

    #[test]
    fn stdio_transports_stored_before_inherit_env_still_read() {
        let stored = serde_json::json!({"type": "stdio", "command": "c", "args": [], "env": {}, "cwd": null});
        let transport: Transport = serde_json::from_value(stored.clone()).unwrap();
        assert!(
            matches!(&transport, Transport::Stdio { inherit_env, .. } if inherit_env.is_empty())
        );
        // And one without inherited names is stored as before.
        assert_eq!(serde_json::to_value(&transport).unwrap(), stored);
    }

    #[test]
    fn node_private_variables_are_the_mcpd_ones() {
        for name in ["MCPD_ADMIN_TOKEN", "MCPD_", "mcpd_admin_token", "Mcpd_X"] {
            assert!(is_node_private(name), "{name}");
        }
        for name in ["", "MCPD", "PATH", "MY_MCPD_TOKEN", "MCP_TOKEN"] {
            assert!(!is_node_private(name), "{name}");
        }
    }

    #[test]
    fn debug_output_hides_every_secret() {
        for spec in full_specs() {
            let text = format!("{spec:?}");
            for secret in SECRETS {
                assert!(!text.contains(secret), "{text}");
            }
            assert!(text.contains(REDACTED), "{text}");
        }
    }
}
