//! JoinGroup: hands the request to the group coordinator and waits (during a rebalance) for
//! its answer. v4+ new members first get MEMBER_ID_REQUIRED with their id (except static
//! members, v5+); v0 has no rebalance timeout (the session timeout is used, as in Kafka);
//! before v7 the protocol name is a non-null string.

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

use super::RequestContext;
use crate::wire::str_bytes;
use crate::group::coordinator::JoinRequest;
use crate::group::state::Protocol;

pub(crate) async fn handle(ctx: &RequestContext<'_>, req: JoinGroupRequest) -> JoinGroupResponse {
    if let Some(code) = ctx.broker.group_coordinator_error(req.group_id.0.as_str()).await {
        let mut resp = JoinGroupResponse::default();
        resp.error_code = code;
        resp.generation_id = -1;
        resp.member_id = req.member_id.clone();
        if ctx.version < 7 {
            resp.protocol_name = Some(str_bytes(""));
        }
        return resp;
    }
    let version = ctx.version;
    let group_instance_id = if version >= 5 {
        req.group_instance_id.map(|s| s.to_string())
    } else {
        None
    };
    let join = JoinRequest {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        require_known_member_id: version >= 4 && group_instance_id.is_none(),
        group_instance_id,
        client_id: client_id(ctx),
        client_host: client_host(ctx),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: if version == 0 {
            req.session_timeout_ms
        } else {
            req.rebalance_timeout_ms
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| Protocol {
                name: p.name.to_string(),
                metadata: p.metadata,
            })
            .collect(),
    };
    let out = ctx.broker.groups.join_group(join).await;
    let mut resp = JoinGroupResponse::default();
    resp.error_code = out.error_code;
    resp.generation_id = out.generation_id;
    resp.protocol_type = out.protocol_type.as_deref().map(str_bytes);
    resp.protocol_name = match out.protocol_name {
        Some(name) => Some(str_bytes(&name)),
        None if version >= 7 => None,
        None => Some(str_bytes("")),
    };
    resp.leader = str_bytes(&out.leader_id);
    resp.member_id = str_bytes(&out.member_id);
    resp.members = out
        .members
        .into_iter()
        .map(|m| {
            let mut r = JoinGroupResponseMember::default();
            r.member_id = str_bytes(&m.member_id);
            r.group_instance_id = m.group_instance_id.as_deref().map(str_bytes);
            r.metadata = m.metadata;
            r
        })
        .collect();
    resp
}

/// The client id of the request header ("" when absent).
pub(crate) fn client_id(ctx: &RequestContext<'_>) -> String {
    ctx.header
        .client_id
        .as_ref()
        .map(|s| s.to_string())
        .unwrap_or_default()
}

/// The client's address as Kafka prints it (Java's `InetAddress.toString`: "/127.0.0.1").
pub(crate) fn client_host(ctx: &RequestContext<'_>) -> String {
    format!("/{}", ctx.peer.ip())
}
