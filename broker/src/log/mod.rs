//! Log storage: each partition is a directory `<log.dir>/<topic>-<partition>/` of segment files
//! laid out like Kafka's (`<20-digit base offset>.log`, `.index`, `.timeindex`), holding record
//! batches exactly as producers sent them, with only the base offset (and leader epoch) patched.
//!
//! Layers, bottom up:
//! - [`batch`]: magic-v2 record batches on raw bytes: framing, produce validation, offset
//!   patching, and a builder/decoder for the broker's own records;
//! - `index`: the sparse offset and time indexes of one segment;
//! - `segment`: one `.log` file with its indexes, including scan-and-cut recovery;
//! - `tail_cache`: the latest appends of a log kept in memory, so the fetches that follow
//!   an append do not re-read it from the segment;
//! - [`PartitionLog`]: the ordered segments of one partition: append, read, retention,
//!   truncation, recovery on open, and the checkpoints (log start offset, recovery point).
//!
//! - `cleaner`: log compaction (`cleanup.policy=compact`): rewrites sealed segments keeping
//!   the newest record per key (opening compressed batches through `codec`), installed through a crash-safe `.cleaned` → `.swap` → `.log`
//!   swap that [`PartitionLog::open`] completes or discards.
//!
//! Beside them, `dir_health` reports log directories whose appends fail (a full disk) once,
//! by name. A failed append leaves the log as it was and answers [`LogError::Io`], which
//! clients get as KAFKA_STORAGE_ERROR.
//!
//! This module owns the configuration ([`LogConfig`], Kafka's topic-level log settings) and
//! the error type shared by the layers ([`LogError`]).

pub mod batch;
mod cleaner;
mod codec;
mod dir_health;
mod index;
mod partition_log;
mod segment;
mod tail_cache;
pub mod txn_index;

use std::io;
use std::path::{Path, PathBuf};

pub use batch::{
    build_batch, decode_records, validate_produce, BatchError, BatchHeader, Compression, KeyValue,
    Record, RecordHeader,
};
pub use cleaner::{CleanStats, CleanedGroup, CleanerHook, Cleaning};
pub use partition_log::{AppendInfo, LogBatches, PartitionLog};

/// Per-partition log settings, named after Kafka's topic configs (`segment.bytes`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll to a new segment before the active one would exceed this size.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's first append is at least this old.
    pub segment_ms: Option<u64>,
    /// `retention.ms`: delete segments whose newest record is older than this; `None` or a
    /// negative value keeps data forever.
    pub retention_ms: Option<i64>,
    /// `retention.bytes`: delete the oldest segments while the log would still hold at least this
    /// many bytes without them; `None` for no size limit.
    pub retention_bytes: Option<u64>,
    /// `flush.messages`: fsync after this many records; `None` leaves flushing to the OS.
    pub flush_interval_messages: Option<u64>,
    /// `flush.ms`: fsync when this long has passed since the last fsync (checked on append and
    /// by [`PartitionLog::maybe_flush`]); `None` leaves flushing to the OS.
    pub flush_interval_ms: Option<u64>,
    /// `index.interval.bytes`: bytes of batches between two index entries.
    pub index_interval_bytes: u32,
    /// `max.message.bytes`: largest batch accepted, in bytes.
    pub max_message_bytes: usize,
    /// Compaction settings when `cleanup.policy` includes `compact`; `None` for a log that is
    /// never compacted.
    pub compaction: Option<CompactionConfig>,
}

/// Kafka's compaction settings of a topic (`cleanup.policy=compact`).
#[derive(Debug, Clone, PartialEq)]
pub struct CompactionConfig {
    /// `min.cleanable.dirty.ratio`: clean once the uncleaned ("dirty") bytes are at least this
    /// share of the cleanable log (Kafka's default 0.5).
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: a segment whose newest record is younger stays uncleaned.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a log whose earliest dirty segment began (its first batch's
    /// timestamp) longer ago than this is cleaned whatever the dirty ratio; the active segment
    /// of a compacted log also rolls after this long when `segment.ms` is longer.
    pub max_compaction_lag_ms: i64,
    /// `delete.retention.ms`: how long tombstones (null values) and transaction markers whose
    /// data is gone are kept after the cleaning that first sees them (Kafka's default one
    /// day); that cleaning stores the deadline in the batch (KIP-534's delete horizon).
    pub delete_retention_ms: i64,
}

impl Default for CompactionConfig {
    /// Kafka's defaults.
    fn default() -> Self {
        CompactionConfig {
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            delete_retention_ms: 86_400_000,
        }
    }
}

impl Default for LogConfig {
    /// Kafka's defaults: 1 GiB segments, 7 days retention, no size retention, flushing left to
    /// the OS, an index entry every 4096 bytes, 1048588-byte batches.
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: Some(7 * 24 * 60 * 60 * 1000),
            retention_ms: Some(7 * 24 * 60 * 60 * 1000),
            retention_bytes: None,
            flush_interval_messages: None,
            flush_interval_ms: None,
            index_interval_bytes: 4096,
            max_message_bytes: 1_048_588,
            compaction: None,
        }
    }
}

/// Errors of the log layer. Each names the partition directory or file involved.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A file system operation failed.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done, e.g. "cannot open segment file".
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A read or delete-records request named an offset outside `[log start, log end]`.
    #[error(
        "offset {offset} is out of range for partition log {} (log start offset \
         {log_start_offset}, log end offset {log_end_offset})",
        dir.display()
    )]
    OffsetOutOfRange {
        /// The partition directory.
        dir: PathBuf,
        /// The requested offset.
        offset: i64,
        /// First offset still readable.
        log_start_offset: i64,
        /// Offset the next record will get.
        log_end_offset: i64,
    },
    /// Batches given to append were malformed.
    #[error("record batch refused by partition log {}", dir.display())]
    InvalidBatch {
        /// The partition directory.
        dir: PathBuf,
        /// What was wrong with the batch.
        #[source]
        source: BatchError,
    },
    /// Stored data that was valid when written no longer parses (disk damage or outside
    /// tampering).
    #[error("corrupt data in {} at byte {position}: {reason}", path.display())]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte position in the file.
        position: u64,
        /// What was found.
        reason: String,
    },
    /// The configuration cannot work.
    #[error("invalid log configuration for {}: {reason}", dir.display())]
    InvalidConfig {
        /// The partition directory.
        dir: PathBuf,
        /// Which setting and why.
        reason: String,
    },
}

impl LogError {
    /// The Kafka error code to answer a client with: OFFSET_OUT_OF_RANGE (1), the batch's own
    /// code for refused batches, INVALID_CONFIG (40), KAFKA_STORAGE_ERROR (56) otherwise.
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            LogError::OffsetOutOfRange { .. } => 1,
            LogError::InvalidBatch { source, .. } => source.kafka_error_code(),
            LogError::InvalidConfig { .. } => 40,
            LogError::Io { .. } | LogError::Corrupt { .. } => 56,
        }
    }
}

/// `error: cause: cause ...`, for a log line or a client's error message (a [`LogError::Io`]
/// names the operation and file, its cause the OS error, e.g. "No space left on device").
pub(crate) fn display_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Maps an `io::Error` to [`LogError::Io`] naming the operation and the file.
pub(crate) fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> LogError + 'a {
    move |source| LogError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}
