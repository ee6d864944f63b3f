//! Reading a user's flat JSON object into a validated [`ServerSpec`]. Every error names the
//! offending field; which fields exist and which transport each belongs to come from the
//! table in `fields.rs`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::fields::{self, Applies};
use super::model::{
    is_node_private, Auth, PlacementConstraints, ServerSpec, SpecError, Transport, MAX_NAME_LEN,
};

pub(super) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> SpecError {
    SpecError::InvalidField {
        field: field.into(),
        reason: reason.into(),
    }
}

pub(super) fn type_name(value: &Value) -> &'static str {
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

/// The transport a name means, None if it names none.
fn transport_named(value: &str) -> Option<&'static str> {
    match value {
        "stdio" => Some("stdio"),
        "http" | "streamable-http" | "streamable_http" | "streamablehttp" => Some("http"),
        "docker" => Some("docker"),
        _ => None,
    }
}

/// Refuses the first key of `fields` the table does not list (under `parent` if nested).
fn refuse_unknown(fields: &Map<String, Value>, parent: Option<&str>) -> Result<(), SpecError> {
    match fields.keys().find(|k| !fields::is_known(parent, k)) {
        Some(unknown) => Err(SpecError::UnknownField(match parent {
            Some(parent) => format!("{parent}.{unknown}"),
            None => unknown.clone(),
        })),
        None => Ok(()),
    }
}

/// Reads fields out of the user's object, one typed accessor per kind of value.
pub(super) struct SpecReader {
    pub(super) fields: Map<String, Value>,
}

impl SpecReader {
    fn read(mut self) -> Result<ServerSpec, SpecError> {
        refuse_unknown(&self.fields, None)?;
        let name = self.string("name")?.ok_or(SpecError::MissingField {
            field: "name",
            context: String::new(),
        })?;
        validate_name(&name)?;
        let category = self.server_type_category()?;
        let transport = self.transport(&name)?;
        let replicas = self.integer("replicas")?.unwrap_or(1);
        let priority = self.integer("priority")?.unwrap_or(0);
        let mut tags = self.string_list("tags")?;
        for tag in &tags {
            check_label("tags", tag)?;
        }
        if let Some(category) = category.filter(|c| !tags.contains(c)) {
            tags.push(category);
        }
        let placement = self.placement()?;
        let request_timeout_ms = self.integer("request_timeout_ms")?;
        let description = self.string("description")?;
        let guards = super::guards::read(&mut self)?;
        let on_demand = self.boolean("on_demand")?.unwrap_or(false);
        let audit_arguments = self.boolean("audit_arguments")?.unwrap_or(false);
        let idle_timeout_secs = self.integer("idle_timeout_secs")?;
        if idle_timeout_secs.is_some() && !on_demand {
            return Err(invalid(
                "idle_timeout_secs",
                "applies only with \"on_demand\": true (instances of other servers never stop for being idle)",
            ));
        }
        Ok(ServerSpec {
            name,
            transport,
            replicas,
            priority,
            tags,
            placement,
            request_timeout_ms,
            description,
            on_demand,
            idle_timeout_secs,
            guards,
            audit_arguments,
        })
    }

