//! The local topics: which topics this broker hosts replicas of, their ids, partitions and
//! configuration overrides, as the metadata log says (`crate::metadata_sync` mirrors it here).
//!
//! Each partition's data lives in `<log.dir>/<topic>-<partition>/`, reopened (and recovered)
//! from whichever log dir holds it; a new partition goes to the log dir with the fewest
//! partitions, as Kafka does.
//!
//! Topic-level configuration uses Kafka's topic keys (`retention.ms`, `segment.bytes`, ...). A
//! topic stores only its overrides; [`TopicConfigs`] resolves them against the broker defaults
//! (see [`configs`]). Overrides change through IncrementalAlterConfigs
//! through the controller: [`Topics::ensure`] replaces the topic and its partitions take the
//! new storage settings at once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::log::LogError;
use crate::partition::Partition;
pub(crate) mod configs;

pub(crate) use configs::{validate_configs, TopicConfigs};

/// Why a topic operation was refused. Each maps to a Kafka error code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TopicError {
    #[error("topic name {0:?} is invalid: use 1 to 249 of [a-zA-Z0-9._-], not \".\" or \"..\"")]
    InvalidName(String),
    #[error("topic {0:?} does not exist")]
    Unknown(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("storage error: {0}")]
    Storage(#[from] LogError),
    /// Refused or failed by the cluster's controller; carries the controller's Kafka code.
    #[error("{message}")]
    Cluster { code: i16, message: String },
}

impl TopicError {
    /// The Kafka error code for this error.
    pub(crate) fn code(&self) -> i16 {
        use kafka_protocol::error::ResponseError as E;
        match self {
            TopicError::InvalidName(_) => E::InvalidTopicException.code(),
            TopicError::Unknown(_) => E::UnknownTopicOrPartition.code(),
            TopicError::InvalidPartitions(_) => E::InvalidPartitions.code(),
            TopicError::InvalidReplicationFactor(_) => E::InvalidReplicationFactor.code(),
            TopicError::InvalidConfig(_) => E::InvalidConfig.code(),
            TopicError::Storage(_) => E::KafkaStorageError.code(),
            TopicError::Cluster { code, .. } => *code,
        }
    }
}

/// A topic and its partitions. Immutable: changes replace the `Arc<Topic>` in the registry.
pub(crate) struct Topic {
    /// Topic name.
    pub(crate) name: String,
    /// Topic id (Metadata v10+, Fetch v13+).
    pub(crate) id: Uuid,
    /// Configuration overrides (Kafka topic keys).
    pub(crate) configs: BTreeMap<String, String>,
    /// Partitions, by index; `None` for a partition whose replicas are all on other brokers
    /// (in a cluster of several brokers).
    pub(crate) partitions: Vec<Option<Arc<Partition>>>,
    /// Replication factor requested at creation.
    pub(crate) replication_factor: i16,
    /// `max.message.bytes` resolved against the broker default. Derived once at creation:
    /// configs never change afterwards, and every Produce request needs it.
    pub(crate) max_message_bytes: usize,
}

impl Topic {
    /// Partition `index`, if it exists and has a replica on this broker.
    pub(crate) fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i).cloned().flatten())
    }

    /// The partitions with a replica on this broker.
    pub(crate) fn hosted(&self) -> impl Iterator<Item = &Arc<Partition>> {
        self.partitions.iter().flatten()
    }
}

/// A topic as the cluster's metadata describes it, for [`Topics::ensure`].
pub(crate) struct TopicSpec<'a> {
    pub(crate) name: &'a str,
    pub(crate) id: Uuid,
    pub(crate) configs: &'a BTreeMap<String, String>,
    pub(crate) partition_count: usize,
    pub(crate) replication_factor: i16,
}

/// The topics this broker hosts replicas of.
///
/// The metadata log (Raft) is the source of truth; [`Topics::ensure`] and
/// [`Topics::drop_local`] mirror it here, opening only the partitions with a replica on this
/// broker, and nothing is persisted here.
pub(crate) struct Topics {
    /// Broker defaults the topic configs resolve against, and the log dirs.
    broker: Arc<BrokerConfig>,
    /// Topics by name.
    by_name: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serialises mirroring changes so a topic and its partitions change together.
    admin: std::sync::Mutex<()>,
}

/// The topic registry of a single broker of an earlier version (topics now live in the
/// metadata log); its presence marks a log dir this version refuses to open.
pub(crate) const LEGACY_REGISTRY_FILE: &str = "kbroker-topics.json";

