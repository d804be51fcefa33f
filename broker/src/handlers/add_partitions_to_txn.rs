//! AddPartitionsToTxn v0-3: partitions join the producer's open transaction.
//!
//! Every partition must exist first: if one does not, it gets UNKNOWN_TOPIC_OR_PARTITION, the
//! others OPERATION_NOT_ATTEMPTED, and nothing is added (as Kafka). Otherwise the transaction
//! coordinator's answer (producer checks, state checks) applies to every partition; in a
//! cluster, a broker that does not coordinate the id answers NOT_COORDINATOR (or
//! COORDINATOR_LOAD_IN_PROGRESS) for every partition. v4+ is
//! KIP-890's broker-to-coordinator batched form and is not advertised.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};

use super::{unknown_partition, RequestContext};

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let broker = ctx.broker;
    let txn_id = req.v3_and_below_transactional_id.0.as_str();
    let requested: Vec<(String, i32)> = req
        .v3_and_below_topics
        .iter()
        .flat_map(|t| {
            let name = t.name.0.to_string();
            t.partitions.iter().map(move |p| (name.clone(), *p))
        })
        .collect();
    let unknown: Vec<&(String, i32)> = requested
        .iter()
        .filter(|(t, p)| !broker.partition_exists(t, *p))
        .collect();
    let code_for = |tp: &(String, i32)| -> i16 {
        if unknown.contains(&tp) {
            unknown_partition()
        } else {
            ResponseError::OperationNotAttempted.code()
        }
    };
    let result: Result<(), i16> = if let Some(code) = broker.txn_coordinator_error(txn_id).await {
        Err(code)
    } else if unknown.is_empty() {
        broker
            .txn
            .add_partitions(
                txn_id,
                req.v3_and_below_producer_id.0,
                req.v3_and_below_producer_epoch,
                &requested,
            )
            .await
            // PRODUCER_FENCED exists from v2 on (KIP-588).
            .map_err(|e| e.code(ctx.version >= 2))
    } else {
        tracing::info!(
            transactional_id = txn_id,
            "AddPartitionsToTxn refused: unknown partition(s) {:?}",
            unknown
        );
        Err(-1)
    };
    let mut resp = AddPartitionsToTxnResponse::default();
    for t in &req.v3_and_below_topics {
        let mut tr = AddPartitionsToTxnTopicResult::default();
        tr.name = t.name.clone();
        for p in &t.partitions {
            let mut pr = AddPartitionsToTxnPartitionResult::default();
            pr.partition_index = *p;
            pr.partition_error_code = match result {
                Ok(()) => 0,
                Err(-1) => code_for(&(t.name.0.to_string(), *p)),
                Err(code) => code,
            };
            tr.results_by_partition.push(pr);
        }
        resp.results_by_topic_v3_and_below.push(tr);
    }
    resp
}
