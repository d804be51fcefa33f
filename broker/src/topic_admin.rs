//! Creating, deleting and growing topics, whichever broker the request reaches.
//!
//! A single broker changes its own registry ([`crate::topics::Topics`]). In a cluster the
//! controller decides (placement, replication factor against the live brokers) and commits the
//! change through Raft; the broker that took the request checks what it can locally first (name,
//! configs, counts — so errors name the problem the same way in both modes), forwards the rest,
//! and answers once its own copy of the metadata shows the change, so a client that asks this
//! broker for Metadata right after CreateTopics sees the topic.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::broker::Broker;
use crate::cluster::{ClusterError, CreateTopicSpec};
use crate::cluster_view::TopicView;
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
        let Some(cluster) = &self.cluster else {
            let t =
                self.topics
                    .create(name, partitions, replication_factor, configs, validate_only)?;
            let mut view = TopicView {
                name: t.name.clone(),
                id: t.id,
                configs: t.configs.clone(),
                replication_factor: t.replication_factor,
                partitions: Vec::new(),
            };
            if !validate_only {
                view = self.topic_view(name).unwrap_or(view);
            }
            return Ok(view);
        };
        let (partitions, rf) =
            self.topics
                .check_create(name, partitions, replication_factor, &configs)?;
        let info = cluster
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
        self.await_metadata(|b| b.topic_view(name).is_some_and(|t| t.id == info.id))
            .await;
        let image = cluster.image();
        Ok(TopicView::from_cluster(&info, &image))
    }

    /// Deletes a topic and its data on every broker.
    pub(crate) async fn delete_topic(&self, name: &str) -> Result<(), TopicError> {
        let Some(cluster) = &self.cluster else {
            return self.topics.delete(name).map(|_| ());
        };
        if self.topic_view(name).is_none() {
            return Err(TopicError::Unknown(name.to_owned()));
        }
        cluster.delete_topic(name).await.map_err(cluster_error)?;
        self.await_metadata(|b| b.topic_view(name).is_none()).await;
        Ok(())
    }

    /// Grows a topic to `count` partitions.
    pub(crate) async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let Some(cluster) = &self.cluster else {
            return self.topics.add_partitions(name, count, validate_only);
        };
        let have = self
            .topic_view(name)
            .ok_or_else(|| TopicError::Unknown(name.to_owned()))?
            .partitions
            .len() as i32;
        crate::topics::check_growth(name, have, count)?;
        if validate_only {
            return Ok(());
        }
        cluster
            .create_partitions(name, count as usize)
            .await
            .map_err(cluster_error)?;
        self.await_metadata(|b| {
            b.topic_view(name)
                .is_some_and(|t| t.partitions.len() as i32 >= count)
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
        let Some(cluster) = &self.cluster else {
            return self.topics.set_configs(name, next);
        };
        cluster
            .alter_topic_configs(name, next.clone())
            .await
            .map_err(cluster_error)?;
        self.await_metadata(|b| b.topic_view(name).is_some_and(|t| t.configs == next))
            .await;
        Ok(())
    }

    /// Waits (bounded) until this broker's copy of the metadata satisfies `done`.
    async fn await_metadata(&self, done: impl Fn(&Broker) -> bool) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let mut rx = cluster.watch();
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
