//! InitProducerId: a producer id and epoch for an idempotent producer.
//!
//! Without a transactional id, a fresh producer id with epoch 0 is returned; a client that
//! passes its current id and epoch (v3+, KIP-360, after a sequence error) gets the same id with
//! the epoch bumped. Transactional ids need the transaction coordinator, which kbroker does not
//! have yet: they are refused with UNSUPPORTED_FOR_MESSAGE_FORMAT and a warning in the log.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::RequestContext;

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let mut resp = InitProducerIdResponse::default();
    if let Some(txn) = &req.transactional_id {
        tracing::warn!(peer = %ctx.peer, transactional_id = %txn.0.as_str(), "transactions are not supported yet; InitProducerId refused");
        resp.error_code = ResponseError::UnsupportedForMessageFormat.code();
        resp.producer_id = ProducerId(-1);
        resp.producer_epoch = -1;
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
            resp.producer_id = ProducerId(-1);
            resp.producer_epoch = -1;
        }
    }
    resp
}
