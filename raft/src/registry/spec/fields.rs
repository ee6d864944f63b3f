//! The one table of spec fields. Unknown-field detection, the fields each transport refuses,
//! redaction of secrets in listings and the field tables of `docs/specs.md` all derive from
//! [`FIELDS`]; adding a field means adding its row here and its parse code in `parse.rs`.

use super::guards::{MAX_CONCURRENT_CALLS, MAX_RATE};
use super::model::{MAX_IDLE_TIMEOUT_SECS, MAX_REPLICAS, MAX_REQUEST_TIMEOUT_MS};

/// One accepted field. Nested fields are dotted (`auth.key`); their parent object is
/// accepted because they exist.
#[derive(Debug, Clone, Copy, PartialEq)]
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
#[derive(Debug, Clone, Copy, PartialEq)]
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
    /// `true` or `false`.
    Boolean,
    /// A number with up to three decimals, in `min..=max`.
    Decimal {
        /// Smallest value.
        min: f64,
        /// Largest value.
        max: f64,
    },
    /// An object of tool name to `{per_second, burst}`.
    RateLimits,
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
    /// Only `docker`.
    Docker,
    /// `stdio` and `docker` (the program, its arguments and environment).
    StdioDocker,
    /// `http` and `docker` (`port`).
    HttpDocker,
}

