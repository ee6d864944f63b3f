//! A Jepsen-style history of registry operations and the checker that judges it.
//!
//! Clients record every operation as an invocation and a completion (`ok`, a definite
//! `fail` that provably changed nothing, or `unknown` when the outcome cannot be known:
//! a timeout, a broken connection, "unavailable" after the write may have been proposed).
//! The checker then looks for:
//! - **phantoms**: a read shows a value that no operation ever wrote;
//! - **stale reads / lost writes**: a read (a final read after healing, for a lost write)
//!   shows a key at a revision older than a write acknowledged before the read began;
//! - **revision conflicts**: two observations of one key at one revision with different
//!   contents;
//! - **non-linearizable keys**: a Wing–Gong / Porcupine-style search finds no order of a
//!   key's operations, consistent with real time, that a single register explains (each
//!   key is independent, so keys are checked one at a time);
//! - **divergence**: nodes that, after healing, hold different revisions or contents;
//! - **data-plane gaps**: a call that failed on a node while nothing disturbed that node.
//!
//! Every anomaly carries a minimal history around it for the failure message.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Mutex;
use std::time::Instant;

/// Microseconds since the history began.
pub type Micros = u64;
/// An operation that never completed is taken to return at the end of time.
pub const NEVER: Micros = u64::MAX;

/// What a register (one server name) holds: which deploy wrote the spec (its unique
/// marker, carried in the spec's `description`) and the replica count.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Value {
    pub marker: String,
    pub replicas: u32,
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.marker, self.replicas)
    }
}

/// A registry operation on one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// PutServer; `expected` is the compare-and-set guard (0: must not exist).
    Deploy {
        key: String,
        value: Value,
        expected: Option<u64>,
    },
    Scale {
        key: String,
        replicas: u32,
    },
    Undeploy {
        key: String,
    },
    /// A linearizable read; `last` marks the reads made after every fault was healed and
    /// every client stopped (an older value there means an acknowledged write was lost).
    Read {
        key: String,
        last: bool,
    },
}

impl Op {
    pub fn key(&self) -> &str {
        match self {
            Op::Deploy { key, .. }
            | Op::Scale { key, .. }
            | Op::Undeploy { key }
            | Op::Read { key, .. } => key,
        }
    }

    fn is_write(&self) -> bool {
        !matches!(self, Op::Read { .. })
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Deploy {
                key,
                value,
                expected: None,
            } => write!(f, "deploy {key}={value}"),
            Op::Deploy {
                key,
                value,
                expected: Some(e),
            } => write!(f, "cas {key}={value} if rev={e}"),
            Op::Scale { key, replicas } => write!(f, "scale {key} to {replicas}"),
            Op::Undeploy { key } => write!(f, "undeploy {key}"),
            Op::Read { key, last: false } => write!(f, "read {key}"),
            Op::Read { key, last: true } => write!(f, "final read {key}"),
        }
    }
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A write was committed at this registry revision.
    Written { revision: u64 },
    /// A read saw the key absent, or present with this value at this `mod_revision`.
    Read(Option<(Value, u64)>),
    /// The key did not exist (scale, undeploy); nothing changed.
    NotFound,
    /// The compare-and-set guard failed: the key was at `actual` (0: absent); nothing
    /// changed.
    RevisionMismatch { actual: u64 },
    /// Refused before it could change anything (invalid input, say); carries no
    /// information about the state.
    Refused(String),
    /// It may or may not have taken effect.
    Unknown(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Written { revision } => write!(f, "ok rev={revision}"),
            Outcome::Read(None) => write!(f, "ok absent"),
            Outcome::Read(Some((v, r))) => write!(f, "ok {v} rev={r}"),
            Outcome::NotFound => write!(f, "fail not_found"),
            Outcome::RevisionMismatch { actual } => write!(f, "fail mismatch actual={actual}"),
            Outcome::Refused(e) => write!(f, "fail {e}"),
            Outcome::Unknown(e) => write!(f, "unknown ({e})"),
        }
    }
}

/// One operation of the history.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: usize,
    pub client: usize,
    /// The node the client sent it to.
    pub node: u64,
    pub op: Op,
    pub invoke: Micros,
    /// `NEVER` until completed (and for unknown outcomes, whatever the client saw).
    pub complete: Micros,
    /// None while in flight.
    pub outcome: Option<Outcome>,
}

