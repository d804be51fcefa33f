//! The Kafka APIs kbroker implements: one module per API, registered in one table.
//!
//! The `apis!` table below is the single source of truth: it generates both the dispatch
//! `match` and the version ranges that ApiVersions advertises, so the broker never advertises
//! an API or a version it does not handle. Each handler is
//! `async fn handle(ctx: &RequestContext<'_>, req: XRequest) -> XResponse` and works on decoded
//! `kafka-protocol` messages; framing and I/O live in [`crate::connection`]. A *staged* API
//! (Produce) is split in two instead: `stage(ctx, req)` applies the request now and returns what
//! `complete()`s into its response later, so that a connection can pipeline it.

use std::net::SocketAddr;
use std::sync::Arc;

use futures::future::BoxFuture;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};

use crate::broker::Broker;

/// What a handler knows about the request beyond its body.
pub(crate) struct RequestContext<'a> {
    /// The broker's shared state.
    pub(crate) broker: &'a Arc<Broker>,
    /// The request header (client id, correlation id).
    pub(crate) header: &'a RequestHeader,
    /// The negotiated version of this request.
    pub(crate) version: i16,
    /// The client's address.
    pub(crate) peer: SocketAddr,
}

/// How a request is served, as [`dispatch`] hands it to the connection.
pub(crate) enum Handling<'a> {
    /// Its effect is applied already, in arrival order (a Produce request's batches are
    /// appended); only its response is still to come (acks=all waits for replication), and the
    /// connection may read and stage the next requests meanwhile.
    Staged(BoxFuture<'static, ResponseKind>),
    /// Nothing has happened yet: the connection polls it once every earlier response is sent,
    /// so the request sees the connection as if requests were handled one at a time.
    InTurn(BoxFuture<'a, ResponseKind>),
}

macro_rules! apis {
    (
        staged { $( $sapi:ident => $smodule:ident, $smin:literal ..= $smax:literal; )* }
        in_turn { $( $api:ident => $module:ident, $min:literal ..= $max:literal; )* }
    ) => {
        $( pub(crate) mod $smodule; )*
        $( pub(crate) mod $module; )*

        /// Every implemented API with the versions it handles.
        pub(crate) const SUPPORTED: &[(ApiKey, i16, i16)] = &[
            $( (ApiKey::$sapi, $smin, $smax), )*
            $( (ApiKey::$api, $min, $max), )*
        ];

        /// Routes a decoded request to its handler: a staged API's `stage` runs now and its
        /// response is left to come; any other API's `handle` runs when the returned future is
        /// polled.
        pub(crate) fn dispatch<'a>(ctx: &'a RequestContext<'_>, request: RequestKind) -> Handling<'a> {
            match request {
                $( RequestKind::$sapi(r) => {
                    let staged = $smodule::stage(ctx, r);
                    Handling::Staged(Box::pin(async move { ResponseKind::$sapi(staged.complete().await) }))
                } )*
                $( RequestKind::$api(r) => Handling::InTurn(Box::pin(async move {
                    ResponseKind::$api($module::handle(ctx, r).await)
                })), )*
                // `supported_versions` is checked before decoding, so nothing else gets here.
                other => unreachable!("unregistered API reached dispatch: {other:?}"),
            }
        }
    };
}

// Version ranges: the minimum is the lowest the `kafka-protocol` codec supports; the maximum is
// the highest whose semantics kbroker implements. librdkafka 2.0-2.12, kafka-python and the Java
// client all negotiate within these.
apis! {
    staged {
        Produce => produce, 3..=9;
    }
    in_turn {
    Fetch => fetch, 4..=12;
    ListOffsets => list_offsets, 1..=6;
    Metadata => metadata, 0..=12;
    ApiVersions => api_versions, 0..=3;
    CreateTopics => create_topics, 2..=7;
    DeleteTopics => delete_topics, 1..=6;
    CreatePartitions => create_partitions, 0..=3;
    DescribeConfigs => describe_configs, 1..=4;
    DescribeCluster => describe_cluster, 0..=1;
    DescribeLogDirs => describe_log_dirs, 1..=4;
    InitProducerId => init_producer_id, 0..=4;
    AddPartitionsToTxn => add_partitions_to_txn, 0..=3;
    AddOffsetsToTxn => add_offsets_to_txn, 0..=3;
    EndTxn => end_txn, 0..=3;
    TxnOffsetCommit => txn_offset_commit, 0..=3;
    FindCoordinator => find_coordinator, 0..=4;
    JoinGroup => join_group, 0..=9;
    SyncGroup => sync_group, 0..=5;
    Heartbeat => heartbeat, 0..=4;
    LeaveGroup => leave_group, 0..=5;
    OffsetCommit => offset_commit, 2..=8;
    OffsetFetch => offset_fetch, 1..=8;
    ListGroups => list_groups, 0..=4;
    DescribeGroups => describe_groups, 0..=5;
    OffsetForLeaderEpoch => offset_for_leader_epoch, 2..=4;
    WriteTxnMarkers => write_txn_markers, 1..=1;
    IncrementalAlterConfigs => incremental_alter_configs, 0..=1;
    DeleteRecords => delete_records, 0..=2;
    DeleteGroups => delete_groups, 0..=2;
    OffsetDelete => offset_delete, 0..=0;
    DescribeTopicPartitions => describe_topic_partitions, 0..=0;
    }
}

/// APIs whose advertised minimum is lower than what kbroker decodes.
///
/// librdkafka before 2.10 (Debian's kcat links 2.0.2) only compresses with gzip or snappy when
/// the broker's Produce range includes v0, and with lz4 when it includes v0 as well; it then
/// sends its highest common version (v7), never v0. Kafka 4.0 raised its minimum to v3 and these
/// clients silently stopped compressing. kbroker advertises v0 so they keep compressing; a real
/// Produce v0-v2 request (message format v0/v1, clients older than Kafka 0.11) is refused with a
/// clear log line and a closed connection, as an unsupported version is.
pub(crate) const ADVERTISED_MIN: &[(ApiKey, i16)] = &[(ApiKey::Produce, 0)];

/// The version range kbroker advertises for `key` in ApiVersions.
pub(crate) fn advertised_versions(key: ApiKey) -> Option<(i16, i16)> {
    let (min, max) = supported_versions(key)?;
    let min = ADVERTISED_MIN
        .iter()
        .find(|(k, _)| *k == key)
        .map_or(min, |&(_, m)| m);
    Some((min, max))
}

/// The version range kbroker handles for `key`, if it implements it.
pub(crate) fn supported_versions(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|&(_, min, max)| (min, max))
}

/// Error code for a partition this broker does not host.
pub(crate) fn unknown_partition() -> i16 {
    kafka_protocol::error::ResponseError::UnknownTopicOrPartition.code()
}
