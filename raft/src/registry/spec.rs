//! Server specs: what a user submits to deploy an MCP server, and its validation.
//!
//! Users write a flat JSON (or YAML) object; [`parse_json`] / [`from_value`] turn it into a
//! canonical, validated [`ServerSpec`], which is what the Raft log stores. Field names of
//! the project's seed documents are accepted as aliases (`type` / `server_type` for
//! `transport`, `port` for a local HTTP url, `auth: {type: api_key, key}`). Every error
//! names the offending field, and unknown fields are refused so a typo is never silently
//! ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Largest replica count a spec may ask for.
pub const MAX_REPLICAS: u32 = 1000;
/// Longest server name.
pub const MAX_NAME_LEN: usize = 63;
/// Longest request timeout a spec may set (one hour).
pub const MAX_REQUEST_TIMEOUT_MS: u64 = 3_600_000;
/// What listings show instead of a secret.
pub const REDACTED: &str = "<redacted>";

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
        /// Working directory.
        cwd: Option<String>,
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
                cwd,
            } => f
                .debug_struct("Stdio")
                .field("command", command)
                .field("args", args)
                .field("env", &redacted_map(env))
                .field("cwd", cwd)
                .finish(),
            Transport::Http { url, headers, auth } => f
                .debug_struct("Http")
                .field("url", url)
                .field("headers", &redacted_map(headers))
                .field("auth", auth)
                .finish(),
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
    #[error("unknown transport \"{value}\" in field \"{field}\" (expected stdio or http)")]
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

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> SpecError {
    SpecError::InvalidField {
        field: field.into(),
        reason: reason.into(),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses and validates a spec from JSON text.
pub fn parse_json(input: &str) -> Result<ServerSpec, SpecError> {
    let value: Value =
        serde_json::from_str(input).map_err(|e| SpecError::Malformed(e.to_string()))?;
    from_value(value)
}

/// Validates a spec given as a JSON value (the flat user form).
pub fn from_value(value: Value) -> Result<ServerSpec, SpecError> {
    let Value::Object(fields) = value else {
        return Err(SpecError::NotAnObject(type_name(&value)));
    };
    SpecReader { fields }.read()
}

/// Checks a server name.
pub fn validate_name(name: &str) -> Result<(), SpecError> {
    let reason = if name.is_empty() {
        Some("must not be empty".to_owned())
    } else if name.len() > MAX_NAME_LEN {
        Some(format!(
            "must be at most {MAX_NAME_LEN} characters, got {}",
            name.len()
        ))
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
    {
        Some(format!(
            "{name:?} may contain only lowercase letters, digits, '.', '_' and '-'"
        ))
    } else if !name.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !name.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        Some(format!(
            "{name:?} must start and end with a letter or digit"
        ))
    } else {
        None
    };
    match reason {
        Some(reason) => Err(invalid("name", reason)),
        None => Ok(()),
    }
}

const TRANSPORT_FIELDS: [&str; 3] = ["transport", "type", "server_type"];
const KNOWN_FIELDS: [&str; 20] = [
    "name",
    "transport",
    "type",
    "server_type",
    "command",
    "args",
    "env",
    "cwd",
    "url",
    "port",
    "host",
    "headers",
    "auth",
    "replicas",
    "priority",
    "tags",
    "placement",
    "request_timeout_ms",
    "description",
    "id",
];

/// Reads fields out of the user's object, one typed accessor per kind of value.
struct SpecReader {
    fields: Map<String, Value>,
}

impl SpecReader {
    fn read(mut self) -> Result<ServerSpec, SpecError> {
        if let Some(unknown) = self
            .fields
            .keys()
            .find(|k| !KNOWN_FIELDS.contains(&k.as_str()))
        {
            return Err(SpecError::UnknownField(unknown.clone()));
        }
        let name = self.string("name")?.ok_or(SpecError::MissingField {
            field: "name",
            context: String::new(),
        })?;
        validate_name(&name)?;
        let transport = self.transport()?;
        let replicas = match self.fields.remove("replicas") {
            None | Some(Value::Null) => 1,
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n <= MAX_REPLICAS)
                .ok_or_else(|| {
                    invalid(
                        "replicas",
                        format!("must be an integer between 0 and {MAX_REPLICAS}, got {v}"),
                    )
                })?,
        };
        let priority = match self.fields.remove("priority") {
            None | Some(Value::Null) => 0,
            Some(v) => v
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(|| invalid("priority", format!("must be a 32-bit integer, got {v}")))?,
        };
        let tags = self.string_list("tags")?;
        for tag in &tags {
            check_label("tags", tag)?;
        }
        let placement = self.placement()?;
        let request_timeout_ms = match self.fields.remove("request_timeout_ms") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .filter(|n| (1..=MAX_REQUEST_TIMEOUT_MS).contains(n))
                    .ok_or_else(|| {
                        invalid(
                            "request_timeout_ms",
                            format!("must be an integer between 1 and {MAX_REQUEST_TIMEOUT_MS}, got {v}"),
                        )
                    })?,
            ),
        };
        let description = self.string("description")?;
        Ok(ServerSpec {
            name,
            transport,
            replicas,
            priority,
            tags,
            placement,
            request_timeout_ms,
            description,
        })
    }

    fn string(&mut self, field: &'static str) -> Result<Option<String>, SpecError> {
        match self.fields.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(invalid(
                field,
                format!("must be a string, got {}", type_name(&other)),
            )),
        }
    }

    fn string_list(&mut self, field: &'static str) -> Result<Vec<String>, SpecError> {
        match self.fields.remove(field) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) => Ok(s),
                    other => Err(invalid(
                        format!("{field}[{i}]"),
                        format!("must be a string, got {}", type_name(&other)),
                    )),
                })
                .collect(),
            Some(Value::String(_)) => Err(invalid(
                field,
                "must be an array of strings (a string is never split into words)",
            )),
            Some(other) => Err(invalid(
                field,
                format!("must be an array of strings, got {}", type_name(&other)),
            )),
        }
    }

    fn string_map(&mut self, field: &'static str) -> Result<BTreeMap<String, String>, SpecError> {
        match self.fields.remove(field) {
            None | Some(Value::Null) => Ok(BTreeMap::new()),
            Some(Value::Object(map)) => map
                .into_iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k, s)),
                    Value::Number(n) => Ok((k, n.to_string())),
                    Value::Bool(b) => Ok((k, b.to_string())),
                    other => Err(invalid(
                        format!("{field}.{k}"),
                        format!("must be a string, got {}", type_name(&other)),
                    )),
                })
                .collect(),
            Some(other) => Err(invalid(
                field,
                format!("must be an object of strings, got {}", type_name(&other)),
            )),
        }
    }

    /// The transport kind from `transport` / `type` / `server_type`, or inferred.
    fn transport_kind(&mut self) -> Result<(String, Option<String>), SpecError> {
        let mut named: Option<(&'static str, String)> = None;
        for field in TRANSPORT_FIELDS {
            if let Some(value) = self.string(field)? {
                if let Some((first, previous)) = &named {
                    if *previous != value {
                        return Err(invalid(
                            field,
                            format!("says {value:?} but \"{first}\" says {previous:?}; give the transport once"),
                        ));
                    }
                } else {
                    named = Some((field, value));
                }
            }
        }
        match named {
            Some((field, value)) => Ok((field.to_owned(), Some(value))),
            None => Ok(("transport".to_owned(), None)),
        }
    }

    fn transport(&mut self) -> Result<Transport, SpecError> {
        let (field, named) = self.transport_kind()?;
        let kind = match named.as_deref() {
            Some("stdio") => "stdio",
            Some("http" | "streamable-http" | "streamable_http" | "streamablehttp") => "http",
            Some("docker") => {
                return Err(SpecError::Unsupported {
                    field,
                    reason: "the docker transport is not supported yet; run the container's MCP server over http".to_owned(),
                })
            }
            Some(other) => {
                return Err(SpecError::UnknownTransport {
                    field,
                    value: other.to_owned(),
                })
            }
            None if self.fields.contains_key("command") => "stdio",
            None if self.fields.contains_key("url") || self.fields.contains_key("port") => "http",
            None => {
                return Err(SpecError::MissingField {
                    field: "transport",
                    context: " (or a \"command\" for stdio, or a \"url\" for http)".to_owned(),
                })
            }
        };
        if kind == "stdio" {
            self.stdio()
        } else {
            self.http()
        }
    }

    fn refuse_fields_of(&self, fields: &[&str], transport: &str) -> Result<(), SpecError> {
        match fields.iter().find(|f| self.fields.contains_key(**f)) {
            Some(field) => Err(invalid(
                *field,
                format!("does not apply to transport {transport:?}"),
            )),
            None => Ok(()),
        }
    }

    fn stdio(&mut self) -> Result<Transport, SpecError> {
        self.refuse_fields_of(&["url", "port", "host", "headers", "auth"], "stdio")?;
        let command = self.string("command")?.ok_or(SpecError::MissingField {
            field: "command",
            context: " (required for transport \"stdio\")".to_owned(),
        })?;
        if command.trim().is_empty() {
            return Err(invalid("command", "must not be empty"));
        }
        if command.contains('\0') {
            return Err(invalid("command", "must not contain NUL bytes"));
        }
        let args = self.string_list("args")?;
        if let Some(i) = args.iter().position(|a| a.contains('\0')) {
            return Err(invalid(format!("args[{i}]"), "must not contain NUL bytes"));
        }
        let env = self.string_map("env")?;
        for (key, value) in &env {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return Err(invalid(
                    format!("env.{key}"),
                    "variable names must be non-empty, without '=' or NUL",
                ));
            }
            if value.contains('\0') {
                return Err(invalid(format!("env.{key}"), "must not contain NUL bytes"));
            }
        }
        let cwd = self.string("cwd")?;
        if cwd
            .as_deref()
            .is_some_and(|c| c.is_empty() || c.contains('\0'))
        {
            return Err(invalid("cwd", "must be a non-empty path without NUL bytes"));
        }
        Ok(Transport::Stdio {
            command,
            args,
            env,
            cwd,
        })
    }

    fn http(&mut self) -> Result<Transport, SpecError> {
        self.refuse_fields_of(&["command", "args", "env", "cwd"], "http")?;
        let url = self.string("url")?;
        let host = self.string("host")?;
        let port = match self.fields.remove("port") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|p| *p > 0)
                    .ok_or_else(|| {
                        invalid(
                            "port",
                            format!("must be an integer between 1 and 65535, got {v}"),
                        )
                    })?,
            ),
        };
        let url = match (url, port) {
            (Some(url), None) => url,
            (Some(_), Some(_)) => {
                return Err(invalid("port", "give either \"url\" or \"port\", not both"))
            }
            (None, Some(port)) => format!(
                "http://{}:{port}/mcp",
                host.as_deref().unwrap_or("127.0.0.1")
            ),
            (None, None) => {
                return Err(SpecError::MissingField {
                    field: "url",
                    context: " (required for transport \"http\"; or give \"port\")".to_owned(),
                })
            }
        };
        check_url(&url)?;
        let headers = self.string_map("headers")?;
        for (name, value) in &headers {
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(invalid(
                    format!("headers.{name}"),
                    "is not a valid HTTP header name",
                ));
            }
            if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(invalid(
                    format!("headers.{name}"),
                    "value must not contain CR, LF or NUL",
                ));
            }
        }
        let auth = self.auth()?;
        Ok(Transport::Http { url, headers, auth })
    }

    fn auth(&mut self) -> Result<Option<Auth>, SpecError> {
        let map = match self.fields.remove("auth") {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Object(map)) => map,
            Some(other) => {
                return Err(invalid(
                    "auth",
                    format!("must be an object, got {}", type_name(&other)),
                ))
            }
        };
        let mut reader = SpecReader { fields: map };
        let kind = reader.string("type")?.ok_or(SpecError::MissingField {
            field: "auth.type",
            context: " (api_key, bearer or basic)".to_owned(),
        })?;
        let required = |reader: &mut SpecReader, field: &'static str, full: &'static str| {
            reader
                .string(field)?
                .filter(|v| !v.is_empty())
                .ok_or(SpecError::MissingField {
                    field: full,
                    context: format!(" (required for auth type {kind:?})"),
                })
        };
        let auth = match kind.as_str() {
            "api_key" | "apikey" | "api-key" => {
                let key = required(&mut reader, "key", "auth.key")?;
                let header = reader.string("header")?;
                if let Some(h) = &header {
                    if h.is_empty() || !h.bytes().all(is_token_byte) {
                        return Err(invalid("auth.header", "is not a valid HTTP header name"));
                    }
                }
                Auth::ApiKey { key, header }
            }
            "bearer" => Auth::Bearer {
                token: required(&mut reader, "token", "auth.token")?,
            },
            "basic" => Auth::Basic {
                username: required(&mut reader, "username", "auth.username")?,
                password: required(&mut reader, "password", "auth.password")?,
            },
            other => {
                return Err(invalid(
                    "auth.type",
                    format!("unknown auth type {other:?} (expected api_key, bearer or basic)"),
                ))
            }
        };
        if let Some(extra) = reader.fields.keys().next() {
            return Err(SpecError::UnknownField(format!("auth.{extra}")));
        }
        Ok(Some(auth))
    }

    fn placement(&mut self) -> Result<PlacementConstraints, SpecError> {
        let map = match self.fields.remove("placement") {
            None | Some(Value::Null) => return Ok(PlacementConstraints::default()),
            Some(Value::Object(map)) => map,
            Some(other) => {
                return Err(invalid(
                    "placement",
                    format!("must be an object, got {}", type_name(&other)),
                ))
            }
        };
        let mut reader = SpecReader { fields: map };
        let allowed_nodes = match reader.fields.remove("allowed_nodes") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_u64().ok_or_else(|| {
                        invalid(
                            format!("placement.allowed_nodes[{i}]"),
                            format!("must be a node id, got {v}"),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(invalid(
                    "placement.allowed_nodes",
                    format!("must be an array of node ids, got {}", type_name(&other)),
                ))
            }
        };
        let node_tags = reader.string_list("node_tags")?;
        for tag in &node_tags {
            check_label("placement.node_tags", tag)?;
        }
        if let Some(extra) = reader.fields.keys().next() {
            return Err(SpecError::UnknownField(format!("placement.{extra}")));
        }
        Ok(PlacementConstraints {
            allowed_nodes,
            node_tags,
        })
    }
}

