//! Makes this broker do what the cluster metadata says.
//!
//! The Raft layer ([`crate::cluster`]) only agrees on *what should be*: which topics exist, which
//! brokers hold which replicas, who leads each partition at which epoch, who is in the ISR. This
//! task turns each new metadata image into local action: it opens the partitions assigned to this
//! broker (recovering their logs), hands every hosted partition's leadership state to the
//! [`ReplicaManager`] (which starts or stops leading and fetching), and removes the data of
//! topics that were deleted. It is the only place that reacts to metadata, so the order of those
//! steps is in one place: open the log first, then take up the role.
//!
//! The coordinators follow leadership here too ([`Coordination`]): the leader of a
//! `__consumer_offsets` partition coordinates its groups, the leader of a `__transaction_state`
//! partition its transactional ids, as in Kafka.
//!
//! It also implements the replication layer's view of the cluster ([`ClusterLink`]): where other
//! brokers listen, and how a leader proposes an ISR change to the controller.

use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::watch;

use std::collections::HashMap;

use crate::cluster::{AlterPartition, Cluster, ClusterImage, TopicInfo};
use crate::config::BrokerConfig;
use crate::group::GroupCoordinator;
use crate::partition::LeaderAndIsr;
use crate::replication::{ClusterLink, ReplicaManager, ReplicationSettings};
use crate::topics::{Topic, TopicSpec, Topics};
use crate::txn::store::TXN_TOPIC;
use crate::txn::TransactionCoordinator;

/// The coordinators follow the leadership of their internal topics' partitions: the group
/// coordinator loads a `__consumer_offsets` partition's groups when this broker starts leading
/// it and forgets them when it stops; the transaction coordinator does the same with
/// `__transaction_state` partitions and their transactional ids.
pub(crate) struct Coordination {
    groups: GroupCoordinator,
    txn: TransactionCoordinator,
    /// `__consumer_offsets` partitions loaded, with the leader epoch they were loaded at.
    loaded: std::sync::Mutex<HashMap<i32, i32>>,
    /// `__transaction_state` partitions loaded, with the leader epoch they were loaded at.
    txn_loaded: std::sync::Mutex<HashMap<i32, i32>>,
}

/// What to do about one internal partition, given who leads it and what is loaded here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Nothing changes.
    Keep,
    /// Load (or reload, at a new leader epoch) the partition.
    Load,
    /// Forget the partition.
    Unload,
}

/// The step for a partition led by `leader` at `leader_epoch`, of which this broker (`me`)
/// has loaded the epoch `loaded`.
fn step(me: i32, leader: i32, leader_epoch: i32, loaded: Option<i32>) -> Step {
    match (leader == me, loaded) {
        (true, Some(epoch)) if epoch == leader_epoch => Step::Keep,
        (true, _) => Step::Load,
        (false, Some(_)) => Step::Unload,
        (false, None) => Step::Keep,
    }
}

impl Coordination {
    pub(crate) fn new(groups: GroupCoordinator, txn: TransactionCoordinator) -> Self {
        Coordination {
            groups,
            txn,
            loaded: Default::default(),
            txn_loaded: Default::default(),
        }
    }

    /// Follows the leadership of `__transaction_state` partitions.
    fn follow_txn(&self, node_id: i32, topic: &Topic, info: &TopicInfo) {
        let mut loaded = self.txn_loaded.lock().unwrap_or_else(|e| e.into_inner());
        let count = info.partitions.len() as i32;
        let min_isr = topic
            .configs
            .get("min.insync.replicas")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(1)
            .max(1);
        for (i, state) in info.partitions.iter().enumerate() {
            let index = i as i32;
            match step(
                node_id,
                state.leader,
                state.leader_epoch,
                loaded.get(&index).copied(),
            ) {
                Step::Keep => {}
                Step::Load => {
                    let Some(partition) = topic.partition(index) else {
                        continue;
                    };
                    if partition.leader_epoch() != Some(state.leader_epoch) {
                        // The replica manager has not taken up this leadership: next image.
                        continue;
                    }
                    match self.txn.load_partition(index, partition, count, min_isr) {
                        Ok(n) => {
                            tracing::info!(
                                partition = index,
                                transactional_ids = n,
                                coordinator_epoch = state.leader_epoch,
                                "now coordinating the transactions of {TXN_TOPIC}-{index}"
                            );
                            loaded.insert(index, state.leader_epoch);
                        }
                        Err(e) => {
                            tracing::error!(partition = index, error = %e, "cannot load the transactions of {TXN_TOPIC}-{index}")
                        }
                    }
                }
                Step::Unload => {
                    self.txn.unload_partition(index);
                    loaded.remove(&index);
                    tracing::info!(
                        partition = index,
                        "no longer coordinating the transactions of {TXN_TOPIC}-{index}"
                    );
                }
            }
        }
    }

