//! Idempotent producers: per partition, what each producer id wrote last.
//!
//! An idempotent producer numbers its batches per partition (`baseSequence`) under a producer
//! id and epoch. The broker keeps, for every producer id, the metadata of its last five batches
//! (Kafka keeps exactly five: librdkafka and the Java client allow at most five in flight, so a
//! retried batch is always among them). A batch is then either
//! - the next in sequence: append it;
//! - one already written (a retry after a lost response): answer with its original offsets and
//!   store nothing;
//! - out of order (a gap): OUT_OF_ORDER_SEQUENCE_NUMBER, nothing stored;
//! - from an older epoch (a zombie): INVALID_PRODUCER_EPOCH, nothing stored.
//!
//! Transaction markers (control batches written by the transaction coordinator) carry no
//! sequence but do carry the producer epoch and the coordinator epoch: a marker from an older
//! producer epoch or an older coordinator is refused ([`ProducerStates::check_marker`]), and a
//! marker with a bumped epoch (the coordinator fencing a zombie by aborting with epoch + 1) moves
//! the producer to that epoch, so the zombie's later batches are refused
//! ([`ProducerStates::record_marker`]). Which transactions are open is not kept here but in
//! [`crate::partition::txns`].
//!
//! The state is derived from the log, so it survives restarts by replaying batch headers from
//! the start of the newest segment on open (see [`ProducerStates::rebuild`]).

use std::collections::{HashMap, VecDeque};

use kafka_protocol::error::ResponseError;

use crate::log::{BatchHeader, PartitionLog};
use crate::partition::txns::ControlMarker;

/// Batches remembered per producer id.
const REMEMBERED: usize = 5;

/// Why a batch was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SequenceError {
    #[error("producer {producer_id} epoch {epoch} is older than the current epoch {current}")]
    StaleEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    #[error(
        "producer {producer_id} sent sequence {got}, expected {expected} (a batch is missing)"
    )]
    OutOfOrder {
        producer_id: i64,
        expected: i32,
        got: i32,
    },
    #[error(
        "transaction marker for producer {producer_id} comes from coordinator epoch \
         {coordinator_epoch}, older than {current}"
    )]
    CoordinatorFenced {
        producer_id: i64,
        coordinator_epoch: i32,
        current: i32,
    },
}

impl SequenceError {
    /// The Kafka error code for the produce response.
    pub(crate) fn code(&self) -> i16 {
        match self {
            SequenceError::StaleEpoch { .. } => ResponseError::InvalidProducerEpoch.code(),
            SequenceError::OutOfOrder { .. } => ResponseError::OutOfOrderSequenceNumber.code(),
            SequenceError::CoordinatorFenced { .. } => {
                ResponseError::TransactionCoordinatorFenced.code()
            }
        }
    }
}

/// What to do with a produce payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// New data: append it.
    Append,
    /// Already written: answer with this base offset, store nothing.
    Duplicate { base_offset: i64 },
}

/// One remembered batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchMeta {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
}

/// What is known about one producer id on this partition.
#[derive(Debug, Clone)]
struct Producer {
    /// Current epoch: batches and markers from older epochs are refused.
    epoch: i16,
    /// The last batches of the current epoch, oldest first (empty right after an epoch bump by
    /// a marker).
    recent: VecDeque<BatchMeta>,
    /// Epoch of the transaction coordinator that wrote this producer's last marker (-1: none).
    coordinator_epoch: i32,
}

impl Default for Producer {
    fn default() -> Self {
        Producer {
            epoch: 0,
            recent: VecDeque::new(),
            coordinator_epoch: -1,
        }
    }
}

/// The producer state of one partition.
#[derive(Debug, Default)]
pub(crate) struct ProducerStates {
    producers: HashMap<i64, Producer>,
}

/// The sequence number after `seq` (sequences wrap from `i32::MAX` to 0, as in Kafka).
fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

/// The last sequence of a batch.
fn last_seq(h: &BatchHeader) -> i32 {
    ((i64::from(h.base_sequence) + i64::from(h.last_offset_delta)) % (i64::from(i32::MAX) + 1))
        as i32
}

