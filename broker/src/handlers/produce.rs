//! Produce: validate each partition's record batches and append them as received.
//!
//! Batches are checked (framing, magic 2, CRC32C, size against the topic's
//! `max.message.bytes`) before anything is stored; a bad partition payload gets its Kafka error
//! and is not stored, while the other partitions of the request proceed. acks=1 answers once
//! the batch is in the leader's log (page cache); acks=0 gets no response at all (the
//! connection drops it).
//!
//! A storage failure (a full disk) answers KAFKA_STORAGE_ERROR (56) for that partition, as
//! Kafka does; the log undid the append, so nothing of the refused batch is stored, offsets and
//! producer state are unchanged, and the client's retry after space returns is appended as if
//! it were the first try.
//!
//! Replication: a partition this broker does not lead answers NOT_LEADER_OR_FOLLOWER. acks=all
//! (-1) is refused with NOT_ENOUGH_REPLICAS, nothing written, while the ISR is smaller than the
//! topic's `min.insync.replicas`; otherwise the answer waits until the high watermark passes the
//! appended batch (every ISR member has it), for all partitions of the request concurrently,
//! bounded by the request's `timeout_ms` (then REQUEST_TIMED_OUT; the data stays in the log).
//! Leadership lost while waiting gives NOT_LEADER_OR_FOLLOWER; an ISR that shrank below
//! `min.insync.replicas` by then gives NOT_ENOUGH_REPLICAS_AFTER_APPEND. With a single in-sync
//! replica the high watermark is the log end, so acks=all answers at once, as acks=1 does.
//!
//! Transactional batches go through the same path: the partition opens the producer's
//! transaction at its first batch (see [`crate::partition::txns`]). Kafka (KIP-890) refuses a
//! transactional batch for a partition the coordinator has not added to the transaction with
//! INVALID_TXN_STATE; kbroker accepts it for now (no verification against the coordinator).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::{unknown_partition, RequestContext};
use crate::wire::{str_bytes, KafkaError};
use crate::log::{batch, display_chain, LogError};
use crate::partition::{AppendError, Appended, LeaderAppendError, Partition};

/// An acks=all append waiting for the high watermark.
struct Waiting {
    /// Index of the topic in the response.
    topic: usize,
    /// Index of the partition in the topic's response.
    slot: usize,
    /// The partition.
    partition: Arc<Partition>,
    /// What was appended.
    appended: Appended,
    /// `min.insync.replicas`.
    required: usize,
}

/// Waits until `w`'s append is committed (see [`crate::partition::committed`]) and the ISR is still at
/// least `min.insync.replicas`.
async fn wait_committed(w: &Waiting, deadline: tokio::time::Instant) -> Result<(), KafkaError> {
    let p = &w.partition;
    crate::partition::committed::wait_committed(
        p,
        w.appended.last_offset,
        w.appended.leader_epoch,
        deadline,
    )
    .await
    .map_err(|e| KafkaError::with_code(e.code(), e.to_string()))?;
    let isr = p.isr_len();
    if isr < w.required {
        return Err(KafkaError::new(
            ResponseError::NotEnoughReplicasAfterAppend,
            format!(
                "{}-{}: written, but the ISR shrank to {isr} below min.insync.replicas {}",
                p.topic, p.index, w.required
            ),
        ));
    }
    Ok(())
}

/// `min.insync.replicas` of a topic: its override, else the broker default.
fn min_insync(topic: &crate::topics::Topic, default: i32) -> usize {
    topic
        .configs
        .get("min.insync.replicas")
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(default)
        .max(1) as usize
}

/// A produce request whose batches are appended; acks=all partitions may still wait for
/// replication. Owns everything it needs, so the connection can pipeline it (see
/// [`crate::connection`]).
pub(crate) struct Staged {
    /// The response, final for every partition not in `waiting`.
    resp: ProduceResponse,
    /// acks=all appends waiting for the high watermark.
    waiting: Vec<Waiting>,
    /// When waiting gives up (the request's `timeout_ms`).
    deadline: tokio::time::Instant,
    /// Who asked, for the log.
    peer: std::net::SocketAddr,
    /// The request version (error messages exist from v8).
    version: i16,
}

impl Staged {
    /// Waits for the replication of every acks=all append (concurrently) and returns the
    /// response.
    pub(crate) async fn complete(self) -> ProduceResponse {
        let Staged {
            mut resp,
            waiting,
            deadline,
            peer,
            version,
        } = self;
        if !waiting.is_empty() {
            let outcomes =
                futures::future::join_all(waiting.iter().map(|w| wait_committed(w, deadline)))
                    .await;
            for (w, outcome) in waiting.iter().zip(outcomes) {
                if let Err(e) = outcome {
                    let pr = &mut resp.responses[w.topic].partition_responses[w.slot];
                    refuse(peer, version, pr, &e);
                }
            }
        }
        resp
    }
}

