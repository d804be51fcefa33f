//! Fetch: stored batches from each requested partition, long-polling until enough arrive.
//!
//! The answer goes out as soon as it holds `min_bytes`, when any partition has an error, or when
//! `max_wait_ms` has passed; while waiting the task sleeps on the partitions' high-watermark
//! watch channels (no polling, no busy loop). Each partition returns whole batches exactly as
//! stored, from the batch containing the fetch offset, within `partition_max_bytes` and what is
//! left of the response's `max_bytes`. As in Kafka (KIP-74), only the first partition that
//! returns anything may go over those limits, by its first batch, so a large batch cannot block a
//! consumer; every later partition stays strictly within them (a partition whose next batch does
//! not fit returns nothing this time). A response larger than `max_bytes` is one the Java client
//! may refuse to read.
//! Fetch sessions (KIP-227) are not kept: every response has session id 0, which tells clients
//! to send full requests, a mode every client supports.
//!
//! Isolation: `read_uncommitted` (0) reads up to the high watermark; `read_committed` (1) up to
//! the last stable offset (no batch of a still-open transaction is returned), with the aborted
//! transactions overlapping the returned batches listed so that clients drop their records.
//! Control batches go out as stored; clients skip them. Both answer with the last stable offset,
//! as Kafka does. A committed fetch also wakes when a marker moves the last stable offset.
//!
//! Replication: only the leader serves a partition; others answer NOT_LEADER_OR_FOLLOWER, and
//! a `current_leader_epoch` (v9+) older than the leader's gets FENCED_LEADER_EPOCH, a newer one
//! UNKNOWN_LEADER_EPOCH. A fetch with `replica_id >= 0` comes from a follower: it reads up to
//! the log end (not the high watermark), wakes on every append (the log-end channel), and its
//! fetch offset is recorded as the follower's log end, which may move the high watermark and
//! the ISR ([`crate::partition::Partition::record_replica_fetch`]). With `last_fetched_epoch`
//! (v12+), a fetcher whose last epoch ends, in the leader's epoch cache, before its fetch offset
//! (or is unknown) gets `diverging_epoch` and no records (KIP-320/595) and truncates.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId, TopicName};
use tokio::sync::watch;

use super::{unknown_partition, RequestContext};
use crate::partition::{Partition, ReplicaFetch, Watermarks};

/// One requested partition, resolved.
struct Wanted {
    index: i32,
    offset: i64,
    max_bytes: usize,
    partition: Option<Arc<Partition>>,
    /// An error found before reading (leadership, epochs).
    error: Option<i16>,
    /// Where the fetcher's last epoch ends here, when it diverges.
    diverging: Option<(i32, i64)>,
}

/// What a waiting fetch sleeps on: consumers on the watermarks, followers on the log end.
enum Watcher {
    Marks(watch::Receiver<Watermarks>),
    End(watch::Receiver<i64>),
}

impl Watcher {
    fn mark_seen(&mut self) {
        match self {
            Watcher::Marks(w) => {
                w.borrow_and_update();
            }
            Watcher::End(w) => {
                w.borrow_and_update();
            }
        }
    }

    async fn changed(&mut self) -> Result<(), watch::error::RecvError> {
        match self {
            Watcher::Marks(w) => w.changed().await,
            Watcher::End(w) => w.changed().await,
        }
    }
}