/// Internal topics whose partition directories the coordinators own.
const RESERVED_NAMES: &[&str] = &["__consumer_offsets", "__transaction_state"];

/// CreatePartitions' rule: a topic only grows, to at most 100000 partitions.
pub(crate) fn check_growth(name: &str, have: i32, count: i32) -> Result<(), TopicError> {
    if count <= have {
        return Err(TopicError::InvalidPartitions(format!(
            "topic {name} has {have} partitions; the new count {count} must be larger"
        )));
    }
    if count > 100_000 {
        return Err(TopicError::InvalidPartitions(format!(
            "number of partitions {count} is too large (at most 100000)"
        )));
    }
    Ok(())
}

/// Kafka's topic name rule.
pub(crate) fn validate_name(name: &str) -> Result<(), TopicError> {
    let ok = !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(TopicError::InvalidName(name.to_owned()))
    }
}

impl Topics {
    /// An empty registry: topics appear as the metadata log names them ([`Topics::ensure`]).
    pub(crate) fn open(broker: Arc<BrokerConfig>) -> Result<Self, TopicError> {
        Ok(Topics {
            broker,
            by_name: RwLock::new(BTreeMap::new()),
            admin: std::sync::Mutex::new(()),
        })
    }

    /// The directory for a partition: where it already is, or the least used log dir.
    fn partition_dir(&self, topic: &str, index: i32) -> PathBuf {
        let name = format!("{topic}-{index}");
        if let Some(dir) = self.broker.log_dirs.iter().find(|d| d.join(&name).is_dir()) {
            return dir.join(name);
        }
        let count = |d: &Path| std::fs::read_dir(d).map(|r| r.count()).unwrap_or(0);
        let dir = self
            .broker
            .log_dirs
            .iter()
            .min_by_key(|d| count(d))
            .unwrap_or(&self.broker.log_dirs[0]);
        dir.join(name)
    }

    fn open_partition(
        &self,
        topic: &str,
        index: i32,
        configs: &BTreeMap<String, String>,
    ) -> Result<Arc<Partition>, TopicError> {
        let dir = self.partition_dir(topic, index);
        let log_config = TopicConfigs::new(&self.broker, configs).log_config();
        Ok(Arc::new(Partition::open(topic, index, &dir, log_config)?))
    }

