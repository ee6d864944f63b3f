//! The guard fields of a spec: tool pinning policy (`pin`), rate limits for the server and
//! per tool (`rate_limit`, `tool_rate_limits`) and the cluster-wide concurrency quota
//! (`max_concurrent_calls`). Their rows are in `fields.rs`; nodes enforce them in
//! `mcp_cluster::guards`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::model::SpecError;
use super::parse::{invalid, type_name, SpecReader};
use crate::registry::pins::PinPolicy;

/// Largest `per_second` or `burst` of a rate limit.
pub const MAX_RATE: u32 = 1_000_000;
/// Largest `max_concurrent_calls`.
pub const MAX_CONCURRENT_CALLS: u32 = 100_000;

/// A token bucket: `per_second` calls a second on average, at most `burst` at once. The
/// numbers are for the whole cluster; each node enforces its share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Sustained calls per second.
    pub per_second: u32,
    /// Calls admitted at once after a quiet period.
    pub burst: u32,
}

/// The guard settings of a server; all default to "no guard" except pinning.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardSpec {
    /// How tool definitions are pinned.
    #[serde(default, skip_serializing_if = "PinPolicy::is_default")]
    pub pin: PinPolicy,
    /// Limit on every `tools/call` of the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Limits on calls of single tools (on top of `rate_limit`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tool_rate_limits: BTreeMap<String, RateLimit>,
    /// Most `tools/call`s of the server in flight across the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_calls: Option<u32>,
}

impl GuardSpec {
    /// True if nothing differs from the defaults (the spec is stored without the field).
    pub fn is_default(&self) -> bool {
        *self == GuardSpec::default()
    }
}

/// Reads the guard fields out of `reader`.
pub(super) fn read(reader: &mut SpecReader) -> Result<GuardSpec, SpecError> {
    let pin = match reader.string("pin")? {
        None => PinPolicy::default(),
        Some(word) => PinPolicy::parse(&word).ok_or_else(|| {
            invalid(
                "pin",
                format!("unknown policy {word:?} (expected strict, new-tools-allowed or off)"),
            )
        })?,
    };
    let rate_limit = match reader.fields.remove("rate_limit") {
        None | Some(Value::Null) => None,
        Some(value) => Some(read_limit("rate_limit", value)?),
    };
    let tool_rate_limits = match reader.fields.remove("tool_rate_limits") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(map)) => map
            .into_iter()
            .map(|(tool, value)| {
                if tool.is_empty() {
                    return Err(invalid("tool_rate_limits", "a tool name is empty"));
                }
                let limit = read_limit(&format!("tool_rate_limits.{tool}"), value)?;
                Ok((tool, limit))
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(invalid(
                "tool_rate_limits",
                format!(
                    "must be an object of tool name to {{per_second, burst}}, got {}",
                    type_name(&other)
                ),
            ))
        }
    };
    let max_concurrent_calls = reader.integer("max_concurrent_calls")?;
    Ok(GuardSpec {
        pin,
        rate_limit,
        tool_rate_limits,
        max_concurrent_calls,
    })
}

/// `{per_second, burst}` at `field`; `burst` defaults to `per_second`.
fn read_limit(field: &str, value: Value) -> Result<RateLimit, SpecError> {
    let Value::Object(mut map) = value else {
        return Err(invalid(
            field,
            format!(
                "must be an object {{\"per_second\": N, \"burst\": N}}, got {}",
                type_name(&value)
            ),
        ));
    };
    if let Some(unknown) = map.keys().find(|k| *k != "per_second" && *k != "burst") {
        return Err(SpecError::UnknownField(format!("{field}.{unknown}")));
    }
    let mut number = |key: &str| -> Result<Option<u32>, SpecError> {
        match map.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=u64::from(MAX_RATE)).contains(n))
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| {
                    invalid(
                        format!("{field}.{key}"),
                        format!("must be an integer between 1 and {MAX_RATE}, got {v}"),
                    )
                }),
        }
    };
    let per_second = number("per_second")?.ok_or_else(|| SpecError::InvalidField {
        field: format!("{field}.per_second"),
        reason: "is required in a rate limit".to_owned(),
    })?;
    let burst = number("burst")?.unwrap_or(per_second);
    Ok(RateLimit { per_second, burst })
}

/// Adds the guard fields that differ from their defaults to a flat form.
pub(super) fn render(guards: &GuardSpec, out: &mut Map<String, Value>) {
    if !guards.pin.is_default() {
        out.insert("pin".into(), guards.pin.as_str().into());
    }
    let limit = |l: &RateLimit| json!({"per_second": l.per_second, "burst": l.burst});
    if let Some(l) = &guards.rate_limit {
        out.insert("rate_limit".into(), limit(l));
    }
    if !guards.tool_rate_limits.is_empty() {
        let tools: Map<String, Value> = guards
            .tool_rate_limits
            .iter()
            .map(|(tool, l)| (tool.clone(), limit(l)))
            .collect();
        out.insert("tool_rate_limits".into(), Value::Object(tools));
    }
    if let Some(n) = guards.max_concurrent_calls {
        out.insert("max_concurrent_calls".into(), n.into());
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::from_value;
    use super::*;

    fn parse(extra: Value) -> Result<GuardSpec, SpecError> {
        let mut spec = json!({"name": "a", "command": "x"});
        for (k, v) in extra.as_object().into_iter().flatten() {
            spec[k] = v.clone();
        }
        from_value(spec).map(|s| s.guards)
    }

    #[test]
    fn guards_default_to_no_limits_and_new_tools_allowed() {
        let guards = parse(json!({})).unwrap();
        assert!(guards.is_default());
        assert_eq!(guards.pin, PinPolicy::NewToolsAllowed);
    }

    #[test]
    fn limits_parse_with_burst_defaulting_to_the_rate() {
        let guards = parse(json!({
            "pin": "strict",
            "rate_limit": {"per_second": 10},
            "tool_rate_limits": {"search": {"per_second": 2, "burst": 5}},
            "max_concurrent_calls": 3,
        }))
        .unwrap();
        assert_eq!(guards.pin, PinPolicy::Strict);
        assert_eq!(
            guards.rate_limit,
            Some(RateLimit {
                per_second: 10,
                burst: 10
            })
        );
        assert_eq!(guards.tool_rate_limits["search"].burst, 5);
        assert_eq!(guards.max_concurrent_calls, Some(3));
    }

    #[test]
    fn bad_guards_name_their_field() {
        let cases = [
            (json!({"pin": "lenient"}), "pin"),
            (json!({"rate_limit": 5}), "rate_limit"),
            (json!({"rate_limit": {"burst": 5}}), "rate_limit.per_second"),
            (
                json!({"rate_limit": {"per_second": 0}}),
                "rate_limit.per_second",
            ),
            (
                json!({"rate_limit": {"per_second": 1, "burst": -1}}),
                "rate_limit.burst",
            ),
            (
                json!({"rate_limit": {"per_second": 1, "brust": 1}}),
                "rate_limit.brust",
            ),
            (json!({"tool_rate_limits": []}), "tool_rate_limits"),
            (
                json!({"tool_rate_limits": {"t": {"per_second": 1.5}}}),
                "tool_rate_limits.t.per_second",
            ),
            (json!({"max_concurrent_calls": 0}), "max_concurrent_calls"),
        ];
        for (extra, field) in cases {
            let err = parse(extra.clone()).unwrap_err();
            assert_eq!(err.field(), Some(field), "{extra}: {err}");
        }
    }
}