/// Checks leadership, the client's leader epoch and divergence for one partition; for a
/// follower also records its fetch offset. Returns the error or the diverging epoch.
fn precheck(
    p: &Partition,
    replica_id: i32,
    fetch: &kafka_protocol::messages::fetch_request::FetchPartition,
    version: i16,
) -> (Option<i16>, Option<(i32, i64)>) {
    let Some(epoch) = p.leader_epoch() else {
        return (Some(ResponseError::NotLeaderOrFollower.code()), None);
    };
    if version >= 9 && fetch.current_leader_epoch >= 0 {
        if fetch.current_leader_epoch < epoch {
            return (Some(ResponseError::FencedLeaderEpoch.code()), None);
        }
        if fetch.current_leader_epoch > epoch {
            return (Some(ResponseError::UnknownLeaderEpoch.code()), None);
        }
    }
    if version >= 12 && fetch.last_fetched_epoch >= 0 {
        let (e, end) = p.epoch_end_offset(fetch.last_fetched_epoch);
        if e < 0 || end < 0 {
            // The follower's epoch is newer than any this leader knows: (-1, -1) would read as
            // "no divergence", so point it at this log's end under the latest epoch instead.
            let latest = p.latest_epoch();
            if latest >= 0 {
                return (None, Some((latest, p.log_end_offset())));
            }
        } else if end < fetch.fetch_offset || e < fetch.last_fetched_epoch {
            return (None, Some((e, end)));
        }
    }
    if replica_id >= 0 {
        match p.record_replica_fetch(replica_id, fetch.fetch_offset, crate::clock::now_ms()) {
            ReplicaFetch::Recorded => {}
            ReplicaFetch::NotLeader | ReplicaFetch::NotAReplica => {
                return (Some(ResponseError::NotLeaderOrFollower.code()), None);
            }
        }
    }
    (None, None)
}

/// Longest wait honoured, whatever the client asks (Kafka caps at the request timeout too).
const MAX_WAIT_CAP: Duration = Duration::from_secs(60);

pub(crate) async fn handle(ctx: &RequestContext<'_>, req: FetchRequest) -> FetchResponse {
    let topics = &ctx.broker.topics;
    let replica_id = req.replica_id.0;
    let version = ctx.version;
    // Resolve partitions once; a missing one stays None and is answered with an error.
    let wanted: Vec<(TopicName, Vec<Wanted>)> = req
        .topics
        .iter()
        .map(|t| {
            let name = if t.topic.0.is_empty() {
                topics
                    .get_by_id(t.topic_id)
                    .map(|topic| TopicName(crate::wire::str_bytes(&topic.name)))
                    .unwrap_or_else(|| t.topic.clone())
            } else {
                t.topic.clone()
            };
            let parts = t
                .partitions
                .iter()
                .map(|p| {
                    let partition = topics.partition(name.0.as_str(), p.partition);
                    let (error, diverging) = partition
                        .as_ref()
                        .map_or((None, None), |part| precheck(part, replica_id, p, version));
                    if replica_id >= 0 {
                        tracing::trace!(
                            replica_id,
                            topic = %name.0,
                            partition = p.partition,
                            offset = p.fetch_offset,
                            last_fetched_epoch = p.last_fetched_epoch,
                            current_leader_epoch = p.current_leader_epoch,
                            hosted = partition.is_some(),
                            ?error,
                            ?diverging,
                            "replica fetch"
                        );
                    }
                    Wanted {
                        index: p.partition,
                        offset: p.fetch_offset,
                        max_bytes: p.partition_max_bytes.max(0) as usize,
                        partition,
                        error,
                        diverging,
                    }
                })
                .collect();
            (name, parts)
        })
        .collect();
    let mut watchers: Vec<Watcher> = wanted
        .iter()
        .flat_map(|(_, ps)| ps.iter().filter_map(|w| w.partition.as_ref()))
        .map(|p| {
            if replica_id >= 0 {
                Watcher::End(p.watch_log_end())
            } else {
                Watcher::Marks(p.watch_watermarks())
            }
        })
        .collect();
    let for_replica = replica_id >= 0;
    let wait = Duration::from_millis(req.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
    let deadline = tokio::time::Instant::now() + wait;
    let min_bytes = req.min_bytes.max(0) as usize;
    let max_bytes = if req.max_bytes <= 0 {
        usize::MAX
    } else {
        req.max_bytes as usize
    };
    let read_committed = req.isolation_level == 1;
    loop {
        for w in &mut watchers {
            w.mark_seen();
        }
        let (resp, bytes, errors) = read_all(&wanted, max_bytes, read_committed, for_replica);
        if bytes >= min_bytes.max(1)
            || errors
            || tokio::time::Instant::now() >= deadline
            || watchers.is_empty()
        {
            if bytes == 0 && !errors && watchers.is_empty() && !wait.is_zero() {
                // Nothing to wait on (every partition unknown is an error, so this is an empty
                // request): honour max_wait so a client loop does not spin.
                tokio::time::sleep_until(deadline).await;
            }
            return resp;
        }
        let changed =
            futures::future::select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            // Deadline passed: answer with whatever there is now.
            let (resp, _, _) = read_all(&wanted, max_bytes, read_committed, for_replica);
            return resp;
        }
    }
}

