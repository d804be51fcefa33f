//! Heartbeat: keeps a member's session alive and tells it when a rebalance started.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::RequestContext;

pub(crate) async fn handle(ctx: &RequestContext<'_>, req: HeartbeatRequest) -> HeartbeatResponse {
    let mut resp = HeartbeatResponse::default();
    if let Some(code) = ctx.broker.group_coordinator_error(req.group_id.0.as_str()).await {
        resp.error_code = code;
        return resp;
    }
    resp.error_code = ctx.broker.groups.heartbeat(
        req.group_id.0.as_str(),
        req.member_id.as_str(),
        req.generation_id,
    );
    resp
}
