//! Just enough JSON-RPC 2.0 for a relay: messages stay `serde_json::Value`s so that any
//! method, any params and any result pass through untouched; these helpers read and build
//! the few parts the relay itself needs.
//!
//! A server's response is the exception: it is a [`RawResponse`], the text as the server
//! sent it, of which only the id and whether it is an error are read. A result crosses the
//! node (to a gRPC caller, a peer, the Python package) without ever becoming a tree.

use std::ops::Range;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// "Method not found": what servers answer to methods they do not have.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// "Invalid request".
pub const INVALID_REQUEST: i64 = -32600;

/// The method of a request or notification.
pub fn method(message: &Value) -> Option<&str> {
    message.get("method").and_then(Value::as_str)
}

/// True for a request (has a method and an id); false for notifications and responses.
pub fn is_request(message: &Value) -> bool {
    message.get("method").is_some() && message.get("id").is_some_and(|id| !id.is_null())
}

/// True for a response (has an id and a result or an error, and no method).
pub fn is_response(message: &Value) -> bool {
    message.get("method").is_none()
        && message.get("id").is_some()
        && (message.get("result").is_some() || message.get("error").is_some())
}

/// The `error` object of a response, if it is an error response.
pub fn error_of(response: &Value) -> Option<&Value> {
    response.get("error").filter(|e| !e.is_null())
}

/// The error code of an error response.
pub fn error_code(response: &Value) -> Option<i64> {
    error_of(response)?.get("code")?.as_i64()
}

/// A request object.
pub fn request(id: impl Into<Value>, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id.into(), "method": method, "params": params})
}

/// A notification object.
pub fn notification(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

/// An error response.
pub fn error_response(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// Checks that a caller's message is a JSON-RPC request the relay can send.
pub fn validate_request(message: &Value) -> Result<(), String> {
    let Some(object) = message.as_object() else {
        return Err("a JSON-RPC request must be a JSON object (batches are not supported)".into());
    };
    match object.get("method") {
        Some(Value::String(m)) if !m.is_empty() => {}
        _ => return Err("the request has no \"method\" string".into()),
    }
    if let Some(params) = object.get("params") {
        if !params.is_object() && !params.is_array() {
            return Err("\"params\" must be an object or an array".into());
        }
    }
    if let Some(id) = object.get("id") {
        if !(id.is_string() || id.is_i64() || id.is_u64() || id.is_null()) {
            return Err("\"id\" must be a string or an integer".into());
        }
    }
    Ok(())
}

/// A member of a message, present even when its value is `null` (an `Option` alone would
/// read `"result": null` as absent).
#[derive(Default, Clone, Copy)]
struct Member<'a>(Option<&'a RawValue>);

impl<'de: 'a, 'a> Deserialize<'de> for Member<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <&'de RawValue>::deserialize(deserializer).map(|raw| Member(Some(raw)))
    }
}

/// The members of a message the relay looks at, borrowed from its text: everything else
/// (params, the result's content) is skipped over, never built.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(default, borrow)]
    id: Member<'a>,
    #[serde(default, borrow)]
    method: Member<'a>,
    #[serde(default, borrow)]
    result: Member<'a>,
    #[serde(default, borrow)]
    error: Member<'a>,
}

impl Head<'_> {
    fn is_response(&self) -> bool {
        self.method.0.is_none()
            && self.id.0.is_some()
            && (self.result.0.is_some() || self.error.0.is_some())
    }
}

/// What a line (or body) from a server turned out to be.
pub enum Incoming {
    /// A response: kept as text.
    Response(RawResponse),
    /// Anything else (a request or notification from the server, or JSON that is neither):
    /// rare, so it is parsed whole.
    Other(Value),
}

/// A server's message that is not JSON.
#[derive(Debug, Clone, thiserror::Error)]
#[error("not JSON: {reason}")]
pub struct NotJson {
    /// The text, handed back for the error message.
    pub text: String,
    reason: String,
}

impl Incoming {
    /// Reads one message from `text`, building a tree only when it is not a response.
    pub fn parse(text: String) -> Result<Self, NotJson> {
        if let Ok(head) = serde_json::from_str::<Head>(&text) {
            if head.is_response() {
                return Ok(Incoming::Response(
                    RawResponse::of_head(&text, &head).into_text(text),
                ));
            }
        }
        // Not an object with the expected members (a scalar, a request, a duplicate key):
        // the general parse decides, and a response found that way is re-serialised once.
        let value: Value = match serde_json::from_str(&text) {
            Ok(value) => value,
            Err(e) => {
                return Err(NotJson {
                    text,
                    reason: e.to_string(),
                })
            }
        };
        if is_response(&value) {
            return Ok(Incoming::Response(RawResponse::from_value(&value)));
        }
        Ok(Incoming::Other(value))
    }
}

/// A JSON-RPC response (result or error) as text, with the two facts the relay needs read
/// out of it once: where its id is, and whether it is an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    text: String,
    /// Byte range of the id's value in `text`.
    id: Range<usize>,
    is_error: bool,
}

/// [`RawResponse`] before it owns its text.
struct HeadFacts {
    id: Range<usize>,
    is_error: bool,
}

impl HeadFacts {
    fn into_text(self, text: String) -> RawResponse {
        RawResponse {
            text,
            id: self.id,
            is_error: self.is_error,
        }
    }
}

impl RawResponse {
    fn of_head(text: &str, head: &Head<'_>) -> HeadFacts {
        // The id's raw value is a slice of `text` (borrowed by the parse), so its offset is
        // where it sits in the text.
        let id = head.id.0.map_or(0..0, |raw| {
            let start = raw.get().as_ptr() as usize - text.as_ptr() as usize;
            start..start + raw.get().len()
        });
        let is_error = head.error.0.is_some_and(|e| e.get() != "null");
        HeadFacts { id, is_error }
    }

