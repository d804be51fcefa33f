//! The replication data plane: leaders serve their followers' fetches and advance the high
//! watermark over the ISR; followers copy their leaders' logs; the ISR shrinks and grows.
//!
//! Who leads each partition, and the committed ISR, are decided elsewhere (the cluster's Raft
//! metadata). This module meets that layer at one seam: [`ClusterLink`] (this broker's id,
//! other brokers' listeners, and `alter_isr` to propose an ISR change to the controller), and
//! [`ReplicaManager::apply`], called with the controller's [`LeaderAndIsr`] of every hosted
//! partition whenever it may have changed. `apply` is idempotent and cheap when nothing
//! changed, so the metadata layer can call it for every partition on every change.
//!
//! Shape, after Kafka's `ReplicaManager`: one fetcher task per source broker
//! ([`fetcher`], like Kafka's replica fetcher threads) fetching all partitions led by that
//! broker in one Fetch v12 request; one ISR task per broker ticking every
//! `replica.lag.time.max.ms / 4` (and woken early when a follower may join the ISR). The
//! per-partition state (role, follower progress, high watermark, epoch cache) lives in
//! [`crate::partition::Partition`], under the same lock as the log, so that appends, fetches and
//! role changes see one consistent state. The Kafka-facing parts (Produce acks=all, replica
//! Fetch, OffsetForLeaderEpoch) are in the request handlers.

mod fetcher;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::partition::{LeaderAndIsr, Partition};

/// What the replication layer needs from the cluster metadata layer.
pub(crate) trait ClusterLink: Send + Sync + 'static {
    /// This broker's id.
    fn node_id(&self) -> i32;
    /// Kafka listener of a broker, None when unknown.
    fn endpoint(&self, broker: i32) -> Option<(String, u16)>;
    /// Proposes an ISR change to the controller; Ok(committed state) or Err(kafka error code).
    fn alter_isr(
        &self,
        topic: &str,
        partition: i32,
        proposed: LeaderAndIsr,
    ) -> BoxFuture<'static, Result<LeaderAndIsr, i16>>;
}

/// Replication settings, Kafka's broker keys as plain values.
#[derive(Debug, Clone)]
pub(crate) struct ReplicationSettings {
    /// `replica.lag.time.max.ms`: a follower not caught up for this long leaves the ISR.
    pub(crate) replica_lag_time_max_ms: u64,
    /// `replica.fetch.wait.max.ms`: long-poll time of follower fetches.
    pub(crate) replica_fetch_wait_max_ms: u64,
    /// `replica.fetch.min.bytes`.
    pub(crate) replica_fetch_min_bytes: i32,
    /// `replica.fetch.max.bytes`: per partition.
    pub(crate) replica_fetch_max_bytes: i32,
    /// `replica.fetch.response.max.bytes`.
    pub(crate) replica_fetch_response_max_bytes: i32,
    /// `replica.fetch.backoff.ms`: pause after a failed fetch.
    pub(crate) replica_fetch_backoff_ms: u64,
    /// `replica.socket.timeout.ms`: connect timeout, and extra time a fetch may take beyond
    /// its long-poll wait.
    pub(crate) replica_socket_timeout_ms: u64,
}

impl Default for ReplicationSettings {
    /// Kafka's defaults (fetch backoff lowered from 1000 ms to 100 ms, as the brief of the
    /// local clusters wants fast fail-over).
    fn default() -> Self {
        ReplicationSettings {
            replica_lag_time_max_ms: 30_000,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_min_bytes: 1,
            replica_fetch_max_bytes: 1 << 20,
            replica_fetch_response_max_bytes: 10 << 20,
            replica_fetch_backoff_ms: 100,
            replica_socket_timeout_ms: 30_000,
        }
    }
}

/// A partition key.
type Key = (String, i32);

/// A partition a fetcher copies.
#[derive(Clone)]
pub(crate) struct Followed {
    /// The partition.
    partition: Arc<Partition>,
    /// The leader epoch followed.
    leader_epoch: i32,
}

/// The partitions one fetcher copies from its source broker.
#[derive(Default)]
pub(crate) struct FetcherPartitions {
    /// By topic-partition.
    map: Mutex<HashMap<Key, Followed>>,
    /// Woken when the set changes.
    changed: Notify,
}

/// A running fetcher task.
struct FetcherHandle {
    /// Its partitions.
    partitions: Arc<FetcherPartitions>,
    /// The task.
    task: JoinHandle<()>,
}

/// Mutable state of the manager.
#[derive(Default)]
struct Managed {
    /// Fetcher per source broker.
    fetchers: HashMap<i32, FetcherHandle>,
    /// Partitions led here (for the ISR task).
    leading: HashMap<Key, Arc<Partition>>,
    /// The ISR task, started with the first led partition.
    isr_task: Option<JoinHandle<()>>,
}

/// Runs replication for the partitions hosted by this broker. See the module docs.
pub(crate) struct ReplicaManager {
    /// The seam to the cluster layer.
    link: Arc<dyn ClusterLink>,
    /// Settings.
    settings: ReplicationSettings,
    /// Fetchers, led partitions, tasks.
    managed: Mutex<Managed>,
    /// Wakes the ISR task early (a follower may join the ISR).
    isr_wakeup: Arc<Notify>,
    /// Set to true on shutdown; every task watches it.
    stop: watch::Sender<bool>,
    /// Runtime the tasks run on (the one `new` was called in, if any).
    runtime: Option<tokio::runtime::Handle>,
}

