//! The history checker catches what it claims to: hand-made histories with a lost write,
//! a stale read, a divergent node, a phantom, a non-linearizable compare-and-set pair and
//! a data-plane gap are each reported; valid histories (with concurrency and unknown
//! outcomes) pass.

mod common;

use std::collections::BTreeMap;

use common::history::{
    check_convergence, check_data_plane, check_operations, finals, val, AnomalyKind, DataCall,
    Disturbance, Op, Outcome, Script,
};

fn deploy(key: &str, marker: &str, replicas: u32) -> Op {
    Op::Deploy {
        key: key.into(),
        value: val(marker, replicas),
        expected: None,
    }
}

fn cas(key: &str, marker: &str, expected: u64) -> Op {
    Op::Deploy {
        key: key.into(),
        value: val(marker, 0),
        expected: Some(expected),
    }
}

fn read(key: &str) -> Op {
    Op::Read {
        key: key.into(),
        last: false,
    }
}

fn final_read(key: &str) -> Op {
    Op::Read {
        key: key.into(),
        last: true,
    }
}

fn written(revision: u64) -> Outcome {
    Outcome::Written { revision }
}

fn saw(marker: &str, replicas: u32, rev: u64) -> Outcome {
    Outcome::Read(Some((val(marker, replicas), rev)))
}

#[test]
fn a_valid_concurrent_history_with_unknown_outcomes_passes() {
    let mut h = Script::new();
    h.op(1, 0, Some(10), deploy("a", "v1", 0), written(1))
        // Concurrent CAS and read: the read may see either.
        .op(1, 20, Some(40), cas("a", "v2", 1), written(2))
        .op(2, 25, Some(30), read("a"), saw("v1", 0, 1))
        .op(3, 35, Some(45), read("a"), saw("v2", 0, 2))
        // A CAS that lost, observing the revision.
        .op(
            2,
            50,
            Some(55),
            cas("a", "v3", 1),
            Outcome::RevisionMismatch { actual: 2 },
        )
        // A scale whose answer was lost, then seen by a read.
        .op(
            1,
            60,
            None,
            Op::Scale {
                key: "a".into(),
                replicas: 3,
            },
            Outcome::Unknown("timeout".into()),
        )
        .op(3, 70, Some(80), read("a"), saw("v2", 3, 4))
        // An undeploy of unknown outcome that never took effect, and one that did.
        .op(
            2,
            90,
            None,
            Op::Undeploy { key: "b".into() },
            Outcome::Unknown("unavailable".into()),
        )
        .op(
            2,
            95,
            Some(99),
            Op::Undeploy { key: "a".into() },
            written(5),
        )
        .op(
            1,
            100,
            Some(110),
            Op::Scale {
                key: "a".into(),
                replicas: 1,
            },
            Outcome::NotFound,
        )
        .op(3, 120, Some(130), final_read("a"), Outcome::Read(None))
        .op(3, 120, Some(130), final_read("b"), Outcome::Read(None));
    let report = check_operations(h.events());
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.keys_checked, 2);

    let nodes = finals(&[(1, 5, &[]), (2, 5, &[]), (3, 5, &[])]);
    assert!(check_convergence(&nodes).is_ok());
}

#[test]
fn a_lost_acknowledged_write_is_reported() {
    let mut h = Script::new();
    h.op(1, 0, Some(10), deploy("a", "v1", 0), written(1))
        .op(1, 20, Some(30), cas("a", "v2", 1), written(2))
        // After healing the key is back at the first write: the acknowledged CAS is gone.
        .op(2, 100, Some(110), final_read("a"), saw("v1", 0, 1));
    let report = check_operations(h.events());
    assert!(report.has(AnomalyKind::LostWrite), "{report}");
    assert!(report.has(AnomalyKind::NotLinearizable), "{report}");
    let text = report.to_string();
    assert!(text.contains("cas a=v2x0 if rev=1 -> ok rev=2"), "{text}");

    // A deploy acknowledged, then the key is absent with no delete anywhere.
    let mut h = Script::new();
    h.op(1, 0, Some(10), deploy("k", "v1", 2), written(7)).op(
        2,
        50,
        Some(60),
        final_read("k"),
        Outcome::Read(None),
    );
    let report = check_operations(h.events());
    assert!(report.has(AnomalyKind::LostWrite), "{report}");
}

#[test]
fn a_stale_read_is_reported() {
    let mut h = Script::new();
    h.op(1, 0, Some(10), deploy("a", "v1", 0), written(1))
        .op(
            1,
            20,
            Some(30),
            Op::Scale {
                key: "a".into(),
                replicas: 2,
            },
            written(2),
        )
        // Begins after the scale was acknowledged, sees the state before it.
        .op(2, 40, Some(50), read("a"), saw("v1", 0, 1));
    let report = check_operations(h.events());
    assert!(report.has(AnomalyKind::StaleRead), "{report}");
    assert!(report.has(AnomalyKind::NotLinearizable), "{report}");

    // Stale by value alone (no revision clue: both writes plain deploys): the search
    // finds it.
    let mut h = Script::new();
    h.op(1, 0, Some(10), deploy("a", "v1", 0), written(1))
        .op(1, 20, Some(30), deploy("a", "v2", 0), written(2))
        .op(2, 40, Some(50), read("a"), saw("v1", 0, 2));
    let report = check_operations(h.events());
    assert!(report.has(AnomalyKind::NotLinearizable), "{report}");
    assert!(report.has(AnomalyKind::RevisionConflict), "{report}");
}

