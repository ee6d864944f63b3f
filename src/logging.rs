//! tracing setup: human lines by default, JSON with `--log-format json`; `RUST_LOG` filters.

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Installs the global subscriber. Nodes log at info by default; client commands only warn.
pub fn init(format: LogFormat, server_mode: bool) -> Result<(), String> {
    let default = if server_mode { "info" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Colours only on a terminal: a log file or a collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    }
    .map_err(|e| e.to_string())
}
