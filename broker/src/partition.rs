//! One partition as the request handlers see it: its log behind a lock, and a watch channel
//! carrying the high watermark so that long-polling fetches sleep until data arrives.
//!
//! The log itself (segments, indexes, recovery) lives in [`crate::log`]; this type adds what
//! only a serving broker needs: concurrency and wake-ups. Appends and reads are short, page-cache
//! bound operations, so a plain mutex is held across them rather than moving them to a thread
//! pool. On a single broker the high watermark is the log end offset; replication will move it
//! separately.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::watch;

use crate::log::{AppendInfo, BatchHeader, LogConfig, LogError, PartitionLog};
use crate::producer_state::{ProducerStates, SequenceError, Verdict};

/// Why an append was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AppendError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Sequence(#[from] SequenceError),
}

impl AppendError {
    /// The Kafka error code for the produce response.
    pub(crate) fn code(&self) -> i16 {
        match self {
            AppendError::Log(e) => e.kafka_error_code(),
            AppendError::Sequence(e) => e.code(),
        }
    }
}

/// The log and the producer state derived from it, changed together under one lock.
struct Inner {
    log: PartitionLog,
    producers: ProducerStates,
}

/// A topic-partition hosted by this broker.
pub(crate) struct Partition {
    /// Topic name.
    pub(crate) topic: String,
    /// Partition index.
    pub(crate) index: i32,
    /// Directory of the partition's log (`<log.dir>/<topic>-<index>`).
    pub(crate) dir: PathBuf,
    /// The log and its producer state. Held only for the duration of one append or one read.
    inner: Mutex<Inner>,
    /// The high watermark: the offset up to which consumers may read.
    high_watermark: watch::Sender<i64>,
}

/// The answer to an append.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Appended {
    /// Offset of the first record (the original one for a duplicate).
    pub(crate) base_offset: i64,
    /// The log start offset after the append.
    pub(crate) log_start_offset: i64,
}

/// A snapshot of a partition's offsets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Offsets {
    /// First offset still in the log.
    pub(crate) log_start: i64,
    /// Offset up to which consumers may read.
    pub(crate) high_watermark: i64,
}

impl Partition {
    /// Opens (and recovers) the log in `dir`.
    pub(crate) fn open(
        topic: &str,
        index: i32,
        dir: &Path,
        config: LogConfig,
    ) -> Result<Self, LogError> {
        let log = PartitionLog::open(dir, config)?;
        let producers = ProducerStates::rebuild(&log)?;
        let (high_watermark, _) = watch::channel(log.log_end_offset());
        Ok(Partition {
            topic: topic.to_owned(),
            index,
            dir: dir.to_owned(),
            inner: Mutex::new(Inner { log, producers }),
            high_watermark,
        })
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock would be a bug in the log; the data on disk is still
        // consistent (appends are single writes), so keep serving rather than poisoning forever.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner()
    }

    /// Appends validated batches (`headers` as parsed by validation; offsets are assigned here)
    /// and wakes waiting fetches. A batch an idempotent producer already wrote is not stored
    /// again: the answer carries its original base offset.
    pub(crate) fn append(
        &self,
        batches: Bytes,
        headers: &[BatchHeader],
        now_ms: i64,
    ) -> Result<Appended, AppendError> {
        let mut inner = self.inner();
        if let Verdict::Duplicate { base_offset } = inner.producers.check(headers)? {
            return Ok(Appended {
                base_offset,
                log_start_offset: inner.log.log_start_offset(),
            });
        }
        let info: AppendInfo = inner.log.append(batches, now_ms)?;
        let mut next = info.base_offset;
        let assigned: Vec<BatchHeader> = headers
            .iter()
            .map(|h| {
                let mut h = *h;
                h.base_offset = next;
                next = h.next_offset();
                h
            })
            .collect();
        inner.producers.record(&assigned);
        // Single broker: data is committed as soon as it is in the log.
        self.high_watermark.send_replace(inner.log.log_end_offset());
        Ok(Appended {
            base_offset: info.base_offset,
            log_start_offset: info.log_start_offset,
        })
    }

    /// Reads whole stored batches from `offset`, at most `max_bytes` (but at least one batch),
    /// never past the high watermark.
    pub(crate) fn read(&self, offset: i64, max_bytes: usize) -> Result<Bytes, LogError> {
        let hw = *self.high_watermark.borrow();
        self.lock().log.read(offset, max_bytes, hw)
    }

    /// Current offsets.
    pub(crate) fn offsets(&self) -> Offsets {
        let log = &self.lock().log;
        Offsets {
            log_start: log.log_start_offset(),
            high_watermark: *self.high_watermark.borrow(),
        }
    }

    /// The first offset whose timestamp is at or after `ts`, with that timestamp.
    pub(crate) fn offset_for_timestamp(&self, ts: i64) -> Option<(i64, i64)> {
        self.lock().log.offset_for_timestamp(ts)
    }

    /// Bytes of the partition's segment files.
    pub(crate) fn size_bytes(&self) -> u64 {
        self.lock().log.size_bytes()
    }

    /// A receiver that changes whenever the high watermark moves.
    pub(crate) fn watch_high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// Deletes old segments per the retention settings.
    pub(crate) fn apply_retention(&self, now_ms: i64) -> Result<usize, LogError> {
        self.lock().log.apply_retention(now_ms)
    }

    /// Writes everything to stable storage.
    pub(crate) fn flush(&self) -> Result<(), LogError> {
        self.lock().log.flush()
    }
}