impl ProducerStates {
    /// Decides what to do with the batches of one produce payload (usually one batch).
    pub(crate) fn check(&self, headers: &[BatchHeader]) -> Result<Verdict, SequenceError> {
        // Batches later in the same payload follow the earlier ones: track them locally.
        // (epoch, last sequence; None when the epoch is known but no batch of it is).
        let mut pending: HashMap<i64, (i16, Option<i32>)> = HashMap::new();
        for (i, h) in headers.iter().enumerate() {
            if h.producer_id < 0 || h.is_control() {
                continue;
            }
            let known = pending.get(&h.producer_id).copied().or_else(|| {
                let p = self.producers.get(&h.producer_id)?;
                Some((p.epoch, p.recent.back().map(|b| b.last_seq)))
            });
            if i == 0 {
                if let Some(dup) = self.duplicate_of(h) {
                    return Ok(Verdict::Duplicate {
                        base_offset: dup.base_offset,
                    });
                }
            }
            match known {
                // A producer we know nothing about (new, or its state aged out of the log).
                None => {}
                Some((epoch, _)) if h.producer_epoch < epoch => {
                    return Err(SequenceError::StaleEpoch {
                        producer_id: h.producer_id,
                        epoch: h.producer_epoch,
                        current: epoch,
                    })
                }
                // A bumped epoch restarts the sequence at 0.
                Some((epoch, _)) if h.producer_epoch > epoch && h.base_sequence != 0 => {
                    return Err(SequenceError::OutOfOrder {
                        producer_id: h.producer_id,
                        expected: 0,
                        got: h.base_sequence,
                    })
                }
                Some((epoch, _)) if h.producer_epoch > epoch => {}
                // The epoch was set by a marker and nothing of it is written yet: like a new
                // producer, any sequence starts it (Kafka accepts it too).
                Some((_, None)) => {}
                Some((_, Some(last))) if h.base_sequence != next_seq(last) => {
                    return Err(SequenceError::OutOfOrder {
                        producer_id: h.producer_id,
                        expected: next_seq(last),
                        got: h.base_sequence,
                    })
                }
                Some(_) => {}
            }
            pending.insert(h.producer_id, (h.producer_epoch, Some(last_seq(h))));
        }
        Ok(Verdict::Append)
    }

