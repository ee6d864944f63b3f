//! The `docker` transport's part of a spec: the container to run, how the node reaches
//! it (stdin/stdout, or Streamable HTTP on `port`) and its limits, read from the flat form
//! and written back to it. Which fields exist is the table in `fields.rs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::fields::{self, Applies};
use super::model::{SpecError, Transport, REDACTED};
use super::parse::{check_variable_name, invalid, SpecReader};

/// A container server.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerSpec {
    /// Image reference (`name[:tag]` or `name@digest`).
    pub image: String,
    /// Replaces the image's entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Replaces the image's command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment set in the container, over the image's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// HTTP mode: the port the server listens on inside the container. None: stdio mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `USER[:GROUP]` inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Mounts, read-only unless marked writable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// Docker network; None means the mode's default (see [`DockerSpec::network`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Memory limit, MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    /// CPU limit in thousandths of a core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_millis: Option<u32>,
    /// Process limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<u32>,
    /// Read-only root filesystem.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// Whether a node may pull the image.
    #[serde(default)]
    pub pull: PullPolicy,
}

/// One mount of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Host path or named volume.
    pub source: String,
    /// Absolute path inside the container.
    pub target: String,
    /// Mounted read-write (`:rw`); read-only otherwise.
    #[serde(default)]
    pub writable: bool,
}

impl Volume {
    /// The `SOURCE:TARGET:ro|rw` form (the spec's and Docker's `Binds`).
    pub fn bind(&self) -> String {
        let mode = if self.writable { "rw" } else { "ro" };
        format!("{}:{}:{mode}", self.source, self.target)
    }
}

/// Whether a node may pull an image it does not have.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PullPolicy {
    /// Only images already on the node run (the default: an image is code, and pulling
    /// trusts a registry).
    #[default]
    Never,
    /// Pull the image when the node does not have it.
    IfNotPresent,
}

impl PullPolicy {
    /// The spec's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Never => "never",
            PullPolicy::IfNotPresent => "if-not-present",
        }
    }
}

impl DockerSpec {
    /// True in HTTP mode (a `port`), false in stdio mode.
    pub fn is_http(&self) -> bool {
        self.port.is_some()
    }

    /// The network the container joins: the spec's, or `none` in stdio mode (the session
    /// needs no network) and `bridge` in HTTP mode (the node must reach the port).
    pub fn network(&self) -> &str {
        match (&self.network, self.is_http()) {
            (Some(network), _) => network,
            (None, false) => "none",
            (None, true) => "bridge",
        }
    }
}

impl std::fmt::Debug for DockerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let env: BTreeMap<&str, &str> = self.env.keys().map(|k| (k.as_str(), REDACTED)).collect();
        f.debug_struct("Docker")
            .field("image", &self.image)
            .field("command", &self.command)
            .field("args", &self.args)
            .field("env", &env)
            .field("cwd", &self.cwd)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("volumes", &self.volumes)
            .field("network", &self.network())
            .field("memory_mb", &self.memory_mb)
            .field("cpu_millis", &self.cpu_millis)
            .field("pids_limit", &self.pids_limit)
            .field("read_only", &self.read_only)
            .field("pull", &self.pull)
            .finish()
    }
}

fn no_nul(field: impl Into<String>, value: &str) -> Result<(), SpecError> {
    if value.contains('\0') {
        return Err(invalid(field, "must not contain NUL bytes"));
    }
    Ok(())
}

/// Docker's rule for image references, loosely: no whitespace or control characters, no
/// leading `-` (it would read as a flag to tools that print it), not empty.
fn check_image(image: &str) -> Result<(), SpecError> {
    if image.is_empty()
        || image.starts_with('-')
        || image.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid(
            "image",
            format!("{image:?} is not an image reference (name[:tag] or name@digest)"),
        ));
    }
    Ok(())
}

fn parse_volume(field: &str, text: &str) -> Result<Volume, SpecError> {
    let parts: Vec<&str> = text.split(':').collect();
    let (source, target, writable) = match parts.as_slice() {
        [source, target] => (*source, *target, false),
        [source, target, "ro"] => (*source, *target, false),
        [source, target, "rw"] => (*source, *target, true),
        _ => {
            return Err(invalid(
                field,
                format!("{text:?} must be SOURCE:TARGET, SOURCE:TARGET:ro or SOURCE:TARGET:rw"),
            ))
        }
    };
    if source.is_empty() || !target.starts_with('/') || text.contains('\0') {
        return Err(invalid(
            field,
            format!(
                "{text:?}: the source must not be empty and the target must be an absolute path"
            ),
        ));
    }
    Ok(Volume {
        source: source.to_owned(),
        target: target.to_owned(),
        writable,
    })
}