#[test]
fn a_divergent_node_is_reported() {
    let a = [("a", val("v1", 0), 3u64)];
    let b = [("a", val("v2", 0), 3u64)];
    let nodes = finals(&[(1, 3, &a), (2, 3, &a), (3, 3, &b)]);
    let report = check_convergence(&nodes);
    assert_eq!(report.kinds(), vec![AnomalyKind::Divergence], "{report}");
    let text = report.to_string();
    assert!(text.contains("node 3 differs"), "{text}");
    assert!(
        text.contains("a: node 1 v1x0 rev=3 | node 3 v2x0 rev=3"),
        "{text}"
    );

    // Behind in revision only.
    let nodes = finals(&[(1, 3, &a), (2, 2, &a)]);
    assert!(check_convergence(&nodes).has(AnomalyKind::Divergence));
}

#[test]
fn a_phantom_value_is_reported() {
    let mut h = Script::new();
    h.op(1, 0, Some(10), deploy("a", "v1", 0), written(1)).op(
        2,
        20,
        Some(30),
        read("a"),
        saw("ghost", 0, 5),
    );
    let report = check_operations(h.events());
    assert!(report.has(AnomalyKind::Phantom), "{report}");
}

#[test]
fn two_winning_compare_and_sets_on_one_revision_are_not_linearizable() {
    let mut h = Script::new();
    h.op(1, 0, Some(10), cas("a", "v1", 0), written(1))
        .op(1, 20, Some(30), cas("a", "v2", 1), written(2))
        .op(2, 21, Some(31), cas("a", "v3", 1), written(3));
    let report = check_operations(h.events());
    assert_eq!(
        report.kinds(),
        vec![AnomalyKind::NotLinearizable],
        "{report}"
    );
    // The minimal history names the operations involved.
    let text = report.to_string();
    assert!(text.contains("cas a=v3x0 if rev=1"), "{text}");
}

#[test]
fn a_data_plane_failure_on_an_undisturbed_node_is_reported() {
    let calls = vec![
        DataCall {
            node: 1,
            invoke: 1_000,
            complete: 2_000,
            error: Some("unavailable".into()),
        },
        DataCall {
            node: 2,
            invoke: 1_000,
            complete: 2_000,
            error: Some("timeout".into()),
        },
        DataCall {
            node: 2,
            invoke: 5_000,
            complete: 6_000,
            error: None,
        },
    ];
    let disturbed = vec![Disturbance {
        node: 1,
        from: 500,
        to: 1_500,
        what: "kill -9".into(),
    }];
    let report = check_data_plane(&calls, &disturbed);
    assert_eq!(report.anomalies.len(), 1, "{report}");
    assert!(
        report.to_string().contains("undisturbed node 2"),
        "{report}"
    );
    let _ = BTreeMap::<u64, u64>::new();
}

#[test]
fn long_histories_of_one_key_are_checked_quickly() {
    // 300 operations by 5 clients in overlapping rounds, with unknown outcomes: the
    // memoized search must settle it (a pass) without giving up.
    let mut h = Script::new();
    let mut rev = 0;
    let mut current = None;
    for round in 0..60u64 {
        let t = round * 100;
        rev += 1;
        let marker = format!("m{round}");
        h.op(0, t, Some(t + 50), deploy("k", &marker, 0), written(rev));
        for c in 1..4 {
            // Concurrent with the deploy: either value.
            let seen = if c % 2 == 0 {
                current.clone()
            } else {
                Some((val(&marker, 0), rev))
            };
            h.op(c, t + 10, Some(t + 40), read("k"), Outcome::Read(seen));
        }
        h.op(
            4,
            t + 5,
            None,
            Op::Scale {
                key: "k".into(),
                replicas: 9,
            },
            Outcome::Unknown("timeout".into()),
        );
        current = Some((val(&marker, 0), rev));
    }
    let report = check_operations(h.events());
    assert!(report.is_ok(), "{report}");
}

#[test]
fn one_bad_read_in_a_long_history_is_found() {
    let mut h = Script::new();
    for round in 0..80u64 {
        let t = round * 100;
        h.op(
            0,
            t,
            Some(t + 50),
            deploy("k", &format!("m{round}"), 0),
            written(round + 1),
        );
        let (marker, rev) = if round == 57 {
            (56, 57)
        } else {
            (round, round + 1)
        };
        h.op(
            1,
            t + 60,
            Some(t + 70),
            read("k"),
            saw(&format!("m{marker}"), 0, rev),
        );
    }
    let report = check_operations(h.events());
    assert!(report.has(AnomalyKind::StaleRead), "{report}");
    assert!(report.has(AnomalyKind::NotLinearizable), "{report}");
    eprintln!("{report}");
}

/// The history the nemesis found (seed 1796024278905980343): a plain deploy forwarded by a
/// follower was committed, its answer lost in a partition, and the follower sent it to
/// the leader again after an acknowledged undeploy, so the deleted server came back.
#[test]
fn a_deleted_server_brought_back_by_a_repeated_deploy_is_reported() {
    let mut h = Script::new();
    h.op(3, 1371, Some(4271), deploy("k", "c3-22", 1), written(22))
        .op(2, 1382, Some(1409), read("k"), saw("c3-22", 1, 18))
        .op(
            2,
            4191,
            Some(4208),
            Op::Undeploy { key: "k".into() },
            written(20),
        )
        .op(1, 4304, Some(4329), read("k"), saw("c3-22", 1, 22));
    let report = check_operations(h.events());
    assert_eq!(
        report.kinds(),
        vec![AnomalyKind::NotLinearizable],
        "{report}"
    );
}
