//! Transaction markers sent to the partitions' leaders with WriteTxnMarkers, as
//! Kafka's `TransactionMarkerChannelManager` does.
//!
//! For each partition the current leader is read from the cluster metadata at the moment of
//! writing. A partition this broker leads is written locally ([`write_as_leader`]); any other
//! gets a WriteTxnMarkers request on a broker-to-broker connection (the follower fetcher's
//! [`Connection`]), and the leader answers once the marker is committed. A leader that moved,
//! a broker that is down or slow, are retried against fresh metadata a few times here, then
//! reported as [`MarkerError::Failed`], and the coordinator keeps retrying (the transaction
//! stays in its Prepare state meanwhile) until the marker is written or the partition is gone.
//! Connections are pooled per broker and dropped after any error.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ApiKey, ProducerId, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::markers::{write_as_leader, Marker, MarkerError, MarkerWriter};
use crate::cluster::Cluster;
use crate::group::GroupCoordinator;
use crate::topics::Topics;
use crate::wire::client::Connection;

/// The WriteTxnMarkers version sent (the only one the protocol crate encodes).
const VERSION: i16 = 1;

/// Time allowed to connect to a leader.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Time allowed for an answer: the leader waits up to 10 s for the ISR.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Attempts per marker before the coordinator's slower retry takes over.
const ATTEMPTS: u32 = 4;

/// Pause between attempts (times the attempt number).
const BACKOFF: Duration = Duration::from_millis(100);

/// The cluster's marker writer.
pub(crate) struct ClusterMarkers {
    /// This broker's id.
    node_id: i32,
    /// The metadata: who leads each partition, where brokers listen.
    cluster: Arc<Cluster>,
    /// Local partitions, for the ones this broker leads.
    topics: Arc<Topics>,
    /// Local `__consumer_offsets` partitions.
    groups: GroupCoordinator,
    /// Idle connections by broker id.
    pool: Mutex<HashMap<i32, Vec<Connection>>>,
}

/// Where one marker has to go now.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    /// The partition no longer exists.
    Gone,
    /// No leader right now (every replica down).
    NoLeader,
    /// This broker leads it.
    Local,
    /// Another broker leads it and listens there.
    Remote {
        broker: i32,
        host: String,
        port: u16,
    },
}

/// What a WriteTxnMarkers error code means for the sender.
fn classify(code: i16, message: String) -> MarkerError {
    if code == E::InvalidProducerEpoch.code() || code == E::TransactionCoordinatorFenced.code() {
        MarkerError::Refused(message)
    } else {
        MarkerError::Failed(message)
    }
}

impl ClusterMarkers {
    pub(crate) fn new(
        node_id: i32,
        cluster: Arc<Cluster>,
        topics: Arc<Topics>,
        groups: GroupCoordinator,
    ) -> Self {
        ClusterMarkers {
            node_id,
            cluster,
            topics,
            groups,
            pool: Mutex::default(),
        }
    }

    /// The leader of `topic`-`partition` per the current metadata.
    fn route(&self, topic: &str, partition: i32) -> Route {
        let image = self.cluster.image();
        let Some(state) = image
            .topics
            .get(topic)
            .and_then(|t| t.partitions.get(usize::try_from(partition).ok()?))
        else {
            return Route::Gone;
        };
        if state.leader < 0 {
            return Route::NoLeader;
        }
        if state.leader == self.node_id {
            return Route::Local;
        }
        match image.brokers.get(&state.leader) {
            Some(b) => Route::Remote {
                broker: b.id,
                host: b.host.clone(),
                port: b.port,
            },
            None => Route::NoLeader,
        }
    }

    /// One attempt.
    async fn attempt(
        &self,
        topic: &str,
        partition: i32,
        marker: &Marker,
    ) -> Result<(), MarkerError> {
        match self.route(topic, partition) {
            Route::Gone => Err(MarkerError::UnknownPartition),
            Route::NoLeader => Err(MarkerError::Failed(format!(
                "{topic}-{partition} has no leader"
            ))),
            Route::Local => write_as_leader(&self.topics, &self.groups, topic, partition, marker)
                .await
                .map_err(|e| classify(e.code, e.message)),
            Route::Remote { broker, host, port } => {
                let code = self
                    .send(broker, &host, port, topic, partition, marker)
                    .await
                    .map_err(|e| MarkerError::Failed(format!("to broker {broker}: {e}")))?;
                if code == 0 {
                    return Ok(());
                }
                Err(classify(
                    code,
                    format!(
                        "{topic}-{partition}: broker {broker} answered {:?}",
                        E::try_from_code(code)
                    ),
                ))
            }
        }
    }

