//! The run's topic: created through the Admin API (CreateTopics), then waited for until Metadata
//! shows every partition with a leader; and its watermarks, read before and after the run.
//!
//! An unnamed topic is `kbench-<scenario>-<run id>`, new for every run, so runs never see each
//! other's messages. A named topic that already exists is used as it is (never deleted: it may
//! be someone's data); messages of other runs in it are told apart by the run tag and counted as
//! foreign.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::access::ClusterAccess;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;

use crate::scenario::Scenario;

/// Why the topic cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// CreateTopics failed.
    #[error("cannot create topic {topic} ({partitions} partitions, replication factor {rf}) at {bootstrap}: {detail}")]
    Create {
        /// Topic.
        topic: String,
        /// Partitions asked for.
        partitions: i32,
        /// Replication factor asked for.
        rf: i16,
        /// Bootstrap servers.
        bootstrap: String,
        /// Why.
        detail: String,
    },
    /// The topic did not become usable in time.
    #[error("topic {topic} has no leader (or, new, not every replica in sync) for every partition after {timeout:?}: {detail}")]
    NotReady {
        /// Topic.
        topic: String,
        /// How long we waited.
        timeout: Duration,
        /// What Metadata said last.
        detail: String,
    },
    /// Watermarks could not be read.
    #[error("cannot read the offsets of {topic}-{partition}: {detail}")]
    Watermarks {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Why.
        detail: String,
    },
}

/// Creates the topic (or finds it already there) and waits until every partition has a leader.
/// Returns the partition count, which for an existing topic may differ from the scenario's.
pub async fn ensure(
    s: &Scenario,
    cluster: &ClusterAccess,
    topic: &str,
    timeout: Duration,
) -> Result<i32, TopicError> {
    let create_err = |detail: String| TopicError::Create {
        topic: topic.to_string(),
        partitions: s.topic.partitions,
        rf: s.topic.replication_factor,
        bootstrap: cluster.bootstrap().to_string(),
        detail,
    };
    let admin: AdminClient<DefaultClientContext> = cluster
        .client("kbench-admin")
        .create()
        .map_err(|e| create_err(e.to_string()))?;
    let configs: Vec<(String, String)> = s.topic.create_configs();
    let mut new = NewTopic::new(
        topic,
        s.topic.partitions,
        TopicReplication::Fixed(i32::from(s.topic.replication_factor)),
    );
    for (k, v) in &configs {
        new = new.set(k, v);
    }
    let opts = AdminOptions::new()
        .operation_timeout(Some(timeout))
        .request_timeout(Some(timeout));
    let results = tokio::time::timeout(
        timeout + Duration::from_secs(1),
        admin.create_topics([&new], &opts),
    )
    .await
    .map_err(|_| create_err(format!("no answer within {timeout:?}")))?
    .map_err(|e| create_err(e.to_string()))?;
    let mut created = true;
    for r in results {
        match r {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) if s.topic.name.is_some() => {
                created = false
            }
            Err((_, code)) => return Err(create_err(format!("{code:?}: {code}"))),
        }
    }
    wait_ready(cluster, topic, timeout, created).await
}

