//! Turns concurrent registry writes into few Raft entries.
//!
//! Writes queue up while the previous entry is being committed; the next entry carries all
//! of them as one `Command::Batch` (up to [`MAX_BATCH`]), so a thousand clients deploying at
//! once cost a handful of fsyncs instead of a thousand. A lone write goes out as itself,
//! without waiting for company.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_raft::types::Raft;
use mcp_raft::{Command, CommandResult};
use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;

/// Most commands in one Raft entry.
pub const MAX_BATCH: usize = 512;
/// Writes waiting for the next entry before callers get backpressure.
const QUEUE: usize = 4096;

/// A command's fate once its entry was handled.
#[derive(Debug, Clone)]
pub enum Proposed {
    /// Committed and applied at this log index, with this result.
    Applied {
        /// The command's own result.
        result: CommandResult,
        /// Log index of the entry that carried it.
        index: u64,
    },
    /// This node is not the leader; the leader's address, if one is known.
    NotLeader(Option<String>),
    /// Not committed within the write timeout; it may still be applied later.
    TimedOut,
    /// Raft refused or failed.
    Failed(String),
}

struct Pending {
    command: Command,
    reply: oneshot::Sender<Proposed>,
}

/// The batching front of `raft.client_write`.
#[derive(Clone)]
pub struct ProposalBatcher {
    queue: mpsc::Sender<Pending>,
}

impl ProposalBatcher {
    /// Starts the batching loop for `raft`.
    pub fn start(raft: Raft, write_timeout: Duration, metrics: Arc<Metrics>) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(raft, rx, write_timeout, metrics));
        Self { queue }
    }

    /// Proposes `command` and waits for its entry to be handled.
    pub async fn propose(&self, command: Command) -> Proposed {
        let (reply, rx) = oneshot::channel();
        if self.queue.send(Pending { command, reply }).await.is_err() {
            return Proposed::Failed("the proposal loop has stopped".into());
        }
        rx.await
            .unwrap_or_else(|_| Proposed::Failed("the proposal loop has stopped".into()))
    }
}

async fn run(
    raft: Raft,
    mut rx: mpsc::Receiver<Pending>,
    write_timeout: Duration,
    metrics: Arc<Metrics>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (commands, replies): (Vec<Command>, Vec<oneshot::Sender<Proposed>>) =
            batch.into_iter().map(|p| (p.command, p.reply)).unzip();
        let single = commands.len() == 1;
        let entry = if single {
            commands.into_iter().next().unwrap_or(Command::Batch {
                commands: Vec::new(),
            })
        } else {
            Command::Batch { commands }
        };
        let op = entry.op();
        let started = Instant::now();
        let written = tokio::time::timeout(write_timeout, raft.client_write(entry)).await;
        let count = |outcome: &str, n: usize| {
            metrics
                .proposals
                .with_label_values(&[outcome])
                .inc_by(n as u64);
        };
        let n = replies.len();
        let fates: Vec<Proposed> = match written {
            Err(_) => {
                count("timeout", n);
                vec![Proposed::TimedOut; n]
            }
            Ok(Ok(response)) => {
                metrics
                    .commit_duration
                    .with_label_values(&[op])
                    .observe(started.elapsed().as_secs_f64());
                let index = response.log_id.index;
                let results: Vec<CommandResult> = if single {
                    vec![response.data]
                } else {
                    match response.data {
                        Ok(outcome) => outcome.batch,
                        Err(e) => vec![Err(e); n],
                    }
                };
                if n > 1 {
                    tracing::debug!(commands = n, index, "committed a batch");
                }
                results
                    .into_iter()
                    .map(|result| {
                        count(
                            if result.is_ok() {
                                "committed"
                            } else {
                                "rejected"
                            },
                            1,
                        );
                        Proposed::Applied { result, index }
                    })
                    .collect()
            }
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                count("forwarded", n);
                vec![Proposed::NotLeader(f.leader_node.map(|node| node.addr)); n]
            }
            Ok(Err(e)) => {
                count("failed", n);
                vec![Proposed::Failed(e.to_string()); n]
            }
        };
        for (reply, fate) in replies.into_iter().zip(fates) {
            let _ = reply.send(fate);
        }
    }
}
