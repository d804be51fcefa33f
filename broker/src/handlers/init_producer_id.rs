//! InitProducerId: a producer id and epoch for an idempotent or transactional producer.
//!
//! Without a transactional id, a fresh producer id with epoch 0 is returned; a client that
//! passes its current id and epoch (v3+, KIP-360, after a sequence error) gets the same id with
//! the epoch bumped. With a transactional id the transaction coordinator answers: the id's
//! producer id with its epoch bumped (fencing older instances), after aborting a transaction
//! the previous instance left open (CONCURRENT_TRANSACTIONS meanwhile; the client retries).
//! In a cluster only the coordinator of the transactional id answers (the leader of its
//! `__transaction_state` partition, once loaded); other brokers say NOT_COORDINATOR.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::RequestContext;

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let mut resp = InitProducerIdResponse::default();
    resp.producer_id = ProducerId(-1);
    resp.producer_epoch = -1;
    if let Some(txn) = &req.transactional_id {
        if let Some(code) = ctx.broker.txn_coordinator_error(txn.0.as_str()).await {
            resp.error_code = code;
            return resp;
        }
        let expected = (req.producer_id.0 >= 0 && req.producer_epoch >= 0)
            .then_some((req.producer_id.0, req.producer_epoch));
        match ctx.broker.txn.init_producer_id(
            txn.0.as_str(),
            req.transaction_timeout_ms,
            expected,
            &ctx.broker.producer_ids,
        )
        .await
        {
            Ok((id, epoch)) => {
                resp.producer_id = ProducerId(id);
                resp.producer_epoch = epoch;
            }
            // PRODUCER_FENCED exists from v4 on (KIP-588).
            Err(e) => resp.error_code = e.code(ctx.version >= 4),
        }
        return resp;
    }
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        resp.producer_id = req.producer_id;
        resp.producer_epoch = req.producer_epoch + 1;
        return resp;
    }
    match ctx.broker.producer_ids.allocate() {
        Ok(id) => {
            resp.producer_id = ProducerId(id);
            resp.producer_epoch = 0;
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot reserve producer ids");
            resp.error_code = ResponseError::KafkaStorageError.code();
        }
    }
    resp
}
