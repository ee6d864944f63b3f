//! Just enough JSON-RPC 2.0 for a relay: messages stay `serde_json::Value`s so that any
//! method, any params and any result pass through untouched; these helpers read and build
//! the few parts the relay itself needs.

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

#[cfg(test)]
mod tests {
    use super::*;

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