/// Validates and appends every partition's batches, in request order, now.
pub(crate) fn stage(ctx: &RequestContext<'_>, req: ProduceRequest) -> Staged {
    let broker = ctx.broker;
    let acks_ok = matches!(req.acks, -1..=1);
    let now = crate::clock::now_ms();
    let deadline = tokio::time::Instant::now()
        + std::time::Duration::from_millis(req.timeout_ms.max(0) as u64);
    let mut waiting: Vec<Waiting> = Vec::new();
    let mut resp = ProduceResponse::default();
    for topic_data in req.topic_data {
        let name = topic_data.name.0.as_str();
        let topic = broker.topics.get(name);
        let max_bytes = topic.as_ref().map(|t| t.max_message_bytes);
        let compacted = topic
            .as_ref()
            .is_some_and(|t| crate::topics::configs::is_compacted(&t.configs));
        let required = match (&topic, req.acks) {
            (Some(t), -1) => min_insync(t, broker.config.min_insync_replicas),
            _ => 0,
        };
        let mut topic_resp = TopicProduceResponse::default();
        topic_resp.name = topic_data.name.clone();
        for p in topic_data.partition_data {
            let mut pr = PartitionProduceResponse::default();
            pr.index = p.index;
            let partition = topic
                .as_ref()
                .and_then(|t| t.partition(p.index));
            let mut appended_to = None;
            let result = match (acks_ok, partition, p.records, max_bytes) {
                (false, ..) => Err(KafkaError::new(
                    ResponseError::InvalidRequiredAcks,
                    format!("acks={} is invalid: use -1 (all), 0 or 1", req.acks),
                )),
                (_, None, ..) | (_, _, _, None) => Err(KafkaError::with_code(
                    unknown_partition(),
                    format!("{name}-{} is not hosted by this broker", p.index),
                )),
                (_, _, None, _) => Err(KafkaError::new(
                    ResponseError::InvalidRecord,
                    "produce request carries no records".to_owned(),
                )),
                (_, Some(partition), Some(records), Some(max)) => {
                    let checked = batch::validate_produce(&records, max).and_then(|headers| {
                        if compacted {
                            batch::check_keys_present(&records, &headers)?;
                        }
                        Ok(headers)
                    });
                    match checked {
                        Err(e) => Err(KafkaError::with_code(
                            e.kafka_error_code(),
                            format!("{name}-{}: {e}", p.index),
                        )),
                        Ok(headers) => {
                            appended_to = Some(partition.clone());
                            partition
                                .append_as_leader(records, &headers, now, required)
                                .map_err(|e| refused_append(name, p.index, &e))
                        }
                    }
                }
            };
            match result {
                Ok(info) => {
                    pr.base_offset = info.base_offset;
                    pr.log_append_time_ms = -1;
                    pr.log_start_offset = info.log_start_offset;
                    if let (-1, Some(partition)) = (req.acks, appended_to) {
                        waiting.push(Waiting {
                            topic: resp.responses.len(),
                            slot: topic_resp.partition_responses.len(),
                            partition,
                            appended: info,
                            required,
                        });
                    }
                }
                Err(e) => refuse(ctx.peer, ctx.version, &mut pr, &e),
            }
            topic_resp.partition_responses.push(pr);
        }
        resp.responses.push(topic_resp);
    }
    Staged {
        resp,
        waiting,
        deadline,
        peer: ctx.peer,
        version: ctx.version,
    }
}

/// The code and message answering an append the partition refused. Storage errors (a full
/// disk: KAFKA_STORAGE_ERROR, nothing written) are logged once per log directory by the log
/// layer rather than once per request here; other log errors (corruption) are logged here.
fn refused_append(topic: &str, index: i32, e: &LeaderAppendError) -> KafkaError {
    if let LeaderAppendError::Append(AppendError::Log(log_error)) = e {
        if !matches!(log_error, LogError::Io { .. }) {
            tracing::error!(topic, partition = index, error = %display_chain(e), "append failed");
        }
    }
    KafkaError::with_code(e.code(), format!("{topic}-{index}: {}", display_chain(e)))
}

/// Fills a partition's response with an error.
fn refuse(
    peer: std::net::SocketAddr,
    version: i16,
    pr: &mut PartitionProduceResponse,
    e: &KafkaError,
) {
    tracing::debug!(%peer, "produce refused: {}", e.message);
    pr.error_code = e.code;
    pr.base_offset = -1;
    if version >= 8 {
        pr.error_message = Some(str_bytes(&e.message));
    }
}
