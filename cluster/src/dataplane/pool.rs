//! The instances this node runs, grouped by server, and the choice of one per request.
//!
//! Choice: among instances that are running, healthy, not yet tried for this request and
//! admitted by their circuit breaker, take two at random and use the one with fewer
//! requests in flight ("power of two choices": close to least-loaded, without a global
//! scan or lock). An instance at its in-flight limit is skipped; when every candidate is
//! skipped the caller learns why (saturated, breaker open, or nothing healthy).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use rand::seq::SliceRandom;
use tokio::sync::Notify;

use super::instance::{InFlight, Instance};
use super::upstream::Session;

/// Local instances by server.
#[derive(Default)]
pub struct InstancePool {
    by_server: RwLock<HashMap<String, Vec<Arc<Instance>>>>,
    changes: Arc<Notify>,
}

/// A chosen instance, its session, and its in-flight slot (released on drop).
pub struct Chosen {
    /// The instance.
    pub instance: Arc<Instance>,
    /// Its live session.
    pub session: Arc<Session>,
    /// Holds the in-flight slot; the breaker permit is reported by the caller.
    pub _slot: InFlight,
}

/// Why no instance was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoChoice {
    /// This node has no instance of the server.
    NoLocalInstance,
    /// Every usable instance is at its in-flight limit.
    Saturated,
    /// Every usable instance's breaker refused.
    CircuitOpen,
    /// Instances exist but none is running and healthy (or all were tried).
    NoneHealthy,
}

impl InstancePool {
    /// Notified whenever an instance of this pool changes lifecycle state; hand it to
    /// [`Instance::start`].
    pub fn changes(&self) -> &Arc<Notify> {
        &self.changes
    }

    /// The instances of `server` on this node.
    pub fn instances(&self, server: &str) -> Vec<Arc<Instance>> {
        self.by_server
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(server)
            .cloned()
            .unwrap_or_default()
    }

    /// Every local instance, by id.
    pub fn all(&self) -> BTreeMap<String, Arc<Instance>> {
        self.by_server
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .flatten()
            .map(|i| (i.id.clone(), Arc::clone(i)))
            .collect()
    }

    /// Adds a started instance.
    pub fn insert(&self, instance: Arc<Instance>) {
        self.by_server
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(instance.server.clone())
            .or_default()
            .push(instance);
    }

    /// Removes an instance from rotation (the caller stops it).
    pub fn remove(&self, id: &str) -> Option<Arc<Instance>> {
        let mut by_server = self.by_server.write().unwrap_or_else(|e| e.into_inner());
        let mut removed = None;
        by_server.retain(|_, instances| {
            if let Some(pos) = instances.iter().position(|i| i.id == id) {
                removed = Some(instances.remove(pos));
            }
            !instances.is_empty()
        });
        removed
    }

    /// Picks an instance of `server` that is not in `tried`.
    pub fn choose(&self, server: &str, tried: &[String], limit: usize) -> Result<Chosen, NoChoice> {
        let instances = self.instances(server);
        if instances.is_empty() {
            return Err(NoChoice::NoLocalInstance);
        }
        let mut candidates: Vec<(Arc<Instance>, Arc<Session>)> = instances
            .into_iter()
            .filter(|i| !tried.contains(&i.id))
            .filter_map(|i| i.usable_session().map(|s| (i, s)))
            .collect();
        let (mut saturated, mut open) = (false, false);
        while !candidates.is_empty() {
            let index = pick_two(&candidates);
            let (instance, session) = candidates.swap_remove(index);
            let Some(slot) = instance.try_begin(limit) else {
                saturated = true;
                continue;
            };
            // The slot comes first so that a refused breaker permit is never taken.
            if !instance.breaker.try_acquire() {
                open = true;
                continue;
            }
            return Ok(Chosen {
                instance,
                session,
                _slot: slot,
            });
        }
        Err(if saturated {
            NoChoice::Saturated
        } else if open {
            NoChoice::CircuitOpen
        } else {
            NoChoice::NoneHealthy
        })
    }
}

