//! How the gateway makes the names and URIs of many servers unique, and back.
//!
//! - Tools and prompts: `SERVER__NAME` (the server's registry name, two underscores, the
//!   server's own name). Tool names longer than 128 characters are shortened with a hash
//!   (see [`super::catalog::exposed_name`]); prompt names are never shortened, so
//!   [`split_prefixed`] reverses every one.
//! - Resources and resource templates: `mcpd://SERVER/ORIGINAL`, the server's URI (or
//!   URI template) appended verbatim after the server name. A template stays a template
//!   (its `{...}` expressions are untouched), and what a client expands from it still
//!   starts with `mcpd://SERVER/`, so [`unwrap_uri`] finds the server and the server's
//!   own URI. Server names hold only `[a-z0-9._-]`, never `/`, so the split is exact.

use serde_json::Value;

/// Separator between the server and the name in an exposed tool or prompt name.
pub const SEPARATOR: &str = "__";
/// The scheme and authority prefix of an exposed resource URI.
pub const URI_PREFIX: &str = "mcpd://";

/// `SERVER__NAME`.
pub fn prefixed(server: &str, name: &str) -> String {
    format!("{server}{SEPARATOR}{name}")
}

/// The server and the server's own name of `exposed`, among the registered `servers`
/// (sorted): the first server, in name order, whose name followed by `__` starts it, and
/// whose remainder is not empty. Server names may themselves hold `__`; taking the first
/// in order is the same rule the tool list applies when two exposed names collide.
pub fn split_prefixed<'a>(exposed: &'a str, servers: &[String]) -> Option<(String, &'a str)> {
    servers.iter().find_map(|server| {
        let rest = exposed
            .strip_prefix(server.as_str())?
            .strip_prefix(SEPARATOR)?;
        (!rest.is_empty()).then(|| (server.clone(), rest))
    })
}

/// `mcpd://SERVER/URI`.
pub fn wrap_uri(server: &str, uri: &str) -> String {
    format!("{URI_PREFIX}{server}/{uri}")
}

/// The server and the server's own URI of an exposed URI; `None` if it is not one.
pub fn unwrap_uri(exposed: &str) -> Option<(&str, &str)> {
    let (server, uri) = exposed.strip_prefix(URI_PREFIX)?.split_once('/')?;
    (!server.is_empty() && !uri.is_empty()).then_some((server, uri))
}

/// Rewrites, in place, the URIs of resource contents a server returned (`resources/read`
/// contents, embedded resources and resource links in tool results and prompt messages)
/// into exposed ones, so that a client can read them back through the gateway.
pub fn wrap_content_uris(server: &str, value: &mut Value) {
    match value {
        Value::Object(object) => {
            let is_resource = object.contains_key("mimeType")
                || object.contains_key("text") && object.contains_key("uri")
                || object.contains_key("blob")
                || object.get("type").and_then(Value::as_str) == Some("resource_link");
            if is_resource {
                if let Some(Value::String(uri)) = object.get_mut("uri") {
                    if unwrap_uri(uri).is_none() {
                        *uri = wrap_uri(server, uri);
                    }
                }
            }
            for (key, child) in object.iter_mut() {
                if key != "_meta" {
                    wrap_content_uris(server, child);
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| wrap_content_uris(server, item)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prefixed_names_split_back() {
        let servers = vec!["a".to_owned(), "a__b".to_owned(), "time".to_owned()];
        assert_eq!(
            split_prefixed(&prefixed("time", "greet"), &servers),
            Some(("time".to_owned(), "greet"))
        );
        // The first server in order wins, as in the tool list.
        assert_eq!(
            split_prefixed("a__b__c", &servers),
            Some(("a".to_owned(), "b__c"))
        );
        assert_eq!(split_prefixed("time__", &servers), None);
        assert_eq!(split_prefixed("other__x", &servers), None);
    }

    #[test]
    fn uris_wrap_and_unwrap() {
        for uri in ["file:///etc/hosts", "test://readme", "x:y/z?q=1#f"] {
            let exposed = wrap_uri("docs.v2", uri);
            assert_eq!(unwrap_uri(&exposed), Some(("docs.v2", uri)));
        }
        // A template expanded by a client still reverses.
        let template = wrap_uri("demo", "test://echo/{text}");
        assert_eq!(template, "mcpd://demo/test://echo/{text}");
        let expanded = template.replace("{text}", "hi");
        assert_eq!(unwrap_uri(&expanded), Some(("demo", "test://echo/hi")));
        assert_eq!(unwrap_uri("file:///x"), None);
        assert_eq!(unwrap_uri("mcpd://demo"), None);
        assert_eq!(unwrap_uri("mcpd:///x"), None);
    }

    #[test]
    fn content_uris_are_wrapped() {
        let mut read = json!({"contents": [{"uri": "test://readme", "text": "hi"}]});
        wrap_content_uris("demo", &mut read);
        assert_eq!(read["contents"][0]["uri"], "mcpd://demo/test://readme");
        let mut prompt = json!({"messages": [{"role": "user", "content": {"type": "resource",
            "resource": {"uri": "test://a", "mimeType": "text/plain", "text": "x"}}}]});
        wrap_content_uris("demo", &mut prompt);
        assert_eq!(
            prompt["messages"][0]["content"]["resource"]["uri"],
            "mcpd://demo/test://a"
        );
        let mut link =
            json!({"content": [{"type": "resource_link", "uri": "test://b", "name": "b"}]});
        wrap_content_uris("demo", &mut link);
        assert_eq!(link["content"][0]["uri"], "mcpd://demo/test://b");
        // Anything else that happens to have a "uri" is left alone.
        let mut other = json!({"ref": {"type": "ref/resource", "uri": "test://c"}});
        wrap_content_uris("demo", &mut other);
        assert_eq!(other["ref"]["uri"], "test://c");
    }
}
