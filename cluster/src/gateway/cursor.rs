//! The gateway's pagination cursor across servers.
//!
//! A merged list walks the servers in name order, one upstream page at a time. The cursor
//! says where the walk stands: which list it belongs to, the server it resumes at, and
//! that server's own cursor (none to start the server from its first page). Servers
//! before it in name order are done, those after it not begun. It is opaque to clients:
//! base64url (no padding) of a small JSON object. A server undeployed between two pages
//! is no obstacle: the walk resumes at the first server after its name.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// Longest cursor accepted (a server's own cursor inside it included).
const MAX_CURSOR_LEN: usize = 8 * 1024;

/// Where a paginated walk over the servers resumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The list method the cursor belongs to (`resources/list`, ...).
    #[serde(rename = "m")]
    pub method: String,
    /// The server to resume at.
    #[serde(rename = "s")]
    pub server: String,
    /// That server's cursor; `None` for its first page.
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<serde_json::Value>,
}

/// Why a cursor was refused (answered with JSON-RPC -32602, as the spec asks for an
/// invalid cursor).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// Not something this gateway handed out.
    #[error("invalid cursor")]
    Malformed,
    /// Handed out for another list.
    #[error("invalid cursor: it belongs to {0}")]
    OtherList(String),
}

impl Cursor {
    /// The opaque string handed to clients.
    pub fn encode(&self) -> String {
        // Serializing strings and JSON values cannot fail.
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Reads a cursor handed out for `method`.
    pub fn decode(raw: &str, method: &str) -> Result<Self, CursorError> {
        if raw.len() > MAX_CURSOR_LEN {
            return Err(CursorError::Malformed);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(raw)
            .map_err(|_| CursorError::Malformed)?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| CursorError::Malformed)?;
        if cursor.method != method {
            return Err(CursorError::OtherList(cursor.method));
        }
        Ok(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_and_checks_its_list() {
        let cursor = Cursor {
            method: "prompts/list".into(),
            server: "docs".into(),
            upstream: Some(json!("page-2")),
        };
        let raw = cursor.encode();
        assert_eq!(Cursor::decode(&raw, "prompts/list"), Ok(cursor));
        assert_eq!(
            Cursor::decode(&raw, "resources/list"),
            Err(CursorError::OtherList("prompts/list".into()))
        );
        assert_eq!(
            Cursor::decode("not a cursor", "prompts/list"),
            Err(CursorError::Malformed)
        );
        assert_eq!(
            Cursor::decode(&"A".repeat(MAX_CURSOR_LEN + 1), "prompts/list"),
            Err(CursorError::Malformed)
        );
    }
}
