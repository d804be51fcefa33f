//! SyncGroup: the leader brings the assignment, followers wait for theirs (bounded by the
//! rebalance timeout: the coordinator drops a leader that never syncs and answers the followers
//! with REBALANCE_IN_PROGRESS). v5+ checks and returns the protocol type and name.

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use super::RequestContext;
use crate::wire::str_bytes;
use crate::group::coordinator::SyncRequest;

pub(crate) async fn handle(ctx: &RequestContext<'_>, req: SyncGroupRequest) -> SyncGroupResponse {
    if let Some(code) = ctx.broker.group_coordinator_error(req.group_id.0.as_str()).await {
        let mut resp = SyncGroupResponse::default();
        resp.error_code = code;
        return resp;
    }
    let sync = SyncRequest {
        group_id: req.group_id.0.to_string(),
        generation_id: req.generation_id,
        member_id: req.member_id.to_string(),
        protocol_type: req.protocol_type.map(|s| s.to_string()),
        protocol_name: req.protocol_name.map(|s| s.to_string()),
        assignments: req
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let out = ctx.broker.groups.sync_group(sync).await;
    let mut resp = SyncGroupResponse::default();
    resp.error_code = out.error_code;
    resp.protocol_type = out.protocol_type.as_deref().map(str_bytes);
    resp.protocol_name = out.protocol_name.as_deref().map(str_bytes);
    resp.assignment = out.assignment;
    resp
}
