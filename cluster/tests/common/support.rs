//! What the crate's unit tests (`crate::testing` includes this file) and its integration
//! tests share: patience for conditions, and a fake MCP server.

use std::future::Future;
use std::time::Duration;

/// How long a test waits for a condition before it fails: generous, since the machine may
/// be busy; a test that passes never waits this long.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Polls the async `condition` until it holds; panics naming `what` after [`PATIENCE`].
pub async fn wait_until<F: Future<Output = bool>>(what: &str, mut condition: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {PATIENCE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A stateless-era MCP server in `sh` (no test needs a built binary): answers every request
/// (by the first `"id":` of the line, the top-level one in what a session sends) with a
/// `server/discover` result, and ignores notifications. Enough for a session to connect,
/// pass health probes and answer calls.
pub const SERVE: &str = r#"while IFS= read -r line; do id=${line#*\"id\":}; id=${id%%[!0-9]*}; [ -n "$id" ] && printf '{"jsonrpc":"2.0","id":%s,"result":{"supportedVersions":["2026-07-28"]}}\n' "$id"; done"#;
