//! The key/value formats of `__transaction_state` records, byte for byte as Apache Kafka writes
//! them (`TransactionLogKey` v0 and `TransactionLogValue` v0), so the internal log reads like
//! Kafka's and tools that decode Kafka's formats work on it.
//!
//! Key: `version: i16 (0)`, `transactional_id: string`.
//! Value: `version: i16 (0)`, `producer_id: i64`, `producer_epoch: i16`,
//! `transaction_timeout_ms: i32`, `transaction_status: i8`, `transaction_partitions: nullable
//! [topic: string, partition_ids: [i32]]`, `last_update_timestamp_ms: i64`,
//! `start_timestamp_ms: i64`. A null value is a tombstone (the transactional id expired).
//! Strings carry an i16 length, arrays an i32 count (-1 = null), all big-endian.

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};

use crate::record_fields::{get_i16, get_i32, get_i64, get_i8, get_str, put_str};

use super::state::TxnState;

/// What `__transaction_state` says about one transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TxnRecord {
    /// The transactional id (the record key).
    pub(crate) transactional_id: String,
    /// The state, or `None` for a tombstone.
    pub(crate) value: Option<TxnValue>,
}

/// The value of a [`TxnRecord`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TxnValue {
    /// Producer id of the transactional id.
    pub(crate) producer_id: i64,
    /// Current producer epoch.
    pub(crate) producer_epoch: i16,
    /// Transaction timeout (ms) given with InitProducerId.
    pub(crate) timeout_ms: i32,
    /// Transaction state.
    pub(crate) state: TxnState,
    /// Partitions in the transaction (topic, partition).
    pub(crate) partitions: BTreeSet<(String, i32)>,
    /// When the state was last changed (ms since the epoch).
    pub(crate) last_update_ms: i64,
    /// When the current transaction began (ms since the epoch; -1 when none).
    pub(crate) start_ms: i64,
}

impl TxnRecord {
    /// Encodes the record as (key, value) bytes.
    pub(crate) fn encode(&self) -> (Bytes, Option<Bytes>) {
        let mut key = BytesMut::new();
        key.put_i16(0);
        put_str(&mut key, &self.transactional_id);
        let value = self.value.as_ref().map(|v| {
            let mut b = BytesMut::new();
            b.put_i16(0);
            b.put_i64(v.producer_id);
            b.put_i16(v.producer_epoch);
            b.put_i32(v.timeout_ms);
            b.put_i8(v.state.code());
            // Kafka writes null partitions for Empty, a (possibly empty) list otherwise.
            if v.state == TxnState::Empty {
                b.put_i32(-1);
            } else {
                let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
                for (t, p) in &v.partitions {
                    match topics.last_mut() {
                        Some((last, ps)) if *last == t.as_str() => ps.push(*p),
                        _ => topics.push((t.as_str(), vec![*p])),
                    }
                }
                b.put_i32(topics.len() as i32);
                for (t, ps) in topics {
                    put_str(&mut b, t);
                    b.put_i32(ps.len() as i32);
                    for p in ps {
                        b.put_i32(p);
                    }
                }
            }
            b.put_i64(v.last_update_ms);
            b.put_i64(v.start_ms);
            b.freeze()
        });
        (key.freeze(), value)
    }

    /// Decodes a record; `None` when the bytes are not a record this broker understands.
    pub(crate) fn decode(key: &[u8], value: Option<&[u8]>) -> Option<TxnRecord> {
        let mut k = key;
        if get_i16(&mut k)? != 0 {
            return None;
        }
        let transactional_id = get_str(&mut k)?;
        let value = match value {
            None => None,
            Some(mut v) => Some(decode_value(&mut v)?),
        };
        Some(TxnRecord {
            transactional_id,
            value,
        })
    }
}

