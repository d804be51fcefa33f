//! FindCoordinator: on this single broker the coordinator of every group (key type 0) and
//! every transactional id (key type 1) is this broker. v0-3 carry one key; v4+ a batch.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::{str_bytes, RequestContext};

/// Key type of a consumer group.
const GROUP: i8 = 0;
/// Key type of a transactional id.
const TRANSACTION: i8 = 1;

/// Where the coordinator is, or why there is none: (error, node id, host, port).
fn locate(ctx: &RequestContext<'_>, key_type: i8) -> (i16, i32, StrBytes, i32) {
    if key_type != GROUP && key_type != TRANSACTION {
        return (
            ResponseError::InvalidRequest.code(),
            -1,
            StrBytes::default(),
            -1,
        );
    }
    let broker = ctx.broker;
    (
        0,
        broker.node_id(),
        str_bytes(&broker.advertised_host),
        i32::from(broker.advertised_port),
    )
}

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let mut resp = FindCoordinatorResponse::default();
    if ctx.version >= 4 {
        for key in req.coordinator_keys {
            let (error_code, node_id, host, port) = locate(ctx, req.key_type);
            let mut c = Coordinator::default();
            c.key = key;
            c.error_code = error_code;
            c.error_message = None;
            c.node_id = BrokerId(node_id);
            c.host = host;
            c.port = port;
            resp.coordinators.push(c);
        }
    } else {
        let (error_code, node_id, host, port) = locate(ctx, req.key_type);
        resp.error_code = error_code;
        resp.error_message = None;
        resp.node_id = BrokerId(node_id);
        resp.host = host;
        resp.port = port;
    }
    resp
}
