//! The `__transaction_state` record log as the transaction coordinator reads and writes it.
//!
//! `__transaction_state` is a replicated, compacted topic like any other (a lone broker is a
//! quorum of one), spread over `transaction.state.log.num.partitions` partitions; the leader of
//! a partition coordinates its transactional ids, writes each state change as one batch
//! ([`encode_batch`]) and, when it starts leading, rebuilds the ids from the partition
//! ([`replay`]). The log cleaner keeps it bounded by the live state, as in Kafka.

use std::collections::HashMap;

use crate::log::{build_batch, decode_records, LogError, PartitionLog};

use super::records::TxnRecord;

/// Name of the internal topic.
pub(crate) const TXN_TOPIC: &str = "__transaction_state";

/// Replays a `__transaction_state` partition (`index`, for messages): the last record of every
/// transactional id still alive (tombstones removed), from the log start.
pub(crate) fn replay(
    log: &PartitionLog,
    index: i32,
) -> Result<HashMap<String, TxnRecord>, LogError> {
    let mut latest = HashMap::new();
    let start = log.log_start_offset();
    let mut count = 0usize;
    for item in log.batches_from(start) {
        let (header, bytes) = item?;
        if header.is_control() {
            continue;
        }
        let records = match decode_records(&bytes) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(
                    offset = header.base_offset,
                    "skipping undecodable batch in {TXN_TOPIC}-{index}: {e}"
                );
                continue;
            }
        };
        for r in records {
            let offset = header.base_offset + i64::from(r.offset_delta);
            if offset < start {
                continue;
            }
            let decoded = r
                .key
                .as_deref()
                .and_then(|k| TxnRecord::decode(k, r.value.as_deref()));
            match decoded {
                Some(rec) => {
                    count += 1;
                    latest.insert(rec.transactional_id.clone(), rec);
                }
                None => tracing::warn!(offset, "skipping unknown record in {TXN_TOPIC}-{index}"),
            }
        }
    }
    latest.retain(|_, r| r.value.is_some());
    tracing::info!(
        records = count,
        transactional_ids = latest.len(),
        "replayed {TXN_TOPIC}-{index}"
    );
    Ok(latest)
}

/// `records` as one uncompressed, non-transactional batch.
pub(crate) fn encode_batch(records: &[TxnRecord]) -> bytes::Bytes {
    let encoded: Vec<_> = records.iter().map(TxnRecord::encode).collect();
    let pairs: Vec<_> = encoded
        .iter()
        .map(|(k, v)| (Some(&k[..]), v.as_deref()))
        .collect();
    build_batch(&pairs, crate::clock::now_ms(), -1, -1, -1, false, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::LogConfig;
    use crate::txn::records::TxnValue;
    use crate::txn::state::TxnState;

    fn rec(id: &str, epoch: i16, state: TxnState) -> TxnRecord {
        TxnRecord {
            transactional_id: id.into(),
            value: Some(TxnValue {
                producer_id: 1,
                producer_epoch: epoch,
                timeout_ms: 1000,
                state,
                partitions: Default::default(),
                last_update_ms: 0,
                start_ms: -1,
            }),
        }
    }

    #[test]
    fn the_last_record_of_each_id_is_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("{TXN_TOPIC}-0"));
        {
            let mut log = PartitionLog::open(&path, LogConfig::default()).unwrap();
            assert!(replay(&log, 0).unwrap().is_empty());
            let tombstone = TxnRecord {
                transactional_id: "b".into(),
                value: None,
            };
            for r in [
                rec("a", 0, TxnState::Empty),
                rec("b", 0, TxnState::Empty),
                rec("a", 1, TxnState::Ongoing),
                tombstone,
            ] {
                log.append(encode_batch(&[r]), 0).unwrap();
            }
            // Dropped without flush, as after kill -9.
        }
        let log = PartitionLog::open(&path, LogConfig::default()).unwrap();
        let replayed = replay(&log, 0).unwrap();
        assert_eq!(replayed.len(), 1);
        assert_eq!(replayed["a"], rec("a", 1, TxnState::Ongoing));
    }
}