    /// The topic called `name`, if it exists.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.by_name
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// The topic with id `id`, if it exists.
    pub(crate) fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.all().into_iter().find(|t| t.id == id)
    }

    /// Every topic, by name.
    pub(crate) fn all(&self) -> Vec<Arc<Topic>> {
        self.by_name
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// A partition, if the topic and partition exist.
    pub(crate) fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        self.get(topic)?.partition(index)
    }

    /// Checks a topic creation request (name, configs, counts) and resolves -1 to the broker
    /// defaults: `(partitions, replication_factor)`.
    pub(crate) fn check_create(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &BTreeMap<String, String>,
    ) -> Result<(i32, i16), TopicError> {
        validate_name(name)?;
        if RESERVED_NAMES.contains(&name) {
            return Err(TopicError::InvalidName(format!(
                "{name} (reserved for the broker's internal use)"
            )));
        }
        validate_configs(configs)?;
        let partitions = if partitions == -1 {
            self.broker.num_partitions
        } else {
            partitions
        };
        if !(1..=100_000).contains(&partitions) {
            return Err(TopicError::InvalidPartitions(format!(
                "number of partitions {partitions} is invalid: use 1 to 100000, or -1 for the \
                 broker default ({})",
                self.broker.num_partitions
            )));
        }
        let rf = if replication_factor == -1 {
            self.broker.default_replication_factor
        } else {
            replication_factor
        };
        if rf < 1 {
            return Err(TopicError::InvalidReplicationFactor(format!(
                "replication factor {rf} is invalid: use 1 or more, or -1 for the broker default \
                 ({})",
                self.broker.default_replication_factor
            )));
        }
        Ok((partitions, rf))
    }

    /// `topic` with `configs` as its overrides, its partitions switched to the new storage
    /// settings.
    fn reconfigured(
        &self,
        topic: &Topic,
        configs: BTreeMap<String, String>,
    ) -> Result<Topic, TopicError> {
        let log_config = TopicConfigs::new(&self.broker, &configs).log_config();
        for p in topic.hosted() {
            p.set_log_config(log_config.clone())?;
        }
        Ok(Topic {
            name: topic.name.clone(),
            id: topic.id,
            max_message_bytes: log_config.max_message_bytes,
            configs,
            partitions: topic.partitions.clone(),
            replication_factor: topic.replication_factor,
        })
    }

    /// Makes the local topic match the cluster's view. Opens (and recovers) the
    /// partitions in `hosted` that are not open yet; partitions already open stay as they are.
    /// Returns the topic and whether anything changed.
    pub(crate) fn ensure(
        &self,
        spec: &TopicSpec<'_>,
        hosted: &[i32],
    ) -> Result<(Arc<Topic>, bool), TopicError> {
        let _guard = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let existing = self.get(spec.name).filter(|t| t.id == spec.id);
        let mut partitions: Vec<Option<Arc<Partition>>> = existing
            .as_ref()
            .map(|t| t.partitions.clone())
            .unwrap_or_default();
        partitions.resize(spec.partition_count.max(partitions.len()), None);
        let mut changed = existing.is_none();
        for &i in hosted {
            let Some(slot) = usize::try_from(i).ok().and_then(|i| partitions.get_mut(i)) else {
                continue;
            };
            if slot.is_none() {
                *slot = Some(self.open_partition(spec.name, i, spec.configs)?);
                changed = true;
            }
        }
        if let Some(t) = existing
            .as_ref()
            .filter(|t| t.partitions.len() != partitions.len())
        {
            tracing::info!(topic = %t.name, to = partitions.len(), "partitions added");
            changed = true;
        }
        if let Some(t) = existing.as_ref().filter(|t| &t.configs != spec.configs) {
            // Altered configs (IncrementalAlterConfigs through the controller).
            let _ = self.reconfigured(t, spec.configs.clone())?;
            tracing::info!(topic = %t.name, "topic configs altered (cluster metadata)");
            changed = true;
        }
        if !changed {
            let t = existing.expect("unchanged means it existed");
            return Ok((t, false));
        }
        let topic = Arc::new(Topic {
            name: spec.name.to_owned(),
            id: spec.id,
            max_message_bytes: TopicConfigs::new(&self.broker, spec.configs)
                .log_config()
                .max_message_bytes,
            configs: spec.configs.clone(),
            partitions,
            replication_factor: spec.replication_factor,
        });
        self.by_name
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(spec.name.to_owned(), topic.clone());
        Ok((topic, true))
    }

    /// The topic is gone from the cluster (deleted, or re-created with another
    /// id): remove its local data, then forget it. In that order, so that whoever sees the topic
    /// gone here (DeleteTopics waits for exactly that before answering) also finds its
    /// directories gone.
    pub(crate) fn drop_local(&self, name: &str) -> Option<Arc<Topic>> {
        let _guard = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let topic = self.get(name)?;
        for p in topic.hosted() {
            if let Err(e) = std::fs::remove_dir_all(&p.dir) {
                tracing::warn!(dir = %p.dir.display(), error = %e, "cannot remove deleted partition's directory");
            }
        }
        self.by_name
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        tracing::info!(topic = name, "topic deleted (cluster metadata)");
        Some(topic)
    }

    /// Deletes old segments of every partition per retention settings.
    pub(crate) fn apply_retention(&self, now_ms: i64) {
        for t in self.all() {
            for p in t.hosted() {
                match p.apply_retention(now_ms) {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(topic = %p.topic, partition = p.index, segments = n, "retention deleted old segments")
                    }
                    Err(e) => {
                        tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "retention failed")
                    }
                }
            }
        }
    }

    /// Compacts every hosted partition of the compacted topics that is due (the log cleaner's
    /// pass; see [`crate::log::Cleaning`]). `hook` runs after each cleaned file is written.
    pub(crate) fn clean_compacted(&self, now_ms: i64, hook: crate::log::CleanerHook<'_>) {
        for t in self.all() {
            if !crate::topics::configs::is_compacted(&t.configs) {
                continue;
            }
            for p in t.hosted() {
                match p.clean(now_ms, hook) {
                    Ok(None) => {}
                    Ok(Some(stats)) => tracing::info!(
                        topic = %p.topic,
                        partition = p.index,
                        bytes_before = stats.bytes_before,
                        bytes_after = stats.bytes_after,
                        records_removed = stats.records_removed,
                        clean_to = stats.clean_to,
                        "log cleaner compacted the partition"
                    ),
                    Err(e) => {
                        tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "log cleaning failed")
                    }
                }
            }
        }
    }

    /// Flushes every partition (on shutdown).
    pub(crate) fn flush_all(&self) {
        for t in self.all() {
            for p in t.hosted() {
                if let Err(e) = p.flush() {
                    tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "flush failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
