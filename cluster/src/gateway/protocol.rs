//! The MCP side of the gateway: which era a message belongs to, version negotiation, and
//! the results the gateway answers itself (`initialize`, `server/discover`, `ping`).
//!
//! Handshake era (2024-11-05 … 2025-11-25): `initialize` opens a session whose id the
//! client sends back in `Mcp-Session-Id`. Stateless era (2026-07-28): no session; each
//! request names its version in `params._meta`, and every result carries `resultType`.

use axum::http::StatusCode;
use serde_json::{json, Map, Value};

use super::caching;
use crate::dataplane::upstream::{META_PROTOCOL_VERSION, STATELESS_VERSION};

/// The `_meta` key of the answering server's name and version on stateless results.
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

/// Handshake-era versions we speak, newest first.
pub const HANDSHAKE_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// JSON-RPC "parse error".
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC "invalid request".
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC "method not found".
pub const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC "invalid params" (also: unknown tool).
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC "internal error": the cluster could not run the call.
pub const INTERNAL_ERROR: i64 = -32603;
/// The stateless era's "unsupported protocol version" (data names what we support).
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

/// The era a request is handled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Era {
    /// Needs a session (except `initialize`, which opens one).
    Handshake,
    /// Self-contained request at this version.
    Stateless(String),
}

/// Decides the era of a request: `_meta` naming a protocol version, an
/// `MCP-Protocol-Version` header naming the stateless version (`version_header`), or
/// `server/discover` means stateless; anything else belongs to a handshake session. The
/// header counts so that a modern request that forgot its `_meta` is told so, rather than
/// told to open a session.
pub fn era_of(method: &str, params: &Value, version_header: Option<&str>) -> Era {
    let meta_version = params
        .pointer("/_meta")
        .and_then(|m| m.get(META_PROTOCOL_VERSION))
        .and_then(Value::as_str);
    match meta_version {
        Some(version) => Era::Stateless(version.to_owned()),
        None if method == "server/discover" || version_header == Some(STATELESS_VERSION) => {
            Era::Stateless(STATELESS_VERSION.to_owned())
        }
        None => Era::Handshake,
    }
}

/// The HTTP status of a "method not found" error: in the stateless era 404, which tells
/// the client (by the JSON-RPC body with it) that the endpoint exists but the method does
/// not; in the handshake era the error travels in a 200 like any other.
pub fn method_not_found_status(era: &Era) -> StatusCode {
    match era {
        Era::Stateless(_) => StatusCode::NOT_FOUND,
        Era::Handshake => StatusCode::OK,
    }
}

/// The version to answer an `initialize` with: the client's if we speak it, else our
/// newest handshake version (the client then decides whether it can go on).
pub fn negotiate(requested: Option<&str>) -> &'static str {
    requested
        .and_then(|r| HANDSHAKE_VERSIONS.iter().find(|v| **v == r).copied())
        .unwrap_or(HANDSHAKE_VERSIONS[0])
}

/// True when a `MCP-Protocol-Version` header names a version we speak.
pub fn known_version(version: &str) -> bool {
    version == STATELESS_VERSION || HANDSHAKE_VERSIONS.contains(&version)
}

fn server_info() -> Value {
    json!({"name": "mcpd", "version": env!("CARGO_PKG_VERSION")})
}

const INSTRUCTIONS: &str = "Tools, prompts and resources of every MCP server of an \
mcp-rust cluster. Tools and prompts are named SERVER__NAME (the server's registry name, two \
underscores, the server's own name); resource URIs are mcpd://SERVER/URI (the server's own \
URI after the server name).";

/// The `initialize` result at `version`, announcing `capabilities`.
pub fn initialize_result(version: &str, capabilities: Value) -> Value {
    json!({
        "protocolVersion": version,
        "capabilities": capabilities,
        "serverInfo": server_info(),
        "instructions": INSTRUCTIONS,
    })
}

/// The `server/discover` result announcing `capabilities` (its `serverInfo` is added by
/// [`result`]).
pub fn discover_result(capabilities: Value) -> Value {
    let mut discover = json!({
        "supportedVersions": [STATELESS_VERSION],
        "capabilities": capabilities,
        "instructions": INSTRUCTIONS,
    });
    caching::apply(&mut discover, caching::DISCOVER);
    discover
}

