//! AddOffsetsToTxn v0-3: the group's `__consumer_offsets` partition joins the producer's open
//! transaction, so that the transaction's marker completes the offsets TxnOffsetCommit will
//! store for the group.

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use super::RequestContext;
use crate::group::store::OFFSETS_TOPIC;

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let broker = ctx.broker;
    let partition = broker.groups.offsets_partition_for(req.group_id.0.as_str());
    let mut resp = AddOffsetsToTxnResponse::default();
    let txn_id = req.transactional_id.0.as_str();
    if let Some(code) = broker.txn_coordinator_error(txn_id).await {
        resp.error_code = code;
        return resp;
    }
    if let Err(e) = broker
        .txn
        .add_partitions(
            txn_id,
            req.producer_id.0,
            req.producer_epoch,
            &[(OFFSETS_TOPIC.to_owned(), partition)],
        )
        .await
    {
        // PRODUCER_FENCED exists from v2 on (KIP-588).
        resp.error_code = e.code(ctx.version >= 2);
    }
    resp
}
