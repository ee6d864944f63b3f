//! The one table of spec fields. Unknown-field detection, the fields each transport refuses,
//! redaction of secrets in listings and the field tables of `docs/specs.md` all derive from
//! [`FIELDS`]; adding a field means adding its row here and its parse code in `parse.rs`.

use super::model::{MAX_REPLICAS, MAX_REQUEST_TIMEOUT_MS};

/// One accepted field. Nested fields are dotted (`auth.key`); their parent object is
/// accepted because they exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Field name, dotted for nested fields.
    pub name: &'static str,
    /// Other names accepted for it.
    pub aliases: &'static [&'static str],
    /// What values it takes.
    pub kind: Kind,
    /// What an absent field means, for people ("required", "1", ...).
    pub default: &'static str,
    /// The transports it applies to; any other transport refuses it.
    pub applies: Applies,
    /// Whether listings show `"<redacted>"` instead of its value (every value, for a map).
    pub secret: bool,
    /// One line for people.
    pub description: &'static str,
}

/// The values a field takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Any string.
    Text,
    /// One of these words.
    Words(&'static [&'static str]),
    /// An integer in `min..=max`.
    Integer {
        /// Smallest value.
        min: i64,
        /// Largest value.
        max: i64,
    },
    /// An array of strings.
    TextList,
    /// An object whose values are strings.
    TextMap,
    /// An array of node ids.
    NodeIds,
    /// An `http://` or `https://` URL.
    Url,
}

/// The transports a field applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    /// Every transport.
    All,
    /// Only `stdio`.
    Stdio,
    /// Only `http`.
    Http,
}

const fn row(
    name: &'static str,
    kind: Kind,
    default: &'static str,
    applies: Applies,
    description: &'static str,
) -> Field {
    Field {
        name,
        aliases: &[],
        kind,
        default,
        applies,
        secret: false,
        description,
    }
}

const fn secret(field: Field) -> Field {
    Field {
        secret: true,
        ..field
    }
}

use Applies::{All, Http, Stdio};
use Kind::{NodeIds, Text, TextList, TextMap, Url, Words};

/// Every field a spec may carry, in the order docs list them.
#[rustfmt::skip]
pub const FIELDS: &[Field] = &[
    row("name", Text, "required", All, "the server id: 1–63 chars of `a-z 0-9 . _ -`, starting and ending with a letter or digit"),
    Field {
        aliases: &["type", "server_type"],
        ..row("transport", Words(&["stdio", "http"]), "inferred", All, "`streamable-http` means `http`; inferred from `command` (stdio) or `url`/`port` (http) when absent. A `server_type` naming no transport (an older-API category such as `infrastructure`) becomes a tag")
    },
    row("replicas", Kind::Integer { min: 0, max: MAX_REPLICAS as i64 }, "1", All, "desired running instances"),
    row("priority", Kind::Integer { min: i32::MIN as i64, max: i32::MAX as i64 }, "0", All, "load balancing prefers higher priority instances"),
    row("tags", TextList, "`[]`", All, "free-form labels of 1–63 printable characters"),
    row("placement.allowed_nodes", NodeIds, "`[]` (any)", All, "run only on these nodes"),
    row("placement.node_tags", TextList, "`[]` (any)", All, "run only on nodes with all these tags"),
    row("request_timeout_ms", Kind::Integer { min: 1, max: MAX_REQUEST_TIMEOUT_MS as i64 }, "cluster default", All, "per-request timeout for this server"),
    row("description", Text, "none", All, "shown in listings"),
    row("id", Text, "none", All, "ignored: older specs carried the id here; `name` is the id"),
    row("command", Text, "required", Stdio, "program to run; spawned directly, never through a shell"),
    row("args", TextList, "`[]`", Stdio, "arguments (a plain string is refused: nothing is split on spaces)"),
    secret(row("env", TextMap, "`{}`", Stdio, "environment variables set for the server, over any inherited")),
    row("inherit_env", TextList, "`[]`", Stdio, "names of the node's environment variables the server inherits besides `PATH`, `HOME`, `USER`, `LOGNAME`, `LANG`, `LC_ALL`, `LC_CTYPE`, `TZ` and `TMPDIR`, which it always does; nothing else reaches it. Wildcards (`*`) and the node's own `MCPD_*` variables are refused"),
    row("cwd", Text, "the node's", Stdio, "working directory"),
    row("url", Url, "required (or `port`)", Http, "the MCP endpoint"),
    row("port", Kind::Integer { min: 1, max: 65535 }, "none", Http, "shorthand for `url: http://HOST:PORT/mcp`"),
    row("host", Text, "127.0.0.1", Http, "the HOST of the `port` shorthand"),
    secret(row("headers", TextMap, "`{}`", Http, "extra request headers")),
    row("auth.type", Words(&["api_key", "bearer", "basic"]), "required in `auth`", Http, "credentials sent with every request (`auth` is an object; none without it)"),
    secret(row("auth.key", Text, "required for api_key", Http, "the API key")),
    row("auth.header", Text, "`X-API-Key`", Http, "header carrying the API key"),
    secret(row("auth.token", Text, "required for bearer", Http, "sent as `Authorization: Bearer TOKEN`")),
    row("auth.username", Text, "required for basic", Http, "basic authentication user"),
    secret(row("auth.password", Text, "required for basic", Http, "basic authentication password")),
];