/// A result response. In the stateless era the result gets `resultType` if it lacks one
/// (the era requires it; handshake-era upstreams never send it) and the gateway's
/// `serverInfo` in `_meta`: the client talks to the gateway, whatever server ran the call,
/// and has no handshake that told it who that is.
pub fn result(id: Value, mut result: Value, era: &Era) -> Value {
    if matches!(era, Era::Stateless(_)) {
        if let Some(object) = result.as_object_mut() {
            object
                .entry("resultType")
                .or_insert_with(|| Value::from("complete"));
            let meta = object.entry("_meta").or_insert_with(|| json!({}));
            if let Some(meta) = meta.as_object_mut() {
                meta.insert(META_SERVER_INFO.into(), server_info());
            }
        }
    }
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// The `tools/list` result; in the stateless era with the caching hints of
/// [`caching::LISTS`].
pub fn tools_list_result(id: Value, tools: Vec<Value>, era: &Era) -> Value {
    list_result(id, json!({"tools": tools}), era)
}

/// A list result (`tools/list`, `prompts/list`, ...); in the stateless era with the
/// caching hints of [`caching::LISTS`].
pub fn list_result(id: Value, mut list: Value, era: &Era) -> Value {
    if matches!(era, Era::Stateless(_)) {
        caching::apply(&mut list, caching::LISTS);
    }
    result(id, list, era)
}

/// An error response.
pub fn error(id: Value, code: i64, message: impl Into<String>, data: Option<Value>) -> Value {
    let mut error = Map::new();
    error.insert("code".into(), code.into());
    error.insert("message".into(), Value::String(message.into()));
    if let Some(data) = data {
        error.insert("data".into(), data);
    }
    json!({"jsonrpc": "2.0", "id": id, "error": error})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eras() {
        let meta = json!({"_meta": {META_PROTOCOL_VERSION: "2026-07-28"}});
        let stateless = Era::Stateless(STATELESS_VERSION.into());
        assert_eq!(era_of("tools/list", &meta, None), stateless);
        assert_eq!(era_of("tools/list", &json!({}), None), Era::Handshake);
        assert_eq!(
            era_of("tools/list", &json!({}), Some("2025-11-25")),
            Era::Handshake
        );
        assert_eq!(
            era_of("tools/list", &json!({}), Some(STATELESS_VERSION)),
            stateless
        );
        assert_eq!(era_of("server/discover", &Value::Null, None), stateless);
    }

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(Some("2025-03-26")), "2025-03-26");
        assert_eq!(negotiate(Some("1999-01-01")), HANDSHAKE_VERSIONS[0]);
        assert_eq!(negotiate(None), HANDSHAKE_VERSIONS[0]);
    }

    #[test]
    fn stateless_results_carry_result_type() {
        let stateless = Era::Stateless(STATELESS_VERSION.into());
        let r = result(json!(1), json!({"tools": []}), &stateless);
        assert_eq!(r["result"]["resultType"], "complete");
        let kept = result(
            json!(1),
            json!({"resultType": "input_required"}),
            &stateless,
        );
        assert_eq!(kept["result"]["resultType"], "input_required");
        let r = result(json!(1), json!({"tools": []}), &Era::Handshake);
        assert!(r["result"].get("resultType").is_none());
        assert!(r["result"].get("_meta").is_none());
    }

    #[test]
    fn stateless_results_name_the_gateway_and_keep_other_meta() {
        let stateless = Era::Stateless(STATELESS_VERSION.into());
        let r = result(json!(1), json!({"_meta": {"x.example/k": 1}}), &stateless);
        assert_eq!(r["result"]["_meta"][META_SERVER_INFO]["name"], "mcpd");
        assert_eq!(r["result"]["_meta"]["x.example/k"], 1);
        let discover = result(json!(2), discover_result(json!({"tools": {}})), &stateless);
        assert_eq!(
            discover["result"]["_meta"][META_SERVER_INFO]["name"],
            "mcpd"
        );
        assert_eq!(discover["result"]["cacheScope"], "private");
        let list = tools_list_result(json!(3), vec![], &stateless);
        assert_eq!(
            (&list["result"]["ttlMs"], &list["result"]["cacheScope"]),
            (&json!(0), &json!("private"))
        );
    }
}
