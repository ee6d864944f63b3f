//! The request rules of the stateless era (2026-07-28) over Streamable HTTP, one function
//! per rule, checked before the gateway acts on a request.
//!
//! The transport mirrors parts of the body into headers (`MCP-Protocol-Version`,
//! `Mcp-Method`, `Mcp-Name`) so that load balancers and proxies can route without parsing
//! JSON; a server that reads the body must refuse a request whose headers say something
//! else, or a proxy and the gateway could act on two different requests. Rules are
//! checked in a fixed order, first failure wins: the `_meta` envelope (`-32602`), then the
//! headers (`-32020`), then the version (`-32022`), so a client that contradicts itself
//! is told so rather than told its version is unsupported. Every failure is HTTP 400.
//! Handshake-era requests (2025-11-25 and earlier) never come here. See docs/gateway.md.

use axum::http::{HeaderMap, StatusCode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use super::protocol;
use crate::dataplane::upstream::{
    META_CLIENT_CAPABILITIES, META_PROTOCOL_VERSION, STATELESS_VERSION,
};

/// JSON-RPC error of a header that is missing, malformed, or disagrees with the body.
pub const HEADER_MISMATCH: i64 = -32020;
/// The header carrying the protocol version.
pub const VERSION_HEADER: &str = "mcp-protocol-version";
/// The header mirroring the body's `method`.
pub const METHOD_HEADER: &str = "mcp-method";
/// The header mirroring `params.name` or `params.uri`.
pub const NAME_HEADER: &str = "mcp-name";
/// Marks a header value as base64 of its UTF-8 bytes (for values unsafe in a header).
const BASE64_PREFIX: &str = "=?base64?";
const BASE64_SUFFIX: &str = "?=";

/// Why a stateless-era request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConformanceError {
    /// `params._meta` lacks a field every request must carry.
    #[error("params._meta must carry {0:?}")]
    MissingMeta(&'static str),
    /// A header the request needs is absent.
    #[error("header mismatch: the {0} header is required")]
    MissingHeader(&'static str),
    /// A header is not a valid value (not visible ASCII, or a broken base64 sentinel).
    #[error("header mismatch: the {0} header is malformed")]
    MalformedHeader(&'static str),
    /// A header disagrees with the body.
    #[error("header mismatch: {header} header {found:?} does not match body value {expected:?}")]
    Mismatch {
        /// The header's name.
        header: &'static str,
        /// What the header said.
        found: String,
        /// What the body says.
        expected: String,
    },
    /// The request's version is not one the gateway speaks in this era.
    #[error("unsupported protocol version {0:?}")]
    UnsupportedVersion(String),
}

impl ConformanceError {
    /// The HTTP status of the refusal: always 400, which tells a client that falls back
    /// between eras that this is a modern server (the body says which rule failed).
    pub fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }

    /// The JSON-RPC error code.
    pub fn code(&self) -> i64 {
        match self {
            ConformanceError::MissingMeta(_) => protocol::INVALID_PARAMS,
            ConformanceError::MissingHeader(_)
            | ConformanceError::MalformedHeader(_)
            | ConformanceError::Mismatch { .. } => HEADER_MISMATCH,
            ConformanceError::UnsupportedVersion(_) => protocol::UNSUPPORTED_PROTOCOL_VERSION,
        }
    }

    /// The JSON-RPC error response for request `id`.
    pub fn response(&self, id: Value) -> Value {
        let data = match self {
            ConformanceError::UnsupportedVersion(asked) => {
                Some(json!({"supported": [STATELESS_VERSION], "requested": asked}))
            }
            _ => None,
        };
        protocol::error(id, self.code(), self.to_string(), data)
    }
}

/// Checks every rule on a stateless-era request of `method` with `params`.
pub fn check(headers: &HeaderMap, method: &str, params: &Value) -> Result<(), ConformanceError> {
    let version = required_meta(params)?;
    version_header(headers, version)?;
    method_header(headers, method)?;
    name_header(headers, method, params)?;
    supported_version(version)
}

/// Rule: `_meta` carries the protocol version (a string) and the client's capabilities;
/// returns the version.
pub fn required_meta(params: &Value) -> Result<&str, ConformanceError> {
    let meta = params.get("_meta");
    let version = meta
        .and_then(|m| m.get(META_PROTOCOL_VERSION))
        .and_then(Value::as_str)
        .ok_or(ConformanceError::MissingMeta(META_PROTOCOL_VERSION))?;
    match meta.and_then(|m| m.get(META_CLIENT_CAPABILITIES)) {
        Some(Value::Object(_)) => Ok(version),
        _ => Err(ConformanceError::MissingMeta(META_CLIENT_CAPABILITIES)),
    }
}

/// Rule: `MCP-Protocol-Version` is present and equals the `_meta` version.
pub fn version_header(headers: &HeaderMap, version: &str) -> Result<(), ConformanceError> {
    let found = header(headers, "MCP-Protocol-Version", VERSION_HEADER)?;
    matches("MCP-Protocol-Version", found, version)
}

/// Rule: `Mcp-Method` is present and equals the body's `method` (values are
/// case-sensitive).
pub fn method_header(headers: &HeaderMap, method: &str) -> Result<(), ConformanceError> {
    let found = header(headers, "Mcp-Method", METHOD_HEADER)?;
    matches("Mcp-Method", found, method)
}

/// Rule: for the methods that name a target, `Mcp-Name` is present and, once decoded,
/// equals `params.name` (`params.uri` for `resources/read`). A body without the field is
/// left to the method, which refuses it as invalid params.
pub fn name_header(
    headers: &HeaderMap,
    method: &str,
    params: &Value,
) -> Result<(), ConformanceError> {
    let Some(field) = name_field(method) else {
        return Ok(());
    };
    let Some(expected) = params.get(field).and_then(Value::as_str) else {
        return Ok(());
    };
    let raw = header(headers, "Mcp-Name", NAME_HEADER)?;
    let found = decode_header_value(raw).ok_or(ConformanceError::MalformedHeader("Mcp-Name"))?;
    matches("Mcp-Name", &found, expected)
}

/// Rule: the version is one the gateway speaks in the stateless era.
pub fn supported_version(version: &str) -> Result<(), ConformanceError> {
    if version == STATELESS_VERSION {
        Ok(())
    } else {
        Err(ConformanceError::UnsupportedVersion(version.to_owned()))
    }
}

/// The body field `Mcp-Name` mirrors for `method`, if it names a target.
fn name_field(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    }
}

/// The value of header `name` (looked up by its lowercase `key`), which must be present
/// and visible ASCII.
fn header<'h>(
    headers: &'h HeaderMap,
    name: &'static str,
    key: &str,
) -> Result<&'h str, ConformanceError> {
    headers
        .get(key)
        .ok_or(ConformanceError::MissingHeader(name))?
        .to_str()
        .map_err(|_| ConformanceError::MalformedHeader(name))
}