/// Splits `auth.key` into `("auth", Some("key"))`.
fn split(name: &str) -> (&str, Option<&str>) {
    match name.split_once('.') {
        Some((head, tail)) => (head, Some(tail)),
        None => (name, None),
    }
}

/// Whether a spec may carry `key`: at the top level (`parent` None), or inside the object
/// field `parent`.
pub fn is_known(parent: Option<&str>, key: &str) -> bool {
    FIELDS.iter().any(|f| {
        let (head, tail) = split(f.name);
        match parent {
            None => head == key || f.aliases.contains(&key),
            Some(parent) => head == parent && tail == Some(key),
        }
    })
}

/// The row named `name` (not an alias).
fn row_named(name: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.name == name)
}

/// A field's name followed by its aliases, in the order a spec is read.
pub fn names(name: &str) -> impl Iterator<Item = &'static str> {
    row_named(name)
        .into_iter()
        .flat_map(|f| std::iter::once(f.name).chain(f.aliases.iter().copied()))
}

/// The `(min, max)` of an integer field.
pub fn integer_bounds(name: &str) -> Option<(i64, i64)> {
    match row_named(name)?.kind {
        Kind::Integer { min, max } => Some((min, max)),
        _ => None,
    }
}

/// The top-level fields of rows that apply only to `applies`, in table order.
pub fn top_level_only_for(applies: Applies) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for f in FIELDS.iter().filter(|f| f.applies == applies) {
        let (head, _) = split(f.name);
        if !out.contains(&head) {
            out.push(head);
        }
    }
    out
}

/// The secret fields, as paths into the flat form (`["auth", "key"]`).
pub fn secret_paths() -> impl Iterator<Item = Vec<&'static str>> {
    FIELDS
        .iter()
        .filter(|f| f.secret)
        .map(|f| f.name.split('.').collect())
}

fn kind_text(kind: Kind) -> String {
    match kind {
        Text => "string".to_owned(),
        Words(words) => words
            .iter()
            .map(|w| format!("`{w}`"))
            .collect::<Vec<_>>()
            .join(" \\| "),
        Kind::Integer { min, max } if (min, max) == (i32::MIN.into(), i32::MAX.into()) => {
            "32-bit integer".to_owned()
        }
        Kind::Integer { min, max } => format!("integer {min}–{max}"),
        TextList => "list of strings".to_owned(),
        TextMap => "map of strings".to_owned(),
        NodeIds => "list of node ids".to_owned(),
        Url => "`http://` or `https://` URL".to_owned(),
    }
}

fn meaning(f: &Field) -> String {
    let mut text = f.description.to_owned();
    if !f.aliases.is_empty() {
        let aliases: Vec<String> = f.aliases.iter().map(|a| format!("`{a}`")).collect();
        text = format!("aliases: {}. {text}", aliases.join(", "));
    }
    if f.secret {
        text.push_str(" (secret: listings show `<redacted>`)");
    }
    text
}

/// The field tables of `docs/specs.md`, one per [`Applies`] group, as markdown.
pub fn markdown() -> String {
    let groups = [
        (All, "Every transport"),
        (Stdio, "stdio"),
        (Http, "http (Streamable HTTP)"),
    ];
    let mut out = String::new();
    for (applies, title) in groups {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!(
            "### {title}\n\n| field | type | default | meaning |\n|---|---|---|---|\n"
        ));
        for f in FIELDS.iter().filter(|f| f.applies == applies) {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                f.name,
                kind_text(f.kind),
                f.default,
                meaning(f)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_nested_at_most_once() {
        let mut seen = Vec::new();
        for f in FIELDS {
            for name in std::iter::once(&f.name).chain(f.aliases) {
                assert!(!seen.contains(name), "{name} listed twice");
                seen.push(name);
            }
            assert!(f.name.matches('.').count() <= 1, "{}", f.name);
        }
    }

    #[test]
    fn length_limits_in_descriptions_follow_the_code() {
        let limit = format!("1–{}", super::super::model::MAX_NAME_LEN);
        for f in FIELDS
            .iter()
            .filter(|f| f.name == "name" || f.name == "tags")
        {
            assert!(f.description.contains(&limit), "{}", f.description);
        }
    }

    #[test]
    fn inherit_env_names_what_every_server_inherits() {
        let row = row_named("inherit_env").unwrap();
        for name in super::super::model::INHERITED_ENV {
            assert!(
                row.description.contains(&format!("`{name}`")),
                "{name} missing from {}",
                row.description
            );
        }
    }

    #[test]
    fn known_fields_follow_the_table() {
        for key in ["name", "type", "server_type", "auth", "placement", "id"] {
            assert!(is_known(None, key), "{key}");
        }
        for key in ["comand", "key", "auth.key", "allowed_nodes"] {
            assert!(!is_known(None, key), "{key}");
        }
        assert!(is_known(Some("auth"), "password"));
        assert_eq!(
            names("transport").collect::<Vec<_>>(),
            ["transport", "type", "server_type"]
        );
        assert_eq!(integer_bounds("port"), Some((1, 65535)));
        assert_eq!(integer_bounds("name"), None);
        assert!(!is_known(Some("placement"), "password"));
        assert_eq!(
            top_level_only_for(Stdio),
            ["command", "args", "env", "inherit_env", "cwd"]
        );
        assert_eq!(
            top_level_only_for(Http),
            ["url", "port", "host", "headers", "auth"]
        );
    }
}
