//! The server-sent event streams that carry pushed changes ([`notify`](super::notify)):
//! the handshake era's `GET /mcp` stream (2025-11-25, "Listening for Messages from the
//! Server"), and the 2026-07-28 `subscriptions/listen` stream, which opens with
//! `notifications/subscriptions/acknowledged` naming the notifications it will carry and
//! stamps each with the subscription's id in `_meta`.
//!
//! A stream sends an SSE comment every [`KEEPALIVE`] so that idle proxies keep it open,
//! and asks `still_valid` each time: a handshake-era stream ends with its session
//! (deleted or expired).

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde_json::{json, Map, Value};
use tokio::sync::broadcast::{self, error::RecvError};

use super::notify::ListChanged;

/// Interval of the keep-alive comments (and of the validity check).
pub const KEEPALIVE: Duration = Duration::from_secs(15);
/// `_meta` key naming the subscription a notification belongs to.
pub const META_SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

/// Which changes a stream carries, and how each is stamped.
#[derive(Debug, Clone)]
pub struct Filter {
    /// The lists whose changes go out.
    pub lists: Vec<ListChanged>,
    /// The `subscriptions/listen` request id to stamp, in the 2026-07-28 era.
    pub subscription: Option<Value>,
}

impl Filter {
    /// The handshake era's GET stream: every list change.
    pub fn everything() -> Self {
        Self {
            lists: ListChanged::ALL.to_vec(),
            subscription: None,
        }
    }

    /// The filter a `subscriptions/listen` request with `params` asked for, of what the
    /// gateway honors (the three list changes; resource subscriptions are not).
    pub fn listen(id: Value, params: &Value) -> Self {
        let asked = params.get("notifications");
        let lists = ListChanged::ALL
            .into_iter()
            .filter(|l| {
                asked
                    .and_then(|a| a.get(l.filter_key()))
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            })
            .collect();
        Self {
            lists,
            subscription: Some(id),
        }
    }

    /// The acknowledgment that opens a `subscriptions/listen` stream.
    fn acknowledgment(&self) -> Option<Value> {
        let id = self.subscription.as_ref()?;
        let honored: Map<String, Value> = self
            .lists
            .iter()
            .map(|l| (l.filter_key().to_owned(), Value::Bool(true)))
            .collect();
        Some(
            json!({"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
                    "params": {"notifications": honored, "_meta": {META_SUBSCRIPTION_ID: id}}}),
        )
    }

    /// The response that closes a `subscriptions/listen` stream gracefully (2026-07-28,
    /// Subscriptions, Graceful Closure), when the gateway ends it.
    fn closure(&self) -> Option<Value> {
        let id = self.subscription.as_ref()?;
        Some(
            json!({"jsonrpc": "2.0", "id": id, "result": {"resultType": "complete",
                    "_meta": {META_SUBSCRIPTION_ID: id}}}),
        )
    }

    /// The notification of `change`, if this stream carries it.
    fn notification(&self, change: ListChanged) -> Option<Value> {
        if !self.lists.contains(&change) {
            return None;
        }
        let mut params = json!({});
        if let Some(id) = &self.subscription {
            params["_meta"] = json!({META_SUBSCRIPTION_ID: id});
        }
        Some(json!({"jsonrpc": "2.0", "method": change.method(), "params": params}))
    }
}

fn message(value: &Value) -> Event {
    Event::default().event("message").data(value.to_string())
}

struct State<F> {
    changes: broadcast::Receiver<ListChanged>,
    filter: Filter,
    still_valid: F,
    /// Events due before the next receive (the acknowledgment, a catch-up after lag).
    pending: Vec<Value>,
    /// The gateway is ending the stream: once `pending` is sent, it ends.
    closing: bool,
}

/// The SSE response carrying `changes` through `filter` while `still_valid()` holds.
pub fn response<F>(
    changes: broadcast::Receiver<ListChanged>,
    filter: Filter,
    still_valid: F,
) -> Response
where
    F: Fn() -> bool + Send + Sync + 'static,
{
    let pending: Vec<Value> = filter.acknowledgment().into_iter().collect();
    let state = State {
        changes,
        filter,
        still_valid,
        pending,
        closing: false,
    };
    Sse::new(events(state)).into_response()
}

fn events<F>(state: State<F>) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: Fn() -> bool + Send + Sync + 'static,
{
    futures::stream::unfold(state, |mut state| async move {
        loop {
            if !state.pending.is_empty() {
                let next = state.pending.remove(0);
                return Some((Ok(message(&next)), state));
            }
            if state.closing {
                return None;
            }
            let received = tokio::time::timeout(KEEPALIVE, state.changes.recv()).await;
            match received {
                Ok(Ok(change)) => {
                    if let Some(note) = state.filter.notification(change) {
                        return Some((Ok(message(&note)), state));
                    }
                }
                // Fell behind: whatever was missed, every list may have changed.
                Ok(Err(RecvError::Lagged(_))) => {
                    state.pending = ListChanged::ALL
                        .into_iter()
                        .filter_map(|l| state.filter.notification(l))
                        .collect();
                }
                // The gateway is shutting down: a subscription is closed gracefully.
                Ok(Err(RecvError::Closed)) => {
                    state.closing = true;
                    state.pending = state.filter.closure().into_iter().collect();
                }
                Err(_) => {
                    if !(state.still_valid)() {
                        return None;
                    }
                    return Some((Ok(Event::default().comment("keep-alive")), state));
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_honors_what_was_asked_of_the_lists() {
        let filter = Filter::listen(
            json!("listen-1"),
            &json!({"notifications": {"toolsListChanged": true, "promptsListChanged": false,
                                      "resourceSubscriptions": ["x://y"]}}),
        );
        assert_eq!(filter.lists, vec![ListChanged::Tools]);
        let ack = filter.acknowledgment().expect("an acknowledgment");
        assert_eq!(
            ack["params"]["notifications"],
            json!({"toolsListChanged": true})
        );
        assert_eq!(ack["params"]["_meta"][META_SUBSCRIPTION_ID], "listen-1");
        let note = filter.notification(ListChanged::Tools).expect("carried");
        assert_eq!(note["method"], "notifications/tools/list_changed");
        assert_eq!(note["params"]["_meta"][META_SUBSCRIPTION_ID], "listen-1");
        assert!(filter.notification(ListChanged::Prompts).is_none());
        let get = Filter::everything();
        assert!(get.acknowledgment().is_none());
        assert_eq!(
            get.notification(ListChanged::Resources).expect("carried")["params"],
            json!({})
        );
    }
}