impl Event {
    /// The time by which the operation had certainly taken effect, if it did.
    fn ret(&self) -> Micros {
        match &self.outcome {
            Some(Outcome::Unknown(_)) | None => NEVER,
            Some(_) => self.complete,
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = if self.complete == NEVER {
            "…".to_owned()
        } else {
            format!("{:.3}", self.complete as f64 / 1e6)
        };
        let outcome = self
            .outcome
            .as_ref()
            .map_or_else(|| "in flight".to_owned(), ToString::to_string);
        write!(
            f,
            "#{:<5} c{} n{} [{:.3}s, {end}s] {} -> {outcome}",
            self.id,
            self.client,
            self.node,
            self.invoke as f64 / 1e6,
            self.op
        )
    }
}

/// An execute call through the data plane.
#[derive(Debug, Clone)]
pub struct DataCall {
    pub node: u64,
    pub invoke: Micros,
    pub complete: Micros,
    pub error: Option<String>,
}

/// A period in which a node was disturbed by a fault of its own (killed, paused, being
/// restarted): from the fault until the node served a data-plane call again.
#[derive(Debug, Clone)]
pub struct Disturbance {
    pub node: u64,
    pub from: Micros,
    pub to: Micros,
    pub what: String,
}

/// What one node holds after healing (read without confirming leadership).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    pub revision: u64,
    /// Server name -> (value, mod_revision).
    pub servers: BTreeMap<String, (Value, u64)>,
}

/// The recorder shared by clients and the nemesis.
pub struct History {
    start: Instant,
    events: Mutex<Vec<Event>>,
    notes: Mutex<Vec<(Micros, String)>>,
    calls: Mutex<Vec<DataCall>>,
    disturbances: Mutex<Vec<Disturbance>>,
    /// (node, fault began, fault healed, what): turned into disturbances that last until
    /// the node next served a data-plane call.
    node_faults: Mutex<Vec<(u64, Micros, Micros, String)>>,
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

impl History {
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            events: Mutex::new(Vec::new()),
            notes: Mutex::new(Vec::new()),
            calls: Mutex::new(Vec::new()),
            disturbances: Mutex::new(Vec::new()),
            node_faults: Mutex::new(Vec::new()),
        }
    }

    pub fn now(&self) -> Micros {
        self.start.elapsed().as_micros() as Micros
    }

    /// Records an invocation; returns its id for [`History::complete`].
    pub fn invoke(&self, client: usize, node: u64, op: Op) -> usize {
        let invoke = self.now();
        let mut events = self.events.lock().unwrap();
        let id = events.len();
        events.push(Event {
            id,
            client,
            node,
            op,
            invoke,
            complete: NEVER,
            outcome: None,
        });
        id
    }

    pub fn complete(&self, id: usize, outcome: Outcome) {
        let now = self.now();
        let mut events = self.events.lock().unwrap();
        events[id].complete = now;
        events[id].outcome = Some(outcome);
    }

    /// A nemesis action or other event worth showing next to the operations.
    pub fn note(&self, text: impl Into<String>) {
        let now = self.now();
        self.notes.lock().unwrap().push((now, text.into()));
    }

    pub fn data_call(&self, call: DataCall) {
        self.calls.lock().unwrap().push(call);
    }

    pub fn disturbed(&self, d: Disturbance) {
        self.disturbances.lock().unwrap().push(d);
    }

    /// A fault of node `node` itself (killed, paused, restarted) from `from` until it was
    /// undone at `healed`: the node counts as disturbed until it next serves a data-plane
    /// call, since a restarted node needs time to come back.
    pub fn node_fault(&self, node: u64, from: Micros, healed: Micros, what: impl Into<String>) {
        self.node_faults
            .lock()
            .unwrap()
            .push((node, from, healed, what.into()));
    }

    fn all_disturbances(&self) -> Vec<Disturbance> {
        let calls = self.calls.lock().unwrap();
        let mut all = self.disturbances.lock().unwrap().clone();
        for (node, from, healed, what) in self.node_faults.lock().unwrap().iter() {
            let to = calls
                .iter()
                .filter(|c| c.node == *node && c.error.is_none() && c.invoke >= *healed)
                .map(|c| c.invoke)
                .min()
                .unwrap_or(NEVER);
            all.push(Disturbance {
                node: *node,
                from: *from,
                to,
                what: what.clone(),
            });
        }
        all
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    pub fn notes(&self) -> Vec<(Micros, String)> {
        self.notes.lock().unwrap().clone()
    }

    /// Checks everything recorded, plus the nodes' final states.
    pub fn check(&self, finals: &BTreeMap<u64, NodeState>) -> Report {
        let mut report = check_operations(&self.events());
        report.extend(check_convergence(finals));
        let disturbances = self.all_disturbances();
        report.extend(check_data_plane(&self.calls.lock().unwrap(), &disturbances));
        report.notes = self.notes();
        report
    }

    /// Counts of outcomes, for the run summary.
    pub fn summary(&self) -> String {
        let events = self.events();
        let mut counts = BTreeMap::<&str, usize>::new();
        for e in &events {
            let kind = match e.outcome {
                Some(Outcome::Written { .. }) | Some(Outcome::Read(_)) => "ok",
                Some(Outcome::NotFound)
                | Some(Outcome::RevisionMismatch { .. })
                | Some(Outcome::Refused(_)) => "fail",
                Some(Outcome::Unknown(_)) | None => "unknown",
            };
            *counts.entry(kind).or_default() += 1;
        }
        let calls = self.calls.lock().unwrap();
        let failed = calls.iter().filter(|c| c.error.is_some()).count();
        format!(
            "{} operations {counts:?}, {} keys; {} data-plane calls ({failed} failed)",
            events.len(),
            events
                .iter()
                .map(|e| e.op.key())
                .collect::<HashSet<_>>()
                .len(),
            calls.len()
        )
    }
}