/// Waits until every partition of `topic` has a leader and, for a topic this run created
/// (`full_isr`), every replica in its ISR: a replicated topic is only used once all its
/// replicas are in sync, so the first acks = all writes do not meet a half-formed ISR. A topic
/// that already existed is used as it is (a replica may be down on purpose).
pub async fn wait_ready(
    cluster: &ClusterAccess,
    topic: &str,
    timeout: Duration,
    full_isr: bool,
) -> Result<i32, TopicError> {
    let not_ready = |detail: String| TopicError::NotReady {
        topic: topic.to_string(),
        timeout,
        detail,
    };
    let consumer: BaseConsumer = cluster
        .client("kbench-metadata")
        .create()
        .map_err(|e| not_ready(e.to_string()))?;
    let deadline = Instant::now() + timeout;
    let mut last;
    loop {
        match consumer.fetch_metadata(Some(topic), Duration::from_secs(2)) {
            Ok(md) => {
                last = match md.topics().iter().find(|t| t.name() == topic) {
                    Some(t)
                        if t.error().is_none()
                            && !t.partitions().is_empty()
                            && t.partitions().iter().all(|p| {
                                p.leader() >= 0
                                    && p.error().is_none()
                                    && (!full_isr || p.isr().len() >= p.replicas().len())
                            }) =>
                    {
                        return Ok(t.partitions().len() as i32)
                    }
                    Some(t) => format!(
                        "{} partition(s), error {:?}, leaders {:?}, replicas in sync {:?}",
                        t.partitions().len(),
                        t.error(),
                        t.partitions()
                            .iter()
                            .map(|p| p.leader())
                            .collect::<Vec<_>>(),
                        t.partitions()
                            .iter()
                            .map(|p| format!("{}/{}", p.isr().len(), p.replicas().len()))
                            .collect::<Vec<_>>()
                    ),
                    None => "not in Metadata yet".to_string(),
                };
            }
            Err(e) => last = e.to_string(),
        }
        if Instant::now() >= deadline {
            return Err(not_ready(last));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Low and high watermarks of every partition, by partition index.
/// [`watermarks`] once they have stopped moving: read again every `pause` until two reads agree
/// (or `bound` has passed; the last read is returned then). Right after the producers finish,
/// the high watermarks can still be rising: with `acks=1` or `0` a write is acknowledged
/// before the followers have it, and the high watermark follows the slowest in-sync replica.
/// Draining to the first read would stop consumers short of acknowledged data.
pub fn settled_watermarks(
    cluster: &ClusterAccess,
    topic: &str,
    partitions: i32,
    timeout: Duration,
    pause: Duration,
    bound: Duration,
) -> Result<BTreeMap<i32, (i64, i64)>, TopicError> {
    let deadline = std::time::Instant::now() + bound;
    let mut last = watermarks(cluster, topic, partitions, timeout)?;
    loop {
        if std::time::Instant::now() >= deadline {
            return Ok(last);
        }
        std::thread::sleep(pause);
        let now = watermarks(cluster, topic, partitions, timeout)?;
        if now == last {
            return Ok(now);
        }
        last = now;
    }
}

pub fn watermarks(
    cluster: &ClusterAccess,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> Result<BTreeMap<i32, (i64, i64)>, TopicError> {
    let err = |partition: i32, detail: String| TopicError::Watermarks {
        topic: topic.to_string(),
        partition,
        detail,
    };
    let consumer: BaseConsumer = cluster
        .client("kbench-offsets")
        // Offsets of committed data only make sense for read_committed; high watermark is what
        // the offsets check wants, so ask for it as read_uncommitted.
        .set("isolation.level", "read_uncommitted")
        .create()
        .map_err(|e| err(-1, e.to_string()))?;
    let mut out = BTreeMap::new();
    for p in 0..partitions {
        let deadline = std::time::Instant::now() + timeout;
        let w = loop {
            match consumer.fetch_watermarks(topic, p, timeout) {
                Ok(w) => break w,
                // Right after a topic is created (or a leader moved) the metadata can name a
                // leader that has not opened the partition yet, on Kafka as on kbroker: ask
                // again until the timeout rather than failing the run.
                Err(e) if is_transient(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(err(p, e.to_string())),
            }
        };
        out.insert(p, w);
    }
    Ok(out)
}

/// Errors a metadata change in progress or a broker that is down explains, worth asking again
/// (librdkafka reconnects and refreshes metadata by itself).
///
/// `UnknownTopic` and `UnknownPartition` are librdkafka's own (local) codes: the client's
/// metadata does not hold the topic yet. On a cluster of several Apache Kafka brokers each
/// broker takes a new topic into its metadata cache on its own schedule, so a client that asks
/// another broker than the one [`wait_ready`] heard from can briefly be told there is no such
/// topic. Callers ask again only until their deadline; a topic that truly is gone still fails.
pub(crate) fn is_transient(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::UnknownTopicOrPartition
                | C::UnknownTopic
                | C::UnknownPartition
                | C::LeaderNotAvailable
                | C::NotLeaderForPartition
                | C::FencedLeaderEpoch
                | C::UnknownLeaderEpoch
                | C::BrokerTransportFailure
                | C::AllBrokersDown
        )
    )
}

#[cfg(test)]
mod tests {
    use super::is_transient;
    use rdkafka::error::KafkaError;
    use rdkafka::types::RDKafkaErrorCode as C;

    #[test]
    fn metadata_a_broker_has_not_taken_up_yet_is_asked_again_and_refusals_are_not() {
        // What librdkafka's watermark query returns (`KafkaError::MetadataFetch`).
        let fetch = KafkaError::MetadataFetch;
        for code in [
            C::UnknownPartition,
            C::UnknownTopic,
            C::UnknownTopicOrPartition,
            C::LeaderNotAvailable,
            C::NotLeaderForPartition,
        ] {
            assert!(is_transient(&fetch(code)), "{code:?} should be asked again");
        }
        for code in [
            C::TopicAuthorizationFailed,
            C::SaslAuthenticationFailed,
            C::InvalidRequest,
        ] {
            assert!(
                !is_transient(&fetch(code)),
                "{code:?} should fail the run at once"
            );
        }
    }
}
