//! Property test of how an SSE response body is searched for the answer to a request:
//! generated streams of events (responses to this and other requests, duplicates,
//! notifications, server requests, comments, data split over several lines, CRLF line
//! ends, events that are not JSON) and arbitrary bytes. The answer is the first response
//! event carrying the request's id, unless a malformed event comes first; anything else
//! is a protocol error, never a panic.

use proptest::prelude::*;
use serde_json::json;

use super::*;

fn cases() -> u32 {
    std::env::var("MCPD_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000)
}

#[derive(Debug, Clone)]
enum Event {
    /// A JSON message: a response (result or error) for `id`, a request, or a notification.
    Message {
        id: Option<u64>,
        response: bool,
        tag: u32,
    },
    /// An event whose data is not JSON.
    Garbage(String),
    /// A comment line (ignored by SSE).
    Comment(String),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        6 => (proptest::option::of(0u64..6), any::<bool>(), any::<u32>())
            .prop_map(|(id, response, tag)| Event::Message { id, response, tag }),
        1 => "[g-mo-su-z][a-z ]{0,20}".prop_map(Event::Garbage),
        1 => "[a-z ]{0,20}".prop_map(Event::Comment),
    ]
}

impl Event {
    fn json(&self) -> Option<Value> {
        match self {
            Event::Message {
                id: Some(id),
                response: true,
                tag,
            } if tag % 2 == 0 => Some(json!({"jsonrpc": "2.0", "id": id, "result": {"tag": tag}})),
            Event::Message {
                id: Some(id),
                response: true,
                tag,
            } => Some(
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -1, "message": tag.to_string()}}),
            ),
            Event::Message {
                id: Some(id),
                response: false,
                ..
            } => Some(json!({"jsonrpc": "2.0", "id": id, "method": "ping"})),
            Event::Message { id: None, tag, .. } => Some(
                json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"tag": tag}}),
            ),
            _ => None,
        }
    }

    /// The event as SSE text; `split` spreads pretty-printed JSON over several data lines.
    fn render(&self, split: bool, eol: &str) -> String {
        match self {
            Event::Comment(text) => format!(":{text}{eol}"),
            Event::Garbage(text) => format!("event: message{eol}data: {text}{eol}{eol}"),
            Event::Message { .. } => {
                let value = self.json().unwrap_or_default();
                let text = if split {
                    serde_json::to_string_pretty(&value).unwrap_or_default()
                } else {
                    value.to_string()
                };
                let data: String = text.lines().map(|l| format!("data: {l}{eol}")).collect();
                format!("event: message{eol}{data}{eol}")
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_first_response_with_the_id_is_found(
        events in proptest::collection::vec((event(), any::<bool>()), 0..12),
        wanted in 0u64..6,
        crlf in any::<bool>(),
    ) {
        let eol = if crlf { "\r\n" } else { "\n" };
        let body: String = events.iter().map(|(e, split)| e.render(*split, eol)).collect();
        let mut expected = Err(());
        for (e, _) in &events {
            match e {
                Event::Garbage(_) => break,
                Event::Message { id: Some(id), response: true, .. } if *id == wanted => {
                    expected = Ok(e.json().unwrap_or_default());
                    break;
                }
                _ => {}
            }
        }
        match (response_from_sse(&body, &json!(wanted)).map(|r| r.to_value()), expected) {
            (Ok(got), Ok(want)) => prop_assert_eq!(got, want),
            (Err(UpstreamError::Protocol(_)), Err(())) => {}
            (got, want) => prop_assert!(false, "body {body:?}: got {got:?}, wanted {want:?}"),
        }
    }

    #[test]
    fn arbitrary_bytes_are_an_error_or_a_matching_response(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        wanted in 0u64..3,
    ) {
        let body = String::from_utf8_lossy(&bytes);
        if let Ok(message) = response_from_sse(&body, &json!(wanted)).map(|r| r.to_value()) {
            prop_assert_eq!(&message["id"], &json!(wanted));
        }
    }
}
