//! Hot reload of a running node's settings, on SIGHUP and when its `--config` file
//! changes (polled once a second: no watcher dependency, and it works on every file
//! system). The settings are assembled again exactly as at start (flags, env, file);
//! the data-plane ones and `log_level` take effect at once without dropping a session
//! (see `mcp_cluster::dataplane::reload`), and every other setting that differs from the
//! one the node runs with is named in a warning: it needs a restart.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mcp_cluster::dataplane::DataPlane;
use mcp_cluster::NodeConfig;

use crate::cli::NodeArgs;
use crate::{logging, settings};

/// How often the config file is looked at.
const POLL: Duration = Duration::from_secs(1);

/// Applies the file's `log_level` (at start, and on each reload).
pub fn apply_log_level(args: &NodeArgs) {
    match settings::file_log_level(args).map_err(|e| e.to_string()) {
        Ok(level) => {
            if let Err(e) = logging::set_level(level.as_deref()) {
                tracing::warn!(error = %e, "log_level not applied");
            }
        }
        Err(e) => tracing::warn!(error = %e, "log_level not read"),
    }
}

/// Reloads on SIGHUP or a change of the config file, until the task is dropped.
pub async fn watch(args: NodeArgs, running: NodeConfig, plane: Arc<DataPlane>) {
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; only file changes reload");
            None
        }
    };
    let path = args.config.clone();
    let mut seen = path.as_deref().and_then(stamp);
    let mut tick = tokio::time::interval(POLL);
    loop {
        let why = tokio::select! {
            Some(()) = async {
                match hangup.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            } => "SIGHUP",
            _ = tick.tick() => {
                let now = path.as_deref().and_then(stamp);
                if now == seen {
                    continue;
                }
                seen = now;
                "config file changed"
            }
        };
        reload(&args, &running, &plane, why);
    }
}

/// What identifies a version of the file: modification time and length.
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

fn reload(args: &NodeArgs, running: &NodeConfig, plane: &DataPlane, why: &str) {
    let new = match settings::node_config(args.clone()) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!(reason = why, error = %e, "settings not reloaded: the running ones stay");
            return;
        }
    };
    let changed = plane.reload(new.dataplane.clone());
    apply_log_level(args);
    tracing::info!(reason = why, changed = ?changed, "reloaded data-plane settings and log_level");
    let restart = needs_restart(running, &new);
    if !restart.is_empty() {
        tracing::warn!(settings = ?restart, "these settings changed but need a restart of the node to take effect");
    }
}

/// The top-level settings other than the data plane's that differ between the two
/// configurations (names only: values may be secrets).
fn needs_restart(running: &NodeConfig, new: &NodeConfig) -> Vec<String> {
    let strip = |c: &NodeConfig| {
        let mut c = c.clone();
        c.dataplane = Default::default();
        fields(&format!("{c:#?}"))
    };
    let (old, new) = (strip(running), strip(new));
    new.iter()
        .filter(|(name, value)| old.iter().find(|(n, _)| n == name).map(|(_, v)| v) != Some(value))
        .map(|(name, _)| file_keys(name))
        .collect()
}

/// The config-file keys (and flags, with dashes) behind a field of the node's
/// configuration, for the warning; a field not listed is named as it is.
fn file_keys(field: &str) -> String {
    let keys = match field {
        "listen_addr" => "grpc_addr",
        "raft" => "leader_election_timeout_ms/heartbeat_interval_ms/snapshot_logs/logs_to_keep",
        "write_timeout" => "write_timeout_ms",
        "node_grace" => "node_grace_ms",
        "tags" => "node_tags",
        "gateway" => "mcp_addr/mcp_token/mcp_allowed_origins/mcp_session_lifetime_secs",
        other => other,
    };
    keys.to_owned()
}

/// The top-level fields of a pretty-printed struct: (name, its text).
fn fields(pretty: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in pretty.lines().skip(1) {
        let top = line.strip_prefix("    ").filter(|l| !l.starts_with(' '));
        match top.and_then(|l| l.split_once(": ")) {
            Some((name, rest)) if name.chars().all(|c| c.is_ascii_lowercase() || c == '_') => {
                out.push((name.to_owned(), rest.to_owned()))
            }
            _ => {
                if let Some(last) = out.last_mut() {
                    last.1.push_str(line);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_settings_are_named_and_the_data_plane_is_not() {
        let running = NodeConfig::new("/tmp/x");
        let mut new = running.clone();
        new.dataplane.request_timeout = Duration::from_millis(1);
        assert!(needs_restart(&running, &new).is_empty());
        new.node_grace = Duration::from_secs(99);
        new.admin_token = Some("t0ps3cret".into());
        let names = needs_restart(&running, &new);
        assert_eq!(names, ["admin_token", "node_grace_ms"]);
        assert!(!format!("{names:?}").contains("t0ps3cret"));
    }
}
