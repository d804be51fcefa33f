//! Fetch: stored batches from each requested partition, long-polling until enough arrive.
//!
//! The answer goes out as soon as it holds `min_bytes`, when any partition has an error, or when
//! `max_wait_ms` has passed; while waiting the task sleeps on the partitions' high-watermark
//! watch channels (no polling, no busy loop). Each partition returns whole batches exactly as
//! stored, from the batch containing the fetch offset, up to `partition_max_bytes` and the
//! response's `max_bytes` (always at least one batch, so a large batch cannot block a consumer).
//! Fetch sessions (KIP-227) are not kept: every response has session id 0, which tells clients
//! to send full requests, a mode every client supports.
//!
//! Isolation: `read_uncommitted` (0) reads up to the high watermark; `read_committed` (1) up to
//! the last stable offset (no batch of a still-open transaction is returned), with the aborted
//! transactions overlapping the returned batches listed so that clients drop their records.
//! Control batches go out as stored; clients skip them. Both answer with the last stable offset,
//! as Kafka does. A committed fetch also wakes when a marker moves the last stable offset.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId, TopicName};
use tokio::sync::watch;

use super::{unknown_partition, RequestContext};
use crate::partition::{Partition, Watermarks};

/// One requested partition, resolved.
struct Wanted {
    index: i32,
    offset: i64,
    max_bytes: usize,
    partition: Option<Arc<Partition>>,
}

/// Longest wait honoured, whatever the client asks (Kafka caps at the request timeout too).
const MAX_WAIT_CAP: Duration = Duration::from_secs(60);

pub(crate) async fn handle(ctx: &RequestContext<'_>, req: FetchRequest) -> FetchResponse {
    let topics = &ctx.broker.topics;
    // Resolve partitions once; a missing one stays None and is answered with an error.
    let wanted: Vec<(TopicName, Vec<Wanted>)> = req
        .topics
        .iter()
        .map(|t| {
            let name = if t.topic.0.is_empty() {
                topics
                    .get_by_id(t.topic_id)
                    .map(|topic| TopicName(super::str_bytes(&topic.name)))
                    .unwrap_or_else(|| t.topic.clone())
            } else {
                t.topic.clone()
            };
            let parts = t
                .partitions
                .iter()
                .map(|p| Wanted {
                    index: p.partition,
                    offset: p.fetch_offset,
                    max_bytes: p.partition_max_bytes.max(0) as usize,
                    partition: topics.partition(name.0.as_str(), p.partition),
                })
                .collect();
            (name, parts)
        })
        .collect();
    let mut watchers: Vec<watch::Receiver<Watermarks>> = wanted
        .iter()
        .flat_map(|(_, ps)| ps.iter().filter_map(|w| w.partition.as_ref()))
        .map(|p| p.watch_watermarks())
        .collect();
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
            w.borrow_and_update();
        }
        let (resp, bytes, errors) = read_all(&wanted, max_bytes, read_committed);
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
            let (resp, _, _) = read_all(&wanted, max_bytes, read_committed);
            return resp;
        }
    }
}

/// Reads every requested partition once. Returns the response, total record bytes, and
/// whether any partition has an error.
fn read_all(
    wanted: &[(TopicName, Vec<Wanted>)],
    max_bytes: usize,
    read_committed: bool,
) -> (FetchResponse, usize, bool) {
    let mut resp = FetchResponse::default();
    let mut total = 0usize;
    let mut errors = false;
    for (name, parts) in wanted {
        let mut tr = FetchableTopicResponse::default();
        tr.topic = name.clone();
        for Wanted {
            index,
            offset,
            max_bytes: part_max,
            partition,
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
                    if *offset < o.log_start || *offset > o.high_watermark {
                        pd.error_code = ResponseError::OffsetOutOfRange.code();
                        errors = true;
                    } else if *offset < o.high_watermark && total < max_bytes {
                        let budget = (*part_max).min(max_bytes - total).max(1);
                        match p.fetch(*offset, budget, read_committed, &o) {
                            Ok(data) => {
                                total += data.records.len();
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