/// The kinds of anomaly the checker reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AnomalyKind {
    Phantom,
    StaleRead,
    LostWrite,
    RevisionConflict,
    NotLinearizable,
    Divergence,
    DataPlaneGap,
    /// The search gave up (history too long); never silently counted as a pass.
    Inconclusive,
}

#[derive(Debug, Clone)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    pub message: String,
    /// The operations around the anomaly.
    pub context: Vec<String>,
}

/// The checker's verdict.
#[derive(Debug, Default)]
pub struct Report {
    pub anomalies: Vec<Anomaly>,
    pub notes: Vec<(Micros, String)>,
    /// Keys checked and the search steps they took.
    pub keys_checked: usize,
    pub search_steps: u64,
}

impl Report {
    fn extend(&mut self, other: Report) {
        self.anomalies.extend(other.anomalies);
        self.keys_checked += other.keys_checked;
        self.search_steps += other.search_steps;
    }

    pub fn kinds(&self) -> Vec<AnomalyKind> {
        let mut kinds: Vec<_> = self.anomalies.iter().map(|a| a.kind).collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }

    pub fn has(&self, kind: AnomalyKind) -> bool {
        self.anomalies.iter().any(|a| a.kind == kind)
    }

    pub fn is_ok(&self) -> bool {
        self.anomalies.is_empty()
    }

