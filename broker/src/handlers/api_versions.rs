//! ApiVersions: the APIs and versions this broker speaks, straight from the handler table.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use super::{RequestContext, SUPPORTED};

/// The advertised list, built from the table of implemented handlers.
pub(crate) fn supported_list() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|&(key, _, max)| {
            let min = super::advertised_versions(key).map_or(0, |(min, _)| min);
            let mut v = ApiVersion::default();
            v.api_key = key as i16;
            v.min_version = min;
            v.max_version = max;
            v
        })
        .collect()
}

pub(crate) async fn handle(
    _ctx: &RequestContext<'_>,
    _req: ApiVersionsRequest,
) -> ApiVersionsResponse {
    let mut resp = ApiVersionsResponse::default();
    resp.api_keys = supported_list();
    resp
}
