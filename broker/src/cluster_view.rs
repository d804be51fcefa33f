//! The cluster as clients see it: live brokers, the controller, and each topic's partitions
//! with leader, leader epoch, replicas and ISR.
//!
//! One source: the Raft-replicated [`ClusterImage`], which every broker (a lone one included,
//! as a quorum of one) holds a copy of, so any broker gives any client the same answer Kafka
//! would: all live brokers, the leaders wherever they are, and offline replicas.
//! Metadata, DescribeCluster, FindCoordinator and the admin handlers all read through here, so
//! they never disagree about who leads what.

use std::collections::BTreeMap;
use std::sync::Arc;

use uuid::Uuid;

use crate::broker::Broker;
use crate::cluster::{ClusterImage, TopicInfo};

/// A broker as Metadata lists it.
#[derive(Debug, Clone)]
pub(crate) struct BrokerView {
    pub(crate) id: i32,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) rack: Option<String>,
}

/// One partition's placement and leadership.
#[derive(Debug, Clone)]
pub(crate) struct PartitionView {
    pub(crate) index: i32,
    /// -1 when the partition has no leader (every ISR member is down).
    pub(crate) leader: i32,
    pub(crate) leader_epoch: i32,
    pub(crate) replicas: Vec<i32>,
    pub(crate) isr: Vec<i32>,
    /// Replicas on brokers that are down (fenced).
    pub(crate) offline: Vec<i32>,
}

/// A topic's metadata.
#[derive(Debug, Clone)]
pub(crate) struct TopicView {
    pub(crate) name: String,
    pub(crate) id: Uuid,
    pub(crate) configs: BTreeMap<String, String>,
    pub(crate) replication_factor: i16,
    pub(crate) partitions: Vec<PartitionView>,
}

impl TopicView {
    /// Kafka's internal topics start with a double underscore.
    pub(crate) fn is_internal(&self) -> bool {
        self.name.starts_with("__")
    }

    /// The partition `index`, if the topic has it.
    pub(crate) fn partition(&self, index: i32) -> Option<&PartitionView> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
    }

    pub(crate) fn from_cluster(t: &TopicInfo, image: &ClusterImage) -> Self {
        let down = |id: &i32| image.brokers.get(id).is_none_or(|b| b.fenced);
        TopicView {
            name: t.name.clone(),
            id: t.id,
            configs: t.configs.clone(),
            replication_factor: t.partitions.first().map_or(0, |p| p.replicas.len() as i16),
            partitions: t
                .partitions
                .iter()
                .enumerate()
                .map(|(i, p)| PartitionView {
                    index: i as i32,
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    offline: p.replicas.iter().copied().filter(down).collect(),
                })
                .collect(),
        }
    }
}

impl Broker {
    /// The cluster image.
    pub(crate) fn image(&self) -> Arc<ClusterImage> {
        self.cluster.image()
    }

    /// Brokers that are up, this one first.
    pub(crate) fn live_brokers(&self) -> Vec<BrokerView> {
        let me = BrokerView {
            id: self.node_id(),
            host: self.advertised_host.clone(),
            port: self.advertised_port,
            rack: self.config.rack.clone(),
        };
        let image = self.image();
        let mut out = vec![me];
        out.extend(
            image
                .brokers
                .values()
                .filter(|b| !b.fenced && b.id != self.node_id())
                .map(|b| BrokerView {
                    id: b.id,
                    host: b.host.clone(),
                    port: b.port,
                    rack: b.rack.clone(),
                }),
        );
        out
    }

    /// Where a broker listens for clients, if it is known.
    pub(crate) fn broker_endpoint(&self, id: i32) -> Option<BrokerView> {
        self.live_brokers().into_iter().find(|b| b.id == id)
    }

    /// The active controller: the Raft leader (-1 while an election is going on).
    pub(crate) fn controller_id(&self) -> i32 {
        self.cluster.controller_id().unwrap_or(-1)
    }

    /// One topic's metadata.
    pub(crate) fn topic_view(&self, name: &str) -> Option<TopicView> {
        let image = self.image();
        image
            .topics
            .get(name)
            .map(|t| TopicView::from_cluster(t, &image))
    }

    /// One topic's metadata, by topic id.
    pub(crate) fn topic_view_by_id(&self, id: Uuid) -> Option<TopicView> {
        let image = self.image();
        image
            .topics
            .values()
            .find(|t| t.id == id)
            .map(|t| TopicView::from_cluster(t, &image))
    }

    /// Every topic's metadata, by name.
    pub(crate) fn topic_views(&self) -> Vec<TopicView> {
        let image = self.image();
        image
            .topics
            .values()
            .map(|t| TopicView::from_cluster(t, &image))
            .collect()
    }

    /// Whether `topic` has a partition `index` (hosted here or elsewhere in the cluster).
    pub(crate) fn partition_exists(&self, topic: &str, index: i32) -> bool {
        self.image()
            .topics
            .get(topic)
            .is_some_and(|t| usize::try_from(index).is_ok_and(|i| i < t.partitions.len()))
    }

    /// The error for a request about `group` when this broker cannot answer for it (the
    /// first such request creates `__consumer_offsets`, as FindCoordinator does):
    /// NOT_COORDINATOR when another broker coordinates it (the leader of its
    /// `__consumer_offsets` partition), COORDINATOR_LOAD_IN_PROGRESS when this broker has just
    /// become that leader and is still loading the partition's groups (the client retries
    /// here). `None` when this broker answers.
    pub(crate) async fn group_coordinator_error(&self, group: &str) -> Option<i16> {
        use kafka_protocol::error::ResponseError as E;
        let Some(offsets) = self
            .internal_topic(crate::group::store::OFFSETS_TOPIC)
            .await
        else {
            return Some(E::NotCoordinator.code());
        };
        let p = crate::group::store::partition_for(group, offsets.partitions.len() as i32);
        match offsets.partition(p) {
            Some(state) if state.leader == self.node_id() => {
                (!self.groups.is_coordinating(group)).then_some(E::CoordinatorLoadInProgress.code())
            }
            _ => Some(E::NotCoordinator.code()),
        }
    }

    /// The error for a request about `transactional_id` when this broker cannot answer for it,
    /// as [`Broker::group_coordinator_error`] for groups: NOT_COORDINATOR when
    /// another broker leads the id's `__transaction_state` partition (or the topic does not
    /// exist yet), COORDINATOR_LOAD_IN_PROGRESS while this broker, its new leader, loads it.
    /// `None` when this broker answers.
    pub(crate) async fn txn_coordinator_error(&self, transactional_id: &str) -> Option<i16> {
        use kafka_protocol::error::ResponseError as E;
        let Some(log) = self.internal_topic(crate::txn::store::TXN_TOPIC).await else {
            return Some(E::NotCoordinator.code());
        };
        let p = crate::group::store::partition_for(transactional_id, log.partitions.len() as i32);
        match log.partition(p) {
            Some(state) if state.leader == self.node_id() => {
                (!self.txn.is_coordinating(transactional_id))
                    .then_some(E::CoordinatorLoadInProgress.code())
            }
            _ => Some(E::NotCoordinator.code()),
        }
    }
}
