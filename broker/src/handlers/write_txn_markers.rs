//! WriteTxnMarkers v1: a transaction coordinator (another broker of the cluster, or a tool)
//! asks this broker to write COMMIT/ABORT markers to partitions it leads.
//!
//! Each partition is handled as Kafka's leader does: NOT_LEADER_OR_FOLLOWER unless this broker
//! leads it, then the control batch is written and the answer waits until the high watermark
//! passes it (as Produce with acks=all). `__consumer_offsets` partitions go through the group
//! coordinator, which also turns the producer's pending transactional offsets into committed
//! ones (or drops them). All partitions of a request are written and awaited concurrently. v0
//! is not decoded by the protocol crate; Kafka's own brokers send v1.

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use super::RequestContext;
use crate::txn::markers::{write_as_leader, Marker};

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let broker = ctx.broker;
    // One write per (marker, topic, partition), in request order.
    let writes = req.markers.iter().flat_map(|m| {
        let marker = Marker {
            producer_id: m.producer_id.0,
            producer_epoch: m.producer_epoch,
            commit: m.transaction_result,
            coordinator_epoch: m.coordinator_epoch,
        };
        m.topics.iter().flat_map(move |t| {
            t.partition_indexes.iter().map(move |&p| {
                let topic = t.name.0.as_str();
                async move {
                    match write_as_leader(&broker.topics, &broker.groups, topic, p, &marker).await
                    {
                        Ok(()) => 0,
                        Err(e) => {
                            tracing::debug!(peer = %ctx.peer, producer_id = marker.producer_id,
                                "transaction marker not written: {}", e.message);
                            e.code
                        }
                    }
                }
            })
        })
    });
    let mut codes = futures::future::join_all(writes).await.into_iter();
    let mut resp = WriteTxnMarkersResponse::default();
    for m in &req.markers {
        let mut mr = WritableTxnMarkerResult::default();
        mr.producer_id = m.producer_id;
        for t in &m.topics {
            let mut tr = WritableTxnMarkerTopicResult::default();
            tr.name = t.name.clone();
            for &p in &t.partition_indexes {
                let mut pr = WritableTxnMarkerPartitionResult::default();
                pr.partition_index = p;
                pr.error_code = codes.next().unwrap_or(0);
                tr.partitions.push(pr);
            }
            mr.topics.push(tr);
        }
        resp.markers.push(mr);
    }
    resp
}