impl ReplicaManager {
    /// A manager with no partitions. Tasks start as partitions are applied; call within a
    /// tokio runtime (or `apply` must be).
    pub(crate) fn new(link: Arc<dyn ClusterLink>, settings: ReplicationSettings) -> Arc<Self> {
        let (stop, _) = watch::channel(false);
        Arc::new(ReplicaManager {
            link,
            settings,
            managed: Mutex::new(Managed::default()),
            isr_wakeup: Arc::new(Notify::new()),
            stop,
            runtime: tokio::runtime::Handle::try_current().ok(),
        })
    }

    fn managed(&self) -> std::sync::MutexGuard<'_, Managed> {
        self.managed.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn spawn(
        &self,
        task: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Option<JoinHandle<()>> {
        match self
            .runtime
            .clone()
            .or_else(|| tokio::runtime::Handle::try_current().ok())
        {
            Some(rt) => Some(rt.spawn(task)),
            None => {
                tracing::error!("replica manager used outside a tokio runtime: task not started");
                None
            }
        }
    }

    /// The controller's view of a partition hosted here changed (or is re-sent unchanged).
    #[allow(clippy::map_entry)] // the fetcher task is spawned only for a missing entry
    pub(crate) fn apply(self: &Arc<Self>, partition: &Arc<Partition>, state: &LeaderAndIsr) {
        if *self.stop.borrow() {
            return;
        }
        let local = self.link.node_id();
        let key: Key = (partition.topic.clone(), partition.index);
        let now = crate::clock::now_ms();
        if state.leader == local {
            partition.set_isr_wakeup(self.isr_wakeup.clone());
            if let Err(e) = partition.become_leader(local, state, now) {
                tracing::error!(topic = %key.0, partition = key.1, error = %e,
                    "cannot record the new leader epoch");
            }
            let mut m = self.managed();
            self.unfollow(&mut m, &key, None);
            m.leading.insert(key, partition.clone());
            if m.isr_task.is_none() {
                m.isr_task = self.spawn(isr_loop(self.clone()));
            }
            return;
        }
        partition.become_follower(state.leader, state.leader_epoch);
        let mut m = self.managed();
        m.leading.remove(&key);
        let Some(epoch) = (match partition.role() {
            crate::partition::Role::Follower {
                leader,
                leader_epoch,
            } if leader == state.leader => Some(leader_epoch),
            _ => None,
        }) else {
            // An older state than the partition knows, or no leader: nothing to fetch from.
            self.unfollow(&mut m, &key, None);
            return;
        };
        if state.leader < 0 {
            self.unfollow(&mut m, &key, None);
            return;
        }
        self.unfollow(&mut m, &key, Some(state.leader));
        if !m.fetchers.contains_key(&state.leader) {
            let partitions = Arc::new(FetcherPartitions::default());
            let task = self.spawn(fetcher::run(
                self.link.clone(),
                self.settings.clone(),
                state.leader,
                partitions.clone(),
                self.stop.subscribe(),
            ));
            let Some(task) = task else { return };
            m.fetchers
                .insert(state.leader, FetcherHandle { partitions, task });
        }
        let f = &m.fetchers[&state.leader];
        let mut map = f.partitions.map.lock().unwrap_or_else(|e| e.into_inner());
        let followed = Followed {
            partition: partition.clone(),
            leader_epoch: epoch,
        };
        let changed = map
            .get(&key)
            .is_none_or(|old| old.leader_epoch != epoch || !Arc::ptr_eq(&old.partition, partition));
        map.insert(key, followed);
        drop(map);
        if changed {
            f.partitions.changed.notify_one();
        }
    }

    /// Removes `key` from every fetcher but `keep`'s.
    fn unfollow(&self, m: &mut Managed, key: &Key, keep: Option<i32>) {
        for (&source, f) in &m.fetchers {
            if Some(source) == keep {
                continue;
            }
            let removed = f
                .partitions
                .map
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(key)
                .is_some();
            if removed {
                f.partitions.changed.notify_one();
            }
        }
    }

    /// The partition is no longer hosted here (topic deleted): stop fetching it.
    pub(crate) fn remove(&self, topic: &str, partition: i32) {
        let key: Key = (topic.to_owned(), partition);
        let mut m = self.managed();
        m.leading.remove(&key);
        self.unfollow(&mut m, &key, None);
    }

    /// Stops every task.
    pub(crate) fn shutdown(&self) {
        let _ = self.stop.send(true);
        let mut m = self.managed();
        for (_, f) in m.fetchers.drain() {
            f.task.abort();
        }
        if let Some(t) = m.isr_task.take() {
            t.abort();
        }
        m.leading.clear();
    }
}

impl Drop for ReplicaManager {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Shrinks and expands the ISR of every led partition: ticks every lag time / 4 (at least
/// 100 ms), and wakes early when a follower may join. Proposals go through
/// [`ClusterLink::alter_isr`] concurrently; a partition has at most one pending.
async fn isr_loop(manager: Arc<ReplicaManager>) {
    let lag = manager.settings.replica_lag_time_max_ms;
    let period = Duration::from_millis((lag / 4).max(100));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stop = manager.stop.subscribe();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = manager.isr_wakeup.notified() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        let leading: Vec<Arc<Partition>> = manager.managed().leading.values().cloned().collect();
        let now = crate::clock::now_ms();
        for p in leading {
            let Some(proposal) = p.propose_isr(now, lag as i64) else {
                continue;
            };
            tracing::info!(topic = %p.topic, partition = p.index, isr = ?proposal.isr,
                "proposing an ISR change");
            let answer = manager.link.alter_isr(&p.topic, p.index, proposal);
            tokio::spawn(async move {
                let answer = answer.await;
                let now = crate::clock::now_ms();
                match answer {
                    Ok(state) => p.complete_isr_proposal(Some(&state), now),
                    Err(code) => {
                        tracing::warn!(topic = %p.topic, partition = p.index, code,
                            "the controller refused the ISR change");
                        p.complete_isr_proposal(None, now);
                    }
                }
            });
        }
    }
}
