//! Creating, deleting and growing topics, whichever broker the request reaches.
//!
//! The controller decides (placement, replication factor against the live brokers; a lone
//! broker is a quorum of one) and commits the change through Raft; the broker that took the
//! request checks what it can locally first (name, configs, counts), forwards the rest,
//! and answers once its own copy of the metadata shows the change, so a client that asks this
//! broker for Metadata right after CreateTopics sees the topic.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::broker::Broker;
use crate::cluster::{ClusterError, CreateTopicSpec};
use crate::cluster_view::TopicView;
use crate::group::store::OFFSETS_TOPIC;
use crate::topics::configs::Alteration;
use crate::topics::TopicError;

/// How long to wait for this broker's metadata to show a committed change.
const PROPAGATION_WAIT: Duration = Duration::from_secs(5);

fn cluster_error(e: ClusterError) -> TopicError {
    TopicError::Cluster {
        code: e.code(),
        message: e.to_string(),
    }
}

impl Broker {
    /// Creates a topic (`-1` = broker default for partitions / replication factor) and returns
    /// it as Metadata shows it. With `validate_only`, checks and creates nothing.
    pub(crate) async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<TopicView, TopicError> {
        let (partitions, rf) =
            self.topics
                .check_create(name, partitions, replication_factor, &configs)?;
        let info = self
            .cluster
            .create_topic(CreateTopicSpec {
                name: name.to_owned(),
                partitions,
                replication_factor: i32::from(rf),
                configs,
                validate_only,
            })
            .await
            .map_err(cluster_error)?;
        if validate_only {
            return Ok(TopicView {
                name: info.name.clone(),
                id: info.id,
                configs: info.configs.clone(),
                replication_factor: rf,
                partitions: Vec::new(),
            });
        }
        self.await_metadata(|b| {
            b.topic_view(name).is_some_and(|t| t.id == info.id) && b.leads_what_it_should(name)
        })
        .await;
        Ok(TopicView::from_cluster(&info, &self.cluster.image()))
    }

    /// Deletes a topic and its data on every broker.
    pub(crate) async fn delete_topic(&self, name: &str) -> Result<(), TopicError> {
        if self.topic_view(name).is_none() {
            return Err(TopicError::Unknown(name.to_owned()));
        }
        self.cluster
            .delete_topic(name)
            .await
            .map_err(cluster_error)?;
        self.await_metadata(|b| b.topic_view(name).is_none() && b.topics.get(name).is_none())
            .await;
        Ok(())
    }

    /// Grows a topic to `count` partitions.
    pub(crate) async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let have = self
            .topic_view(name)
            .ok_or_else(|| TopicError::Unknown(name.to_owned()))?
            .partitions
            .len() as i32;
        crate::topics::check_growth(name, have, count)?;
        if validate_only {
            return Ok(());
        }
        self.cluster
            .create_partitions(name, count as usize)
            .await
            .map_err(cluster_error)?;
        self.await_metadata(|b| {
            b.topic_view(name)
                .is_some_and(|t| t.partitions.len() as i32 >= count)
                && b.leads_what_it_should(name)
        })
        .await;
        Ok(())
    }

    /// Applies IncrementalAlterConfigs changes to a topic's config overrides. With
    /// `validate_only`, checks and changes nothing.
    pub(crate) async fn alter_topic_configs(
        &self,
        name: &str,
        changes: &[(String, Alteration)],
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let current = self
            .topic_view(name)
            .ok_or_else(|| TopicError::Unknown(name.to_owned()))?
            .configs;
        let next = crate::topics::configs::alter(&self.config, &current, changes)?;
        if validate_only || next == current {
            return Ok(());
        }
        self.cluster
            .alter_topic_configs(name, next.clone())
            .await
            .map_err(cluster_error)?;
        self.await_metadata(|b| b.topic_view(name).is_some_and(|t| t.configs == next))
            .await;
        Ok(())
    }

    /// The internal topic `topic` (`__consumer_offsets` or `__transaction_state`) once this
    /// broker has taken up the partitions of it that it leads. The first use creates it
    /// through the controller, as Kafka does: `offsets.topic.replication.factor` (or the
    /// transaction one) capped at the brokers alive, compacted, and for `__transaction_state`
    /// `transaction.state.log.num.partitions` partitions with `min.insync.replicas` =
    /// `transaction.state.log.min.isr` (capped at its replication factor). `None` when it
    /// cannot be created yet (the client retries).
    pub(crate) async fn internal_topic(&self, topic: &str) -> Option<TopicView> {
        if let Some(view) = self.topic_view(topic) {
            return Some(view);
        }
        let c = &self.config;
        let (partitions, rf, min_isr, segment_bytes) = if topic == OFFSETS_TOPIC {
            (
                c.offsets_topic_num_partitions,
                c.offsets_topic_replication_factor,
                None,
                c.offsets_topic_segment_bytes,
            )
        } else {
            (
                c.transaction_state_log_num_partitions,
                c.transaction_state_log_replication_factor,
                Some(c.transaction_state_log_min_isr),
                c.transaction_state_log_segment_bytes,
            )
        };
        let live = self.live_brokers().len() as i16;
        let replication_factor = i32::from(rf.min(live).max(1));
        // Internal topics are compacted, as in Kafka: the log cleaner bounds them by the live
        // state.
        let mut configs: BTreeMap<String, String> = [
            ("cleanup.policy".to_owned(), "compact".to_owned()),
            ("segment.bytes".to_owned(), segment_bytes.to_string()),
        ]
        .into();
        if let Some(m) = min_isr {
            let m = m.clamp(1, replication_factor);
            configs.insert("min.insync.replicas".to_owned(), m.to_string());
        }
        let spec = CreateTopicSpec {
            name: topic.to_owned(),
            partitions,
            replication_factor,
            configs,
            validate_only: false,
        };
        match self.cluster.create_topic(spec).await {
            Ok(_) | Err(ClusterError::TopicAlreadyExists(_)) => {}
            Err(e) => {
                tracing::debug!(topic, error = %e, "cannot create the internal topic yet");
                return None;
            }
        }
        self.await_metadata(|b| b.topic_view(topic).is_some() && b.leads_what_it_should(topic))
            .await;
        self.topic_view(topic)
    }

    /// Whether this broker has taken up the leadership of every partition of `name` the
    /// metadata says it leads, so a produce sent here right after CreateTopics is served.
    fn leads_what_it_should(&self, name: &str) -> bool {
        let me = self.node_id();
        self.topic_view(name).is_some_and(|t| {
            t.partitions.iter().filter(|p| p.leader == me).all(|p| {
                self.topics
                    .partition(name, p.index)
                    .is_some_and(|local| local.leader_epoch() == Some(p.leader_epoch))
            })
        })
    }

    /// Waits (bounded) until this broker's copy of the metadata, as applied here, satisfies
    /// `done`.
    async fn await_metadata(&self, done: impl Fn(&Broker) -> bool) {
        let mut rx = self.applied.subscribe();
        let _ = tokio::time::timeout(PROPAGATION_WAIT, async {
            loop {
                if done(self) {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
    }
}
