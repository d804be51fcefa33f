//! DescribeGroups: state, protocol and members (client id, client host, and in Stable the
//! metadata and assignment bytes) of each group; an unknown group is described as "Dead" with
//! no error, as Kafka does.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use super::RequestContext;
use crate::wire::str_bytes;

/// Kafka's authorized-operations bits for a group: READ (3), DELETE (6), DESCRIBE (8).
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let mut resp = DescribeGroupsResponse::default();
    for id in req.groups {
        let mut g = DescribedGroup::default();
        if let Some(code) = ctx.broker.group_coordinator_error(id.0.as_str()).await {
            g.error_code = code;
            g.group_id = id;
            resp.groups.push(g);
            continue;
        }
        let d = ctx.broker.groups.describe_group(id.0.as_str());
        g.error_code = d.error_code;
        g.group_id = id;
        g.group_state = str_bytes(d.state);
        g.protocol_type = str_bytes(&d.protocol_type);
        g.protocol_data = str_bytes(&d.protocol);
        if ctx.version >= 3 && req.include_authorized_operations {
            g.authorized_operations = GROUP_OPERATIONS;
        }
        g.members = d
            .members
            .into_iter()
            .map(|m| {
                let mut r = DescribedGroupMember::default();
                r.member_id = str_bytes(&m.member_id);
                r.group_instance_id = m.group_instance_id.as_deref().map(str_bytes);
                r.client_id = str_bytes(&m.client_id);
                r.client_host = str_bytes(&m.client_host);
                r.member_metadata = m.metadata;
                r.member_assignment = m.assignment;
                r
            })
            .collect();
        resp.groups.push(g);
    }
    resp
}