/// Reads every requested partition once (a follower up to the log end). Returns the response,
/// total record bytes, and whether any partition has an error or diverges.
fn read_all(
    wanted: &[(TopicName, Vec<Wanted>)],
    max_bytes: usize,
    read_committed: bool,
    for_replica: bool,
) -> (FetchResponse, usize, bool) {
    let mut resp = FetchResponse::default();
    let mut total = 0usize;
    let mut errors = false;
    // KIP-74: the first batch of the first non-empty partition may exceed the limits.
    let mut first_may_exceed = true;
    for (name, parts) in wanted {
        let mut tr = FetchableTopicResponse::default();
        tr.topic = name.clone();
        for Wanted {
            index,
            offset,
            max_bytes: part_max,
            partition,
            error,
            diverging,
        } in parts
        {
            let mut pd = PartitionData::default();
            pd.partition_index = *index;
            if read_committed {
                pd.aborted_transactions = Some(Vec::new());
            } else {
                pd.aborted_transactions = None;
            }
            match partition {
                None => {
                    pd.error_code = unknown_partition();
                    pd.high_watermark = -1;
                    errors = true;
                }
                Some(p) => {
                    let o = p.offsets();
                    pd.high_watermark = o.high_watermark;
                    pd.last_stable_offset = o.last_stable_offset;
                    pd.log_start_offset = o.log_start;
                    // A follower reads up to the log end; consumers up to the watermarks. An
                    // offset is out of range only past the log end, as in Kafka: a consumer
                    // can be ahead of a newly elected leader's high watermark (it read up to
                    // the old leader's) and must then wait, not be reset.
                    let log_end = p.log_end_offset();
                    let readable = if for_replica {
                        log_end
                    } else {
                        o.high_watermark
                    };
                    if let Some(code) = error {
                        pd.error_code = *code;
                        pd.high_watermark = -1;
                        errors = true;
                    } else if let Some((epoch, end_offset)) = diverging {
                        pd.diverging_epoch.epoch = *epoch;
                        pd.diverging_epoch.end_offset = *end_offset;
                        errors = true;
                    } else if *offset < o.log_start || *offset > log_end {
                        pd.error_code = ResponseError::OffsetOutOfRange.code();
                        errors = true;
                    } else if *offset < readable && (first_may_exceed || total < max_bytes) {
                        let budget = (*part_max).min(max_bytes.saturating_sub(total));
                        let read = if for_replica {
                            p.fetch_for_replica(*offset, budget, first_may_exceed)
                                .map(|records| crate::partition::FetchedData {
                                    records,
                                    aborted: Vec::new(),
                                })
                        } else {
                            p.fetch(*offset, budget, first_may_exceed, read_committed, &o)
                        };
                        match read {
                            Ok(data) => {
                                total += data.records.len();
                                first_may_exceed &= data.records.is_empty();
                                pd.records = Some(data.records);
                                if read_committed {
                                    pd.aborted_transactions = Some(
                                        data.aborted
                                            .iter()
                                            .map(|a| {
                                                let mut t = AbortedTransaction::default();
                                                t.producer_id = ProducerId(a.producer_id);
                                                t.first_offset = a.first_offset;
                                                t
                                            })
                                            .collect(),
                                    );
                                }
                            }
                            Err(e) => {
                                // Retention may move the log start between the snapshot and
                                // the read: that is OFFSET_OUT_OF_RANGE, not a storage error.
                                tracing::warn!(topic = %p.topic, partition = p.index, offset, error = %e, "fetch read failed");
                                pd.error_code = e.kafka_error_code();
                                errors = true;
                            }
                        }
                    }
                }
            }
            if pd.records.is_none() {
                pd.records = Some(bytes::Bytes::new());
            }
            tr.partitions.push(pd);
        }
        resp.responses.push(tr);
    }
    (resp, total, errors)
}
