//! FindCoordinator: on a single broker the coordinator of every group (key type 0) and every
//! transactional id (key type 1) is this broker. In a cluster, as in Kafka, it is the leader of
//! the key's partition of `__consumer_offsets` / `__transaction_state` (Kafka's hash of the key
//! modulo the partition count); the first lookup creates that internal topic through the
//! controller, with `offsets.topic.replication.factor` (or the transaction one) capped at the
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
    if let Some(cluster) = &broker.cluster {
        let not_available = (
            ResponseError::CoordinatorNotAvailable.code(),
            -1,
            StrBytes::default(),
            -1,
        );
        let (topic, partitions, rf, min_isr) = if key_type == GROUP {
            (
                "__consumer_offsets",
                broker.config.offsets_topic_num_partitions,
                broker.config.offsets_topic_replication_factor,
                None,
            )
        } else {
            (
                "__transaction_state",
                broker.config.transaction_state_log_num_partitions,
                broker.config.transaction_state_log_replication_factor,
                Some(broker.config.transaction_state_log_min_isr),
            )
        };
        let Some(view) = broker.topic_view(topic) else {
            let live = broker.live_brokers().len() as i16;
            let replication_factor = i32::from(rf.min(live).max(1));
            let configs = min_isr
                .map(|m| {
                    let m = m.clamp(1, replication_factor);
                    [("min.insync.replicas".to_owned(), m.to_string())].into()
                })
                .unwrap_or_default();
            let spec = crate::cluster::CreateTopicSpec {
                name: topic.to_owned(),
                partitions,
                replication_factor,
                configs,
                validate_only: false,
            };
            if let Err(e) = cluster.create_topic(spec).await {
                tracing::debug!(topic, error = %e, "cannot create the internal topic yet");
            }
            // The client retries; by then the topic has leaders.
            return not_available;
        };
        let p = crate::group::store::partition_for(key, view.partitions.len() as i32);
        let leader = view.partition(p).map_or(-1, |p| p.leader);
        return match broker.broker_endpoint(leader) {
            Some(b) => (0, b.id, str_bytes(&b.host), i32::from(b.port)),
            None => not_available,
        };
    }
    (
        0,
        broker.node_id(),
        str_bytes(&broker.advertised_host),
        i32::from(broker.advertised_port),
    )
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
