//! LeaveGroup: v0-2 one member (its error is the top-level error), v3+ a batch of members
//! (by member id or static instance id) with an error each.

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::RequestContext;
use crate::group::coordinator::LeavingMember;

pub(crate) async fn handle(ctx: &RequestContext<'_>, req: LeaveGroupRequest) -> LeaveGroupResponse {
    let leaving: Vec<LeavingMember> = if ctx.version >= 3 {
        req.members
            .iter()
            .map(|m| LeavingMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(|s| s.to_string()),
            })
            .collect()
    } else {
        vec![LeavingMember {
            member_id: req.member_id.to_string(),
            group_instance_id: None,
        }]
    };
    let (top, codes) = match ctx.broker.group_coordinator_error(req.group_id.0.as_str()).await {
        Some(code) => (code, vec![code; leaving.len()]),
        None => ctx
            .broker
            .groups
            .leave_group(req.group_id.0.as_str(), &leaving),
    };
    let mut resp = LeaveGroupResponse::default();
    if ctx.version >= 3 {
        resp.error_code = top;
        resp.members = req
            .members
            .into_iter()
            .zip(codes)
            .map(|(m, code)| {
                let mut r = MemberResponse::default();
                r.member_id = m.member_id;
                r.group_instance_id = m.group_instance_id;
                r.error_code = code;
                r
            })
            .collect();
    } else {
        resp.error_code = if top != 0 {
            top
        } else {
            codes.into_iter().find(|c| *c != 0).unwrap_or(0)
        };
    }
    resp
}
