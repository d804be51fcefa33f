//! Produce: validate each partition's record batches and append them as received.
//!
//! Batches are checked (framing, magic 2, CRC32C, size against the topic's
//! `max.message.bytes`) before anything is stored; a bad partition payload gets its Kafka error
//! and is not stored, while the other partitions of the request proceed. With a single broker,
//! acks=1 and acks=all both answer once the batch is in the log (page cache); acks=0 gets no
//! response at all (the connection drops it).
//!
//! Transactional batches go through the same path: the partition opens the producer's
//! transaction at its first batch (see [`crate::partition_txns`]). Kafka (KIP-890) refuses a
//! transactional batch for a partition the coordinator has not added to the transaction with
//! INVALID_TXN_STATE; kbroker accepts it for now (no verification against the coordinator).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::{str_bytes, unknown_partition, RequestContext};
use crate::log::batch;
use crate::partition::AppendError;

pub(crate) async fn handle(ctx: &RequestContext<'_>, req: ProduceRequest) -> ProduceResponse {
    let broker = ctx.broker;
    let acks_ok = matches!(req.acks, -1..=1);
    let now = crate::clock::now_ms();
    let mut resp = ProduceResponse::default();
    for topic_data in req.topic_data {
        let name = topic_data.name.0.as_str();
        let topic = broker.topics.get(name);
        let max_bytes = topic.as_ref().map(|t| t.max_message_bytes);
        let mut topic_resp = TopicProduceResponse::default();
        topic_resp.name = topic_data.name.clone();
        for p in topic_data.partition_data {
            let mut pr = PartitionProduceResponse::default();
            pr.index = p.index;
            let partition = topic
                .as_ref()
                .and_then(|t| t.partition(p.index));
            let result = match (acks_ok, partition, p.records, max_bytes) {
                (false, ..) => Err((
                    ResponseError::InvalidRequiredAcks.code(),
                    format!("acks={} is invalid: use -1 (all), 0 or 1", req.acks),
                )),
                (_, None, ..) | (_, _, _, None) => Err((
                    unknown_partition(),
                    format!("{name}-{} is not hosted by this broker", p.index),
                )),
                (_, _, None, _) => Err((
                    ResponseError::InvalidRecord.code(),
                    "produce request carries no records".to_owned(),
                )),
                (_, Some(partition), Some(records), Some(max)) => {
                    match batch::validate_produce(&records, max) {
                        Err(e) => Err((e.kafka_error_code(), format!("{name}-{}: {e}", p.index))),
                        Ok(headers) => partition.append(records, &headers, now).map_err(|e| {
                            if let AppendError::Log(_) = e {
                                tracing::error!(topic = name, partition = p.index, error = %e, "append failed");
                            }
                            (e.code(), format!("{name}-{}: {e}", p.index))
                        }),
                    }
                }
            };
            match result {
                Ok(info) => {
                    pr.base_offset = info.base_offset;
                    pr.log_append_time_ms = -1;
                    pr.log_start_offset = info.log_start_offset;
                }
                Err((code, message)) => {
                    tracing::debug!(peer = %ctx.peer, "produce refused: {message}");
                    pr.error_code = code;
                    pr.base_offset = -1;
                    if ctx.version >= 8 {
                        pr.error_message = Some(str_bytes(&message));
                    }
                }
            }
            topic_resp.partition_responses.push(pr);
        }
        resp.responses.push(topic_resp);
    }
    resp
}