    /// Reads `text` as a response; `None` if it is not JSON or not a response.
    pub fn parse(text: String) -> Option<Self> {
        match Incoming::parse(text) {
            Ok(Incoming::Response(response)) => Some(response),
            _ => None,
        }
    }

    /// A response built as a tree (by the node itself, or after editing one).
    pub fn from_value(value: &Value) -> Self {
        let text = value.to_string();
        match serde_json::from_str::<Head>(&text) {
            Ok(head) => RawResponse::of_head(&text, &head).into_text(text),
            // Serialised from a tree: always an object; not one only if `value` is not.
            Err(_) => RawResponse {
                text,
                id: 0..0,
                is_error: false,
            },
        }
    }

    /// The id (`null` if it has none).
    pub fn id(&self) -> Value {
        self.text
            .get(self.id.clone())
            .and_then(|id| serde_json::from_str(id).ok())
            .unwrap_or(Value::Null)
    }

    /// The id, when it is an unsigned integer (the ids a session gives its requests).
    pub fn id_u64(&self) -> Option<u64> {
        self.text.get(self.id.clone())?.parse().ok()
    }

    /// Replaces the id with `id` (the caller's), moving only the bytes after it.
    pub fn set_id(&mut self, id: &Value) {
        if self.id.is_empty() {
            return;
        }
        let new = id.to_string();
        let end = self.id.start + new.len();
        self.text.replace_range(self.id.clone(), &new);
        self.id = self.id.start..end;
    }

    /// True for an error response (a non-null `error`).
    pub fn is_error(&self) -> bool {
        self.is_error
    }

    /// The text, as received (with the caller's id once [`Self::set_id`] ran).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The text, without a copy.
    pub fn into_string(self) -> String {
        self.text
    }

    /// The response as a tree, for the few callers that look inside (the gateway, guards).
    pub fn to_value(&self) -> Value {
        // The text was read as JSON when this was made, so this parse cannot fail.
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// The `error` object of an error response.
    pub fn error(&self) -> Option<Value> {
        if !self.is_error {
            return None;
        }
        error_of(&self.to_value()).cloned()
    }

    /// Edits the response as a tree (tools/list screening and filtering), then keeps the
    /// edited text.
    pub fn edit<R>(&mut self, f: impl FnOnce(&mut Value) -> R) -> R {
        let mut value = self.to_value();
        let out = f(&mut value);
        *self = RawResponse::from_value(&value);
        out
    }
}

impl std::fmt::Display for RawResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_keeps_its_text_and_takes_the_callers_id() {
        let text = r#"{"jsonrpc":"2.0", "id" : 17 ,"result":{"content":[{"type":"text","text":"a \"b\""}],"x":1.50}}"#;
        let Ok(Incoming::Response(mut response)) = Incoming::parse(text.to_owned()) else {
            panic!("not read as a response");
        };
        assert_eq!(response.id_u64(), Some(17));
        assert!(!response.is_error());
        response.set_id(&json!("caller-id"));
        // Everything but the id is byte for byte what the server sent (1.50 stays 1.50).
        assert_eq!(
            response.as_str(),
            text.replace(" 17 ", " \"caller-id\" ").as_str()
        );
        assert_eq!(response.to_value()["id"], "caller-id");
        response.set_id(&json!(3));
        assert_eq!(response.to_value()["id"], 3);
    }

    #[test]
    fn messages_are_told_apart() {
        let read = |text: &str| Incoming::parse(text.to_owned());
        let error = r#"{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"no"}}"#;
        let Ok(Incoming::Response(response)) = read(error) else {
            panic!("an error is a response");
        };
        assert!(response.is_error());
        assert_eq!(response.error().unwrap()["message"], "no");
        // A null result is still a result; a null error is not an error.
        let Ok(Incoming::Response(response)) = read(r#"{"id":2,"result":null,"error":null}"#)
        else {
            panic!("a null result is a response");
        };
        assert!(!response.is_error());
        assert!(matches!(
            read(r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#),
            Ok(Incoming::Other(_))
        ));
        assert!(matches!(
            read(r#"{"id":1,"method":"ping"}"#),
            Ok(Incoming::Other(_))
        ));
        assert!(matches!(read("42"), Ok(Incoming::Other(_))));
        assert!(read("nope").is_err());
        // A string id is no session id.
        let Ok(Incoming::Response(response)) = read(r#"{"id":"7","result":{}}"#) else {
            panic!("a string id is a response");
        };
        assert_eq!(response.id_u64(), None);
        // A duplicate key falls back to the general parse: the last one wins, as there.
        let Ok(Incoming::Response(response)) = read(r#"{"id":1,"id":5,"result":{}}"#) else {
            panic!("a duplicate key is still a response");
        };
        assert_eq!(response.id_u64(), Some(5));
    }

    #[test]
    fn validates_requests() {
        assert!(validate_request(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})).is_ok());
        assert!(validate_request(&json!([{"method": "ping"}])).is_err());
        assert!(validate_request(&json!({"id": 1})).is_err());
        assert!(validate_request(&json!({"method": "x", "params": 3})).is_err());
        assert!(validate_request(&json!({"method": "x", "id": 1.5})).is_err());
    }

    #[test]
    fn classifies_messages() {
        assert!(is_request(&request(1, "ping", json!({}))));
        assert!(!is_request(&notification(
            "notifications/initialized",
            json!({})
        )));
        assert!(is_response(&json!({"id": 1, "result": {}})));
        assert_eq!(
            error_code(&error_response(json!(1), METHOD_NOT_FOUND, "x")),
            Some(METHOD_NOT_FOUND)
        );
    }
}