    /// Panics with every anomaly and its surrounding history.
    pub fn assert_ok(&self) {
        if !self.is_ok() {
            panic!("history check failed:\n{self}");
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.anomalies.is_empty() {
            return write!(f, "no anomalies ({} keys checked)", self.keys_checked);
        }
        for a in &self.anomalies {
            writeln!(f, "{:?}: {}", a.kind, a.message)?;
            for line in &a.context {
                writeln!(f, "    {line}")?;
            }
        }
        if !self.notes.is_empty() {
            writeln!(f, "nemesis:")?;
            for (t, n) in &self.notes {
                writeln!(f, "    {:.3}s {n}", *t as f64 / 1e6)?;
            }
        }
        Ok(())
    }
}

/// Longest history of one key the search is asked to order (the nemesis rotates keys
/// well below this).
const MAX_OPS_PER_KEY: usize = 400;
/// Search steps per key before the checker calls the key inconclusive.
const MAX_STEPS_PER_KEY: u64 = 5_000_000;

/// Checks the registry operations key by key.
pub fn check_operations(events: &[Event]) -> Report {
    let mut report = Report::default();
    let mut by_key: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for e in events {
        by_key.entry(e.op.key()).or_default().push(e);
    }
    let markers: HashSet<&str> = events
        .iter()
        .filter_map(|e| match (&e.op, &e.outcome) {
            (
                _,
                Some(Outcome::NotFound)
                | Some(Outcome::RevisionMismatch { .. })
                | Some(Outcome::Refused(_)),
            ) => None,
            (Op::Deploy { value, .. }, _) => Some(value.marker.as_str()),
            _ => None,
        })
        .collect();
    for (key, ops) in by_key {
        report.keys_checked += 1;
        let before = report.anomalies.len();
        phantoms(key, &ops, &markers, &mut report);
        stale_reads(key, &ops, &mut report);
        revision_conflicts(key, &ops, &mut report);
        if report.anomalies.len() == before || ops.len() <= MAX_OPS_PER_KEY {
            let (anomaly, steps) = linearizable(key, &ops);
            report.search_steps += steps;
            report.anomalies.extend(anomaly);
        }
    }
    report
}

fn context_of(ops: &[&Event], around: &[usize]) -> Vec<String> {
    // Every operation of the key that overlaps the window spanned by the named ones.
    let named: Vec<&&Event> = ops.iter().filter(|e| around.contains(&e.id)).collect();
    let from = named.iter().map(|e| e.invoke).min().unwrap_or(0);
    let to = named
        .iter()
        .map(|e| {
            if e.complete == NEVER {
                e.invoke
            } else {
                e.complete
            }
        })
        .max()
        .unwrap_or(0);
    let mut lines: Vec<(Micros, String)> = ops
        .iter()
        .filter(|e| e.invoke <= to && e.complete >= from)
        .map(|e| {
            let mark = if around.contains(&e.id) { "=>" } else { "  " };
            (e.invoke, format!("{mark} {e}"))
        })
        .collect();
    lines.sort();
    const MAX_LINES: usize = 30;
    if lines.len() > MAX_LINES {
        // Keep the named ones and their nearest neighbours.
        let keep: Vec<usize> = lines
            .iter()
            .enumerate()
            .filter(|(_, (_, l))| l.starts_with("=>"))
            .map(|(i, _)| i)
            .collect();
        lines = lines
            .into_iter()
            .enumerate()
            .filter(|(i, _)| keep.iter().any(|k| i.abs_diff(*k) <= 3))
            .map(|(_, l)| l)
            .collect();
    }
    lines.into_iter().map(|(_, l)| l).collect()
}

fn phantoms(key: &str, ops: &[&Event], markers: &HashSet<&str>, report: &mut Report) {
    for e in ops {
        if let Some(Outcome::Read(Some((value, rev)))) = &e.outcome {
            if !markers.contains(value.marker.as_str()) {
                report.anomalies.push(Anomaly {
                    kind: AnomalyKind::Phantom,
                    message: format!(
                        "{key}: read #{} saw {value} at rev {rev}, which no operation wrote",
                        e.id
                    ),
                    context: context_of(ops, &[e.id]),
                });
            }
        }
    }
}

/// A read must show the key at a revision no older than any write to it acknowledged
/// before the read began (revisions only grow; a deleted key comes back at a new one).
fn stale_reads(key: &str, ops: &[&Event], report: &mut Report) {
    let acked: Vec<(&Event, u64)> = ops
        .iter()
        .filter_map(|e| match e.outcome {
            Some(Outcome::Written { revision }) => Some((*e, revision)),
            _ => None,
        })
        .collect();
    for r in ops {
        let Some(Outcome::Read(seen)) = &r.outcome else {
            continue;
        };
        let last = matches!(r.op, Op::Read { last: true, .. });
        // The newest write acknowledged before the read began.
        let Some((w, w_rev)) = acked
            .iter()
            .filter(|(w, _)| w.complete < r.invoke)
            .max_by_key(|(_, rev)| *rev)
        else {
            continue;
        };
        let stale = match seen {
            Some((_, rev)) => rev < w_rev,
            // Absent is fine if that write was a delete, or if a delete may have taken
            // effect after it.
            None => {
                !matches!(w.op, Op::Undeploy { .. })
                    && !ops.iter().any(|u| {
                        matches!(u.op, Op::Undeploy { .. })
                            && !matches!(
                                u.outcome,
                                Some(Outcome::NotFound) | Some(Outcome::Refused(_))
                            )
                            && u.invoke < r.complete
                            && u.ret() > w.invoke
                    })
            }
        };
        if stale {
            let shown = seen
                .as_ref()
                .map_or("absent".to_owned(), |(v, rev)| format!("{v} at rev {rev}"));
            report.anomalies.push(Anomaly {
                kind: if last {
                    AnomalyKind::LostWrite
                } else {
                    AnomalyKind::StaleRead
                },
                message: if last {
                    format!(
                        "{key}: write #{} was acknowledged at rev {w_rev}, but after healing the key is {shown}",
                        w.id
                    )
                } else {
                    format!(
                        "{key}: read #{} began after write #{} was acknowledged at rev {w_rev}, but saw {shown}",
                        r.id, w.id
                    )
                },
                context: context_of(ops, &[w.id, r.id]),
            });
        }
    }
}

/// At one revision a key has one content: observations that disagree are a conflict.
fn revision_conflicts(key: &str, ops: &[&Event], report: &mut Report) {
    // rev -> (what was seen, by which op): a value, or only the replicas (a scale's ack),
    // or the marker (a compare-and-set deploy's ack).
    type Seen = (usize, Option<String>, Option<u32>);
    let mut seen: BTreeMap<u64, Vec<Seen>> = BTreeMap::new();
    for e in ops {
        match (&e.op, &e.outcome) {
            (_, Some(Outcome::Read(Some((v, rev))))) => {
                seen.entry(*rev)
                    .or_default()
                    .push((e.id, Some(v.marker.clone()), Some(v.replicas)))
            }
            (Op::Deploy { value, .. }, Some(Outcome::Written { revision })) => seen
                .entry(*revision)
                .or_default()
                .push((e.id, Some(value.marker.clone()), Some(value.replicas))),
            (Op::Scale { replicas, .. }, Some(Outcome::Written { revision })) => seen
                .entry(*revision)
                .or_default()
                .push((e.id, None, Some(*replicas))),
            _ => {}
        }
    }
    for (rev, obs) in seen {
        for pair in obs.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            fn differ<T: PartialEq>(x: &Option<T>, y: &Option<T>) -> bool {
                x.is_some() && y.is_some() && x != y
            }
            if differ(&a.1, &b.1) || differ(&a.2, &b.2) {
                report.anomalies.push(Anomaly {
                    kind: AnomalyKind::RevisionConflict,
                    message: format!(
                        "{key}: #{} and #{} disagree on what the key held at rev {rev}",
                        a.0, b.0
                    ),
                    context: context_of(ops, &[a.0, b.0]),
                });
                break;
            }
        }
    }
}