fn parse_cpus(value: Value) -> Result<u32, SpecError> {
    let (min, max) = match fields::FIELDS
        .iter()
        .find(|f| f.name == "cpus")
        .map(|f| f.kind)
    {
        Some(fields::Kind::Decimal { min, max }) => (min, max),
        _ => (0.01, 1024.0),
    };
    let number = match &value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match number.filter(|n| n.is_finite() && (min..=max).contains(n)) {
        // Bounded above by `max`, so the product fits a u32.
        Some(n) => Ok((n * 1000.0).round() as u32),
        None => Err(invalid(
            "cpus",
            format!("must be a number of cores between {min} and {max}, got {value}"),
        )),
    }
}

fn network_name(name: &str) -> Result<(), SpecError> {
    let fine = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b':'));
    if fine {
        Ok(())
    } else {
        Err(invalid(
            "network",
            format!("{name:?} is not a Docker network name"),
        ))
    }
}

impl SpecReader {
    /// The docker transport; `name` is the server's, the image when none is given.
    pub(super) fn docker(&mut self, name: &str) -> Result<Transport, SpecError> {
        self.refuse_fields_of(Applies::Docker, "docker")?;
        let image = self.string("image")?.unwrap_or_else(|| name.to_owned());
        check_image(&image)?;
        let command = self.string("command")?;
        if let Some(command) = &command {
            if command.trim().is_empty() {
                return Err(invalid("command", "must not be empty"));
            }
            no_nul("command", command)?;
        }
        let args = self.string_list("args")?;
        for (i, arg) in args.iter().enumerate() {
            no_nul(format!("args[{i}]"), arg)?;
        }
        let env = self.string_map("env")?;
        for (key, value) in &env {
            check_variable_name(&format!("env.{key}"), key)?;
            no_nul(format!("env.{key}"), value)?;
        }
        let cwd = self.string("cwd")?;
        if cwd
            .as_deref()
            .is_some_and(|c| !c.starts_with('/') || c.contains('\0'))
        {
            return Err(invalid(
                "cwd",
                "must be an absolute path inside the container",
            ));
        }
        let port: Option<u16> = self.integer("port")?;
        let user = self.string("user")?;
        if let Some(user) = &user {
            if user.is_empty() || user.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(invalid("user", "must be USER or USER:GROUP (names or ids)"));
            }
        }
        let volumes = self
            .string_list("volumes")?
            .iter()
            .enumerate()
            .map(|(i, v)| parse_volume(&format!("volumes[{i}]"), v))
            .collect::<Result<Vec<_>, _>>()?;
        let network = self.string("network")?;
        if let Some(network) = &network {
            network_name(network)?;
            if network == "none" && port.is_some() {
                return Err(invalid(
                    "network",
                    "\"none\" leaves the node no way to reach the container's port; drop \"port\" for stdio mode or pick a network",
                ));
            }
        }
        let memory_mb = self.integer("memory_mb")?;
        let cpu_millis = match self.fields.remove("cpus") {
            None | Some(Value::Null) => None,
            Some(value) => Some(parse_cpus(value)?),
        };
        let pids_limit = self.integer("pids_limit")?;
        let read_only = self.boolean("read_only")?.unwrap_or(false);
        let pull = match self.string("pull")?.as_deref() {
            None | Some("never") => PullPolicy::Never,
            Some("if-not-present" | "if_not_present" | "ifnotpresent") => PullPolicy::IfNotPresent,
            Some(other) => {
                return Err(invalid(
                    "pull",
                    format!("{other:?} is not a pull policy (never or if-not-present)"),
                ))
            }
        };
        Ok(Transport::Docker(DockerSpec {
            image,
            command,
            args,
            env,
            cwd,
            port,
            user,
            volumes,
            network,
            memory_mb,
            cpu_millis,
            pids_limit,
            read_only,
            pull,
        }))
    }
}

