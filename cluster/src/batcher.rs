//! Turns concurrent registry writes into few Raft entries.
//!
//! Writes queue up while the previous entry is being committed; the next entry carries all
//! of them as one `Command::Batch` (up to [`MAX_BATCH`]), so a thousand clients deploying at
//! once cost a handful of fsyncs instead of a thousand. A lone write goes out as itself,
//! without waiting for company.

use mcp_raft::Command;
use tokio::sync::{mpsc, oneshot};

use crate::proposer::{Proposed, Proposer};

/// Most commands in one Raft entry.
pub const MAX_BATCH: usize = 512;
/// Writes waiting for the next entry before callers get backpressure.
const QUEUE: usize = 4096;

struct Pending {
    command: Command,
    reply: oneshot::Sender<Proposed>,
}

/// The batching front of a [`Proposer`].
#[derive(Clone)]
pub struct ProposalBatcher {
    queue: mpsc::Sender<Pending>,
    proposer: Proposer,
}

impl ProposalBatcher {
    /// Starts the batching loop; each entry goes to Raft through `proposer`.
    pub fn start(proposer: Proposer) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(proposer.clone(), rx));
        Self { queue, proposer }
    }

    /// The proposer behind the queue.
    pub fn proposer(&self) -> &Proposer {
        &self.proposer
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

async fn run(proposer: Proposer, mut rx: mpsc::Receiver<Pending>) {
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
        let fates = proposer.propose_all(commands).await;
        for (reply, fate) in replies.into_iter().zip(fates) {
            let _ = reply.send(fate);
        }
    }
}
