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

use crate::log::{AppendInfo, LogConfig, LogError, PartitionLog};

/// A topic-partition hosted by this broker.
pub(crate) struct Partition {
    /// Topic name.
    pub(crate) topic: String,
    /// Partition index.
    pub(crate) index: i32,
    /// Directory of the partition's log (`<log.dir>/<topic>-<index>`).
    pub(crate) dir: PathBuf,
    /// The log. Held only for the duration of one append or one read.
    log: Mutex<PartitionLog>,
    /// The high watermark: the offset up to which consumers may read.
    high_watermark: watch::Sender<i64>,
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
        let (high_watermark, _) = watch::channel(log.log_end_offset());
        Ok(Partition {
            topic: topic.to_owned(),
            index,
            dir: dir.to_owned(),
            log: Mutex::new(log),
            high_watermark,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PartitionLog> {
        // A panic while holding the lock would be a bug in the log; the data on disk is still
        // consistent (appends are single writes), so keep serving rather than poisoning forever.
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends validated batches (offsets are assigned here) and wakes waiting fetches.
    pub(crate) fn append(&self, batches: Bytes, now_ms: i64) -> Result<AppendInfo, LogError> {
        let info = {
            let mut log = self.lock();
            let info = log.append(batches, now_ms)?;
            // Single broker: data is committed as soon as it is in the log.
            self.high_watermark.send_replace(log.log_end_offset());
            info
        };
        Ok(info)
    }

    /// Reads whole stored batches from `offset`, at most `max_bytes` (but at least one batch),
    /// never past the high watermark.
    pub(crate) fn read(&self, offset: i64, max_bytes: usize) -> Result<Bytes, LogError> {
        let hw = *self.high_watermark.borrow();
        self.lock().read(offset, max_bytes, hw)
    }

    /// Current offsets.
    pub(crate) fn offsets(&self) -> Offsets {
        let log = self.lock();
        Offsets {
            log_start: log.log_start_offset(),
            high_watermark: *self.high_watermark.borrow(),
        }
    }

    /// The first offset whose timestamp is at or after `ts`, with that timestamp.
    pub(crate) fn offset_for_timestamp(&self, ts: i64) -> Option<(i64, i64)> {
        self.lock().offset_for_timestamp(ts)
    }

    /// Bytes of the partition's segment files.
    pub(crate) fn size_bytes(&self) -> u64 {
        self.lock().size_bytes()
    }

    /// A receiver that changes whenever the high watermark moves.
    pub(crate) fn watch_high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// Deletes old segments per the retention settings.
    pub(crate) fn apply_retention(&self, now_ms: i64) -> Result<usize, LogError> {
        self.lock().apply_retention(now_ms)
    }

    /// Writes everything to stable storage.
    pub(crate) fn flush(&self) -> Result<(), LogError> {
        self.lock().flush()
    }
}
