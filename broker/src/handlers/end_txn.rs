//! EndTxn v0-3: commit or abort the producer's open transaction. Answers once the decision is
//! in `__transaction_state` and the markers are written (see `crate::txn::coordinator`). In a
//! cluster only the id's coordinator answers; other brokers say NOT_COORDINATOR.

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};

use super::RequestContext;

pub(crate) async fn handle(ctx: &RequestContext<'_>, req: EndTxnRequest) -> EndTxnResponse {
    let mut resp = EndTxnResponse::default();
    let txn_id = req.transactional_id.0.as_str();
    if let Some(code) = ctx.broker.txn_coordinator_error(txn_id).await {
        resp.error_code = code;
        return resp;
    }
    if let Err(e) = ctx
        .broker
        .txn
        .end_txn(txn_id, req.producer_id.0, req.producer_epoch, req.committed)
        .await
    {
        // PRODUCER_FENCED exists from v2 on (KIP-588).
        resp.error_code = e.code(ctx.version >= 2);
    }
    resp
}
