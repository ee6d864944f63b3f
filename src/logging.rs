//! tracing setup: human lines by default, JSON with `--log-format json`.
//!
//! Without `RUST_LOG`, nodes log our crates at info and openraft at warn, and drop
//! openraft's reports of peers it cannot reach: it logs those at ERROR on every retry, also
//! while the founding nodes are still starting. `mcp_raft::network` logs reachability
//! changes instead. `RUST_LOG`, when set, decides alone.

use std::fmt::Write as _;

use tracing::field::{Field, Visit};
use tracing::{Event, Metadata};
use tracing_subscriber::filter::FilterExt;
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::cli::LogFormat;

/// The filter of nodes when `RUST_LOG` is unset: openraft's info lines are state dumps.
const NODE_FILTER: &str = "info,openraft=warn";

/// Installs the global subscriber. Nodes log at info by default; client commands only warn.
pub fn init(format: LogFormat, server_mode: bool) -> Result<(), String> {
    let (filter, quiet) = match EnvFilter::try_from_default_env() {
        Ok(filter) => (filter, None),
        Err(_) if server_mode => (EnvFilter::new(NODE_FILTER), Some(QuietPeerNoise)),
        Err(_) => (EnvFilter::new("warn"), None),
    };
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

/// Drops openraft events about a peer that does not answer, and its notes on stale vote
/// replies: expected while nodes start or one is down, and repeated on every retry.
struct QuietPeerNoise;

impl<S> Filter<S> for QuietPeerNoise {
    fn enabled(&self, _: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        true
    }

    fn event_enabled(&self, event: &Event<'_>, _: &Context<'_, S>) -> bool {
        if !event.metadata().target().starts_with("openraft") {
            return true;
        }
        let mut fields = FieldText::default();
        event.record(&mut fields);
        !is_peer_noise(&fields.0)
    }
}

/// The text of an openraft event that only says a peer is unreachable (or a vote reply came
/// after the vote moved on).
fn is_peer_noise(text: &str) -> bool {
    // openraft's `Unreachable` displays as "Unreachable node: ..."; its replication backs
    // off only after one.
    text.contains("Unreachable node")
        || text.contains("backoff mode")
        || text.contains("A message will be ignored because vote changed")
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
    fn only_unreachable_peer_reports_are_noise() {
        assert!(is_peer_noise(
            "message=while requesting vote error=Unreachable node: peer unreachable "
        ));
        assert!(is_peer_noise(
            "message=A message will be ignored because vote changed: msg sent by vote: T1 "
        ));
        assert!(!is_peer_noise(
            "message=RPCError err=seen a higher vote: T2-N3 "
        ));
        assert!(!is_peer_noise("message=storage error: io error "));
    }
}
