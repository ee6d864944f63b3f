//! Property test of the line framing and response matching of stdio and container
//! sessions ([`super`], the line core): generated stdout streams (responses interleaved,
//! duplicated, out of order, for unknown ids, server requests, notifications, blank lines,
//! non-JSON, non-UTF-8 and oversized lines, split at random points) are fed to
//! [`read_lines`] with a set of waiting requests. Every waiter must get
//! exactly the first response carrying its id, or the error that ended the session; every
//! server request before that point gets its answer; the reader ends with the stream.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use proptest::prelude::*;
use serde_json::json;
use tokio::io::ReadBuf;

use super::*;

/// Line length limit in these tests (well above every generated normal line).
const LIMIT: usize = 512;

/// Generated cases per run (`MCPD_FUZZ_CASES` overrides).
fn cases() -> u32 {
    std::env::var("MCPD_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000)
}

#[derive(Debug, Clone)]
enum Item {
    /// A response for request `id`, as a result or an error.
    Response {
        id: u64,
        error: bool,
        tag: u32,
    },
    /// A response whose id is a string: no waiter may take it.
    StringIdResponse(u64),
    /// A request from the server (ping or anything else).
    ServerRequest {
        id: u64,
        ping: bool,
    },
    Notification,
    Blank,
    /// JSON that is not an object.
    JsonScalar(i64),
    /// Text that is not JSON: the session must end with a protocol error.
    Garbage(String),
    /// Bytes that are not UTF-8.
    NotUtf8(Vec<u8>),
    /// A line above the limit.
    Oversized(usize),
}

impl Item {
    fn bytes(&self) -> Vec<u8> {
        let mut line = match self {
            Item::Response { id, error: false, tag } => {
                json!({"jsonrpc": "2.0", "id": id, "result": {"tag": tag}}).to_string()
            }
            Item::Response { id, error: true, tag } => {
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -1, "message": tag.to_string()}})
                    .to_string()
            }
            Item::StringIdResponse(id) => {
                json!({"jsonrpc": "2.0", "id": id.to_string(), "result": {}}).to_string()
            }
            Item::ServerRequest { id, ping: true } => {
                json!({"jsonrpc": "2.0", "id": id, "method": "ping"}).to_string()
            }
            Item::ServerRequest { id, ping: false } => {
                json!({"jsonrpc": "2.0", "id": id, "method": "sampling/createMessage", "params": {}})
                    .to_string()
            }
            Item::Notification => {
                json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {}})
                    .to_string()
            }
            Item::Blank => "   ".to_owned(),
            Item::JsonScalar(n) => n.to_string(),
            Item::Garbage(text) => text.clone(),
            Item::NotUtf8(bytes) => return [bytes.as_slice(), b"\n"].concat(),
            Item::Oversized(extra) => format!("\"{}\"", "x".repeat(LIMIT + extra)),
        }
        .into_bytes();
        line.push(b'\n');
        line
    }
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        8 => (0u64..12, any::<bool>(), any::<u32>())
            .prop_map(|(id, error, tag)| Item::Response { id, error, tag }),
        1 => (0u64..12).prop_map(Item::StringIdResponse),
        2 => (0u64..1000, any::<bool>()).prop_map(|(id, ping)| Item::ServerRequest { id, ping }),
        1 => Just(Item::Notification),
        1 => Just(Item::Blank),
        1 => any::<i64>().prop_map(Item::JsonScalar),
        // Not JSON: starts with a letter JSON never starts with.
        1 => "[g-mo-su-z][^\n]{0,40}".prop_map(Item::Garbage),
        1 => proptest::collection::vec(0x80u8..=0xff, 1..8).prop_map(|mut b| {
            // A lone continuation byte first: never valid UTF-8.
            b[0] = 0x80;
            Item::NotUtf8(b)
        }),
        1 => (1usize..200).prop_map(Item::Oversized),
    ]
}

