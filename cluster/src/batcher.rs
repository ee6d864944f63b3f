//! Turns concurrent registry writes into few Raft entries.
//!
//! Writes queue up while the previous entry is being committed; the next entry carries all
//! of them as one `Command::Batch` (up to [`MAX_BATCH`]), so a thousand clients deploying at
//! once cost a handful of fsyncs instead of a thousand. A lone write goes out as itself,
//! without waiting for company.

use std::future::Future;

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

/// Where the batching loop sends each entry: the [`Proposer`] (a fake in the unit tests,
/// which need no Raft).
trait ProposeEntries: Send + Sync + 'static {
    /// Proposes `commands` as one entry and returns each command's fate, in order.
    fn propose_all(&self, commands: Vec<Command>) -> impl Future<Output = Vec<Proposed>> + Send;
}

impl ProposeEntries for Proposer {
    fn propose_all(&self, commands: Vec<Command>) -> impl Future<Output = Vec<Proposed>> + Send {
        Proposer::propose_all(self, commands)
    }
}

/// The queue in front of the batching loop.
#[derive(Clone)]
struct Queue(mpsc::Sender<Pending>);

impl Queue {
    fn start(entries: impl ProposeEntries) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(entries, rx));
        Self(queue)
    }

    async fn propose(&self, command: Command) -> Proposed {
        let (reply, rx) = oneshot::channel();
        if self.0.send(Pending { command, reply }).await.is_err() {
            return Proposed::Failed("the proposal loop has stopped".into());
        }
        rx.await
            .unwrap_or_else(|_| Proposed::Failed("the proposal loop has stopped".into()))
    }
}

/// The batching front of a [`Proposer`].
#[derive(Clone)]
pub struct ProposalBatcher {
    queue: Queue,
    proposer: Proposer,
}

impl ProposalBatcher {
    /// Starts the batching loop; each entry goes to Raft through `proposer`.
    pub fn start(proposer: Proposer) -> Self {
        Self {
            queue: Queue::start(proposer.clone()),
            proposer,
        }
    }

    /// The proposer behind the queue.
    pub fn proposer(&self) -> &Proposer {
        &self.proposer
    }

    /// Proposes `command` and waits for its entry to be handled.
    pub async fn propose(&self, command: Command) -> Proposed {
        self.queue.propose(command).await
    }
}

async fn run(entries: impl ProposeEntries, mut rx: mpsc::Receiver<Pending>) {
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
        let fates = entries.propose_all(commands).await;
        for (reply, fate) in replies.into_iter().zip(fates) {
            let _ = reply.send(fate);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use mcp_raft::CommandError;
    use tokio::sync::watch;
    use tokio::task::JoinHandle;

    use super::*;
    use crate::testing::eventually;

    /// Raft as the batcher sees it: records the size of each entry, holds every entry
    /// until released, and answers each command with `answer`.
    struct FakeRaft {
        entries: Arc<Mutex<Vec<usize>>>,
        released: watch::Receiver<bool>,
        answer: fn(usize, &Command) -> Proposed,
    }

    impl ProposeEntries for FakeRaft {
        async fn propose_all(&self, commands: Vec<Command>) -> Vec<Proposed> {
            let entry = {
                let mut entries = self.entries.lock().unwrap();
                entries.push(commands.len());
                entries.len()
            };
            let mut released = self.released.clone();
            released.wait_for(|r| *r).await.unwrap();
            commands.iter().map(|c| (self.answer)(entry, c)).collect()
        }
    }

    /// Each command is applied in its entry, with its own result (the server it named).
    fn applied(entry: usize, command: &Command) -> Proposed {
        let Command::DeleteServer { name } = command else {
            panic!("unexpected command {command:?}");
        };
        Proposed::Applied {
            result: Err(CommandError::ServerNotFound { name: name.clone() }),
            index: entry as u64,
        }
    }

    fn not_leader(_: usize, _: &Command) -> Proposed {
        Proposed::NotLeader(Some("n2:7400".to_owned()))
    }

    fn delete(i: usize) -> Command {
        Command::DeleteServer {
            name: format!("s{i}"),
        }
    }

    /// Proposes `delete(0)`, and once its entry is held, `delete(1..n)` concurrently;
    /// releases the entries once all of those are queued. Returns each write's fate in
    /// order and the size of each entry.
    async fn propose_while_an_entry_is_held(
        n: usize,
        answer: fn(usize, &Command) -> Proposed,
    ) -> (Vec<Proposed>, Vec<usize>) {
        let entries = Arc::new(Mutex::new(Vec::new()));
        let (release, released) = watch::channel(false);
        let queue = Queue::start(FakeRaft {
            entries: Arc::clone(&entries),
            released,
            answer,
        });
        let spawn = |i: usize| -> JoinHandle<Proposed> {
            let queue = queue.clone();
            tokio::spawn(async move { queue.propose(delete(i)).await })
        };
        let mut writes = vec![spawn(0)];
        eventually("the first entry to be proposed", || {
            !entries.lock().unwrap().is_empty()
        })
        .await;
        writes.extend((1..n).map(spawn));
        eventually("the other writes to queue up", || {
            queue.0.max_capacity() - queue.0.capacity() == n - 1
        })
        .await;
        release.send_replace(true);
        let mut fates = Vec::new();
        for write in writes {
            fates.push(write.await.unwrap());
        }
        let entries = entries.lock().unwrap().clone();
        (fates, entries)
    }

    #[tokio::test]
    async fn writes_queued_behind_an_entry_share_the_next_one_each_with_its_own_result() {
        let (fates, entries) = propose_while_an_entry_is_held(10, applied).await;
        assert_eq!(
            entries,
            vec![1, 9],
            "a lone write, then one entry for the rest"
        );
        for (i, fate) in fates.iter().enumerate() {
            let Proposed::Applied {
                result: Err(CommandError::ServerNotFound { name }),
                index,
            } = fate
            else {
                panic!("write {i}: {fate:?}");
            };
            assert_eq!(name, &format!("s{i}"), "write {i} got another's result");
            assert_eq!(*index, if i == 0 { 1 } else { 2 });
        }
    }

    #[tokio::test]
    async fn a_not_leader_answer_reaches_every_waiter_of_the_entry() {
        let (fates, entries) = propose_while_an_entry_is_held(5, not_leader).await;
        assert_eq!(entries, vec![1, 4]);
        for fate in &fates {
            assert!(
                matches!(fate, Proposed::NotLeader(Some(addr)) if addr == "n2:7400"),
                "{fate:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_waiter_learns_when_the_loop_has_stopped() {
        let (queue, rx) = mpsc::channel(1);
        drop(rx);
        let fate = Queue(queue).propose(delete(0)).await;
        assert!(matches!(fate, Proposed::Failed(_)), "{fate:?}");
    }
}
