//! `mcpd`: runs a cluster node (`mcpd node`, `mcpd dev`) or talks to one (every other
//! subcommand). See `mcpd --help`.

mod apply;
mod backup;
mod certs;
mod cli;
mod client;
mod commands;
mod dev;
mod guards;
mod logging;
mod node;
mod output;
mod reload;
mod settings;
mod tokens;
mod views;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

/// mimalloc rather than glibc malloc: with several runtime threads allocating per request,
/// glibc's arena locks cost futex sleeps and wake-ups (a fifth more context switches and a
/// quarter fewer calls/s at concurrency 32 in `benches/dataplane.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let server_mode = matches!(cli.command, Command::Node(_) | Command::Dev(_));
    if let Err(e) = logging::init(cli.log_format, server_mode) {
        eprintln!("error: cannot set up logging: {e}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Node(args) => node::run(*args).await,
        Command::Dev(args) => dev::run(args).await,
        Command::Certs {
            action: cli::CertsAction::Init(args),
        } => certs::run(args),
        Command::Snapshot { action } => backup::snapshot(&cli.client, action).await,
        Command::Recover(args) => backup::recover(&cli.client, args).await,
        command => commands::run(&cli.client, command).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
