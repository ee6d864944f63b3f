//! Scale to zero: how many instances an on-demand server wants. A server with
//! `on_demand: true` keeps `replicas` (usually 0) while asleep and at least one instance
//! while awake; `Command::SetAwake` flips it. The scheduler, the router's wait for a
//! starting instance and listings read [`ServerRecord::desired_instances`].

use super::ServerRecord;

impl ServerRecord {
    /// The instances the scheduler places for this server now: `replicas`, or at least one
    /// while an on-demand server is awake.
    pub fn desired_instances(&self) -> u32 {
        if self.spec.on_demand && self.awake {
            self.spec.replicas.max(1)
        } else {
            self.spec.replicas
        }
    }

    /// True if a call to this server should wake it: it is on demand, asleep, and has no
    /// instance of its own.
    pub fn sleeping(&self) -> bool {
        self.spec.on_demand && !self.awake && self.spec.replicas == 0
    }
}

#[cfg(test)]
mod tests {
    use super::super::spec::parse_json;
    use super::super::{Command, Registry};

    #[test]
    fn an_on_demand_server_wants_one_instance_while_awake_only() {
        let mut r = Registry::default();
        let spec = parse_json(r#"{"name": "s", "command": "x", "replicas": 0, "on_demand": true, "idle_timeout_secs": 5}"#).unwrap();
        r.apply(&Command::PutServer {
            spec,
            expected_revision: None,
        })
        .unwrap();
        let record = r.server("s").unwrap();
        assert!(record.sleeping());
        assert_eq!(record.desired_instances(), 0);
        let mod_revision = record.mod_revision;

        r.apply(&Command::SetAwake {
            name: "s".into(),
            awake: true,
        })
        .unwrap();
        let record = r.server("s").unwrap();
        assert!(!record.sleeping());
        assert_eq!(record.desired_instances(), 1);
        // Waking is the system's doing, not a user's change: compare-and-set is undisturbed.
        assert_eq!(record.mod_revision, mod_revision);

        r.apply(&Command::SetAwake {
            name: "s".into(),
            awake: false,
        })
        .unwrap();
        assert_eq!(r.server("s").unwrap().desired_instances(), 0);
        assert!(r
            .apply(&Command::SetAwake {
                name: "nope".into(),
                awake: true
            })
            .is_err());
    }

    #[test]
    fn other_servers_want_their_replicas_whatever_the_flag() {
        let mut r = Registry::default();
        let spec = parse_json(r#"{"name": "s", "command": "x", "replicas": 2}"#).unwrap();
        r.apply(&Command::PutServer {
            spec,
            expected_revision: None,
        })
        .unwrap();
        r.apply(&Command::SetAwake {
            name: "s".into(),
            awake: true,
        })
        .unwrap();
        let record = r.server("s").unwrap();
        assert_eq!(record.desired_instances(), 2);
        assert!(!record.sleeping());
    }
}
