//! DeleteGroups: forgets empty consumer groups and their committed offsets
//! (`kafka-consumer-groups --delete`, the AdminClient's `deleteConsumerGroups`).

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::RequestContext;

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut resp = DeleteGroupsResponse::default();
    for group in req.groups_names {
        let mut r = DeletableGroupResult::default();
        r.error_code = ctx
            .broker
            .group_coordinator_error(group.0.as_str()).await
            .unwrap_or_else(|| ctx.broker.groups.delete_group(group.0.as_str()));
        r.group_id = group;
        resp.results.push(r);
    }
    resp
}
