//! ListGroups: every group this coordinator knows, with its protocol type and (v4+) state,
//! optionally filtered by state names (v4+).

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use super::RequestContext;
use crate::wire::str_bytes;

pub(crate) async fn handle(ctx: &RequestContext<'_>, req: ListGroupsRequest) -> ListGroupsResponse {
    let states: Vec<String> = if ctx.version >= 4 {
        req.states_filter.iter().map(|s| s.to_string()).collect()
    } else {
        Vec::new()
    };
    let mut resp = ListGroupsResponse::default();
    for g in ctx.broker.groups.list_groups(&states) {
        let mut l = ListedGroup::default();
        l.group_id = GroupId(str_bytes(&g.group_id));
        l.protocol_type = str_bytes(&g.protocol_type);
        l.group_state = str_bytes(g.state);
        resp.groups.push(l);
    }
    resp
}