    fn follow(&self, node_id: i32, topic: &Topic, info: &TopicInfo) {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        for (i, state) in info.partitions.iter().enumerate() {
            let index = i as i32;
            let leading = state.leader == node_id;
            match (leading, loaded.get(&index).copied()) {
                (true, Some(epoch)) if epoch == state.leader_epoch => {}
                (true, _) => {
                    let Some(partition) = topic.partition(index) else {
                        continue;
                    };
                    match self.groups.load_partition(index, partition) {
                        Ok(n) => {
                            tracing::info!(
                                partition = index,
                                groups = n,
                                "now coordinating the groups of __consumer_offsets-{index}"
                            );
                            loaded.insert(index, state.leader_epoch);
                        }
                        Err(e) => {
                            tracing::error!(partition = index, error = %e, "cannot load the groups of __consumer_offsets-{index}")
                        }
                    }
                }
                (false, Some(_)) => {
                    self.groups.unload_partition(index);
                    loaded.remove(&index);
                    tracing::info!(
                        partition = index,
                        "no longer coordinating the groups of __consumer_offsets-{index}"
                    );
                }
                (false, None) => {}
            }
        }
    }
}

/// The replication layer's handle on the cluster.
pub(crate) struct Link {
    pub(crate) cluster: Arc<Cluster>,
    pub(crate) node_id: i32,
}

impl ClusterLink for Link {
    fn node_id(&self) -> i32 {
        self.node_id
    }

    fn endpoint(&self, broker: i32) -> Option<(String, u16)> {
        let image = self.cluster.image();
        image.brokers.get(&broker).map(|b| (b.host.clone(), b.port))
    }

    fn alter_isr(
        &self,
        topic: &str,
        partition: i32,
        proposed: LeaderAndIsr,
    ) -> BoxFuture<'static, Result<LeaderAndIsr, i16>> {
        let cluster = self.cluster.clone();
        let req = AlterPartition {
            topic: topic.to_owned(),
            partition,
            leader_id: self.node_id,
            leader_epoch: proposed.leader_epoch,
            partition_epoch: proposed.partition_epoch,
            new_isr: proposed.isr,
        };
        Box::pin(async move {
            match cluster.alter_partition(req).await {
                Ok(s) => Ok(LeaderAndIsr {
                    leader: s.leader,
                    leader_epoch: s.leader_epoch,
                    partition_epoch: s.partition_epoch,
                    replicas: s.replicas,
                    isr: s.isr,
                }),
                Err(e) => {
                    tracing::debug!(error = %e, "ISR change refused");
                    Err(e.code())
                }
            }
        })
    }
}

impl ReplicationSettings {
    /// The broker's `replica.*` keys.
    pub(crate) fn from_broker(config: &BrokerConfig) -> Self {
        let r = &config.replication;
        ReplicationSettings {
            replica_lag_time_max_ms: r.replica_lag_time_max_ms,
            replica_fetch_wait_max_ms: r.replica_fetch_wait_max_ms,
            replica_fetch_max_bytes: r.replica_fetch_max_bytes,
            replica_fetch_response_max_bytes: r.replica_fetch_response_max_bytes,
            replica_fetch_backoff_ms: r.replica_fetch_backoff_ms,
            ..ReplicationSettings::default()
        }
    }
}

