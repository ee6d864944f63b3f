//! tracing setup: human lines by default, JSON with `--log-format json`.
//!
//! Without `RUST_LOG`, nodes log our crates at info and openraft at warn, and drop the
//! openraft errors and warnings that a normal start produces: reports of peers it cannot
//! reach (at ERROR, on every retry, also while the founding nodes are still starting;
//! `mcp_raft::network` logs reachability changes instead), and its refusal to initialize a
//! founding node that a peer's membership reached first (which `bootstrap` accepts).
//! `RUST_LOG`, when set, decides alone.

use std::fmt::Write as _;
use std::sync::OnceLock;

use tracing::field::{Field, Visit};
use tracing::{Event, Metadata};
use tracing_subscriber::filter::FilterExt;
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

use crate::cli::LogFormat;

/// The filter of nodes when `RUST_LOG` is unset: openraft's info lines are state dumps.
const NODE_FILTER: &str = "info,openraft=warn";

/// Swaps the level filter of a running node (see [`set_level`]).
static LEVEL: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Installs the global subscriber. Nodes log at info by default; client commands only warn.
pub fn init(format: LogFormat, server_mode: bool) -> Result<(), String> {
    let (filter, quiet) = match EnvFilter::try_from_default_env() {
        Ok(filter) => (filter, None),
        Err(_) if server_mode => (EnvFilter::new(NODE_FILTER), Some(ExpectedRaftNoise)),
        Err(_) => (EnvFilter::new("warn"), None),
    };
    let (filter, handle) = reload::Layer::new(filter);
    let _ = LEVEL.set(handle);
    let filter = filter.and(quiet);
    // Colours only on a terminal: a log file or a collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let layer = match format {
        LogFormat::Human => layer.with_filter(filter).boxed(),
        LogFormat::Json => layer.json().with_filter(filter).boxed(),
    };
    tracing_subscriber::registry()
        .with(layer)
        .try_init()
        .map_err(|e| e.to_string())
}

/// Sets the level filter of a node (the `log_level` of its config file: `debug`, or
/// directives such as `info,mcp_cluster=debug`); `None` goes back to the default. While
/// `RUST_LOG` is set, it decides alone and this changes nothing (returns false).
pub fn set_level(level: Option<&str>) -> Result<bool, String> {
    if std::env::var_os("RUST_LOG").is_some() {
        return Ok(false);
    }
    let filter = EnvFilter::try_new(level.unwrap_or(NODE_FILTER))
        .map_err(|e| format!("invalid log_level {level:?}: {e}"))?;
    match LEVEL.get() {
        Some(handle) => handle.reload(filter).map_err(|e| e.to_string())?,
        None => return Ok(false),
    }
    Ok(true)
}

/// Drops openraft events that say a peer does not answer, that a vote reply came late, or
/// that a founding node was initialized by its peers first: expected while nodes start or
/// one is down, and the first two repeat on every retry.
struct ExpectedRaftNoise;

impl<S> Filter<S> for ExpectedRaftNoise {
    fn enabled(&self, _: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        true
    }

    fn event_enabled(&self, event: &Event<'_>, _: &Context<'_, S>) -> bool {
        if !event.metadata().target().starts_with("openraft") {
            return true;
        }
        let mut fields = FieldText::default();
        event.record(&mut fields);
        !is_expected_noise(&fields.0)
    }
}

/// Whether the text of an openraft event is one of the expected conditions above.
fn is_expected_noise(text: &str) -> bool {
    // openraft's `Unreachable` displays as "Unreachable node: ..."; its replication backs
    // off only after one.
    text.contains("Unreachable node")
        || text.contains("backoff mode")
        || text.contains("A message will be ignored because vote changed")
        || text.contains("Can not initialize")
}

/// Every field of an event as `name=value` text.
#[derive(Default)]
struct FieldText(String);

impl Visit for FieldText {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_expected_conditions_are_noise() {
        assert!(is_expected_noise(
            "message=while requesting vote error=Unreachable node: peer unreachable "
        ));
        assert!(is_expected_noise(
            "message=A message will be ignored because vote changed: msg sent by vote: T1 "
        ));
        assert!(is_expected_noise(
            "message=Can not initialize last_log_id=T1-N3-1 vote=T1-N3:committed "
        ));
        assert!(!is_expected_noise(
            "message=RPCError err=seen a higher vote: T2-N3 "
        ));
        assert!(!is_expected_noise("message=storage error: io error "));
    }
}
