//! EndTxn v0-3: commit or abort the producer's open transaction. Answers once the decision is
//! in `__transaction_state` and the markers are written (see `crate::txn::coordinator`).

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};

use super::RequestContext;

pub(crate) async fn handle(ctx: &RequestContext<'_>, req: EndTxnRequest) -> EndTxnResponse {
    let mut resp = EndTxnResponse::default();
    if let Err(e) = ctx.broker.txn.end_txn(
        req.transactional_id.0.as_str(),
        req.producer_id.0,
        req.producer_epoch,
        req.committed,
    ) {
        // PRODUCER_FENCED exists from v2 on (KIP-588).
        resp.error_code = e.code(ctx.version >= 2);
    }
    resp
}
