//! Resources, resource templates, prompts and completions, served with `--content`: three
//! documents `test://doc/1..3` listed two per page, the template `test://echo/{text}`,
//! the prompt `greet` (argument `name`), and completions for both.

use serde_json::{json, Value};

/// Documents per `resources/list` page, so that clients must follow `nextCursor`.
const PAGE: usize = 2;
const DOCS: usize = 3;
const NAMES: [&str; 3] = ["alice", "bob", "carol"];
const WORDS: [&str; 3] = ["hello", "help", "world"];

/// The capabilities announced with `--content`.
pub fn capabilities() -> Value {
    json!({"tools": {}, "resources": {}, "prompts": {}, "completions": {}})
}

/// The result of `method`, `Ok(None)` if it is not a content method, or an error
/// `(code, message)`.
pub fn handle(method: &str, params: &Value, name: &str) -> Result<Option<Value>, (i64, String)> {
    let result = match method {
        "resources/list" => {
            let start: usize = params
                .get("cursor")
                .and_then(Value::as_str)
                .map(|c| c.parse().map_err(|_| (-32602, format!("bad cursor {c:?}"))))
                .transpose()?
                .unwrap_or(0);
            let end = (start + PAGE).min(DOCS);
            let resources: Vec<Value> = (start + 1..=end)
                .map(|n| json!({"uri": format!("test://doc/{n}"), "name": format!("doc-{n}"), "mimeType": "text/plain"}))
                .collect();
            let mut page = json!({"resources": resources});
            if end < DOCS {
                page["nextCursor"] = end.to_string().into();
            }
            page
        }
        "resources/templates/list" => json!({"resourceTemplates": [
            {"uriTemplate": "test://echo/{text}", "name": "echo", "mimeType": "text/plain"}
        ]}),
        "resources/read" => {
            let uri = params.get("uri").and_then(Value::as_str).unwrap_or("");
            let text = if let Some(n) = uri.strip_prefix("test://doc/") {
                match n.parse::<usize>() {
                    Ok(n) if (1..=DOCS).contains(&n) => format!("document {n} of {name}"),
                    _ => return Err((-32002, format!("resource not found: {uri}"))),
                }
            } else if let Some(text) = uri.strip_prefix("test://echo/") {
                text.to_owned()
            } else {
                return Err((-32002, format!("resource not found: {uri}")));
            };
            json!({"contents": [{"uri": uri, "mimeType": "text/plain", "text": text}]})
        }
        "prompts/list" => json!({"prompts": [{
            "name": "greet", "description": "Greets someone",
            "arguments": [{"name": "name", "required": true}]
        }]}),
        "prompts/get" => {
            if params.get("name").and_then(Value::as_str) != Some("greet") {
                return Err((-32602, "unknown prompt".to_owned()));
            }
            let who = params
                .pointer("/arguments/name")
                .and_then(Value::as_str)
                .ok_or((-32602, "argument name is required".to_owned()))?;
            json!({"description": "A greeting", "messages": [
                {"role": "user", "content": {"type": "text", "text": format!("Hello, {who}!")}},
                {"role": "user", "content": {"type": "resource", "resource":
                    {"uri": "test://doc/1", "mimeType": "text/plain", "text": format!("document 1 of {name}")}}}
            ]})
        }
        "completion/complete" => {
            let prefix = params
                .pointer("/argument/value")
                .and_then(Value::as_str)
                .unwrap_or("");
            let candidates: &[&str] = match params.pointer("/ref/type").and_then(Value::as_str) {
                Some("ref/prompt") => &NAMES,
                Some("ref/resource") => &WORDS,
                _ => &[],
            };
            let values: Vec<&str> = candidates
                .iter()
                .copied()
                .filter(|c| c.starts_with(prefix))
                .collect();
            json!({"completion": {"values": values, "total": values.len(), "hasMore": false}})
        }
        _ => return Ok(None),
    };
    Ok(Some(result))
}