    /// Sends one WriteTxnMarkers request for one partition; returns its error code.
    async fn send(
        &self,
        broker: i32,
        host: &str,
        port: u16,
        topic: &str,
        partition: i32,
        marker: &Marker,
    ) -> Result<i16, crate::wire::client::ClientError> {
        let idle = self
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&broker)
            .and_then(Vec::pop);
        let mut conn = match idle {
            Some(c) => c,
            None => {
                let client_id = format!("kbroker-{}-txn-markers", self.node_id);
                Connection::connect(host, port, &client_id, CONNECT_TIMEOUT).await?
            }
        };
        let resp: WriteTxnMarkersResponse = conn
            .call(
                ApiKey::WriteTxnMarkers,
                VERSION,
                &request(topic, partition, marker),
                CALL_TIMEOUT,
            )
            .await?;
        self.pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(broker)
            .or_default()
            .push(conn);
        let code = resp
            .markers
            .iter()
            .flat_map(|m| &m.topics)
            .filter(|t| t.name.0.as_str() == topic)
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index == partition)
            .map_or(E::UnknownServerError.code(), |p| p.error_code);
        Ok(code)
    }
}

/// The WriteTxnMarkers request for one marker on one partition.
fn request(topic: &str, partition: i32, marker: &Marker) -> WriteTxnMarkersRequest {
    let mut t = WritableTxnMarkerTopic::default();
    t.name = TopicName(StrBytes::from_string(topic.to_owned()));
    t.partition_indexes = vec![partition];
    let mut m = WritableTxnMarker::default();
    m.producer_id = ProducerId(marker.producer_id);
    m.producer_epoch = marker.producer_epoch;
    m.transaction_result = marker.commit;
    m.coordinator_epoch = marker.coordinator_epoch;
    m.topics = vec![t];
    let mut req = WriteTxnMarkersRequest::default();
    req.markers = vec![m];
    req
}

impl MarkerWriter for ClusterMarkers {
    fn write_marker<'a>(
        &'a self,
        topic: &'a str,
        partition: i32,
        marker: &'a Marker,
    ) -> BoxFuture<'a, Result<(), MarkerError>> {
        Box::pin(async move {
            let mut attempt = 1;
            loop {
                match self.attempt(topic, partition, marker).await {
                    Err(MarkerError::Failed(e)) if attempt < ATTEMPTS => {
                        tracing::debug!(
                            topic,
                            partition,
                            attempt,
                            "transaction marker not written yet: {e}"
                        );
                        tokio::time::sleep(BACKOFF * attempt).await;
                        attempt += 1;
                    }
                    other => return other,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fencing_errors_are_final_and_the_rest_retried() {
        let refused = classify(E::InvalidProducerEpoch.code(), "x".into());
        assert!(matches!(refused, MarkerError::Refused(_)));
        let fenced = classify(E::TransactionCoordinatorFenced.code(), "x".into());
        assert!(matches!(fenced, MarkerError::Refused(_)));
        for code in [
            E::NotLeaderOrFollower.code(),
            E::RequestTimedOut.code(),
            E::UnknownTopicOrPartition.code(),
            E::KafkaStorageError.code(),
        ] {
            assert!(
                matches!(classify(code, "x".into()), MarkerError::Failed(_)),
                "{code}"
            );
        }
    }

    #[test]
    fn the_request_carries_the_marker() {
        let marker = Marker {
            producer_id: 7,
            producer_epoch: 3,
            commit: true,
            coordinator_epoch: 5,
        };
        let req = request("t", 2, &marker);
        let m = &req.markers[0];
        assert_eq!((m.producer_id.0, m.producer_epoch), (7, 3));
        assert!(m.transaction_result);
        assert_eq!(m.coordinator_epoch, 5);
        assert_eq!(m.topics[0].name.0.as_str(), "t");
        assert_eq!(m.topics[0].partition_indexes, vec![2]);
    }
}