fn matches(header: &'static str, found: &str, expected: &str) -> Result<(), ConformanceError> {
    if found == expected {
        Ok(())
    } else {
        Err(ConformanceError::Mismatch {
            header,
            found: found.to_owned(),
            expected: expected.to_owned(),
        })
    }
}

/// A header value as the client meant it: verbatim, or decoded when wrapped as
/// `=?base64?…?=`. `None` for a broken wrapping (bad or non-canonical base64, or not
/// UTF-8), so a corrupt header can never match the body by accident.
pub fn decode_header_value(value: &str) -> Option<String> {
    let Some(payload) = value
        .strip_prefix(BASE64_PREFIX)
        .and_then(|rest| rest.strip_suffix(BASE64_SUFFIX))
    else {
        return Some(value.to_owned());
    };
    let bytes = STANDARD.decode(payload).ok()?;
    if STANDARD.encode(&bytes) != payload {
        return None;
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn params(extra: Value) -> Value {
        let mut params = json!({"_meta": {
            META_PROTOCOL_VERSION: STATELESS_VERSION,
            META_CLIENT_CAPABILITIES: {},
        }});
        if let (Some(p), Some(extra)) = (params.as_object_mut(), extra.as_object()) {
            p.extend(extra.clone());
        }
        params
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_str(value).expect("header value"));
        }
        headers
    }

    /// The header a check found disagreeing with the body, if that is why it failed.
    fn mismatched(checked: Result<(), ConformanceError>) -> Option<&'static str> {
        match checked {
            Err(ConformanceError::Mismatch { header, .. }) => Some(header),
            _ => None,
        }
    }

    const GOOD: [(&str, &str); 3] = [
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", "tools/call"),
        ("Mcp-Name", "demo__echo"),
    ];

    #[test]
    fn a_conforming_request_passes() {
        let call = params(json!({"name": "demo__echo"}));
        assert_eq!(check(&headers(&GOOD), "tools/call", &call), Ok(()));
        // Only the target-naming methods need Mcp-Name.
        let list = headers(&[GOOD[0], ("Mcp-Method", "tools/list")]);
        assert_eq!(check(&list, "tools/list", &params(json!({}))), Ok(()));
    }

    #[test]
    fn meta_must_carry_version_and_capabilities() {
        let no_caps = json!({"_meta": {META_PROTOCOL_VERSION: "2026-07-28"}});
        let e = check(&headers(&GOOD), "tools/list", &no_caps).unwrap_err();
        assert_eq!(e, ConformanceError::MissingMeta(META_CLIENT_CAPABILITIES));
        assert_eq!((e.status(), e.code()), (StatusCode::BAD_REQUEST, -32602));
        assert_eq!(
            required_meta(&json!({})),
            Err(ConformanceError::MissingMeta(META_PROTOCOL_VERSION))
        );
    }

    #[test]
    fn each_header_is_required_and_must_match_the_body() {
        let call = params(json!({"name": "demo__echo"}));
        // Values are compared case-sensitively: "TOOLS/CALL" is not "tools/call".
        let wrong = ["2025-11-25", "TOOLS/CALL", "demo__add"];
        for (i, (name, _)) in GOOD.iter().enumerate() {
            let mut missing = GOOD.to_vec();
            missing.remove(i);
            let e = check(&headers(&missing), "tools/call", &call).unwrap_err();
            assert_eq!(e, ConformanceError::MissingHeader(name));
            assert_eq!(
                (e.status(), e.code()),
                (StatusCode::BAD_REQUEST, HEADER_MISMATCH)
            );
            let mut other = GOOD.to_vec();
            other[i].1 = wrong[i];
            assert_eq!(
                mismatched(check(&headers(&other), "tools/call", &call)),
                Some(*name)
            );
        }
    }

    #[test]
    fn name_header_is_decoded_and_follows_the_method() {
        let call = params(json!({"name": "demo__echo"}));
        // "demo__echo" in base64.
        let encoded = headers(&[
            GOOD[0],
            GOOD[1],
            ("Mcp-Name", "=?base64?ZGVtb19fZWNobw==?="),
        ]);
        assert_eq!(check(&encoded, "tools/call", &call), Ok(()));
        let broken = headers(&[GOOD[0], GOOD[1], ("Mcp-Name", "=?base64?not base64?=")]);
        assert_eq!(
            check(&broken, "tools/call", &call),
            Err(ConformanceError::MalformedHeader("Mcp-Name"))
        );
        let read = params(json!({"uri": "file:///a"}));
        let read_headers = headers(&[
            GOOD[0],
            ("Mcp-Method", "resources/read"),
            ("Mcp-Name", "file:///a"),
        ]);
        assert_eq!(check(&read_headers, "resources/read", &read), Ok(()));
    }

    #[test]
    fn header_rules_come_before_the_version_rule() {
        let mut call = params(json!({"name": "demo__echo"}));
        call["_meta"][META_PROTOCOL_VERSION] = "2099-01-01".into();
        let e = check(&headers(&GOOD), "tools/call", &call).unwrap_err();
        assert_eq!(e.code(), HEADER_MISMATCH);
        let agreeing = headers(&[("MCP-Protocol-Version", "2099-01-01"), GOOD[1], GOOD[2]]);
        let e = check(&agreeing, "tools/call", &call).unwrap_err();
        assert_eq!(e, ConformanceError::UnsupportedVersion("2099-01-01".into()));
        let reply = e.response(json!(4));
        assert_eq!(reply["error"]["code"], -32022);
        assert_eq!(reply["error"]["data"]["supported"], json!(["2026-07-28"]));
        assert_eq!(reply["id"], 4);
    }

    #[test]
    fn plain_values_decode_to_themselves() {
        assert_eq!(
            decode_header_value("get_weather").as_deref(),
            Some("get_weather")
        );
        // "Hello, 世界"
        assert_eq!(
            decode_header_value("=?base64?SGVsbG8sIOS4lueVjA==?=").as_deref(),
            Some("Hello, 世界")
        );
        // Non-canonical padding bits are refused.
        assert_eq!(decode_header_value("=?base64?ZGVtb19fZWNobx==?="), None);
    }
}