impl Applies {
    /// Whether a field of this group applies to `transport` (one of `Stdio`, `Http`,
    /// `Docker`).
    pub fn covers(self, transport: Applies) -> bool {
        self == All
            || self == transport
            || matches!(
                (self, transport),
                (StdioDocker, Stdio | Docker) | (HttpDocker, Http | Docker)
            )
    }
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

use Applies::{All, Docker, Http, HttpDocker, Stdio, StdioDocker};
use Kind::{Boolean, Decimal, NodeIds, RateLimits, Text, TextList, TextMap, Url, Words};

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
    row("audit_arguments", Boolean, "false", All, "write the arguments of each tool call into the audit log (`--audit-log`); off by default, since arguments may hold anything a caller typed"),
    row("on_demand", Boolean, "false", All, "scale to zero: with `replicas: 0` the server stays registered without instances, the first call starts one (the call waits for it, up to the node's connection timeout) and an instance idle for `idle_timeout_secs` stops"),
    row("idle_timeout_secs", Kind::Integer { min: 1, max: MAX_IDLE_TIMEOUT_SECS as i64 }, "300 (with `on_demand`)", All, "how long an on-demand instance may go without a request before it stops"),
    row("pin", Words(&["strict", "new-tools-allowed", "off"]), "`new-tools-allowed`", All, "tool pinning: the first listing pins each tool's definition; a changed definition is withheld on every node until `mcpd tools approve`. `strict` also withholds tools added later; `off` pins nothing (see security.md, Guards)"),
    row("rate_limit.per_second", Kind::Integer { min: 1, max: MAX_RATE as i64 }, "no limit", All, "`tools/call`s per second for the whole cluster (each node admits its share); a refused call gets a `rate_limited` error with a retry-after"),
    row("rate_limit.burst", Kind::Integer { min: 1, max: MAX_RATE as i64 }, "`per_second`", All, "calls admitted at once after a quiet period, cluster-wide"),
    row("tool_rate_limits", RateLimits, "`{}`", All, "per-tool limits, checked besides `rate_limit`: `{\"search\": {\"per_second\": 2, \"burst\": 4}}`"),
    row("max_concurrent_calls", Kind::Integer { min: 1, max: MAX_CONCURRENT_CALLS as i64 }, "no limit", All, "`tools/call`s in flight across the cluster (each node admits its share); more are refused at once, never queued"),
    row("command", Text, "required (docker: the image's entrypoint)", StdioDocker, "program to run; spawned directly, never through a shell. For docker it replaces the image's entrypoint"),
    row("args", TextList, "`[]` (docker: the image's command)", StdioDocker, "arguments (a plain string is refused: nothing is split on spaces)"),
    secret(row("env", TextMap, "`{}`", StdioDocker, "environment variables set for the server, over any inherited (docker: over the image's)")),
    row("inherit_env", TextList, "`[]`", Stdio, "names of the node's environment variables the server inherits besides `PATH`, `HOME`, `USER`, `LOGNAME`, `LANG`, `LC_ALL`, `LC_CTYPE`, `TZ` and `TMPDIR`, which it always does; nothing else reaches it. Wildcards (`*`) and the node's own `MCPD_*` variables are refused"),
    row("cwd", Text, "the node's (docker: the image's)", StdioDocker, "working directory"),
    row("sandbox.uid", Kind::Integer { min: 0, max: 4_294_967_294 }, "the node's", Stdio, "user id the server runs as (`sandbox` is an object; the node needs root or CAP_SETUID to switch)"),
    row("sandbox.gid", Kind::Integer { min: 0, max: 4_294_967_294 }, "the node's", Stdio, "group id the server runs as, with no supplementary groups"),
    row("sandbox.max_memory_mb", Kind::Integer { min: 16, max: 1_048_576 }, "no limit", Stdio, "address-space limit in MiB (`RLIMIT_AS`)"),
    row("sandbox.max_open_files", Kind::Integer { min: 16, max: 1_048_576 }, "the node's", Stdio, "open file descriptors (`RLIMIT_NOFILE`)"),
    row("sandbox.max_processes", Kind::Integer { min: 1, max: 4_194_304 }, "the node's", Stdio, "processes of the server's user (`RLIMIT_NPROC`, counted per uid: pair it with `sandbox.uid`)"),
    row("sandbox.no_new_privs", Boolean, "true", Stdio, "`PR_SET_NO_NEW_PRIVS`: setuid programs and file capabilities grant the server nothing"),
    row("url", Url, "required (or `port`)", Http, "the MCP endpoint"),
    row("port", Kind::Integer { min: 1, max: 65535 }, "none", HttpDocker, "http: shorthand for `url: http://HOST:PORT/mcp`. docker: the container serves Streamable HTTP at `/mcp` on this port (HTTP mode) instead of speaking over stdin/stdout (stdio mode); the node publishes it on a loopback port of its own"),
    row("host", Text, "127.0.0.1", Http, "the HOST of the `port` shorthand"),
    secret(row("headers", TextMap, "`{}`", Http, "extra request headers")),
    row("auth.type", Words(&["api_key", "bearer", "basic"]), "required in `auth`", Http, "credentials sent with every request (`auth` is an object; none without it)"),
    secret(row("auth.key", Text, "required for api_key", Http, "the API key")),
    row("auth.header", Text, "`X-API-Key`", Http, "header carrying the API key"),
    secret(row("auth.token", Text, "required for bearer", Http, "sent as `Authorization: Bearer TOKEN`")),
    row("auth.username", Text, "required for basic", Http, "basic authentication user"),
    secret(row("auth.password", Text, "required for basic", Http, "basic authentication password")),
    row("image", Text, "the server name", Docker, "the image to run; `type: docker` is inferred from it"),
    row("pull", Words(&["never", "if-not-present"]), "`never`", Docker, "whether a node may pull a missing image; `never` runs only images already on the node"),
    row("user", Text, "the image's", Docker, "`USER[:GROUP]` the server runs as inside the container"),
    row("volumes", TextList, "`[]`", Docker, "`SOURCE:TARGET[:ro|:rw]` mounts (a host path or a named volume onto an absolute path); read-only unless `:rw`"),
    row("network", Text, "`none` (stdio mode), `bridge` (HTTP mode)", Docker, "the Docker network; stdio mode needs none, so a server reaches nothing unless given one. HTTP mode cannot use `none`"),
    row("memory_mb", Kind::Integer { min: 4, max: 1_048_576 }, "no limit", Docker, "memory limit in MiB (swap included)"),
    row("cpus", Decimal { min: 0.01, max: 1024.0 }, "no limit", Docker, "CPU limit in cores, e.g. `0.5`"),
    row("pids_limit", Kind::Integer { min: 1, max: 4_194_304 }, "no limit", Docker, "most processes and threads in the container"),
    row("read_only", Boolean, "false", Docker, "mount the container's root filesystem read-only (a tmpfs stays writable at `/tmp`)"),
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

/// The top-level fields no row of which applies to `transport`, in table order: what a
/// spec of that transport refuses.
pub fn refused_by(transport: Applies) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for f in FIELDS.iter().filter(|f| !f.applies.covers(transport)) {
        let (head, _) = split(f.name);
        let elsewhere = FIELDS
            .iter()
            .any(|g| split(g.name).0 == head && g.applies.covers(transport));
        if !elsewhere && !out.contains(&head) {
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
        Boolean => "boolean".to_owned(),
        Decimal { min, max } => format!("number {min}–{max}"),
        RateLimits => "map of tool name to `{per_second, burst}`".to_owned(),
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
        (StdioDocker, "stdio and docker"),
        (Stdio, "stdio"),
        (HttpDocker, "http and docker"),
        (Http, "http (Streamable HTTP)"),
        (Docker, "docker"),
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
        assert_eq!(top_level_only_for(Stdio), ["inherit_env", "sandbox"]);
        assert_eq!(top_level_only_for(Http), ["url", "host", "headers", "auth"]);
        assert_eq!(
            refused_by(Stdio),
            [
                "url",
                "port",
                "host",
                "headers",
                "auth",
                "image",
                "pull",
                "user",
                "volumes",
                "network",
                "memory_mb",
                "cpus",
                "pids_limit",
                "read_only"
            ]
        );
        assert_eq!(
            refused_by(Docker),
            ["inherit_env", "sandbox", "url", "host", "headers", "auth"]
        );
    }
}