    /// The remembered batch `h` repeats, if any.
    fn duplicate_of(&self, h: &BatchHeader) -> Option<BatchMeta> {
        let p = self.producers.get(&h.producer_id)?;
        if p.epoch != h.producer_epoch {
            return None;
        }
        p.recent
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == last_seq(h))
            .copied()
    }

    /// Records batches that were just appended; their headers carry the assigned offsets.
    pub(crate) fn record(&mut self, headers: &[BatchHeader]) {
        for h in headers {
            if h.producer_id < 0 || h.is_control() {
                continue;
            }
            let p = self.producers.entry(h.producer_id).or_default();
            if h.producer_epoch != p.epoch {
                p.epoch = h.producer_epoch;
                p.recent.clear();
            }
            if p.recent.len() == REMEMBERED {
                p.recent.pop_front();
            }
            p.recent.push_back(BatchMeta {
                first_seq: h.base_sequence,
                last_seq: last_seq(h),
                base_offset: h.base_offset,
            });
        }
    }

    /// Checks that a transaction marker of `producer_id` may be written: its producer epoch is
    /// not older than the current one, and its coordinator epoch not older than the one of the
    /// producer's last marker. An unknown producer passes.
    pub(crate) fn check_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
    ) -> Result<(), SequenceError> {
        let Some(p) = self.producers.get(&producer_id) else {
            return Ok(());
        };
        if producer_epoch < p.epoch {
            return Err(SequenceError::StaleEpoch {
                producer_id,
                epoch: producer_epoch,
                current: p.epoch,
            });
        }
        if coordinator_epoch < p.coordinator_epoch {
            return Err(SequenceError::CoordinatorFenced {
                producer_id,
                coordinator_epoch,
                current: p.coordinator_epoch,
            });
        }
        Ok(())
    }

    /// Records a marker that was just written (or replayed): a bumped epoch becomes the
    /// producer's epoch and restarts its sequence.
    pub(crate) fn record_marker(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
    ) {
        let p = self.producers.entry(producer_id).or_default();
        if producer_epoch > p.epoch {
            p.epoch = producer_epoch;
            p.recent.clear();
        }
        p.coordinator_epoch = p.coordinator_epoch.max(coordinator_epoch);
    }

    /// Rebuilds the state from the log, starting at the newest segment.
    ///
    /// Producers whose last batch is older than the newest segment are forgotten and treated as
    /// new on their next batch, as Kafka does once their state expires.
    #[cfg(test)]
    pub(crate) fn rebuild(log: &PartitionLog) -> Result<Self, crate::log::LogError> {
        let mut states = ProducerStates::default();
        for item in log.batches_from(Self::rebuild_from(log)) {
            let (header, bytes) = item?;
            states.replay(&header, &bytes);
        }
        Ok(states)
    }

    /// Where [`ProducerStates::rebuild`] starts replaying: the newest segment.
    pub(crate) fn rebuild_from(log: &PartitionLog) -> i64 {
        log.segment_base_offsets()
            .last()
            .copied()
            .unwrap_or_else(|| log.log_start_offset())
    }

    /// Replays one stored batch (`bytes` is the whole batch): data batches as appended, control
    /// batches as markers.
    pub(crate) fn replay(&mut self, header: &BatchHeader, bytes: &[u8]) {
        if header.producer_id < 0 {
            return;
        }
        if header.is_control() {
            let coordinator_epoch = ControlMarker::parse(bytes).map_or(-1, |m| m.coordinator_epoch);
            self.record_marker(header.producer_id, header.producer_epoch, coordinator_epoch);
        } else {
            self.record(std::slice::from_ref(header));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::build_batch;

    type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

    fn header(pid: i64, epoch: i16, seq: i32, records: usize, base_offset: i64) -> BatchHeader {
        let values: Vec<KeyValue> = (0..records).map(|_| (None, Some(&b"v"[..]))).collect();
        let bytes = build_batch(&values, 0, pid, epoch, seq, false, false);
        let mut h = BatchHeader::parse(&bytes).unwrap();
        h.base_offset = base_offset;
        h
    }

    #[test]
    fn in_order_batches_are_appended_and_a_retry_is_a_duplicate() {
        let mut s = ProducerStates::default();
        let b0 = header(7, 0, 0, 3, 100);
        assert_eq!(s.check(&[b0]), Ok(Verdict::Append));
        s.record(&[b0]);
        let b1 = header(7, 0, 3, 2, 103);
        assert_eq!(s.check(&[b1]), Ok(Verdict::Append));
        s.record(&[b1]);
        // The first batch again (its response was lost): same offsets, nothing stored.
        assert_eq!(
            s.check(&[header(7, 0, 0, 3, -1)]),
            Ok(Verdict::Duplicate { base_offset: 100 })
        );
        assert_eq!(
            s.check(&[header(7, 0, 3, 2, -1)]),
            Ok(Verdict::Duplicate { base_offset: 103 })
        );
    }

    #[test]
    fn a_gap_is_out_of_order_and_an_old_epoch_is_fenced() {
        let mut s = ProducerStates::default();
        s.record(&[header(7, 1, 0, 5, 0)]);
        let gap = s.check(&[header(7, 1, 6, 1, -1)]).unwrap_err();
        assert_eq!(
            gap,
            SequenceError::OutOfOrder {
                producer_id: 7,
                expected: 5,
                got: 6
            }
        );
        assert_eq!(gap.code(), 45);
        let zombie = s.check(&[header(7, 0, 5, 1, -1)]).unwrap_err();
        assert_eq!(zombie.code(), 47);
        // A bumped epoch must restart at 0.
        assert!(s.check(&[header(7, 2, 5, 1, -1)]).is_err());
        assert_eq!(s.check(&[header(7, 2, 0, 1, -1)]), Ok(Verdict::Append));
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut s = ProducerStates::default();
        for i in 0..7 {
            s.record(&[header(1, 0, i, 1, i64::from(i))]);
        }
        // Batch 0 and 1 aged out: a replay of them is now out of order, not a duplicate.
        assert!(s.check(&[header(1, 0, 1, 1, -1)]).is_err());
        assert_eq!(
            s.check(&[header(1, 0, 2, 1, -1)]),
            Ok(Verdict::Duplicate { base_offset: 2 })
        );
    }

    #[test]
    fn non_idempotent_and_unknown_producers_pass() {
        let s = ProducerStates::default();
        assert_eq!(s.check(&[header(-1, -1, -1, 1, -1)]), Ok(Verdict::Append));
        assert_eq!(s.check(&[header(42, 0, 17, 1, -1)]), Ok(Verdict::Append));
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        let mut s = ProducerStates::default();
        s.record(&[header(3, 0, i32::MAX - 1, 2, 0)]);
        assert_eq!(s.check(&[header(3, 0, 0, 1, -1)]), Ok(Verdict::Append));
    }

    #[test]
    fn state_is_rebuilt_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), crate::log::LogConfig::default()).unwrap();
        let values: Vec<KeyValue> = vec![(None, Some(&b"a"[..])); 4];
        log.append(build_batch(&values, 0, 9, 0, 0, false, false), 0)
            .unwrap();
        log.append(build_batch(&values, 0, 9, 0, 4, false, false), 0)
            .unwrap();
        let s = ProducerStates::rebuild(&log).unwrap();
        assert_eq!(
            s.check(&[header(9, 0, 4, 4, -1)]),
            Ok(Verdict::Duplicate { base_offset: 4 })
        );
        assert_eq!(s.check(&[header(9, 0, 8, 1, -1)]), Ok(Verdict::Append));
    }
}
