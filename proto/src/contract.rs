//! The typed contracts that travel beside the protobuf messages: error categories,
//! instance states, breaker states and node roles.
//!
//! On the wire each is a lower-case word (the `x-mcpd-error` metadata, the `state` and
//! `breaker` fields of `InstanceInfo`, `StatusReply.role`), so older clients keep working; in Rust each is an
//! enum, parsed once where it arrives. Every rule about a category lives here: its word, its
//! gRPC status code, and whether it proves that a request never reached an MCP server.

use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

use crate::{ERROR_FIELD, ERROR_KIND};

/// Defines a wire-word enum: `as_str`, `parse`, `ALL` and `Display`.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $word:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The word on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $word, )+
                }
            }

            /// Parses the word on the wire; `None` for a word this build does not know.
            pub fn parse(word: &str) -> Option<Self> {
                match word {
                    $( $word => Some($name::$variant), )+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum! {
    /// The category of a failed request, carried in the `x-mcpd-error` metadata.
    pub enum ErrorKind {
        /// The node's own configuration is unusable.
        Config => "config",
        /// Storage, I/O or Raft failed on the node.
        Internal => "internal",
        /// A server spec is invalid; `x-mcpd-field` names the field.
        InvalidSpec => "invalid_spec",
        /// A request argument is invalid.
        InvalidArgument => "invalid_argument",
        /// A server or node named by a registry write does not exist.
        NotFound => "not_found",
        /// A compare-and-set write found another revision.
        RevisionMismatch => "revision_mismatch",
        /// No (or a wrong) credential for a method that needs one.
        Unauthorized => "unauthorized",
        /// No leader known, or a write not committed in time.
        Unavailable => "unavailable",
        /// A membership change was refused.
        Membership => "membership",
        /// An execute request named a server the registry does not have.
        UnknownServer => "unknown_server",
        /// An execute request is not valid JSON-RPC.
        InvalidRequest => "invalid_request",
        /// The server has no instance that can take the request.
        NoHealthyInstance => "no_healthy_instance",
        /// Every candidate instance's circuit breaker is open.
        CircuitOpen => "circuit_open",
        /// Every candidate instance is at its in-flight limit.
        Saturated => "saturated",
        /// The server did not answer in time.
        Timeout => "timeout",
        /// The connection to the server failed or broke.
        Connection => "connection",
        /// The server answered with a JSON-RPC error.
        ServerError => "server_error",
        /// A valid credential whose role or allow rules do not cover the request.
        Forbidden => "forbidden",
        /// A rate limit or concurrency quota refused the call; `x-mcpd-retry-after-ms` says
        /// when to try again. Nothing reached a server.
        RateLimited => "rate_limited",
        /// The tool is withheld by pinning (its definition changed, or it awaits approval).
        ToolWithheld => "tool_withheld",
    }
}

impl ErrorKind {
    /// The gRPC status code of every error of this category.
    pub fn code(self) -> Code {
        match self {
            ErrorKind::Config | ErrorKind::Internal => Code::Internal,
            ErrorKind::InvalidSpec | ErrorKind::InvalidArgument | ErrorKind::InvalidRequest => {
                Code::InvalidArgument
            }
            ErrorKind::NotFound | ErrorKind::UnknownServer => Code::NotFound,
            ErrorKind::RevisionMismatch | ErrorKind::ServerError => Code::Aborted,
            ErrorKind::Unauthorized => Code::Unauthenticated,
            ErrorKind::Forbidden => Code::PermissionDenied,
            ErrorKind::RateLimited => Code::ResourceExhausted,
            ErrorKind::ToolWithheld => Code::FailedPrecondition,
            ErrorKind::Unavailable
            | ErrorKind::NoHealthyInstance
            | ErrorKind::CircuitOpen
            | ErrorKind::Connection => Code::Unavailable,
            ErrorKind::Membership => Code::FailedPrecondition,
            ErrorKind::Saturated => Code::ResourceExhausted,
            ErrorKind::Timeout => Code::DeadlineExceeded,
        }
    }

    /// True if an execute request that failed with this category was sent to no MCP server
    /// at all, so sending it elsewhere can never run a tool twice.
    pub fn never_reached_a_server(self) -> bool {
        matches!(
            self,
            ErrorKind::NoHealthyInstance
                | ErrorKind::UnknownServer
                | ErrorKind::CircuitOpen
                | ErrorKind::Saturated
        )
    }

    /// A status of this category: its code, `message`, and the `x-mcpd-error` word.
    ///
    /// The message travels in a response header, and errors quote what the caller sent (a
    /// server name, a field value): a message above [`MAX_STATUS_MESSAGE`] bytes is cut, so
    /// a huge input still gets its clear refusal instead of a response too large for the
    /// caller's HTTP/2 header limit.
    pub fn status(self, message: impl Into<String>) -> Status {
        let mut status = Status::new(self.code(), bounded_message(message.into()));
        status
            .metadata_mut()
            .insert(ERROR_KIND, MetadataValue::from_static(self.as_str()));
        status
    }

    /// The category a node put on `status`; `None` for a status without one (a transport
    /// failure) or with a word this build does not know.
    pub fn of(status: &Status) -> Option<Self> {
        status
            .metadata()
            .get(ERROR_KIND)
            .and_then(|v| v.to_str().ok())
            .and_then(Self::parse)
    }
}

/// Metadata key of the milliseconds after which a `rate_limited` call may be tried again.
pub const RETRY_AFTER_MS: &str = "x-mcpd-retry-after-ms";

/// Adds the retry-after metadata to `status`.
pub fn with_retry_after(status: &mut Status, after: std::time::Duration) {
    let ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
    status
        .metadata_mut()
        .insert(RETRY_AFTER_MS, MetadataValue::from(ms));
}

/// The retry-after a node put on `status`.
pub fn retry_after_of(status: &Status) -> Option<std::time::Duration> {
    status
        .metadata()
        .get(RETRY_AFTER_MS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map(std::time::Duration::from_millis)
}

/// Longest status message sent, in bytes (a response's headers must stay well below the
/// 16 KiB HTTP/2 header list that clients accept by default).
pub const MAX_STATUS_MESSAGE: usize = 2048;

/// `message`, cut at a character boundary to at most [`MAX_STATUS_MESSAGE`] bytes plus a
/// note of its full length.
fn bounded_message(message: String) -> String {
    if message.len() <= MAX_STATUS_MESSAGE {
        return message;
    }
    let mut end = MAX_STATUS_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &message[..end], message.len())
}

/// Adds the `x-mcpd-field` metadata naming the spec field at fault (a field name that is not
/// valid metadata, or is longer than a field name can be, is left out; the message still
/// names it).
pub fn with_field(mut status: Status, field: &str) -> Status {
    const MAX_FIELD: usize = 256;
    if field.len() > MAX_FIELD {
        return status;
    }
    if let Ok(value) = MetadataValue::try_from(field) {
        status.metadata_mut().insert(ERROR_FIELD, value);
    }
    status
}

/// The spec field named by a status's `x-mcpd-field` metadata.
pub fn field_of(status: &Status) -> Option<String> {
    status
        .metadata()
        .get(ERROR_FIELD)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

wire_enum! {
    /// Where an instance is in its life, as a node reports it (`InstanceInfo.state`).
    pub enum InstanceState {
        /// Connecting for the first time.
        Starting => "starting",
        /// Session up.
        Running => "running",
        /// The session died; waiting to reconnect.
        Restarting => "restarting",
        /// Failing again and again; retried slowly.
        CrashLoop => "crash_loop",
        /// Stopped for good.
        Stopped => "stopped",
        /// Placed on a node that answered without it (fleet reports only).
        NotRunning => "not_running",
        /// Placed on a node that did not answer (fleet reports only).
        Unreachable => "unreachable",
    }
}

wire_enum! {
    /// A circuit breaker's state (`InstanceInfo.breaker`).
    pub enum BreakerState {
        /// Calls pass.
        Closed => "closed",
        /// Calls are refused until the recovery time has passed.
        Open => "open",
        /// A few trial calls decide whether to close or open again.
        HalfOpen => "half_open",
    }
}

wire_enum! {
    /// A node's Raft role, as it reports it (`StatusReply.role`).
    pub enum NodeRole {
        /// Leads the cluster: takes writes and linearizable reads.
        Leader => "leader",
        /// A voter following the leader.
        Follower => "follower",
        /// A voter asking for votes (no leader known).
        Candidate => "candidate",
        /// Replicates the log but does not vote.
        Learner => "learner",
        /// Raft is stopping on this node.
        Shutdown => "shutdown",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn huge_messages_and_fields_are_cut_to_fit_a_header() {
        use super::*;
        let name = "ü".repeat(50_000);
        let status = with_field(
            ErrorKind::NotFound.status(format!("server {name:?} not found")),
            &name,
        );
        assert!(
            status.message().len() <= MAX_STATUS_MESSAGE + 40,
            "{}",
            status.message().len()
        );
        assert!(
            status.message().ends_with("(100019 bytes in all)"),
            "{}",
            &status.message()[2000..]
        );
        assert_eq!(ErrorKind::of(&status), Some(ErrorKind::NotFound));
        assert_eq!(field_of(&status), None);
        // Short ones are untouched.
        let status = with_field(ErrorKind::InvalidSpec.status("bad"), "args");
        assert_eq!(status.message(), "bad");
        assert_eq!(field_of(&status).as_deref(), Some("args"));
    }

    use super::*;

    #[test]
    fn every_word_parses_back() {
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::parse(kind.as_str()), Some(*kind));
        }
        for state in InstanceState::ALL {
            assert_eq!(InstanceState::parse(state.as_str()), Some(*state));
        }
        for state in BreakerState::ALL {
            assert_eq!(BreakerState::parse(state.as_str()), Some(*state));
        }
        for role in NodeRole::ALL {
            assert_eq!(NodeRole::parse(role.as_str()), Some(*role));
        }
        assert_eq!(ErrorKind::parse("no_such_kind"), None);
    }

    #[test]
    fn roles_are_lower_case_words_like_every_other_state() {
        let words: Vec<_> = NodeRole::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            words,
            ["leader", "follower", "candidate", "learner", "shutdown"]
        );
        assert_eq!(NodeRole::parse("Leader"), None);
    }

    #[test]
    fn a_status_carries_its_category_and_code() {
        let status = ErrorKind::Saturated.status("full");
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(ErrorKind::of(&status), Some(ErrorKind::Saturated));
        assert_eq!(
            ErrorKind::of(&Status::unavailable("tcp connect error")),
            None
        );
    }

    #[test]
    fn the_field_travels_as_metadata() {
        let status = with_field(ErrorKind::InvalidSpec.status("bad"), "env.API_KEY");
        assert_eq!(field_of(&status).as_deref(), Some("env.API_KEY"));
    }

    #[test]
    fn only_requests_sent_nowhere_count_as_never_reached() {
        let never: Vec<_> = ErrorKind::ALL
            .iter()
            .filter(|k| k.never_reached_a_server())
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            never,
            [
                "unknown_server",
                "no_healthy_instance",
                "circuit_open",
                "saturated"
            ]
        );
    }
}