/// Index of the less loaded of two random candidates.
fn pick_two(candidates: &[(Arc<Instance>, Arc<Session>)]) -> usize {
    if candidates.len() == 1 {
        return 0;
    }
    let mut rng = rand::thread_rng();
    let indexes: Vec<usize> = (0..candidates.len()).collect();
    let two: Vec<&usize> = indexes.choose_multiple(&mut rng, 2).collect();
    let (a, b) = (*two[0], *two[1]);
    if candidates[b].0.in_flight() < candidates[a].0.in_flight() {
        b
    } else {
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::instance::InstanceState;
    use crate::testing::{eventually, quick_config, start_instance, SERVE};

    /// Instances of server `s`, each running [`SERVE`] and in rotation.
    async fn pool_of_running(ids: &[&str]) -> InstancePool {
        let pool = InstancePool::default();
        for id in ids {
            let instance = start_instance(id, SERVE, &quick_config());
            eventually("the instance to be usable", || {
                instance.usable_session().is_some()
            })
            .await;
            pool.insert(instance);
        }
        pool
    }

    async fn stop_all(pool: &InstancePool) {
        for instance in pool.all().into_values() {
            instance.stop().await;
        }
    }

    /// The instance chosen for each of `n` requests, one after another.
    fn choices(pool: &InstancePool, tried: &[String], n: usize) -> Vec<String> {
        (0..n)
            .map(|_| match pool.choose("s", tried, 8) {
                Ok(chosen) => chosen.instance.id.clone(),
                Err(why) => panic!("nothing chosen: {why:?}"),
            })
            .collect()
    }

    fn instance(pool: &InstancePool, id: &str) -> Arc<Instance> {
        pool.all().remove(id).expect("instance in the pool")
    }

    #[tokio::test]
    async fn an_instance_already_tried_for_the_request_is_never_chosen_again() {
        let pool = pool_of_running(&["a", "b"]).await;
        assert_eq!(choices(&pool, &["a".into()], 20), vec!["b"; 20]);
        let both = ["a".to_owned(), "b".to_owned()];
        assert_eq!(
            pool.choose("s", &both, 8).err(),
            Some(NoChoice::NoneHealthy)
        );
        stop_all(&pool).await;
    }

    #[tokio::test]
    async fn of_two_instances_the_less_loaded_is_chosen() {
        let pool = pool_of_running(&["a", "b"]).await;
        let a = instance(&pool, "a");
        let busy: Vec<InFlight> = (0..3).filter_map(|_| a.try_begin(8)).collect();
        assert_eq!(choices(&pool, &[], 20), vec!["b"; 20]);
        drop(busy);
        let b = instance(&pool, "b");
        let busy = b.try_begin(8);
        assert_eq!(choices(&pool, &[], 20), vec!["a"; 20]);
        drop(busy);
        stop_all(&pool).await;
    }

    #[tokio::test]
    async fn why_nothing_was_chosen_names_the_reason() {
        let empty = InstancePool::default();
        assert_eq!(
            empty.choose("s", &[], 8).err(),
            Some(NoChoice::NoLocalInstance)
        );

        let pool = pool_of_running(&["a", "b"]).await;
        let (a, b) = (instance(&pool, "a"), instance(&pool, "b"));
        let held = (a.try_begin(1), b.try_begin(1));
        assert_eq!(pool.choose("s", &[], 1).err(), Some(NoChoice::Saturated));
        drop(held);
        // One saturated, the other's breaker open: more capacity would help, so saturated.
        let held = a.try_begin(1);
        b.breaker.trip();
        assert_eq!(pool.choose("s", &[], 1).err(), Some(NoChoice::Saturated));
        drop(held);
        a.breaker.trip();
        assert_eq!(pool.choose("s", &[], 1).err(), Some(NoChoice::CircuitOpen));
        stop_all(&pool).await;

        let crashing = InstancePool::default();
        let broken = start_instance("c", "exit 1", &quick_config());
        crashing.insert(Arc::clone(&broken));
        eventually("a crash loop", || {
            matches!(broken.state(), InstanceState::CrashLoop { .. })
        })
        .await;
        assert_eq!(
            crashing.choose("s", &[], 8).err(),
            Some(NoChoice::NoneHealthy)
        );
        broken.stop().await;
    }

    #[tokio::test]
    async fn a_removed_instance_leaves_rotation() {
        let pool = pool_of_running(&["a", "b"]).await;
        let removed = pool.remove("a").expect("a was in the pool");
        assert_eq!(choices(&pool, &[], 10), vec!["b"; 10]);
        assert!(pool.remove("a").is_none());
        removed.stop().await;
        stop_all(&pool).await;
    }
}