fn check_label(field: &str, label: &str) -> Result<(), SpecError> {
    if label.is_empty() || label.len() > MAX_NAME_LEN || label.chars().any(char::is_control) {
        return Err(invalid(
            field,
            format!("each entry must be 1-{MAX_NAME_LEN} printable characters, got {label:?}"),
        ));
    }
    Ok(())
}

fn check_url(url: &str) -> Result<(), SpecError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| {
            invalid(
                "url",
                format!("must start with http:// or https://, got {url:?}"),
            )
        })?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err(invalid("url", format!("has no host: {url:?}")));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            "url",
            "must not contain whitespace or control characters",
        ));
    }
    Ok(())
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl ServerSpec {
    /// "stdio" or "http".
    pub fn transport_kind(&self) -> &'static str {
        match self.transport {
            Transport::Stdio { .. } => "stdio",
            Transport::Http { .. } => "http",
        }
    }

    /// The flat user form, secrets included; `from_value` of it gives back this spec.
    pub fn to_flat_json(&self) -> Value {
        self.flat(false)
    }

    /// The flat user form with every secret replaced by `"<redacted>"`: env values, header
    /// values, auth keys, tokens and passwords. Use this for anything shown to people.
    pub fn redacted(&self) -> Value {
        self.flat(true)
    }

    fn flat(&self, redact: bool) -> Value {
        let secret = |s: &str| {
            if redact {
                Value::from(REDACTED)
            } else {
                Value::from(s)
            }
        };
        let secret_map = |m: &BTreeMap<String, String>| -> Map<String, Value> {
            m.iter().map(|(k, v)| (k.clone(), secret(v))).collect()
        };
        let mut out = Map::new();
        out.insert("name".into(), self.name.clone().into());
        out.insert("transport".into(), self.transport_kind().into());
        match &self.transport {
            Transport::Stdio {
                command,
                args,
                env,
                cwd,
            } => {
                out.insert("command".into(), command.clone().into());
                out.insert("args".into(), args.clone().into());
                out.insert("env".into(), Value::Object(secret_map(env)));
                if let Some(cwd) = cwd {
                    out.insert("cwd".into(), cwd.clone().into());
                }
            }
            Transport::Http { url, headers, auth } => {
                out.insert("url".into(), url.clone().into());
                out.insert("headers".into(), Value::Object(secret_map(headers)));
                if let Some(auth) = auth {
                    let mut a = Map::new();
                    match auth {
                        Auth::ApiKey { key, header } => {
                            a.insert("type".into(), "api_key".into());
                            a.insert("key".into(), secret(key));
                            if let Some(h) = header {
                                a.insert("header".into(), h.clone().into());
                            }
                        }
                        Auth::Bearer { token } => {
                            a.insert("type".into(), "bearer".into());
                            a.insert("token".into(), secret(token));
                        }
                        Auth::Basic { username, password } => {
                            a.insert("type".into(), "basic".into());
                            a.insert("username".into(), username.clone().into());
                            a.insert("password".into(), secret(password));
                        }
                    }
                    out.insert("auth".into(), Value::Object(a));
                }
            }
        }
        out.insert("replicas".into(), self.replicas.into());
        out.insert("priority".into(), self.priority.into());
        out.insert("tags".into(), self.tags.clone().into());
        out.insert(
            "placement".into(),
            serde_json::json!({
                "allowed_nodes": self.placement.allowed_nodes,
                "node_tags": self.placement.node_tags,
            }),
        );
        if let Some(t) = self.request_timeout_ms {
            out.insert("request_timeout_ms".into(), t.into());
        }
        if let Some(d) = &self.description {
            out.insert("description".into(), d.clone().into());
        }
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<ServerSpec, SpecError> {
        from_value(v)
    }

    #[test]
    fn stdio_spec_with_defaults() {
        let spec =
            parse(json!({"name": "time", "command": "python3", "args": ["-m", "x"]})).unwrap();
        assert_eq!(spec.replicas, 1);
        assert_eq!(spec.transport_kind(), "stdio");
        assert!(
            matches!(spec.transport, Transport::Stdio { ref args, .. } if args == &["-m", "x"])
        );
    }

    #[test]
    fn transport_aliases() {
        for field in ["transport", "type", "server_type"] {
            let spec = parse(json!({"name": "a", field: "http", "url": "http://h:1/mcp"})).unwrap();
            assert_eq!(spec.transport_kind(), "http");
        }
        for value in ["streamable-http", "streamable_http", "streamablehttp"] {
            let spec = parse(json!({"name": "a", "type": value, "url": "http://h/mcp"})).unwrap();
            assert_eq!(spec.transport_kind(), "http");
        }
        let err = parse(json!({"name": "a", "type": "http", "transport": "stdio", "command": "x"}))
            .unwrap_err();
        assert_eq!(err.field(), Some("type"));
    }

    #[test]
    fn port_shorthand_and_api_key_auth() {
        let spec = parse(json!({"name": "d", "type": "http", "port": 8001, "auth": {"type": "api_key", "key": "secret"}})).unwrap();
        match spec.transport {
            Transport::Http { url, auth, .. } => {
                assert_eq!(url, "http://127.0.0.1:8001/mcp");
                assert_eq!(
                    auth,
                    Some(Auth::ApiKey {
                        key: "secret".into(),
                        header: None
                    })
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (json!({"name": "a", "transport": "stdio"}), "command"),
            (json!({"name": "Bad Name", "command": "x"}), "name"),
            (json!({"name": "-a", "command": "x"}), "name"),
            (json!({"name": "a".repeat(64), "command": "x"}), "name"),
            (json!({"command": "x"}), "name"),
            (
                json!({"name": "a", "command": "x", "replicas": -1}),
                "replicas",
            ),
            (
                json!({"name": "a", "command": "x", "replicas": 1.5}),
                "replicas",
            ),
            (
                json!({"name": "a", "command": "x", "replicas": 1001}),
                "replicas",
            ),
            (
                json!({"name": "a", "transport": "carrier-pigeon"}),
                "transport",
            ),
            (json!({"name": "a", "type": "docker", "port": 1}), "type"),
            (json!({"name": "a", "comand": "x"}), "comand"),
            (json!({"name": "a", "command": "x", "args": "-m x"}), "args"),
            (
                json!({"name": "a", "command": "x", "env": {"A=B": "c"}}),
                "env.A=B",
            ),
            (json!({"name": "a", "url": "ftp://h"}), "url"),
            (json!({"name": "a", "url": "http:///x"}), "url"),
            (
                json!({"name": "a", "url": "http://h", "headers": {"bad header": "v"}}),
                "headers.bad header",
            ),
            (
                json!({"name": "a", "url": "http://h", "auth": {"type": "api_key"}}),
                "auth.key",
            ),
            (
                json!({"name": "a", "url": "http://h", "command": "x"}),
                "url",
            ),
            (
                json!({"name": "a", "type": "http", "url": "http://h", "command": "x"}),
                "command",
            ),
            (
                json!({"name": "a", "command": "x", "request_timeout_ms": 0}),
                "request_timeout_ms",
            ),
            (
                json!({"name": "a", "command": "x", "placement": {"allowed_nodes": ["x"]}}),
                "placement.allowed_nodes[0]",
            ),
            (json!({"name": "a"}), "transport"),
        ];
        for (input, field) in cases {
            let err = parse(input.clone()).unwrap_err();
            assert_eq!(err.field(), Some(field), "{input} -> {err}");
            assert!(err.to_string().contains(field), "{err}");
        }
    }

    #[test]
    fn malformed_json_is_reported() {
        let err = parse_json(r#"{"name": "a""#).unwrap_err();
        assert!(matches!(err, SpecError::Malformed(_)));
        assert!(err.to_string().contains("malformed JSON"));
        assert!(matches!(parse_json("[1]"), Err(SpecError::NotAnObject(_))));
    }

    #[test]
    fn flat_form_round_trips() {
        let input = json!({
            "name": "remote", "type": "http", "url": "https://x.example/mcp",
            "headers": {"X-Team": "blue"}, "auth": {"type": "basic", "username": "u", "password": "p"},
            "replicas": 3, "priority": -2, "tags": ["a", "b"], "placement": {"allowed_nodes": [1], "node_tags": ["gpu"]},
            "request_timeout_ms": 500, "description": "d"
        });
        let spec = parse(input).unwrap();
        assert_eq!(parse(spec.to_flat_json()).unwrap(), spec);
        let stdio =
            parse(json!({"name": "s", "command": "c", "env": {"K": "v"}, "cwd": "/tmp"})).unwrap();
        assert_eq!(parse(stdio.to_flat_json()).unwrap(), stdio);
    }

    #[test]
    fn redacted_hides_every_secret() {
        let http = parse(json!({"name": "h", "url": "http://h/mcp", "headers": {"X-Key": "hdr-secret"}, "auth": {"type": "bearer", "token": "tok-secret"}})).unwrap();
        let stdio =
            parse(json!({"name": "s", "command": "c", "env": {"API_KEY": "env-secret"}})).unwrap();
        let text = format!("{} {}", http.redacted(), stdio.redacted());
        for secret in ["hdr-secret", "tok-secret", "env-secret"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(text.contains("API_KEY") && text.contains(REDACTED));
    }

    #[test]
    fn debug_output_hides_every_secret() {
        let specs = [
            json!({"name": "h", "url": "http://h/mcp", "headers": {"X-Key": "hdr-secret"}, "auth": {"type": "bearer", "token": "tok-secret"}}),
            json!({"name": "k", "url": "http://h/mcp", "auth": {"type": "api_key", "key": "key-secret"}}),
            json!({"name": "b", "url": "http://h/mcp", "auth": {"type": "basic", "username": "u", "password": "pw-secret"}}),
            json!({"name": "s", "command": "c", "env": {"API_KEY": "env-secret"}}),
        ];
        for spec in specs {
            let text = format!("{:?}", parse(spec).unwrap());
            for secret in [
                "hdr-secret",
                "tok-secret",
                "key-secret",
                "pw-secret",
                "env-secret",
            ] {
                assert!(!text.contains(secret), "{text}");
            }
            assert!(text.contains(REDACTED), "{text}");
        }
    }
}
