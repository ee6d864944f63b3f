//! Server specs: what a user submits to deploy an MCP server, and its validation.
//!
//! Users write a flat JSON (or YAML) object; [`parse_json`] / [`from_value`] turn it into a
//! canonical, validated [`ServerSpec`], which is what the Raft log stores. Every accepted
//! field, with its aliases (`type` / `server_type` for `transport`), default, transport and
//! secrecy, is one row of [`fields::FIELDS`]; unknown fields are refused so a typo is never
//! silently ignored, and every error names the offending field.

mod docker;
pub mod fields;
pub mod guards;
mod model;
mod parse;
mod render;
pub mod sandbox;

pub use guards::{GuardSpec, RateLimit};
pub use model::{
    is_node_private, Auth, DockerSpec, PlacementConstraints, PullPolicy, ServerSpec, SpecError,
    Transport, Volume, DEFAULT_IDLE_TIMEOUT_SECS, INHERITED_ENV, MAX_IDLE_TIMEOUT_SECS,
    MAX_NAME_LEN, MAX_REPLICAS, MAX_REQUEST_TIMEOUT_MS, REDACTED,
};
pub use parse::{from_value, parse_json, validate_name};
pub use sandbox::Sandbox;

#[cfg(test)]
mod fixtures {
    use serde_json::json;

    use super::{from_value, ServerSpec};

    /// Every secret the specs of [`full_specs`] carry.
    pub const SECRETS: [&str; 5] = [
        "env-secret",
        "hdr-secret",
        "pw-secret",
        "key-secret",
        "tok-secret",
    ];

    /// Every kind of spec, each with every field it can have.
    pub fn full_specs() -> Vec<ServerSpec> {
        let common = json!({
            "replicas": 3, "priority": -2, "tags": ["a", "b"],
            "placement": {"allowed_nodes": [1], "node_tags": ["gpu"]},
            "request_timeout_ms": 500, "description": "d",
            "pin": "strict", "rate_limit": {"per_second": 5, "burst": 10},
            "tool_rate_limits": {"t": {"per_second": 1, "burst": 1}}, "max_concurrent_calls": 2,
            "audit_arguments": true,
        });
        let shapes = [
            json!({"name": "s", "command": "c", "args": ["-x"], "env": {"K": "env-secret"},
                   "inherit_env": ["AWS_PROFILE"], "cwd": "/tmp",
                   "sandbox": {"uid": 1000, "gid": 1000, "max_memory_mb": 256, "max_open_files": 64,
                               "max_processes": 16, "no_new_privs": false}}),
            json!({"name": "b", "url": "https://x.example/mcp", "headers": {"X-Team": "hdr-secret"},
                   "auth": {"type": "basic", "username": "u", "password": "pw-secret"}}),
            json!({"name": "k", "url": "http://h/mcp", "auth": {"type": "api_key", "key": "key-secret", "header": "X-K"}}),
            json!({"name": "t", "url": "http://h/mcp", "auth": {"type": "bearer", "token": "tok-secret"}}),
            json!({"name": "d", "image": "img:1", "command": "/srv", "args": ["-v"], "env": {"K": "env-secret"},
                   "cwd": "/w", "port": 8080, "user": "1:1", "volumes": ["/a:/b"], "network": "bridge",
                   "memory_mb": 64, "cpus": 1.5, "pids_limit": 32, "read_only": true, "pull": "if-not-present",
                   "on_demand": true, "idle_timeout_secs": 60}),
        ];
        shapes
            .into_iter()
            .map(|mut shape| {
                for (k, v) in common.as_object().into_iter().flatten() {
                    shape[k] = v.clone();
                }
                from_value(shape).unwrap()
            })
            .collect()
    }
}