    /// A boolean field, None when absent.
    pub(super) fn boolean(&mut self, field: &'static str) -> Result<Option<bool>, SpecError> {
        match self.fields.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(other) => Err(invalid(
                field,
                format!("must be true or false, got {}", type_name(&other)),
            )),
        }
    }

    /// An older-API `server_type` that names no transport (`"infrastructure"`): taken out
    /// of the spec, to become a tag, so a spec written for that API deploys unchanged.
    fn server_type_category(&mut self) -> Result<Option<String>, SpecError> {
        let category = match self.fields.get("server_type") {
            // Any case, as the older API compared them.
            Some(Value::String(s)) if transport_named(&s.to_ascii_lowercase()).is_none() => {
                s.clone()
            }
            _ => return Ok(None),
        };
        check_label("server_type", &category)?;
        self.fields.remove("server_type");
        Ok(Some(category))
    }

    /// An integer field within the bounds the table gives it, None when absent.
    pub(super) fn integer<T: TryFrom<i64>>(
        &mut self,
        field: &'static str,
    ) -> Result<Option<T>, SpecError> {
        let (min, max) = fields::integer_bounds(field)
            .ok_or_else(|| invalid(field, "is not an integer field of the spec table"))?;
        match self.fields.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .filter(|n| (min..=max).contains(n))
                .and_then(|n| T::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| {
                    invalid(
                        field,
                        format!("must be an integer between {min} and {max}, got {v}"),
                    )
                }),
        }
    }

    pub(super) fn string(&mut self, field: &'static str) -> Result<Option<String>, SpecError> {
        match self.fields.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(invalid(
                field,
                format!("must be a string, got {}", type_name(&other)),
            )),
        }
    }

    pub(super) fn string_list(&mut self, field: &'static str) -> Result<Vec<String>, SpecError> {
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

    pub(super) fn string_map(
        &mut self,
        field: &'static str,
    ) -> Result<BTreeMap<String, String>, SpecError> {
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
        for field in fields::names("transport") {
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

    fn transport(&mut self, name: &str) -> Result<Transport, SpecError> {
        let (field, named) = self.transport_kind()?;
        let kind = match named.as_deref().map(|v| (v, transport_named(v))) {
            Some((_, Some(kind))) => kind,
            Some((other, None)) => {
                return Err(SpecError::UnknownTransport {
                    field,
                    value: other.to_owned(),
                })
            }
            None if self.fields.contains_key("image") => "docker",
            None if self.fields.contains_key("command") => "stdio",
            None if self.fields.contains_key("url") || self.fields.contains_key("port") => "http",
            None => {
                return Err(SpecError::MissingField {
                    field: "transport",
                    context: " (or a \"command\" for stdio, or a \"url\" for http)".to_owned(),
                })
            }
        };
        match kind {
            "stdio" => self.stdio(),
            "docker" => self.docker(name),
            _ => self.http(),
        }
    }

    /// Refuses the fields the table gives to the other transport.
    pub(super) fn refuse_fields_of(&self, transport: Applies, name: &str) -> Result<(), SpecError> {
        match fields::refused_by(transport)
            .into_iter()
            .find(|f| self.fields.contains_key(*f))
        {
            Some(field) => Err(invalid(
                field,
                format!("does not apply to transport {name:?}"),
            )),
            None => Ok(()),
        }
    }

    fn stdio(&mut self) -> Result<Transport, SpecError> {
        self.refuse_fields_of(Applies::Stdio, "stdio")?;
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
            check_variable_name(&format!("env.{key}"), key)?;
            if value.contains('\0') {
                return Err(invalid(format!("env.{key}"), "must not contain NUL bytes"));
            }
        }
        let inherit_env = self.string_list("inherit_env")?;
        for (i, name) in inherit_env.iter().enumerate() {
            let field = format!("inherit_env[{i}]");
            check_variable_name(&field, name)?;
            // A wildcard would hand the server every credential the node has, today's and
            // any added later, on every node the spec runs on: names keep it reviewable.
            if name.contains(['*', '?']) {
                return Err(invalid(
                    field,
                    format!("{name:?}: list variables by name; wildcards are refused so that no secret of the node reaches a server unlisted"),
                ));
            }
            if is_node_private(name) {
                return Err(invalid(
                    field,
                    format!("{name:?} is the node's own configuration (MCPD_*, the admin token among them) and never passed to a server"),
                ));
            }
        }
        let cwd = self.string("cwd")?;
        if cwd
            .as_deref()
            .is_some_and(|c| c.is_empty() || c.contains('\0'))
        {
            return Err(invalid("cwd", "must be a non-empty path without NUL bytes"));
        }
        let sandbox = super::sandbox::read(self.nested("sandbox")?)?;
        Ok(Transport::Stdio {
            command,
            args,
            env,
            inherit_env,
            cwd,
            sandbox,
        })
    }

    fn http(&mut self) -> Result<Transport, SpecError> {
        self.refuse_fields_of(Applies::Http, "http")?;
        let url = self.string("url")?;
        let host = self.string("host")?;
        let port: Option<u16> = self.integer("port")?;
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

    /// A reader of the object field `field` (None when absent), whose keys the table knows.
    fn nested(&mut self, field: &'static str) -> Result<Option<SpecReader>, SpecError> {
        match self.fields.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(map)) => {
                refuse_unknown(&map, Some(field))?;
                Ok(Some(SpecReader { fields: map }))
            }
            Some(other) => Err(invalid(
                field,
                format!("must be an object, got {}", type_name(&other)),
            )),
        }
    }

    fn auth(&mut self) -> Result<Option<Auth>, SpecError> {
        let Some(mut reader) = self.nested("auth")? else {
            return Ok(None);
        };
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
        Ok(Some(auth))
    }

    fn placement(&mut self) -> Result<PlacementConstraints, SpecError> {
        let Some(mut reader) = self.nested("placement")? else {
            return Ok(PlacementConstraints::default());
        };
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
        Ok(PlacementConstraints {
            allowed_nodes,
            node_tags,
        })
    }
}