/// Applies every metadata image as it arrives until `stop` is set.
/// Applies every new image in turn until `stop`; `applied` counts the images applied, so
/// whoever waits for a change to take effect here (not only to be agreed) can watch it.
pub(crate) async fn run(
    node_id: i32,
    topics: Arc<Topics>,
    replicas: Arc<ReplicaManager>,
    coordination: Arc<Coordination>,
    mut images: watch::Receiver<Arc<ClusterImage>>,
    applied: Arc<watch::Sender<u64>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let image = images.borrow_and_update().clone();
        let t = topics.clone();
        let r = replicas.clone();
        let c = coordination.clone();
        // Opening a partition recovers its log: blocking work.
        let _ = tokio::task::spawn_blocking(move || apply(node_id, &t, &r, &c, &image)).await;
        applied.send_modify(|n| *n += 1);
        tokio::select! {
            changed = images.changed() => if changed.is_err() { return },
            _ = stop.changed() => return,
        }
    }
}

/// Brings local topics and replica roles in line with `image` (idempotent: an image already
/// applied changes nothing).
pub(crate) fn apply(
    node_id: i32,
    topics: &Topics,
    replicas: &Arc<ReplicaManager>,
    coordination: &Coordination,
    image: &ClusterImage,
) {
    for (name, info) in &image.topics {
        if let Some(local) = topics.get(name).filter(|t| t.id != info.id) {
            // Deleted and re-created under the same name while we were not looking.
            drop_topic(topics, replicas, &local.name);
        }
        let hosted: Vec<i32> = info
            .partitions
            .iter()
            .enumerate()
            .filter(|(_, p)| p.replicas.contains(&node_id))
            .map(|(i, _)| i as i32)
            .collect();
        let spec = TopicSpec {
            name,
            id: info.id,
            configs: &info.configs,
            partition_count: info.partitions.len(),
            replication_factor: info
                .partitions
                .first()
                .map_or(1, |p| p.replicas.len() as i16),
        };
        let topic = match topics.ensure(&spec, &hosted) {
            Ok((topic, _)) => topic,
            Err(e) => {
                tracing::error!(topic = %name, error = %e, "cannot open this broker's replicas");
                continue;
            }
        };
        for i in hosted {
            let (Some(partition), Some(state)) =
                (topic.partition(i), info.partitions.get(i as usize))
            else {
                continue;
            };
            replicas.apply(
                &partition,
                &LeaderAndIsr {
                    leader: state.leader,
                    leader_epoch: state.leader_epoch,
                    partition_epoch: state.partition_epoch,
                    replicas: state.replicas.clone(),
                    isr: state.isr.clone(),
                },
            );
        }
        if name == crate::group::store::OFFSETS_TOPIC {
            coordination.follow(node_id, &topic, info);
        }
        if name == TXN_TOPIC {
            coordination.follow_txn(node_id, &topic, info);
        }
    }
    for local in topics.all() {
        if !image.topics.contains_key(&local.name) {
            drop_topic(topics, replicas, &local.name);
        }
    }
}

fn drop_topic(topics: &Topics, replicas: &ReplicaManager, name: &str) {
    if let Some(t) = topics.get(name) {
        for p in t.hosted() {
            replicas.remove(&p.topic, p.index);
        }
    }
    topics.drop_local(name);
}

#[cfg(test)]
mod tests {
    use super::{step, Step};

    #[test]
    fn a_coordinator_loads_what_it_starts_leading_and_forgets_what_it_stops_leading() {
        assert_eq!(step(1, 1, 3, None), Step::Load, "new leader");
        assert_eq!(step(1, 1, 3, Some(3)), Step::Keep, "same leadership");
        assert_eq!(step(1, 1, 4, Some(3)), Step::Load, "re-elected: reload");
        assert_eq!(step(1, 2, 4, Some(3)), Step::Unload, "moved away");
        assert_eq!(step(1, 2, 4, None), Step::Keep, "never led");
        assert_eq!(step(1, -1, 4, Some(3)), Step::Unload, "leaderless");
    }
}