fn decode_value(v: &mut &[u8]) -> Option<TxnValue> {
    // v1 (Kafka 4.0, KIP-890) is a flexible version with compact strings; only v0 is written
    // by kbroker.
    if get_i16(v)? != 0 {
        return None;
    }
    let producer_id = get_i64(v)?;
    let producer_epoch = get_i16(v)?;
    let timeout_ms = get_i32(v)?;
    let state = TxnState::from_code(get_i8(v)?)?;
    let mut partitions = BTreeSet::new();
    let topics = get_i32(v)?;
    for _ in 0..topics.max(0) {
        let topic = get_str(v)?;
        let count = get_i32(v)?;
        for _ in 0..count.max(0) {
            partitions.insert((topic.clone(), get_i32(v)?));
        }
    }
    let last_update_ms = get_i64(v)?;
    let start_ms = get_i64(v)?;
    Some(TxnValue {
        producer_id,
        producer_epoch,
        timeout_ms,
        state,
        partitions,
        last_update_ms,
        start_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(state: TxnState, partitions: &[(&str, i32)]) -> TxnValue {
        TxnValue {
            producer_id: 4000,
            producer_epoch: 3,
            timeout_ms: 60_000,
            state,
            partitions: partitions
                .iter()
                .map(|(t, p)| (t.to_string(), *p))
                .collect(),
            last_update_ms: 1_700_000_000_123,
            start_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn records_roundtrip_in_every_state_and_as_tombstones() {
        for state in [
            TxnState::Empty,
            TxnState::Ongoing,
            TxnState::PrepareCommit,
            TxnState::PrepareAbort,
            TxnState::CompleteCommit,
            TxnState::CompleteAbort,
        ] {
            let parts: &[(&str, i32)] = if state == TxnState::Empty {
                &[]
            } else {
                &[("a", 0), ("a", 2), ("b", 1)]
            };
            let r = TxnRecord {
                transactional_id: "tx-1".into(),
                value: Some(value(state, parts)),
            };
            let (k, v) = r.encode();
            assert_eq!(TxnRecord::decode(&k, v.as_deref()), Some(r));
        }
        let tomb = TxnRecord {
            transactional_id: "tx-1".into(),
            value: None,
        };
        let (k, v) = tomb.encode();
        assert_eq!(TxnRecord::decode(&k, v.as_deref()), Some(tomb));
    }

    #[test]
    fn layout_matches_kafka() {
        let (k, v) = TxnRecord {
            transactional_id: "t".into(),
            value: Some(value(TxnState::Ongoing, &[("x", 5)])),
        }
        .encode();
        assert_eq!(&k[..], &[0, 0, 0, 1, b't']);
        let v = v.unwrap();
        // version, pid, epoch, timeout, status 1 (Ongoing), 1 topic "x" with [5], 2 timestamps.
        assert_eq!(&v[..2], &[0, 0]);
        assert_eq!(&v[2..10], &4000i64.to_be_bytes());
        assert_eq!(&v[10..12], &3i16.to_be_bytes());
        assert_eq!(&v[12..16], &60_000i32.to_be_bytes());
        assert_eq!(v[16], 1);
        assert_eq!(&v[17..21], &1i32.to_be_bytes());
        assert_eq!(&v[21..24], &[0, 1, b'x']);
        assert_eq!(&v[24..28], &1i32.to_be_bytes());
        assert_eq!(&v[28..32], &5i32.to_be_bytes());
        assert_eq!(v.len(), 32 + 16);
        // Empty writes null partitions.
        let (_, v) = TxnRecord {
            transactional_id: "t".into(),
            value: Some(value(TxnState::Empty, &[])),
        }
        .encode();
        assert_eq!(&v.unwrap()[17..21], &(-1i32).to_be_bytes());
    }

    #[test]
    fn garbage_does_not_decode() {
        assert_eq!(TxnRecord::decode(&[], None), None);
        assert_eq!(TxnRecord::decode(&[0, 1, 0, 0], None), None);
        assert_eq!(TxnRecord::decode(&[0, 0, 0, 5, b'a'], None), None);
        assert_eq!(
            TxnRecord::decode(&[0, 0, 0, 1, b'a'], Some(&[0, 0, 1])),
            None
        );
        // An unknown status byte.
        let (k, v) = TxnRecord {
            transactional_id: "t".into(),
            value: Some(value(TxnState::Ongoing, &[])),
        }
        .encode();
        let mut v = v.unwrap().to_vec();
        v[16] = 42;
        assert_eq!(TxnRecord::decode(&k, Some(&v)), None);
    }
}