/// Writes a docker transport's fields into the flat form `out`.
pub(super) fn render(docker: &DockerSpec, out: &mut Map<String, Value>) {
    out.insert("image".into(), docker.image.clone().into());
    if let Some(command) = &docker.command {
        out.insert("command".into(), command.clone().into());
    }
    out.insert("args".into(), docker.args.clone().into());
    out.insert("env".into(), json!(docker.env));
    if let Some(cwd) = &docker.cwd {
        out.insert("cwd".into(), cwd.clone().into());
    }
    if let Some(port) = docker.port {
        out.insert("port".into(), port.into());
    }
    if let Some(user) = &docker.user {
        out.insert("user".into(), user.clone().into());
    }
    let volumes: Vec<String> = docker.volumes.iter().map(Volume::bind).collect();
    out.insert("volumes".into(), volumes.into());
    if let Some(network) = &docker.network {
        out.insert("network".into(), network.clone().into());
    }
    if let Some(memory) = docker.memory_mb {
        out.insert("memory_mb".into(), memory.into());
    }
    if let Some(millis) = docker.cpu_millis {
        out.insert("cpus".into(), json!(f64::from(millis) / 1000.0));
    }
    if let Some(pids) = docker.pids_limit {
        out.insert("pids_limit".into(), pids.into());
    }
    out.insert("read_only".into(), docker.read_only.into());
    out.insert("pull".into(), docker.pull.as_str().into());
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::{from_value, ServerSpec};
    use super::*;

    fn docker(spec: &ServerSpec) -> &DockerSpec {
        match &spec.transport {
            Transport::Docker(d) => d,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_guides_example_is_a_docker_server_in_http_mode_named_after_its_image() {
        let spec = from_value(json!({"name": "docker-server", "type": "docker", "port": 8001, "env": {"API_KEY": "secret"}})).unwrap();
        let d = docker(&spec);
        assert_eq!(d.image, "docker-server");
        assert_eq!(d.port, Some(8001));
        assert!(d.is_http());
        assert_eq!(d.network(), "bridge");
        assert_eq!(d.pull, PullPolicy::Never);
        assert!(!format!("{spec:?}").contains("secret"));
        assert_eq!(spec.redacted()["env"]["API_KEY"], REDACTED);
    }

    #[test]
    fn an_image_makes_a_stdio_mode_container_without_network() {
        let spec = from_value(json!({"name": "s", "image": "mcp/time:1", "args": ["--x"],
            "volumes": ["/srv/data:/data", "cache:/cache:rw"], "cpus": 0.5, "memory_mb": 256,
            "pids_limit": 64, "read_only": true, "pull": "if-not-present", "user": "1000:1000"}))
        .unwrap();
        assert_eq!(spec.transport_kind(), "docker");
        let d = docker(&spec);
        assert!(!d.is_http());
        assert_eq!(d.network(), "none");
        assert_eq!(d.cpu_millis, Some(500));
        assert_eq!(
            d.volumes.iter().map(Volume::bind).collect::<Vec<_>>(),
            ["/srv/data:/data:ro", "cache:/cache:rw"]
        );
        assert_eq!(from_value(spec.to_flat_json()).unwrap(), spec);
        let stored = serde_json::to_value(&spec).unwrap();
        assert_eq!(serde_json::from_value::<ServerSpec>(stored).unwrap(), spec);
    }

    #[test]
    fn bad_docker_fields_are_named() {
        let cases = [
            (json!({"name": "a", "image": ""}), "image"),
            (json!({"name": "a", "image": "x y"}), "image"),
            (
                json!({"name": "a", "image": "x", "volumes": ["/a"]}),
                "volumes[0]",
            ),
            (
                json!({"name": "a", "image": "x", "volumes": ["/a:rel"]}),
                "volumes[0]",
            ),
            (
                json!({"name": "a", "image": "x", "volumes": ["/a:/b:rx"]}),
                "volumes[0]",
            ),
            (json!({"name": "a", "image": "x", "cpus": 0}), "cpus"),
            (json!({"name": "a", "image": "x", "cpus": "lots"}), "cpus"),
            (
                json!({"name": "a", "image": "x", "memory_mb": 1}),
                "memory_mb",
            ),
            (json!({"name": "a", "image": "x", "pull": "always"}), "pull"),
            (
                json!({"name": "a", "image": "x", "port": 80, "network": "none"}),
                "network",
            ),
            (
                json!({"name": "a", "image": "x", "network": "a b"}),
                "network",
            ),
            (
                json!({"name": "a", "image": "x", "inherit_env": ["HOME"]}),
                "inherit_env",
            ),
            (json!({"name": "a", "image": "x", "headers": {}}), "headers"),
            (json!({"name": "a", "image": "x", "cwd": "rel"}), "cwd"),
            (
                json!({"name": "a", "image": "x", "read_only": "yes"}),
                "read_only",
            ),
            (
                json!({"name": "a", "command": "x", "image": "y", "type": "stdio"}),
                "image",
            ),
            (
                json!({"name": "a", "url": "http://h", "type": "http", "volumes": []}),
                "volumes",
            ),
        ];
        for (input, field) in cases {
            let err = from_value(input.clone()).unwrap_err();
            assert_eq!(err.field(), Some(field), "{input} -> {err}");
        }
    }
}