/// The register's revision as the model knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Rev {
    Exact(u64),
    /// Written by a repeatable write (a plain deploy or a scale, which a node may apply
    /// twice when a leader dies mid-write) or by a write of unknown outcome: any revision.
    Any,
}

impl Rev {
    fn matches(self, r: u64) -> bool {
        match self {
            Rev::Exact(x) => x == r,
            Rev::Any => r != 0,
        }
    }
}

type State = Option<(Value, Rev)>;

/// The states a register can be in after `e` ran from `s` (empty: `e` cannot run here).
fn step(s: &State, e: &Event) -> Vec<State> {
    let unknown = matches!(e.outcome, Some(Outcome::Unknown(_)) | None);
    match (&e.op, &e.outcome) {
        (_, Some(Outcome::Refused(_))) => vec![s.clone()],
        (Op::Read { .. }, Some(Outcome::Read(seen))) => {
            let ok = match (s, seen) {
                (None, None) => true,
                (Some((v, rev)), Some((sv, sr))) => v == sv && rev.matches(*sr),
                _ => false,
            };
            if ok {
                vec![s.clone()]
            } else {
                vec![]
            }
        }
        // A read with no answer observed nothing.
        (Op::Read { .. }, _) => vec![s.clone()],
        (
            Op::Deploy {
                value, expected, ..
            },
            outcome,
        ) => {
            let guard_holds = match (expected, s) {
                (None, _) => true,
                (Some(0), None) => true,
                (Some(0), Some(_)) | (Some(_), None) => false,
                (Some(e), Some((_, rev))) => rev.matches(*e),
            };
            // A deploy that needs no guard to hold may also have been guarded out when
            // the model's revision is only "any": keep both branches then.
            let guard_fails = match (expected, s) {
                (None, _) => false,
                (Some(0), None) => false,
                (Some(_), None) | (Some(0), Some(_)) => true,
                (Some(e), Some((_, Rev::Exact(x)))) => x != e,
                (Some(_), Some((_, Rev::Any))) => true,
            };
            match outcome {
                Some(Outcome::Written { revision }) if guard_holds => {
                    let rev = if expected.is_some() {
                        Rev::Exact(*revision)
                    } else {
                        Rev::Any
                    };
                    vec![Some((value.clone(), rev))]
                }
                Some(Outcome::RevisionMismatch { actual }) if guard_fails => {
                    let consistent = match s {
                        None => *actual == 0,
                        Some((_, rev)) => rev.matches(*actual),
                    };
                    if consistent {
                        vec![s.clone()]
                    } else {
                        vec![]
                    }
                }
                _ if unknown => {
                    let mut next = vec![s.clone()];
                    if guard_holds {
                        next.push(Some((value.clone(), Rev::Any)));
                    }
                    next
                }
                _ => vec![],
            }
        }
        (Op::Scale { replicas, .. }, outcome) => match (outcome, s) {
            (Some(Outcome::Written { .. }), Some((v, _))) => vec![Some((
                Value {
                    marker: v.marker.clone(),
                    replicas: *replicas,
                },
                Rev::Any,
            ))],
            (Some(Outcome::NotFound), None) => vec![None],
            (_, Some((v, _))) if unknown => vec![
                s.clone(),
                Some((
                    Value {
                        marker: v.marker.clone(),
                        replicas: *replicas,
                    },
                    Rev::Any,
                )),
            ],
            (_, None) if unknown => vec![None],
            _ => vec![],
        },
        (Op::Undeploy { .. }, outcome) => match (outcome, s) {
            (Some(Outcome::Written { .. }), Some(_)) => vec![None],
            (Some(Outcome::NotFound), None) => vec![None],
            (_, Some(_)) if unknown => vec![s.clone(), None],
            (_, None) if unknown => vec![None],
            _ => vec![],
        },
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
    fn count(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }
}

/// Wing–Gong search with Lowe's memoization (as in Porcupine): walk the call/return
/// entries in time order; at a call, try to linearize that operation now; at a return
/// of an operation not yet linearized, undo the last choice. Operations with unknown
/// outcomes return at the end of time and may be linearized as no-ops.
fn linearizable(key: &str, ops: &[&Event]) -> (Option<Anomaly>, u64) {
    // Operations that provably changed nothing and observed nothing are left out.
    let ops: Vec<&Event> = ops
        .iter()
        .copied()
        .filter(|e| !matches!(e.outcome, Some(Outcome::Refused(_))))
        .filter(|e| e.op.is_write() || matches!(e.outcome, Some(Outcome::Read(_))))
        .collect();
    let n = ops.len();
    // Entries: (time, is_return, op index). Calls sort before returns at the same time,
    // so operations that touch in time count as concurrent.
    let mut entries: Vec<(Micros, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, e) in ops.iter().enumerate() {
        entries.push((e.invoke, false, i));
        entries.push((e.ret(), true, i));
    }
    entries.sort();
    // Doubly linked list over the entries, with a head sentinel at index `len`.
    let len = entries.len();
    let head = len;
    let mut next: Vec<usize> = (0..=len)
        .map(|i| match i {
            i if i == head => {
                if len > 0 {
                    0
                } else {
                    usize::MAX
                }
            }
            i if i + 1 < len => i + 1,
            _ => usize::MAX,
        })
        .collect();
    let mut prev: Vec<usize> = (0..=len)
        .map(|i| match i {
            i if i == head => usize::MAX,
            0 => head,
            i => i - 1,
        })
        .collect();
    let mut ret_entry = vec![0usize; n];
    for (idx, (_, is_ret, op)) in entries.iter().enumerate() {
        if *is_ret {
            ret_entry[*op] = idx;
        }
    }
    let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, i: usize| {
        let (p, nx) = (prev[i], next[i]);
        next[p] = nx;
        if nx != usize::MAX {
            prev[nx] = p;
        }
    };
    let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, i: usize| {
        let (p, nx) = (prev[i], next[i]);
        next[p] = i;
        if nx != usize::MAX {
            prev[nx] = i;
        }
    };

    let mut state: State = None;
    let mut done = Bits::new(n);
    let mut cache: HashSet<(Bits, State)> = HashSet::new();
    // (call entry, state before, alternative taken)
    let mut stack: Vec<(usize, State, usize)> = Vec::new();
    let mut entry = next[head];
    let mut start_alt = 0;
    let mut steps = 0u64;
    // The deepest point reached, for the report.
    let mut best = (0u32, Vec::<usize>::new(), None::<usize>);
    loop {
        if next[head] == usize::MAX {
            return (None, steps);
        }
        steps += 1;
        if steps > MAX_STEPS_PER_KEY {
            return (
                Some(Anomaly {
                    kind: AnomalyKind::Inconclusive,
                    message: format!(
                        "{key}: {n} operations, search gave up after {MAX_STEPS_PER_KEY} steps"
                    ),
                    context: Vec::new(),
                }),
                steps,
            );
        }
        let (_, is_ret, op) = entries[entry];
        if !is_ret {
            let mut advanced = false;
            for (k, ns) in step(&state, ops[op])
                .into_iter()
                .enumerate()
                .skip(start_alt)
            {
                let mut nd = done.clone();
                nd.set(op);
                if cache.insert((nd.clone(), ns.clone())) {
                    stack.push((entry, state.clone(), k));
                    state = ns;
                    done = nd;
                    unlink(&mut next, &mut prev, entry);
                    unlink(&mut next, &mut prev, ret_entry[op]);
                    entry = next[head];
                    advanced = true;
                    break;
                }
            }
            start_alt = 0;
            if !advanced {
                entry = next[entry];
            }
        } else {
            // An operation returned before any order could place it.
            let depth = done.count();
            if depth >= best.0 {
                best = (
                    depth,
                    stack
                        .iter()
                        .map(|(e, _, _)| ops[entries[*e].2].id)
                        .collect(),
                    Some(ops[op].id),
                );
            }
            let Some((call, before, alt)) = stack.pop() else {
                break;
            };
            let cop = entries[call].2;
            relink(&mut next, &mut prev, ret_entry[cop]);
            relink(&mut next, &mut prev, call);
            state = before;
            done.clear(cop);
            entry = call;
            start_alt = alt + 1;
        }
    }
    let (_, order, stuck) = best;
    let mut around: Vec<usize> = order.iter().rev().take(4).copied().collect();
    around.extend(stuck);
    let tail: Vec<String> = order
        .iter()
        .rev()
        .take(6)
        .rev()
        .map(|id| format!("#{id}"))
        .collect();
    (
        Some(Anomaly {
            kind: AnomalyKind::NotLinearizable,
            message: format!(
                "{key}: no order of its {n} operations fits one register; the longest order found ends ..{} and cannot place #{}",
                tail.join(", "),
                stuck.map_or("?".to_owned(), |s| s.to_string())
            ),
            context: context_of(&ops, &around),
        }),
        steps,
    )
}

/// Every node must hold the same revision and the same servers after healing.
pub fn check_convergence(finals: &BTreeMap<u64, NodeState>) -> Report {
    let mut report = Report::default();
    let Some((first_id, first)) = finals.iter().next() else {
        return report;
    };
    for (id, state) in finals.iter().skip(1) {
        if state == first {
            continue;
        }
        let mut context = vec![format!(
            "node {first_id} at rev {}, node {id} at rev {}",
            first.revision, state.revision
        )];
        let keys: std::collections::BTreeSet<&String> =
            first.servers.keys().chain(state.servers.keys()).collect();
        for key in keys {
            let (a, b) = (first.servers.get(key), state.servers.get(key));
            if a != b {
                let show = |s: Option<&(Value, u64)>| {
                    s.map_or("absent".to_owned(), |(v, r)| format!("{v} rev={r}"))
                };
                context.push(format!(
                    "{key}: node {first_id} {} | node {id} {}",
                    show(a),
                    show(b)
                ));
            }
        }
        report.anomalies.push(Anomaly {
            kind: AnomalyKind::Divergence,
            message: format!("node {id} differs from node {first_id} after healing"),
            context,
        });
    }
    report
}

/// A data-plane call may fail only while its node was disturbed by a fault of its own.
pub fn check_data_plane(calls: &[DataCall], disturbances: &[Disturbance]) -> Report {
    let mut report = Report::default();
    for c in calls {
        let Some(error) = &c.error else { continue };
        let excused = disturbances
            .iter()
            .any(|d| d.node == c.node && d.from <= c.complete && d.to >= c.invoke);
        if !excused {
            let mut context: Vec<String> = disturbances
                .iter()
                .filter(|d| d.node == c.node)
                .map(|d| {
                    format!(
                        "node {} disturbed [{:.3}s, {:.3}s]: {}",
                        d.node,
                        d.from as f64 / 1e6,
                        d.to as f64 / 1e6,
                        d.what
                    )
                })
                .collect();
            let mut nearby: Vec<&DataCall> = calls
                .iter()
                .filter(|o| o.node == c.node && o.invoke.abs_diff(c.invoke) < 3_000_000)
                .collect();
            nearby.sort_by_key(|o| o.invoke);
            context.extend(nearby.iter().map(|o| {
                format!(
                    "call n{} [{:.3}s, {:.3}s] {}",
                    o.node,
                    o.invoke as f64 / 1e6,
                    o.complete as f64 / 1e6,
                    o.error.as_deref().unwrap_or("ok")
                )
            }));
            report.anomalies.push(Anomaly {
                kind: AnomalyKind::DataPlaneGap,
                message: format!(
                    "a call through undisturbed node {} failed at {:.3}s: {error}",
                    c.node,
                    c.invoke as f64 / 1e6
                ),
                context,
            });
        }
    }
    report
}

/// Builds histories by hand (for the checker's own tests): times in milliseconds.
pub struct Script {
    events: Vec<Event>,
}

impl Default for Script {
    fn default() -> Self {
        Self::new()
    }
}

impl Script {
    pub fn new() -> Self {
        Self { events: Vec::new() }
    }

    /// Adds an operation by `client` over [from_ms, to_ms] (`to_ms` None: unknown).
    pub fn op(
        &mut self,
        client: usize,
        from_ms: u64,
        to_ms: Option<u64>,
        op: Op,
        outcome: Outcome,
    ) -> &mut Self {
        let id = self.events.len();
        self.events.push(Event {
            id,
            client,
            node: 1,
            op,
            invoke: from_ms * 1000,
            complete: to_ms.map_or(NEVER, |t| t * 1000),
            outcome: Some(outcome),
        });
        self
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }
}

/// A value with a marker and replica count, for hand-made histories.
pub fn val(marker: &str, replicas: u32) -> Value {
    Value {
        marker: marker.to_owned(),
        replicas,
    }
}

/// A hand-made server entry: (name, value, mod_revision).
pub type Entry<'a> = (&'a str, Value, u64);

/// Final node states from (node, revision, entries).
pub fn finals(nodes: &[(u64, u64, &[Entry])]) -> BTreeMap<u64, NodeState> {
    nodes
        .iter()
        .map(|(id, rev, servers)| {
            (
                *id,
                NodeState {
                    revision: *rev,
                    servers: servers
                        .iter()
                        .map(|(k, v, r)| ((*k).to_owned(), (v.clone(), *r)))
                        .collect(),
                },
            )
        })
        .collect()
}

/// Groups anomalies by kind (for summaries).
pub fn count_kinds(report: &Report) -> HashMap<AnomalyKind, usize> {
    let mut m = HashMap::new();
    for a in &report.anomalies {
        *m.entry(a.kind).or_default() += 1;
    }
    m
}
