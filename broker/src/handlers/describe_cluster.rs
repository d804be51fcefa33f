//! DescribeCluster: the cluster id, controller and brokers (what admin clients show).

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::RequestContext;
use crate::wire::str_bytes;

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    _req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let broker = ctx.broker;
    let mut resp = DescribeClusterResponse::default();
    resp.cluster_id = str_bytes(&broker.cluster_id);
    resp.controller_id = BrokerId(broker.controller_id());
    for live in broker.live_brokers() {
        let mut b = DescribeClusterBroker::default();
        b.broker_id = BrokerId(live.id);
        b.host = str_bytes(&live.host);
        b.port = i32::from(live.port);
        b.rack = live.rack.as_deref().map(str_bytes);
        resp.brokers.push(b);
    }
    resp
}
