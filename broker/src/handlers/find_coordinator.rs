//! FindCoordinator: the coordinator of a group (key type 0) or transactional id (key type 1)
//! is, as in Kafka, the leader of
//! the key's partition of `__consumer_offsets` / `__transaction_state` (Kafka's hash of the key
//! modulo the partition count); the first lookup creates that internal topic through the
//! controller ([`crate::broker::Broker::internal_topic`]), with `offsets.topic.replication.factor` (or the transaction one) capped at the
//! brokers alive; `__transaction_state` gets `transaction.state.log.num.partitions` partitions
//! and `min.insync.replicas` = `transaction.state.log.min.isr` (capped at its replication
//! factor). The partition choice is [`crate::group::store::partition_for`] for both kinds, as
//! the group and transaction coordinators use. v0-3 carry one key; v4+ a batch.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::RequestContext;
use crate::wire::str_bytes;

/// Key type of a consumer group.
const GROUP: i8 = 0;
/// Key type of a transactional id.
const TRANSACTION: i8 = 1;

/// Where the coordinator is, or why there is none: (error, node id, host, port).
async fn locate(ctx: &RequestContext<'_>, key_type: i8, key: &str) -> (i16, i32, StrBytes, i32) {
    if key_type != GROUP && key_type != TRANSACTION {
        return (
            ResponseError::InvalidRequest.code(),
            -1,
            StrBytes::default(),
            -1,
        );
    }
    let broker = ctx.broker;
    let not_available = (
        ResponseError::CoordinatorNotAvailable.code(),
        -1,
        StrBytes::default(),
        -1,
    );
    let topic = if key_type == GROUP {
        crate::group::store::OFFSETS_TOPIC
    } else {
        crate::txn::store::TXN_TOPIC
    };
    // The client retries when the topic cannot be created yet.
    let Some(view) = broker.internal_topic(topic).await else {
        return not_available;
    };
    let p = crate::group::store::partition_for(key, view.partitions.len() as i32);
    let leader = view.partition(p).map_or(-1, |p| p.leader);
    match broker.broker_endpoint(leader) {
        Some(b) => (0, b.id, str_bytes(&b.host), i32::from(b.port)),
        None => not_available,
    }
}

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let mut resp = FindCoordinatorResponse::default();
    if ctx.version >= 4 {
        for key in req.coordinator_keys {
            let (error_code, node_id, host, port) = locate(ctx, req.key_type, &key).await;
            let mut c = Coordinator::default();
            c.key = key;
            c.error_code = error_code;
            c.error_message = None;
            c.node_id = BrokerId(node_id);
            c.host = host;
            c.port = port;
            resp.coordinators.push(c);
        }
    } else {
        let (error_code, node_id, host, port) = locate(ctx, req.key_type, &req.key).await;
        resp.error_code = error_code;
        resp.error_message = None;
        resp.node_id = BrokerId(node_id);
        resp.host = host;
        resp.port = port;
    }
    resp
}
