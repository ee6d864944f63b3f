//! Pushed list changes: every node watches its replicated registry and tells the clients
//! connected to it when the cluster's tools, resources or prompts may have changed.
//!
//! What the lists are made of is the set of servers, their specs, where their
//! instances run, and the views. Each applied registry revision is compared with the
//! last one by that content only (a session ending also moves the revision, and changes
//! no list); a difference is a deploy, undeploy, scale, placement move or view change
//! made on any node, and is
//! announced as `notifications/{tools,resources,prompts}/list_changed` to every open
//! stream of this node ([`streams`](super::streams) writes them: the `GET /mcp` stream of
//! the handshake era, `subscriptions/listen` of 2026-07-28). A client that hears one
//! lists again. A server's own announcement of a change counts too: the node whose
//! instance heard it records it in the registry (`ServerListsChanged`, see
//! `dataplane::list_changes`), so it reaches every node the same way.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use mcp_raft::RegistryReader;
use tokio::sync::broadcast;

/// Changes kept for a slow stream before it is told everything changed instead.
const BACKLOG: usize = 64;

/// A list that changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListChanged {
    /// `tools/list`.
    Tools,
    /// `resources/list` (and its templates).
    Resources,
    /// `prompts/list`.
    Prompts,
}

impl ListChanged {
    /// Every list, in the order they are announced.
    pub const ALL: [ListChanged; 3] = [
        ListChanged::Tools,
        ListChanged::Resources,
        ListChanged::Prompts,
    ];

    /// The notification's method.
    pub fn method(self) -> &'static str {
        match self {
            ListChanged::Tools => "notifications/tools/list_changed",
            ListChanged::Resources => "notifications/resources/list_changed",
            ListChanged::Prompts => "notifications/prompts/list_changed",
        }
    }

    /// The 2026-07-28 subscription filter key that opts in to it.
    pub fn filter_key(self) -> &'static str {
        match self {
            ListChanged::Tools => "toolsListChanged",
            ListChanged::Resources => "resourcesListChanged",
            ListChanged::Prompts => "promptsListChanged",
        }
    }
}

/// The list-change broadcaster of one gateway.
pub struct Notifier {
    sender: broadcast::Sender<ListChanged>,
}

impl Notifier {
    /// Starts watching `registry`; the watch ends with the registry.
    pub fn start(registry: RegistryReader) -> Arc<Self> {
        let (sender, _) = broadcast::channel(BACKLOG);
        let notifier = Arc::new(Self { sender });
        tokio::spawn(watch(registry, notifier.sender.clone()));
        notifier
    }

    /// A receiver of every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ListChanged> {
        self.sender.subscribe()
    }

    /// Announces that every list may have changed (an upstream server said so of its
    /// own).
    pub fn announce(&self, change: ListChanged) {
        // No receiver is no one to tell.
        let _ = self.sender.send(change);
    }
}

/// What the lists are made of in the registry: servers, specs, placements.
fn fingerprint(registry: &RegistryReader) -> u64 {
    registry.read(|state| {
        let mut hasher = DefaultHasher::new();
        let mut servers: Vec<_> = state.registry.servers().collect();
        servers.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        for server in servers {
            server.spec.name.hash(&mut hasher);
            server.mod_revision.hash(&mut hasher);
            server.create_revision.hash(&mut hasher);
            server.placements.hash(&mut hasher);
            state
                .registry
                .list_epochs()
                .of(&server.spec.name)
                .hash(&mut hasher);
        }
        // A view changed is a change of what its endpoint lists.
        for view in state.registry.views().iter() {
            serde_json::to_string(view)
                .unwrap_or_default()
                .hash(&mut hasher);
        }
        hasher.finish()
    })
}

async fn watch(registry: RegistryReader, sender: broadcast::Sender<ListChanged>) {
    let mut revisions = registry.subscribe();
    let mut last = fingerprint(&registry);
    while revisions.changed().await.is_ok() {
        let now = fingerprint(&registry);
        if now == last {
            continue;
        }
        last = now;
        tracing::debug!("the cluster's lists changed; telling connected clients");
        for change in ListChanged::ALL {
            let _ = sender.send(change);
        }
    }
}