pub(super) fn check_variable_name(field: &str, name: &str) -> Result<(), SpecError> {
    if name.is_empty() || name.contains(['=', '\0']) {
        return Err(invalid(
            field,
            "variable names must be non-empty, without '=' or NUL",
        ));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::spec::fields::FIELDS;
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
            (
                json!({"name": "a", "type": "docker", "url": "http://h"}),
                "url",
            ),
            (
                json!({"name": "a", "command": "x", "idle_timeout_secs": 5}),
                "idle_timeout_secs",
            ),
            (
                json!({"name": "a", "command": "x", "on_demand": "yes"}),
                "on_demand",
            ),
            (json!({"name": "a", "comand": "x"}), "comand"),
            (json!({"name": "a", "command": "x", "args": "-m x"}), "args"),
            (
                json!({"name": "a", "command": "x", "env": {"A=B": "c"}}),
                "env.A=B",
            ),
            (
                json!({"name": "a", "command": "x", "inherit_env": "AWS_PROFILE"}),
                "inherit_env",
            ),
            (
                json!({"name": "a", "command": "x", "inherit_env": ["HOME", ""]}),
                "inherit_env[1]",
            ),
            (
                json!({"name": "a", "command": "x", "inherit_env": ["*"]}),
                "inherit_env[0]",
            ),
            (
                json!({"name": "a", "command": "x", "inherit_env": ["AWS_*"]}),
                "inherit_env[0]",
            ),
            (
                json!({"name": "a", "command": "x", "inherit_env": ["MCPD_ADMIN_TOKEN"]}),
                "inherit_env[0]",
            ),
            (
                json!({"name": "a", "command": "x", "inherit_env": ["mcpd_admin_token"]}),
                "inherit_env[0]",
            ),
            (
                json!({"name": "a", "url": "http://h", "inherit_env": ["HOME"]}),
                "inherit_env",
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
            (
                json!({"name": "a", "url": "http://h", "auth": {"type": "bearer", "token": "t", "tokn": "t"}}),
                "auth.tokn",
            ),
            (
                json!({"name": "a", "command": "x", "placement": {"nodes": [1]}}),
                "placement.nodes",
            ),
            (
                json!({"name": "a", "command": "x", "server_type": ""}),
                "server_type",
            ),
            (json!({"name": "a", "command": "x", "port": 0}), "port"),
            (
                json!({"name": "a", "command": "x", "priority": 2147483648i64}),
                "priority",
            ),
        ];
        for (input, field) in cases {
            let err = parse(input.clone()).unwrap_err();
            assert_eq!(err.field(), Some(field), "{input} -> {err}");
            assert!(err.to_string().contains(field), "{err}");
        }
    }

    #[test]
    fn inherit_env_is_optional_and_kept_in_order() {
        let spec = parse(json!({"name": "a", "command": "x"})).unwrap();
        assert!(
            matches!(spec.transport, Transport::Stdio { ref inherit_env, .. } if inherit_env.is_empty())
        );
        let spec = parse(
            json!({"name": "a", "command": "x", "inherit_env": ["AWS_PROFILE", "KUBECONFIG"]}),
        )
        .unwrap();
        assert!(
            matches!(spec.transport, Transport::Stdio { ref inherit_env, .. } if inherit_env == &["AWS_PROFILE", "KUBECONFIG"])
        );
    }

    #[test]
    fn malformed_json_is_reported() {
        let err = parse_json(r#"{"name": "a""#).unwrap_err();
        assert!(matches!(err, SpecError::Malformed(_)));
        assert!(err.to_string().contains("malformed JSON"));
        assert!(matches!(parse_json("[1]"), Err(SpecError::NotAnObject(_))));
    }

    #[test]
    fn server_type_naming_no_transport_becomes_a_tag() {
        let spec = parse(json!({"name": "a", "server_type": "infrastructure", "url": "http://h/mcp", "tags": ["docker"]})).unwrap();
        assert_eq!(spec.transport_kind(), "http");
        assert_eq!(spec.tags, ["docker", "infrastructure"]);
        let spec = parse(json!({"name": "a", "server_type": "db", "command": "x", "tags": ["db"]}))
            .unwrap();
        assert_eq!(spec.tags, ["db"]);
        // A transport name in another case is still a transport, refused as before.
        let err =
            parse(json!({"name": "a", "server_type": "HTTP", "url": "http://h"})).unwrap_err();
        assert_eq!(err.field(), Some("server_type"));
    }

    #[test]
    fn every_field_of_the_table_is_accepted() {
        for f in FIELDS {
            let (head, _) = f.name.split_once('.').unwrap_or((f.name, ""));
            for name in std::iter::once(&head).chain(f.aliases) {
                let err = parse(json!({"name": "a", *name: {}})).unwrap_err();
                assert_ne!(err, SpecError::UnknownField(name.to_string()), "{name}");
            }
        }
    }
}