/// A reader handing out the stream in the given chunk sizes (lines split anywhere).
struct Chunked {
    data: Vec<u8>,
    pos: usize,
    sizes: Vec<usize>,
    turn: usize,
}

impl tokio::io::AsyncRead for Chunked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let size = self.sizes[self.turn % self.sizes.len()];
        self.turn += 1;
        let end = (self.pos + size)
            .min(self.data.len())
            .min(self.pos + buf.remaining());
        let chunk = self.data[self.pos..end].to_vec();
        buf.put_slice(&chunk);
        self.pos = end;
        Poll::Ready(Ok(()))
    }
}

/// How the session ends, by kind.
#[derive(Debug, Clone, Copy, PartialEq)]
enum End {
    Closed,
    Protocol,
    TooLarge,
}

fn kind(e: &UpstreamError) -> End {
    match e {
        UpstreamError::Protocol(_) => End::Protocol,
        UpstreamError::TooLarge { .. } => End::TooLarge,
        _ => End::Closed,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_waiter_gets_its_own_first_response_or_the_session_error(
        items in proptest::collection::vec(item(), 0..40),
        waiting in proptest::collection::btree_set(0u64..12, 0..8),
        sizes in proptest::collection::vec(1usize..64, 1..6),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        // What must happen: lines are taken in order up to the first fatal one.
        let mut first: HashMap<u64, Value> = HashMap::new();
        let mut answered_requests = Vec::new();
        let mut end = End::Closed;
        for item in &items {
            match item {
                Item::Response { id, .. } => {
                    let message: Value = serde_json::from_slice(&item.bytes()).unwrap();
                    first.entry(*id).or_insert(message);
                }
                Item::ServerRequest { id, ping } => answered_requests.push((*id, *ping)),
                Item::Garbage(_) => { end = End::Protocol; break; }
                Item::NotUtf8(_) => { end = End::Closed; break; }
                Item::Oversized(_) => { end = End::TooLarge; break; }
                _ => {}
            }
        }
        let data: Vec<u8> = items.iter().flat_map(Item::bytes).collect();
        rt.block_on(async {
            let shared = LineState::new("props", "stdio", None);
            let mut receivers = Vec::new();
            for id in &waiting {
                let (tx, rx) = oneshot::channel();
                shared.pending.lock().unwrap().insert(*id, tx);
                receivers.push((*id, rx));
            }
            let (stdin, mut written) = mpsc::channel(1024);
            let reader = Chunked { data, pos: 0, sizes, turn: 0 };
            let lines = FramedRead::new(reader, LinesCodec::new_with_max_length(LIMIT));
            tokio::time::timeout(Duration::from_secs(10), read_lines(lines, shared.clone(), stdin, LIMIT))
                .await
                .expect("the reader hung");
            prop_assert!(!shared.alive.load(Ordering::SeqCst));
            prop_assert!(shared.pending.lock().unwrap().is_empty(), "waiters left behind");
            for (id, rx) in receivers {
                let got = rx.await.expect("every waiter is answered");
                match (first.get(&id), got) {
                    (Some(want), Ok(message)) => prop_assert_eq!(want, &message.to_value()),
                    (None, Err(e)) => prop_assert_eq!(kind(&e), end, "{}", e),
                    (want, got) => prop_assert!(false, "waiter {id}: wanted {want:?}, got {got:?}"),
                }
            }
            for (id, ping) in answered_requests {
                let reply: Value = serde_json::from_str(&written.try_recv().expect("a reply to the server's request")).unwrap();
                prop_assert_eq!(&reply["id"], &json!(id));
                if ping {
                    prop_assert_eq!(&reply["result"], &json!({}));
                } else {
                    prop_assert_eq!(&reply["error"]["code"], &json!(jsonrpc::METHOD_NOT_FOUND));
                }
            }
            prop_assert!(written.try_recv().is_err(), "an answer to a request the server never sent");
            Ok(())
        })?;
    }
}
