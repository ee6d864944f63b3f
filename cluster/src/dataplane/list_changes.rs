//! Upstream servers' own list changes: a stdio server that sends
//! `notifications/{tools,resources,prompts}/list_changed` makes this node propose
//! `ServerListsChanged` (through the leader), so that every node's gateway drops what it
//! cached of the server and tells its clients (see `gateway::notify`).
//!
//! Announcements are coalesced per server for [`COALESCE`]: a server that sends the three
//! notifications at once, or from several instances, costs one registry write.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::mpsc;

use super::DataPlane;

/// How long announcements are gathered before they are proposed.
const COALESCE: Duration = Duration::from_millis(100);

/// Where a session reports its server's list changes: the server's name goes down
/// `sender`.
#[derive(Debug, Clone)]
pub struct ListChangeSink {
    /// The server whose instance this session is.
    pub server: String,
    /// The data plane's channel.
    pub sender: mpsc::UnboundedSender<String>,
}

impl ListChangeSink {
    /// Reports that the server announced a change.
    pub fn announce(&self) {
        // A data plane that stopped has nobody to tell.
        let _ = self.sender.send(self.server.clone());
    }
}

/// Records a server's announced list change in the registry (through the leader).
pub trait ListChangeWriter: Send + Sync {
    /// Proposes `ServerListsChanged { name: server }` and waits for it to apply.
    fn announce(&self, server: String) -> BoxFuture<'static, Result<(), String>>;
}

/// This node's list-change reporting.
#[derive(Default)]
pub struct ListChanges {
    writer: OnceLock<Arc<dyn ListChangeWriter>>,
}

impl DataPlane {
    /// Sets where this node proposes the list changes its instances hear.
    pub fn set_list_change_writer(&self, writer: Arc<dyn ListChangeWriter>) {
        let _ = self.list_changes.writer.set(writer);
    }
}

/// Proposes what `announced` reports, coalesced, until the data plane is gone.
pub(super) async fn run(plane: Weak<DataPlane>, mut announced: mpsc::UnboundedReceiver<String>) {
    while let Some(first) = announced.recv().await {
        let mut servers = BTreeSet::from([first]);
        let deadline = tokio::time::sleep(COALESCE);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                () = &mut deadline => break,
                next = announced.recv() => match next {
                    Some(server) => {
                        servers.insert(server);
                    }
                    None => break,
                },
            }
        }
        let Some(plane) = plane.upgrade() else {
            return;
        };
        let Some(writer) = plane.list_changes.writer.get().cloned() else {
            continue;
        };
        drop(plane);
        for server in servers {
            tracing::debug!(server, "server announced a list change");
            if let Err(e) = writer.announce(server.clone()).await {
                tracing::warn!(server, error = %e, "could not record a server's list change");
            }
        }
    }
}
