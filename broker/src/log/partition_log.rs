//! [`PartitionLog`]: the log of one partition, the ordered segments of `<log.dir>/<topic>-<n>/`.
//!
//! It assigns offsets on append (patching each batch's `baseOffset`, nothing else), rolls
//! segments, serves fetch reads as whole stored batches, answers by-timestamp lookups, applies
//! retention and truncation, and recovers on open. Two small checkpoint files live beside the
//! segments: `log-start-offset.checkpoint` (the first readable offset, moved by retention and
//! delete-records) and `recovery-point-offset.checkpoint` (everything below it was fsynced,
//! written by [`PartitionLog::flush`] and [`PartitionLog::close`]). On open, segments at or past
//! the recovery point are re-scanned with CRC checks and a torn tail is cut, as Kafka does after
//! an unclean shutdown; a cleanly closed log reopens without scanning.
//!
//! An append either happens whole or not at all. When a step of it fails (the roll to a new
//! segment, the write, or the fsync and checkpoint that the flush policy asks for), the active
//! segment is cut back to where it was and the log's offsets, indexes and recovery point are
//! as before, so the caller changes nothing either (producer state, high watermark) and answers
//! with an error; the next append, once space returns, continues a clean log. Failures and the
//! recovery are reported per log directory by [`super::dir_health`].
//!
//! Concurrency: writes take `&mut self`, reads `&self`, and the caller holds the log behind a
//! lock. Reads are made cheap enough to do under that lock: an in-memory index lookup, a few
//! header `pread`s, then a single `pread` of the fetched range, with no per-record work. Reads
//! use positioned I/O only, so any number of `&self` readers (e.g. under an `RwLock` read guard)
//! can run at once.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};

use super::batch::{self, BatchHeader, BATCH_HEADER_LEN};
use super::cleaner::{self, CleanedGroup, Cleaning, SealedSegment};
use super::dir_health;
use super::segment::{Segment, SegmentMark};
use super::tail_cache::TailCache;
use super::{io_err, LogConfig, LogError};

const LOG_START_CHECKPOINT: &str = "log-start-offset.checkpoint";
const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset.checkpoint";
/// Suffixes of files left over by an interrupted operation; removed on open (after the
/// cleaner's committed swaps are completed, see [`cleaner::complete_swaps`]).
const STRAY_SUFFIXES: [&str; 4] = [".deleted", ".cleaned", ".swap", ".tmp"];
/// Bytes fetched per step by [`LogBatches`].
const ITER_CHUNK_BYTES: usize = 1 << 20;
/// Bytes of recent appends kept in memory for the fetches that follow them (see
/// [`super::tail_cache`]): a few fetches' worth (followers and consumers fetch at most 1 MiB
/// of a partition at a time by default) per partition this broker leads.
const TAIL_CACHE_BYTES: usize = 4 << 20;

/// The outcome of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset given to the first record.
    pub base_offset: i64,
    /// Offset given to the last record.
    pub last_offset: i64,
    /// Largest `maxTimestamp` among the appended batches, -1 if none carried one.
    pub max_timestamp: i64,
    /// Last offset of the batch holding `max_timestamp` (`base_offset` when none).
    pub offset_of_max_timestamp: i64,
    /// The log start offset after the append (for the produce response).
    pub log_start_offset: i64,
    /// Number of batches appended.
    pub batch_count: usize,
    /// Number of records appended (sum of `recordsCount`).
    pub record_count: u64,
    /// Bytes appended.
    pub bytes: usize,
}

/// The log of one partition. See the module docs.
#[derive(Debug)]
pub struct PartitionLog {
    /// The partition directory.
    dir: PathBuf,
    /// Settings (segment size, retention, flush, index interval, batch limit).
    config: LogConfig,
    /// Segments in offset order; never empty; the last is the active one.
    segments: Vec<Segment>,
    /// First readable offset.
    log_start_offset: i64,
    /// Everything below this offset is known to be fsynced.
    recovery_point: i64,
    /// Records appended since the last fsync.
    unflushed_messages: u64,
    /// Time of the last fsync (ms); set at the first append after open.
    last_flush_ms: Option<i64>,
    /// The latest appends of the active segment, for reads (see [`super::tail_cache`]).
    cache: TailCache,
}

impl PartitionLog {
    /// Opens the log in `dir`, creating the directory and an empty log at offset 0 if needed,
    /// otherwise recovering it: stray files are removed, segments are loaded in order, segments
    /// at or past the recovery point (always including the last) are re-scanned and cut at the
    /// first torn or corrupt batch, and missing or inconsistent indexes are rebuilt.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Self, LogError> {
        check_config(dir, &config)?;
        fs::create_dir_all(dir).map_err(io_err("cannot create partition directory", dir))?;
        cleaner::complete_swaps(dir)?;
        let bases = scan_dir(dir)?;
        let log_start_ckpt = read_checkpoint(&dir.join(LOG_START_CHECKPOINT));
        let recovery_point = read_checkpoint(&dir.join(RECOVERY_POINT_CHECKPOINT)).unwrap_or(0);

        let mut segments = Vec::with_capacity(bases.len().max(1));
        if bases.is_empty() {
            segments.push(Segment::create(dir, log_start_ckpt.unwrap_or(0).max(0))?);
        }
        for (i, &base) in bases.iter().enumerate() {
            let next_base = bases.get(i + 1).copied();
            let trusted = next_base.is_some_and(|next| next <= recovery_point);
            segments.push(Segment::open(
                dir,
                base,
                next_base,
                trusted,
                config.index_interval_bytes,
            )?);
        }

        let first_base = segments.first().map_or(0, Segment::base_offset);
        let log_end = segments.last().map_or(0, Segment::next_offset);
        let log_start = log_start_ckpt
            .unwrap_or(first_base)
            .clamp(first_base, log_end.max(first_base));
        let log = PartitionLog {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset: log_start,
            recovery_point: recovery_point.min(log_end),
            unflushed_messages: 0,
            last_flush_ms: None,
            cache: TailCache::new(TAIL_CACHE_BYTES),
        };
        if log_start_ckpt != Some(log_start) {
            log.write_log_start_checkpoint()?;
        }
        tracing::debug!(
            dir = %dir.display(),
            segments = log.segments.len(),
            log_start,
            log_end,
            "opened partition log"
        );
        Ok(log)
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log's settings.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Replaces the log's settings (a topic's configs were altered). They apply from the next
    /// append, roll, flush or retention pass; nothing already stored is rewritten.
    pub fn set_config(&mut self, config: LogConfig) -> Result<(), LogError> {
        check_config(&self.dir, &config)?;
        self.config = config;
        Ok(())
    }

    /// First readable offset.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// Offset the next appended record will get.
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset()
    }

    /// Sum of the `.log` file sizes, in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(Segment::size).sum()
    }

    /// Number of segments (the active one included).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.iter().map(Segment::base_offset).collect()
    }

    fn active(&self) -> &Segment {
        // `segments` is never empty: open creates one, and nothing removes the last.
        &self.segments[self.segments.len() - 1]
    }

    fn active_mut(&mut self) -> &mut Segment {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }

    fn invalid(&self, source: batch::BatchError) -> LogError {
        LogError::InvalidBatch {
            dir: self.dir.clone(),
            source,
        }
    }

    fn out_of_range(&self, offset: i64) -> LogError {
        LogError::OffsetOutOfRange {
            dir: self.dir.clone(),
            offset,
            log_start_offset: self.log_start_offset,
            log_end_offset: self.log_end_offset(),
        }
    }

    /// Appends one produce payload for this partition: one or more batches, already checked by
    /// [`batch::validate_produce`]. Offsets are assigned from the log end offset by rewriting each
    /// batch's `baseOffset` in place; the bytes are otherwise stored exactly as received (no
    /// re-encoding, CRC untouched). Takes anything convertible to `BytesMut`: a `BytesMut`, or a
    /// `Bytes` (as decoded from a request; converted without copying when it is the only handle
    /// on its buffer, copied otherwise), or a `&[u8]` (copied).
    pub fn append(
        &mut self,
        batches: impl Into<BytesMut>,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        self.append_with_epoch(batches, None, now_ms)
    }

    /// [`PartitionLog::append`], also stamping `partitionLeaderEpoch` (outside the CRC) on every
    /// batch when `leader_epoch` is given. Rolls a new segment first when the active one would
    /// pass `segment.bytes`, is older than `segment.ms`, or could not index the new offsets;
    /// fsyncs per `flush.messages` / `flush.ms`.
    pub fn append_with_epoch(
        &mut self,
        batches: impl Into<BytesMut>,
        leader_epoch: Option<i32>,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let mut data: BytesMut = batches.into();
        let mut headers = Vec::new();
        for item in batch::batches(&data) {
            let (header, _) = item.map_err(|e| self.invalid(e))?;
            headers.push(header);
        }
        self.check_append_headers(&headers)?;
        let offsets: i64 = headers
            .iter()
            .map(|h| i64::from(h.last_offset_delta) + 1)
            .sum();
        self.maybe_roll(data.len() as u64, offsets, now_ms)
            .map_err(|e| self.storage_failed(e))?;

        let base_offset = self.log_end_offset();
        let mut next = base_offset;
        let mut position = 0usize;
        for header in &mut headers {
            let bytes = &mut data[position..position + header.len_total()];
            batch::set_base_offset(bytes, next).map_err(|e| self.invalid(e))?;
            header.base_offset = next;
            if let Some(epoch) = leader_epoch {
                batch::set_partition_leader_epoch(bytes, epoch).map_err(|e| self.invalid(e))?;
                header.partition_leader_epoch = epoch;
            }
            next = header.next_offset();
            position += header.len_total();
        }
        self.write_batches(data.freeze(), &headers, now_ms)
    }

    /// Appends batches that already carry their offsets, as a follower copying its leader's log
    /// does. Each batch is framed and CRC-checked, and offsets must start at or after the log end
    /// offset and increase. The bytes are written as they are (no copy is made of them).
    pub fn append_replicated(&mut self, data: Bytes, now_ms: i64) -> Result<AppendInfo, LogError> {
        let mut headers = Vec::new();
        let mut expected = self.log_end_offset();
        let mut iter = batch::batches(&data);
        loop {
            let position = iter.position();
            let Some(item) = iter.next() else { break };
            let (header, bytes) = item.map_err(|e| self.invalid(e))?;
            batch::verify_crc(bytes, &header, position).map_err(|e| self.invalid(e))?;
            if header.base_offset < expected {
                return Err(self.invalid(batch::BatchError::InvalidRecord {
                    position,
                    reason: format!(
                        "replicated batch base offset {} is below the expected offset {expected}",
                        header.base_offset
                    ),
                }));
            }
            expected = header.next_offset();
            headers.push(header);
        }
        self.check_append_headers(&headers)?;
        let first = headers.first().map_or(0, |h| h.base_offset);
        let span = expected - first;
        self.maybe_roll_to(data.len() as u64, span, now_ms, first)
            .map_err(|e| self.storage_failed(e))?;
        self.write_batches(data, &headers, now_ms)
    }

    fn check_append_headers(&self, headers: &[BatchHeader]) -> Result<(), LogError> {
        if headers.is_empty() {
            return Err(self.invalid(batch::BatchError::InvalidRecord {
                position: 0,
                reason: "empty record set".into(),
            }));
        }
        let mut position = 0;
        for h in headers {
            if h.last_offset_delta < 0 {
                return Err(self.invalid(batch::BatchError::InvalidRecord {
                    position,
                    reason: format!("negative lastOffsetDelta {}", h.last_offset_delta),
                }));
            }
            position += h.len_total();
        }
        Ok(())
    }

    /// Writes offset-assigned batches to the active segment and applies the flush policy; on
    /// failure undoes the append (see the module docs). Once written, `data` goes to the read
    /// cache.
    fn write_batches(
        &mut self,
        data: Bytes,
        headers: &[BatchHeader],
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let interval = self.config.index_interval_bytes;
        let mark = self.active().mark();
        let unflushed = self.unflushed_messages;
        let record_count: u64 = headers
            .iter()
            .map(|h| u64::try_from(h.records_count).unwrap_or(0))
            .sum();
        let written = self
            .active_mut()
            .append(&data, headers, now_ms, interval)
            .and_then(|()| {
                self.unflushed_messages += record_count;
                self.flush_if_due(now_ms)
            });
        if let Err(e) = written {
            self.undo_append(mark, unflushed);
            return Err(self.storage_failed(e));
        }
        dir_health::append_succeeded(&self.dir);
        let bytes = data.len();
        let segment_base = self.active().base_offset();
        self.cache.push(segment_base, data, headers);

        let mut max_timestamp = -1;
        let mut offset_of_max_timestamp = headers.first().map_or(0, |h| h.base_offset);
        for h in headers {
            if h.max_timestamp > max_timestamp {
                max_timestamp = h.max_timestamp;
                offset_of_max_timestamp = h.last_offset();
            }
        }
        Ok(AppendInfo {
            base_offset: headers.first().map_or(0, |h| h.base_offset),
            last_offset: headers.last().map_or(0, BatchHeader::last_offset),
            max_timestamp,
            offset_of_max_timestamp,
            log_start_offset: self.log_start_offset,
            batch_count: headers.len(),
            record_count,
            bytes,
        })
    }

    /// Returns the active segment to `mark` (taken on it before a failed append) and the
    /// flush bookkeeping to what it was.
    fn undo_append(&mut self, mark: SegmentMark, unflushed_messages: u64) {
        self.cache.clear();
        self.active_mut().rollback(mark);
        self.unflushed_messages = unflushed_messages;
        self.recovery_point = self.recovery_point.min(mark.next_offset());
    }

    /// Reports a storage step of an append that failed to [`dir_health`], and returns the error.
    fn storage_failed(&self, e: LogError) -> LogError {
        dir_health::append_failed(&self.dir, &e);
        e
    }

    /// Rolls before appending `bytes` bytes spanning `offsets` offsets at the log end.
    fn maybe_roll(&mut self, bytes: u64, offsets: i64, now_ms: i64) -> Result<(), LogError> {
        let next = self.log_end_offset();
        self.maybe_roll_to(bytes, offsets, now_ms, next)
    }

    /// Rolls to a new segment based at `new_base` when the active segment is non-empty and
    /// appending would exceed `segment.bytes`, its `segment.ms` has elapsed, or the new offsets
    /// or positions would not fit its 32-bit index fields.
    fn maybe_roll_to(
        &mut self,
        bytes: u64,
        offsets: i64,
        now_ms: i64,
        new_base: i64,
    ) -> Result<(), LogError> {
        let active = self.active();
        if active.size() == 0 {
            if bytes > u64::from(u32::MAX) || offsets > i64::from(u32::MAX) {
                return Err(LogError::InvalidConfig {
                    dir: self.dir.clone(),
                    reason: format!("a single append of {bytes} bytes is too large to index"),
                });
            }
            return Ok(());
        }
        let too_big = active.size() + bytes > self.config.segment_bytes;
        let too_old = match (self.roll_ms(), active.rolling_base_ms()) {
            (Some(ms), Some(start)) => now_ms.saturating_sub(start) >= ms,
            _ => false,
        };
        let index_full = active.size() + bytes > u64::from(u32::MAX)
            || new_base + offsets - 1 - active.base_offset() > i64::from(u32::MAX);
        if !(too_big || too_old || index_full) {
            return Ok(());
        }
        self.roll(new_base)
    }

    /// How long the active segment may receive appends: `segment.ms`, or for a compacted log
    /// `max.compaction.lag.ms` when shorter (Kafka's `LogConfig.maxSegmentMs`), since the
    /// active segment is never cleaned and its records would otherwise wait past that bound.
    fn roll_ms(&self) -> Option<i64> {
        let segment_ms = self
            .config
            .segment_ms
            .map(|ms| i64::try_from(ms).unwrap_or(i64::MAX));
        let lag = self
            .config
            .compaction
            .as_ref()
            .map(|c| c.max_compaction_lag_ms)
            .filter(|&ms| ms > 0 && ms < i64::MAX);
        match (segment_ms, lag) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Seals the active segment and starts a new one at `new_base`.
    fn roll(&mut self, new_base: i64) -> Result<(), LogError> {
        self.cache.clear();
        let sync = self.flush_configured();
        self.active_mut().seal(sync)?;
        let segment = Segment::create(&self.dir, new_base)?;
        tracing::debug!(
            segment = %segment.log_path().display(),
            "rolled to a new log segment"
        );
        self.segments.push(segment);
        if sync {
            self.recovery_point = new_base;
            self.unflushed_messages = 0;
            sync_dir(&self.dir)?;
            self.write_recovery_checkpoint()?;
        }
        Ok(())
    }

    fn flush_configured(&self) -> bool {
        self.config.flush_interval_messages.is_some() || self.config.flush_interval_ms.is_some()
    }

    fn flush_if_due(&mut self, now_ms: i64) -> Result<(), LogError> {
        let last = *self.last_flush_ms.get_or_insert(now_ms);
        let by_count = self
            .config
            .flush_interval_messages
            .is_some_and(|n| self.unflushed_messages >= n);
        let by_time = self
            .config
            .flush_interval_ms
            .is_some_and(|ms| self.unflushed_messages > 0 && now_ms - last >= ms as i64);
        if by_count || by_time {
            self.flush()?;
            self.last_flush_ms = Some(now_ms);
        }
        Ok(())
    }

    /// Applies `flush.ms` without an append (for a periodic task).
    pub fn maybe_flush(&mut self, now_ms: i64) -> Result<(), LogError> {
        self.flush_if_due(now_ms)
    }

    /// Reads stored batches for a fetch: starting with the batch that contains `offset` (so a
    /// fetch from inside a batch gets the whole batch), whole batches only, at most `max_bytes`
    /// in total, except that the first batch is returned whole even when larger (Kafka's
    /// progress guarantee). Batches whose base offset is `>= upper_bound` (the high watermark or
    /// last stable offset) are left out. Data comes from one segment, as in Kafka; the caller
    /// fetches again from the next offset. `offset == log end` gives an empty result; an offset
    /// below the log start or past the log end is `OffsetOutOfRange`.
    pub fn read(&self, offset: i64, max_bytes: usize, upper_bound: i64) -> Result<Bytes, LogError> {
        self.read_limited(offset, max_bytes, upper_bound, true)
    }

    /// [`PartitionLog::read`], where `first_may_exceed` says whether the first batch is
    /// returned whole when it is larger than `max_bytes`. A fetch response grants that to its
    /// first non-empty partition only (KIP-74); every later partition reads strictly within its
    /// budget and answers nothing when its first batch does not fit.
    ///
    /// Always from the segment files: what a consumer reads is what the log on disk holds (a
    /// byte damaged on disk after it was written must reach the consumer, whose check is the
    /// evidence of it), never a copy kept in memory.
    pub fn read_limited(
        &self,
        offset: i64,
        max_bytes: usize,
        upper_bound: i64,
        first_may_exceed: bool,
    ) -> Result<Bytes, LogError> {
        if !self.readable(offset)? {
            return Ok(Bytes::new());
        }
        self.read_file(offset, max_bytes, upper_bound, first_may_exceed)
    }

    /// [`PartitionLog::read_limited`] for a follower: from the read cache of recent appends
    /// when it holds the data (the bytes this leader just wrote, which is what a follower
    /// copies), else from the segment files.
    pub fn read_recent(
        &self,
        offset: i64,
        max_bytes: usize,
        upper_bound: i64,
        first_may_exceed: bool,
    ) -> Result<Bytes, LogError> {
        if !self.readable(offset)? {
            return Ok(Bytes::new());
        }
        if let Some(cached) = self
            .cache
            .read(offset, max_bytes, upper_bound, first_may_exceed)
        {
            return Ok(cached);
        }
        self.read_file(offset, max_bytes, upper_bound, first_may_exceed)
    }

    /// Whether `offset` has data to read: false at the log end, `OffsetOutOfRange` outside
    /// `[log start, log end]`.
    fn readable(&self, offset: i64) -> Result<bool, LogError> {
        if offset < self.log_start_offset || offset > self.log_end_offset() {
            return Err(self.out_of_range(offset));
        }
        Ok(offset < self.log_end_offset())
    }

    /// [`PartitionLog::read_limited`] from the segment files, for an offset in
    /// `[log start, log end)`.
    fn read_file(
        &self,
        offset: i64,
        max_bytes: usize,
        upper_bound: i64,
        first_may_exceed: bool,
    ) -> Result<Bytes, LogError> {
        let Some((segment, position, first)) = self.locate(offset)? else {
            return Ok(Bytes::new());
        };
        if first.base_offset >= upper_bound || (!first_may_exceed && first.len_total() > max_bytes)
        {
            return Ok(Bytes::new());
        }
        let available = segment.size() - position;
        let read_len = (max_bytes as u64)
            .min(available)
            .max(first.len_total() as u64) as usize;
        let mut buf = segment.read_bytes(position, read_len)?;

        // Keep whole batches below the upper bound; the first one always stays.
        let mut end = first.len_total();
        while end + BATCH_HEADER_LEN <= buf.len() {
            let Ok(header) = BatchHeader::parse(&buf[end..]) else {
                return Err(LogError::Corrupt {
                    path: segment.log_path().to_path_buf(),
                    position: position + end as u64,
                    reason: "unparseable batch header".into(),
                });
            };
            if header.base_offset >= upper_bound || end + header.len_total() > buf.len() {
                break;
            }
            end += header.len_total();
        }
        buf.truncate(end);
        Ok(Bytes::from(buf))
    }

    /// The segment, byte position and header of the batch containing `offset` (or the first
    /// batch after it when `offset` falls in a gap). `None` when nothing is at or after it.
    fn locate(&self, offset: i64) -> Result<Option<(&Segment, u64, BatchHeader)>, LogError> {
        let start = self
            .segments
            .partition_point(|s| s.base_offset() <= offset)
            .saturating_sub(1);
        for segment in &self.segments[start..] {
            if let Some((position, header)) = segment.find_batch(offset)? {
                return Ok(Some((segment, position, header)));
            }
        }
        Ok(None)
    }

    /// Iterates the stored batches from the one containing `offset` to the log end, yielding
    /// each header with the batch's bytes. Used to replay internal topics (group offsets,
    /// transaction state) at startup. Reads 1 MiB at a time through [`PartitionLog::read`].
    pub fn batches_from(&self, offset: i64) -> LogBatches<'_> {
        LogBatches {
            log: self,
            next_offset: offset,
            chunk: Bytes::new(),
            done: false,
        }
    }

    /// The earliest offset whose record timestamp is `>= timestamp`, with that timestamp
    /// (Kafka's ListOffsets by timestamp); `None` when no record is that recent. Exact for
    /// uncompressed batches; for a compressed batch the answer is the batch's first offset and
    /// its max timestamp. A storage error is logged and reported as `None`; use
    /// [`PartitionLog::try_offset_for_timestamp`] to see it.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Option<(i64, i64)> {
        match self.try_offset_for_timestamp(timestamp) {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), timestamp, error = %e,
                    "offset lookup by timestamp failed");
                None
            }
        }
    }

    /// [`PartitionLog::offset_for_timestamp`], with storage errors returned.
    pub fn try_offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, LogError> {
        for segment in &self.segments {
            if segment.next_offset() <= self.log_start_offset {
                continue;
            }
            if let Some(found) = segment.offset_for_timestamp(timestamp, self.log_start_offset)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Deletes whole inactive segments, oldest first: those entirely below the log start offset,
    /// those whose newest record is older than `retention.ms` (now minus largest timestamp
    /// greater than the retention), and, for `retention.bytes`, the oldest ones as long as the
    /// log still holds at least `retention.bytes` without them (Kafka's rule). The active
    /// segment is never deleted. Advances and checkpoints the log start offset. Returns the
    /// number of segments deleted.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<usize, LogError> {
        let mut deleted = 0;
        while self.segments.len() > 1 && self.segments[1].base_offset() <= self.log_start_offset {
            self.delete_oldest_segment("below the log start offset")?;
            deleted += 1;
        }
        if let Some(retention_ms) = self.config.retention_ms.filter(|&ms| ms >= 0) {
            while self.segments.len() > 1
                && now_ms.saturating_sub(self.segments[0].retention_timestamp()) > retention_ms
            {
                self.delete_oldest_segment("retention.ms")?;
                deleted += 1;
            }
        }
        if let Some(retention_bytes) = self.config.retention_bytes {
            let mut excess = self.size_bytes().saturating_sub(retention_bytes);
            while self.segments.len() > 1 && excess >= self.segments[0].size() {
                excess -= self.segments[0].size();
                self.delete_oldest_segment("retention.bytes")?;
                deleted += 1;
            }
        }
        if deleted > 0 {
            self.cache.clear();
            let first_base = self.segments[0].base_offset();
            if first_base > self.log_start_offset {
                self.log_start_offset = first_base;
            }
            self.write_log_start_checkpoint()?;
        }
        Ok(deleted)
    }

    fn delete_oldest_segment(&mut self, reason: &str) -> Result<(), LogError> {
        let segment = self.segments.remove(0);
        tracing::info!(
            segment = %segment.log_path().display(),
            size = segment.size(),
            reason,
            "deleting log segment"
        );
        segment.delete()
    }

    /// Makes `offset` the new log start offset (Kafka's DeleteRecords): records below it are no
    /// longer readable and segments entirely below it are deleted. `offset` must lie within
    /// `[log start, log end]`; a value below the current start changes nothing. Returns the new
    /// log start offset.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64, LogError> {
        if offset > self.log_end_offset() || offset < 0 {
            return Err(self.out_of_range(offset));
        }
        if offset > self.log_start_offset {
            self.cache.clear();
            self.log_start_offset = offset;
            while self.segments.len() > 1 && self.segments[1].base_offset() <= offset {
                self.delete_oldest_segment("delete records")?;
            }
            self.write_log_start_checkpoint()?;
        }
        Ok(self.log_start_offset)
    }

    /// Removes every record at offset `>= offset` (a follower cutting a divergent tail). As in
    /// Kafka, truncation is by whole batches: a batch straddling `offset` is removed, so the log
    /// end offset becomes `<= offset`. Truncating below the log start empties the log and
    /// restarts it at `offset`. No-op when `offset >= log end`.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        self.cache.clear();
        if offset < self.log_start_offset {
            return self.truncate_fully_and_start_at(offset);
        }
        while self.segments.len() > 1 && self.active().base_offset() > offset {
            if let Some(segment) = self.segments.pop() {
                segment.delete()?;
            }
        }
        let interval = self.config.index_interval_bytes;
        self.active_mut().truncate_to(offset, interval)?;
        let log_end = self.log_end_offset();
        self.recovery_point = self.recovery_point.min(log_end);
        self.write_recovery_checkpoint()?;
        if self.log_start_offset > log_end {
            self.log_start_offset = log_end;
            self.write_log_start_checkpoint()?;
        }
        Ok(())
    }

    /// Deletes all segments and starts an empty log at `offset` (which becomes both the log
    /// start and end offset).
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), LogError> {
        if offset < 0 {
            return Err(self.out_of_range(offset));
        }
        self.cache.clear();
        for segment in self.segments.drain(..) {
            segment.delete()?;
        }
        self.segments.push(Segment::create(&self.dir, offset)?);
        self.log_start_offset = offset;
        self.recovery_point = offset;
        self.unflushed_messages = 0;
        self.write_log_start_checkpoint()?;
        self.write_recovery_checkpoint()
    }

    /// fsyncs the active segment and its indexes (sealed segments were written whole at roll),
    /// then records the log end offset as the recovery point.
    pub fn flush(&mut self) -> Result<(), LogError> {
        // Segments rolled without an fsync (flush policy off) are synced here too.
        let start = self
            .segments
            .partition_point(|s| s.next_offset() <= self.recovery_point)
            .min(self.segments.len() - 1);
        for segment in &mut self.segments[start..] {
            segment.flush()?;
        }
        sync_dir(&self.dir)?;
        self.recovery_point = self.log_end_offset();
        self.unflushed_messages = 0;
        self.write_recovery_checkpoint()
    }

    /// Decides whether the log is due for compaction (see [`super::cleaner`]); `None` when
    /// the topic is not compacted or the log is not dirty enough. Nothing at or past
    /// `uncleanable` (the caller's last stable offset or high watermark) is cleaned. Run the
    /// answer with [`Cleaning::run`] without holding the log's lock, installing each group
    /// with [`PartitionLog::install_cleaned`].
    pub fn plan_clean(&self, uncleanable: i64, now_ms: i64) -> Option<Cleaning> {
        let compaction = self.config.compaction.as_ref()?;
        let sealed = self.segments[..self.segments.len() - 1]
            .iter()
            .zip(&self.segments[1..])
            .filter(|(s, _)| s.next_offset() > self.log_start_offset)
            .map(|(s, next)| SealedSegment {
                base: s.base_offset(),
                next_base: next.base_offset(),
                size: s.size(),
                max_timestamp: s.max_timestamp(),
                first_batch_timestamp: s.first_batch_timestamp(),
                path: s.log_path().to_path_buf(),
            })
            .collect();
        cleaner::plan(
            &self.dir,
            compaction,
            self.config.segment_bytes,
            sealed,
            uncleanable.min(self.active().base_offset()),
            now_ms,
        )
    }

    /// Swaps a cleaned group of segments in (see [`super::cleaner`] for the crash-safe
    /// sequence). Returns `false`, deleting the cleaned file, when the segments it replaces
    /// are no longer exactly the ones that were read (retention or truncation ran meanwhile).
    pub fn install_cleaned(&mut self, group: CleanedGroup) -> Result<bool, LogError> {
        self.cache.clear();
        let first = &group.originals[0];
        let next_base = group.originals[group.originals.len() - 1].next_base;
        let start = self
            .segments
            .partition_point(|s| s.base_offset() < first.base);
        let end = start + group.originals.len();
        let unchanged = end < self.segments.len()
            && self.segments[end].base_offset() == next_base
            && self.segments[start..end]
                .iter()
                .zip(&group.originals)
                .all(|(s, o)| s.base_offset() == o.base && s.size() == o.size);
        if !unchanged {
            fs::remove_file(&group.path).map_err(io_err(
                "cannot remove an outdated cleaned segment",
                &group.path,
            ))?;
            return Ok(false);
        }
        let swap = self
            .dir
            .join(cleaner::swap_file_name(first.base, next_base));
        fs::rename(&group.path, &swap).map_err(io_err("cannot rename cleaned segment", &swap))?;
        sync_dir(&self.dir)?;
        for segment in self.segments.drain(start..end) {
            segment.delete()?;
        }
        // The deletions are durable before the swap file takes the first segment's name: after
        // a power loss, no replaced segment can reappear beside the cleaned one.
        sync_dir(&self.dir)?;
        let target = self.dir.join(super::segment::log_file_name(first.base));
        fs::rename(&swap, &target).map_err(io_err("cannot install cleaned segment", &target))?;
        sync_dir(&self.dir)?;
        let segment = Segment::open(
            &self.dir,
            first.base,
            Some(next_base),
            false,
            self.config.index_interval_bytes,
        )?;
        self.segments.insert(start, segment);
        Ok(true)
    }

    /// Turns the read cache of recent appends on or off (see [`super::tail_cache`]); off empties
    /// it. A follower's log turns it off: nothing fetches from it, and its appends would only be
    /// held for nothing.
    pub fn set_read_cache(&mut self, enabled: bool) {
        self.cache.set_enabled(enabled);
    }

    /// Flushes and closes the log; the next open then needs no recovery scan.
    pub fn close(mut self) -> Result<(), LogError> {
        self.flush()
    }

    fn write_log_start_checkpoint(&self) -> Result<(), LogError> {
        write_checkpoint(&self.dir.join(LOG_START_CHECKPOINT), self.log_start_offset)
    }

    fn write_recovery_checkpoint(&self) -> Result<(), LogError> {
        write_checkpoint(
            &self.dir.join(RECOVERY_POINT_CHECKPOINT),
            self.recovery_point,
        )
    }
}

impl Drop for PartitionLog {
    /// Writes pending index entries (no fsync, recovery point unchanged), so a log dropped
    /// without [`PartitionLog::close`] still reopens correctly, just with a recovery scan.
    fn drop(&mut self) {
        if let Some(active) = self.segments.last_mut() {
            if let Err(e) = active.persist_indexes(false) {
                tracing::warn!(error = %e, "cannot write index on drop");
            }
        }
    }
}

/// Iterator over stored batches; see [`PartitionLog::batches_from`].
#[derive(Debug)]
pub struct LogBatches<'a> {
    log: &'a PartitionLog,
    next_offset: i64,
    chunk: Bytes,
    done: bool,
}

impl Iterator for LogBatches<'_> {
    type Item = Result<(BatchHeader, Bytes), LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.chunk.is_empty() {
            match self.log.read(self.next_offset, ITER_CHUNK_BYTES, i64::MAX) {
                Ok(chunk) if chunk.is_empty() => {
                    self.done = true;
                    return None;
                }
                Ok(chunk) => self.chunk = chunk,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        // `read` returns whole, framed batches, so parsing cannot fail short of a bug; still,
        // report rather than panic.
        match BatchHeader::parse(&self.chunk) {
            Ok(header) if header.len_total() <= self.chunk.len() => {
                let bytes = self.chunk.split_to(header.len_total());
                self.next_offset = header.next_offset();
                Some(Ok((header, bytes)))
            }
            _ => {
                self.done = true;
                Some(Err(LogError::Corrupt {
                    path: self.log.dir.clone(),
                    position: 0,
                    reason: format!(
                        "unframed data while iterating from offset {}",
                        self.next_offset
                    ),
                }))
            }
        }
    }
}

fn check_config(dir: &Path, config: &LogConfig) -> Result<(), LogError> {
    let bad = |reason: &str| {
        Err(LogError::InvalidConfig {
            dir: dir.to_path_buf(),
            reason: reason.to_owned(),
        })
    };
    if config.segment_bytes < BATCH_HEADER_LEN as u64 {
        return bad("segment.bytes must be at least 61 (one batch header)");
    }
    if config.max_message_bytes < BATCH_HEADER_LEN {
        return bad("max.message.bytes must be at least 61 (one batch header)");
    }
    if config.segment_ms == Some(0) {
        return bad("segment.ms must be positive");
    }
    Ok(())
}

/// Lists segment base offsets in `dir` (sorted) and removes leftovers: files with a stray
/// suffix, and index files whose `.log` is gone.
fn scan_dir(dir: &Path) -> Result<Vec<i64>, LogError> {
    let mut bases = Vec::new();
    let mut indexes = Vec::new();
    let entries = fs::read_dir(dir).map_err(io_err("cannot list partition directory", dir))?;
    for entry in entries {
        let entry = entry.map_err(io_err("cannot list partition directory", dir))?;
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if STRAY_SUFFIXES.iter().any(|s| name.ends_with(s)) {
            tracing::info!(file = %path.display(), "removing leftover file");
            if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            }
            .map_err(io_err("cannot remove leftover file", &path))?;
            continue;
        }
        let Some((stem, ext)) = name.split_once('.') else {
            continue;
        };
        let Ok(base) = stem.parse::<i64>() else {
            continue;
        };
        if base < 0 || !stem.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        match ext {
            "log" => bases.push(base),
            "index" | "timeindex" => indexes.push((base, path)),
            _ => {}
        }
    }
    bases.sort_unstable();
    for (base, path) in indexes {
        if bases.binary_search(&base).is_err() {
            tracing::info!(file = %path.display(), "removing index without a segment");
            fs::remove_file(&path).map_err(io_err("cannot remove orphan index", &path))?;
        }
    }
    Ok(bases)
}

/// Reads a checkpoint file (`0` version line, then the offset); `None` if missing or unreadable.
pub(super) fn read_checkpoint(path: &Path) -> Option<i64> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "ignoring unreadable checkpoint");
            return None;
        }
    };
    let mut lines = text.lines();
    match (lines.next(), lines.next().map(str::parse::<i64>)) {
        (Some("0"), Some(Ok(offset))) if offset >= 0 => Some(offset),
        _ => {
            tracing::warn!(file = %path.display(), "ignoring malformed checkpoint");
            None
        }
    }
}

/// Writes a checkpoint atomically: temp file, fsync, rename.
pub(super) fn write_checkpoint(path: &Path, offset: i64) -> Result<(), LogError> {
    let tmp = path.with_extension("checkpoint.tmp");
    let mut file = File::create(&tmp).map_err(io_err("cannot create checkpoint", &tmp))?;
    file.write_all(format!("0\n{offset}\n").as_bytes())
        .and_then(|()| file.sync_data())
        .map_err(io_err("cannot write checkpoint", &tmp))?;
    fs::rename(&tmp, path).map_err(io_err("cannot replace checkpoint", path))
}

fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("cannot fsync partition directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::tests::sample_batch;
    use crate::log::batch::{build_batch, decode_records};
    use crate::log::CompactionConfig;

    fn config() -> LogConfig {
        LogConfig {
            segment_ms: None,
            retention_ms: None,
            ..LogConfig::default()
        }
    }

    fn open(dir: &Path, config: LogConfig) -> PartitionLog {
        PartitionLog::open(dir, config).expect("open")
    }

    /// Appends `count` batches of `records` records each (10-byte values, timestamp `ts`).
    fn append_batches(log: &mut PartitionLog, count: usize, records: usize, ts: i64) {
        for _ in 0..count {
            log.append(sample_batch(records, 10, ts), ts)
                .expect("append");
        }
    }

    /// Headers of the batches in `bytes`.
    fn headers(bytes: &[u8]) -> Vec<BatchHeader> {
        batch::batches(bytes)
            .map(|b| b.expect("framed").0)
            .collect()
    }

    fn base_offsets(bytes: &[u8]) -> Vec<i64> {
        headers(bytes).iter().map(|h| h.base_offset).collect()
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn empty_dir_is_a_new_log_at_offset_zero() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("topic-0");
        let log = open(&dir, config());
        assert_eq!(log.log_start_offset(), 0);
        assert_eq!(log.log_end_offset(), 0);
        assert_eq!(log.size_bytes(), 0);
        assert!(files(&dir).contains(&"00000000000000000000.log".to_string()));
        assert_eq!(log.read(0, 1000, i64::MAX).expect("read").len(), 0);
    }

    #[test]
    fn append_assigns_consecutive_offsets_and_keeps_bytes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut log = open(tmp.path(), config());
        let mut payload = BytesMut::new();
        payload.extend_from_slice(&sample_batch(3, 10, 100));
        payload.extend_from_slice(&sample_batch(2, 10, 300));
        let original = payload.clone();
        let info = log.append(payload, 1).expect("append");
        assert_eq!(info.base_offset, 0);
        assert_eq!(info.last_offset, 4);
        assert_eq!(info.max_timestamp, 300);
        assert_eq!(info.offset_of_max_timestamp, 4);
        assert_eq!(info.record_count, 5);
        assert_eq!(info.batch_count, 2);
        let info = log.append(sample_batch(1, 10, 50), 2).expect("append");
        assert_eq!((info.base_offset, info.last_offset), (5, 5));
        assert_eq!(log.log_end_offset(), 6);

        let stored = log.read(0, 1 << 20, i64::MAX).expect("read");
        assert_eq!(base_offsets(&stored), vec![0, 3, 5]);
        // Apart from each baseOffset, the stored bytes are exactly what was sent, and valid.
        let first_len = headers(&original)[0].len_total();
        assert_eq!(&stored[8..first_len], &original[8..first_len]);
        assert_eq!(
            &stored[first_len + 8..original.len()],
            &original[first_len + 8..]
        );
        assert_eq!(&stored[first_len..first_len + 8], &3i64.to_be_bytes());
        assert_eq!(validate_all(&stored), 3);
        assert_eq!(log.size_bytes(), stored.len() as u64);
    }

    fn validate_all(bytes: &[u8]) -> usize {
        batch::validate_produce(bytes, usize::MAX)
            .expect("valid")
            .len()
    }

    #[test]
    fn append_refuses_malformed_input_without_writing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut log = open(tmp.path(), config());
        let good = sample_batch(2, 10, 1);
        let err = log.append(&good[..good.len() - 3], 1).unwrap_err();
        assert_eq!(err.kafka_error_code(), 2, "{err}");
        assert!(log.append(BytesMut::new(), 1).is_err());
        assert_eq!(log.log_end_offset(), 0);
        assert_eq!(log.size_bytes(), 0);
    }

    #[test]
    fn leader_epoch_is_stamped_when_given() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut log = open(tmp.path(), config());
        log.append_with_epoch(sample_batch(1, 10, 1), Some(9), 1)
            .expect("append");
        let stored = log.read(0, 1000, i64::MAX).expect("read");
        assert_eq!(headers(&stored)[0].partition_leader_epoch, 9);
        assert_eq!(validate_all(&stored), 1);
    }

    #[test]
    fn segment_rolls_at_segment_bytes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let batch_len = sample_batch(2, 10, 1).len() as u64;
        let cfg = LogConfig {
            segment_bytes: 3 * batch_len,
            ..config()
        };
        let mut log = open(tmp.path(), cfg);
        append_batches(&mut log, 7, 2, 1);
        // 3 batches (6 offsets) fit per segment.
        assert_eq!(log.segment_base_offsets(), vec![0, 6, 12]);
        assert_eq!(log.log_end_offset(), 14);
        assert_eq!(log.size_bytes(), 7 * batch_len);
        let names = files(tmp.path());
        for base in [
            "00000000000000000000",
            "00000000000000000006",
            "00000000000000000012",
        ] {
            for ext in ["log", "index", "timeindex"] {
                assert!(
                    names.contains(&format!("{base}.{ext}")),
                    "{base}.{ext} in {names:?}"
                );
            }
        }
        let len = |name: &str| fs::metadata(tmp.path().join(name)).expect("meta").len();
        assert_eq!(len("00000000000000000000.log"), 3 * batch_len);
        assert_eq!(len("00000000000000000012.log"), batch_len);
    }

    #[test]
    fn segment_rolls_after_segment_ms() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cfg = LogConfig {
            segment_ms: Some(1000),
            ..config()
        };
        let mut log = open(tmp.path(), cfg);
        log.append(sample_batch(1, 10, 1), 10_000).expect("append");
        log.append(sample_batch(1, 10, 1), 10_999).expect("append");
        assert_eq!(log.segment_count(), 1);
        log.append(sample_batch(1, 10, 1), 11_000).expect("append");
        assert_eq!(log.segment_base_offsets(), vec![0, 2]);
    }

    #[test]
    fn a_compacted_log_rolls_after_max_compaction_lag_when_segment_ms_is_longer() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let compaction = CompactionConfig {
            max_compaction_lag_ms: 1000,
            ..CompactionConfig::default()
        };
        let cfg = LogConfig {
            segment_ms: Some(60_000),
            compaction: Some(compaction.clone()),
            ..config()
        };
        let mut log = open(tmp.path(), cfg);
        log.append(sample_batch(1, 10, 1), 10_000).expect("append");
        log.append(sample_batch(1, 10, 1), 10_999).expect("append");
        assert_eq!(log.segment_count(), 1);
        log.append(sample_batch(1, 10, 1), 11_000).expect("append");
        assert_eq!(log.segment_base_offsets(), vec![0, 2]);
        // Without compaction the bound does not apply; with no bound, segment.ms alone.
        for compaction in [None, Some(CompactionConfig::default())] {
            let tmp = tempfile::tempdir().expect("tempdir");
            let cfg = LogConfig {
                segment_ms: Some(60_000),
                compaction,
                ..config()
            };
            let mut log = open(tmp.path(), cfg);
            log.append(sample_batch(1, 10, 1), 10_000).expect("append");
            log.append(sample_batch(1, 10, 1), 69_999).expect("append");
            assert_eq!(log.segment_count(), 1);
            log.append(sample_batch(1, 10, 1), 70_000).expect("append");
            assert_eq!(log.segment_count(), 2);
        }
    }

    #[test]
    fn read_from_inside_a_batch_returns_the_whole_batch() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut log = open(tmp.path(), config());
        append_batches(&mut log, 3, 5, 1); // offsets 0-4, 5-9, 10-14
        for (offset, first_base) in [(0, 0), (3, 0), (4, 0), (5, 5), (7, 5), (14, 10)] {
            let got = log.read(offset, 1 << 20, i64::MAX).expect("read");
            assert_eq!(base_offsets(&got)[0], first_base, "read from {offset}");
        }
    }

    #[test]
    fn read_honours_max_bytes_upper_bound_and_first_batch_rule() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut log = open(tmp.path(), config());
        append_batches(&mut log, 5, 2, 1); // base offsets 0, 2, 4, 6, 8
        let one = sample_batch(2, 10, 1).len();

        // max_bytes: whole batches only, never a partial one.
        let got = log.read(0, 2 * one + one / 2, i64::MAX).expect("read");
        assert_eq!(base_offsets(&got), vec![0, 2]);
        assert_eq!(got.len(), 2 * one);
        // First batch larger than max_bytes: returned whole anyway.
        let got = log.read(2, 10, i64::MAX).expect("read");
        assert_eq!(base_offsets(&got), vec![2]);
        assert_eq!(got.len(), one);
        // ... unless the caller has already used that allowance (a later partition of a fetch).
        assert!(log
            .read_limited(2, one - 1, i64::MAX, false)
            .expect("read")
            .is_empty());
        let got = log.read_limited(2, one, i64::MAX, false).expect("read");
        assert_eq!(base_offsets(&got), vec![2]);
        // Upper bound (high watermark): batches with base >= 6 excluded.
        let got = log.read(0, 1 << 20, 6).expect("read");
        assert_eq!(base_offsets(&got), vec![0, 2, 4]);
        // A bound inside a batch keeps that batch (its base is below the bound).
        let got = log.read(0, 1 << 20, 5).expect("read");
        assert_eq!(base_offsets(&got), vec![0, 2, 4]);
        // Nothing below the bound.
        assert!(log.read(6, 1 << 20, 6).expect("read").is_empty());
        // At the log end: empty; past it or below the start: out of range.
        assert!(log.read(10, 100, i64::MAX).expect("read").is_empty());
        let err = log.read(11, 100, i64::MAX).unwrap_err();
        assert_eq!(err.kafka_error_code(), 1, "{err}");
        assert!(err.to_string().contains("offset 11"), "{err}");
        assert!(log.read(-1, 100, i64::MAX).is_err());
    }

    #[test]
    fn reads_through_the_index_match_a_full_scan() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cfg = LogConfig {
            index_interval_bytes: 200,
            segment_bytes: 5_000,
            ..config()
        };
        let mut log = open(tmp.path(), cfg.clone());
        // Batches of varying record counts so offsets and positions are irregular.
        let mut expected = Vec::new(); // (base, last) of every batch
        for i in 0..300usize {
            let n = 1 + i % 4;
            let info = log
                .append(sample_batch(n, 20, i as i64), 0)
                .expect("append");
            expected.push((info.base_offset, info.last_offset));
        }
        assert!(log.segment_count() > 3, "{}", log.segment_count());
        let check = |log: &PartitionLog| {
            for target in 0..log.log_end_offset() {
                let got = log.read(target, 1, i64::MAX).expect("read");
                let h = headers(&got);
                assert_eq!(h.len(), 1);
                let want = expected
                    .iter()
                    .find(|(_, last)| *last >= target)
                    .expect("exists");
                assert_eq!(
                    (h[0].base_offset, h[0].last_offset()),
                    *want,
                    "target {target}"
                );
            }
        };
        check(&log);
        log.close().expect("close");
        // Reopened from the persisted indexes (clean shutdown: no scan).
        let log = open(tmp.path(), cfg);
        check(&log);
    }

    #[test]
    fn header_walk_without_index_entries_crosses_read_chunks() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cfg = LogConfig {
            index_interval_bytes: u32::MAX, // no index entries: every lookup walks from byte 0
            ..config()
        };
        let mut log = open(tmp.path(), cfg);
        // ~40 KiB of batches of mixed sizes, some larger than the 4 KiB walk chunk.
        let mut expected = Vec::new();
        for i in 0..120usize {
            let value_len = if i % 10 == 9 { 5000 } else { 200 + i };
            let info = log
                .append(sample_batch(1 + i % 3, value_len, 0), 0)
                .expect("append");
            expected.push(info.base_offset);
        }
        for (i, &base) in expected.iter().enumerate() {
            let got = log.read(base, 1, i64::MAX).expect("read");
            assert_eq!(base_offsets(&got), vec![base], "batch {i}");
        }
    }

    #[test]
    fn batches_from_walks_every_segment() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cfg = LogConfig {
            segment_bytes: 500,
            ..config()
        };
        let mut log = open(tmp.path(), cfg);
        for i in 0..20 {
            let key = format!("k{i}");
            let b = build_batch(
                &[(Some(key.as_bytes()), Some(b"v"))],
                i,
                -1,
                -1,
                -1,
                false,
                false,
            );
            log.append(b, 0).expect("append");
        }
        assert!(log.segment_count() > 2);
        let mut keys = Vec::new();
        for item in log.batches_from(0) {
            let (header, bytes) = item.expect("batch");
            let records = decode_records(&bytes).expect("decode");
            assert_eq!(header.base_offset, keys.len() as i64);
            keys.push(records[0].key.clone().expect("key"));
        }
        assert_eq!(keys.len(), 20);
        assert_eq!(&keys[19][..], b"k19");
        assert_eq!(log.batches_from(15).count(), 5);
        assert_eq!(log.batches_from(20).count(), 0);
    }

    #[test]
    fn offset_for_timestamp_finds_earliest_record_at_or_after() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cfg = LogConfig {
            segment_bytes: 250,
            index_interval_bytes: 1,
            ..config()
        };
        let mut log = open(tmp.path(), cfg);
        // One record per batch; timestamps not monotonic: 100, 300, 200, 400, ...
        let timestamps = [100, 300, 200, 400, 350, 500, 450, 600, 800, 700];
        for &ts in &timestamps {
            log.append(sample_batch(1, 10, ts), 0).expect("append");
        }
        assert!(log.segment_count() > 2, "{}", log.segment_count());
        let brute = |target: i64| {
            timestamps
                .iter()
                .position(|&t| t >= target)
                .map(|i| (i as i64, timestamps[i]))
        };
        for target in [
            0, 100, 101, 250, 300, 301, 399, 400, 401, 460, 650, 750, 800,
        ] {
            assert_eq!(
                log.offset_for_timestamp(target),
                brute(target),
                "ts {target}"
            );
        }
        assert_eq!(log.offset_for_timestamp(801), None);

        // Records inside one batch: exact record answer.
        let tmp2 = tempfile::tempdir().expect("tempdir");
        let mut log = open(tmp2.path(), config());
        log.append(sample_batch(1, 10, 10), 0).expect("append");
        let mut b = BytesMut::new();
        b.extend_from_slice(&build_batch(
            &[(None, Some(b"a")), (None, Some(b"b")), (None, Some(b"c"))],
            20,
            -1,
            -1,
            -1,
            false,
            false,
        ));
        log.append(b, 0).expect("append");
        assert_eq!(log.offset_for_timestamp(15), Some((1, 20)));
    }

    #[test]
    fn offset_for_timestamp_in_a_compressed_batch_is_the_batch_start() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut log = open(tmp.path(), config());
        log.append(sample_batch(2, 10, 500), 0).expect("append");
        // Records at offsets 2, 3, 4 with timestamps 1000, 1010, 1020, gzip-flagged.
        log.append(crate::log::batch::tests::fake_gzip_batch(3), 0)
            .expect("append");
        assert_eq!(log.offset_for_timestamp(1015), Some((2, 1020)));
        assert_eq!(log.offset_for_timestamp(1021), None);
        assert_eq!(log.offset_for_timestamp(400), Some((0, 500)));
    }

    /// Builds a log of `segments` full segments plus an active one, batch timestamps given by
    /// `ts(segment)`. Returns the batch length.
    fn log_with_segments(dir: &Path, cfg: LogConfig, segments: i64) -> (PartitionLog, u64) {
        let batch_len = sample_batch(1, 10, 0).len() as u64;
        let mut log = open(
            dir,
            LogConfig {
                segment_bytes: 2 * batch_len,
                ..cfg
            },
        );
        for s in 0..=segments {
            for _ in 0..2 {
                log.append(sample_batch(1, 10, 1000 * (s + 1)), 0)
                    .expect("append");
            }
        }
        (log, batch_len)
    }

    #[test]
    fn retention_by_time_deletes_old_segments_never_the_active_one() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cfg = LogConfig {
            retention_ms: Some(1500),
            ..config()
        };
        // Segments: [0,1] ts 1000, [2,3] ts 2000, [4,5] ts 3000, active [6,7] ts 4000.
        let (mut log, _) = log_with_segments(tmp.path(), cfg.clone(), 3);
        assert_eq!(log.segment_base_offsets(), vec![0, 2, 4, 6]);
        // now 3600: 1000 and 2000 are older than 1500 ms; 3000 is not.
        assert_eq!(log.apply_retention(3600).expect("retention"), 2);
        assert_eq!(log.segment_base_offsets(), vec![4, 6]);
        assert_eq!(log.log_start_offset(), 4);
        assert!(!tmp.path().join("00000000000000000000.log").exists());
        assert!(!tmp.path().join("00000000000000000002.index").exists());
        assert_eq!(
            log.read(1, 100, i64::MAX).unwrap_err().kafka_error_code(),
            1
        );
        assert_eq!(
            base_offsets(&log.read(4, 1 << 20, i64::MAX).expect("read"))[0],
            4
        );
        // Far future: everything old, but the active segment stays.
        assert_eq!(log.apply_retention(1_000_000).expect("retention"), 1);
        assert_eq!(log.segment_base_offsets(), vec![6]);
        assert_eq!(log.log_start_offset(), 6);
        assert_eq!(log.log_end_offset(), 8);
        drop(log);
        // The log start offset survives a reopen (unclean: no close).
        let log = open(tmp.path(), cfg);
        assert_eq!(log.log_start_offset(), 6);
        assert_eq!(log.log_end_offset(), 8);
    }

    #[test]
    fn retention_by_bytes_keeps_at_least_the_limit() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut log, batch_len) = log_with_segments(tmp.path(), config(), 4);
        let seg = 2 * batch_len; // five segments of `seg` bytes
        log.config.retention_bytes = Some(2 * seg + 1);
        // 5 segs; deleting 2 leaves 3 segs >= limit; deleting a third would leave 2 segs < limit.
        assert_eq!(log.apply_retention(0).expect("retention"), 2);
        assert_eq!(log.segment_base_offsets(), vec![4, 6, 8]);
        assert_eq!(log.size_bytes(), 3 * seg);
        assert_eq!(log.log_start_offset(), 4);
        log.config.retention_bytes = Some(0);
        assert_eq!(log.apply_retention(0).expect("retention"), 2);
        assert_eq!(log.segment_base_offsets(), vec![8], "active segment kept");
        log.close().expect("close");
        let log = open(tmp.path(), config());
        assert_eq!(log.log_start_offset(), 8);
        assert_eq!(log.log_end_offset(), 10);
    }

    #[test]
    fn delete_records_before_advances_log_start() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = log_with_segments(tmp.path(), config(), 2);
        assert_eq!(log.delete_records_before(3).expect("delete"), 3);
        assert_eq!(log.segment_base_offsets(), vec![2, 4]);
        assert_eq!(
            log.read(2, 100, i64::MAX).unwrap_err().kafka_error_code(),
            1
        );
        // Reading at the new start returns the batch that contains it.
        assert_eq!(
            base_offsets(&log.read(3, 100, i64::MAX).expect("read")),
            vec![3]
        );
        assert_eq!(log.delete_records_before(1).expect("no-op"), 3);
        assert!(log.delete_records_before(7).is_err());
        drop(log);
        assert_eq!(open(tmp.path(), config()).log_start_offset(), 3);
    }

    /// A closed log with batches 0..n (one record each) in one segment; returns the .log path.
    fn closed_log(dir: &Path, n: usize) -> PathBuf {
        let mut log = open(dir, config());
        append_batches(&mut log, n, 1, 5);
        log.close().expect("close");
        dir.join("00000000000000000000.log")
    }

    #[test]
    fn recovery_cuts_garbage_after_the_last_batch() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = closed_log(tmp.path(), 5);
        let good_len = fs::metadata(&path).expect("meta").len();
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        f.write_all(&[0xAB; 100]).expect("write");
        drop(f);
        // Recovery point says clean, but the last segment is always rescanned.
        let mut log = open(tmp.path(), config());
        assert_eq!(log.log_end_offset(), 5);
        assert_eq!(fs::metadata(&path).expect("meta").len(), good_len);
        assert_eq!(
            base_offsets(&log.read(0, 1 << 20, i64::MAX).expect("read")).len(),
            5
        );
        assert_eq!(
            log.append(sample_batch(1, 10, 1), 0)
                .expect("append")
                .base_offset,
            5
        );
    }

    #[test]
    fn recovery_cuts_a_torn_last_batch() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = closed_log(tmp.path(), 5);
        let len = fs::metadata(&path).expect("meta").len();
        let one = sample_batch(1, 10, 5).len() as u64;
        // kill -9 in the middle of writing batch 4: half of it reached the file.
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open")
            .set_len(len - one / 2)
            .expect("truncate");
        let log = open(tmp.path(), config());
        assert_eq!(log.log_end_offset(), 4);
        assert_eq!(fs::metadata(&path).expect("meta").len(), len - one);
        let all = log.read(0, 1 << 20, i64::MAX).expect("read");
        assert_eq!(base_offsets(&all), vec![0, 1, 2, 3]);
        assert_eq!(validate_all(&all), 4);
    }

    #[test]
    fn recovery_cuts_at_a_crc_mismatch() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = closed_log(tmp.path(), 5);
        let one = sample_batch(1, 10, 5).len() as u64;
        // Flip a byte inside batch 2's records: batches 2, 3, 4 are cut.
        let f = fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open");
        std::os::unix::fs::FileExt::write_at(&f, &[0xFF], 2 * one + 65).expect("write");
        drop(f);
        let log = open(tmp.path(), config());
        assert_eq!(log.log_end_offset(), 2);
        assert_eq!(fs::metadata(&path).expect("meta").len(), 2 * one);
    }

    #[test]
    fn unclean_stop_rechecks_every_segment_past_the_recovery_point() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (log, batch_len) = log_with_segments(tmp.path(), config(), 2); // segs 0, 2, 4
        drop(log); // no close: the recovery point stays at 0
        let path = tmp.path().join("00000000000000000000.log");
        let f = fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open");
        std::os::unix::fs::FileExt::write_at(&f, &[0xFF], batch_len + 70).expect("write");
        drop(f);
        let log = open(tmp.path(), config());
        // The damaged batch (offset 1) is cut from the sealed first segment; the rest is intact.
        assert_eq!(fs::metadata(&path).expect("meta").len(), batch_len);
        assert_eq!(log.segment_base_offsets(), vec![0, 2, 4]);
        assert_eq!(log.log_end_offset(), 6);
        assert_eq!(
            base_offsets(&log.read(0, 1 << 20, i64::MAX).expect("read")),
            vec![0]
        );
        assert_eq!(
            base_offsets(&log.read(1, 1, i64::MAX).expect("read")),
            vec![2]
        );
        // After a clean close the sealed segments are trusted and not rescanned.
        log.close().expect("close");
        assert_eq!(
            read_checkpoint(&tmp.path().join(RECOVERY_POINT_CHECKPOINT)),
            Some(6)
        );
    }

    #[test]
    fn deleted_or_corrupt_index_is_rebuilt() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cfg = LogConfig {
            segment_bytes: 2000,
            index_interval_bytes: 100,
            ..config()
        };
        let mut log = open(tmp.path(), cfg.clone());
        append_batches(&mut log, 60, 1, 5);
        let bases = log.segment_base_offsets();
        assert!(bases.len() >= 3);
        log.close().expect("close");
        let index = tmp.path().join("00000000000000000000.index");
        let time_index = tmp.path().join("00000000000000000000.timeindex");
        let original = fs::read(&index).expect("read");
        assert!(!original.is_empty());
        fs::remove_file(&index).expect("rm");
        let second = tmp.path().join(format!("{:020}.index", bases[1]));
        fs::write(&second, [1, 2, 3]).expect("corrupt"); // not a whole entry
        fs::write(&time_index, [0u8; 12]).expect("wrong time index");

        let log = open(tmp.path(), cfg);
        assert_eq!(fs::read(&index).expect("rebuilt"), original);
        assert_eq!(fs::metadata(&second).expect("meta").len() % 8, 0);
        assert_eq!(log.log_end_offset(), 60);
        for target in [0, 7, bases[1], bases[1] + 3, 59] {
            let got = log.read(target, 1, i64::MAX).expect("read");
            assert_eq!(base_offsets(&got), vec![target]);
        }
        assert_eq!(log.offset_for_timestamp(5), Some((0, 5)));
    }

    #[test]
    fn stray_files_are_removed_on_open() {
        let tmp = tempfile::tempdir().expect("tempdir");
        closed_log(tmp.path(), 2);
        for name in [
            "00000000000000000000.log.deleted",
            "00000000000000000000.index.swap",
            "00000000000000000000.log.cleaned",
            "00000000000000000009.index",
            "log-start-offset.checkpoint.tmp",
        ] {
            fs::write(tmp.path().join(name), b"x").expect("write");
        }
        let log = open(tmp.path(), config());
        assert_eq!(log.log_end_offset(), 2);
        assert_eq!(
            files(tmp.path()),
            vec![
                "00000000000000000000.index",
                "00000000000000000000.log",
                "00000000000000000000.timeindex",
                "log-start-offset.checkpoint",
                "recovery-point-offset.checkpoint",
            ]
        );
    }

    #[test]
    fn truncate_to_removes_the_tail() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = log_with_segments(tmp.path(), config(), 3); // offsets 0..8, segs 0,2,4,6
        log.truncate_to(5).expect("truncate");
        assert_eq!(log.log_end_offset(), 5);
        assert_eq!(log.segment_base_offsets(), vec![0, 2, 4]);
        assert_eq!(
            base_offsets(&log.read(0, 1 << 20, i64::MAX).expect("read")),
            vec![0, 1]
        );
        assert_eq!(
            base_offsets(&log.read(4, 1 << 20, i64::MAX).expect("read")),
            vec![4]
        );
        assert!(!tmp.path().join("00000000000000000006.log").exists());
        // Appends continue from the new end, into the truncated segment.
        let info = log.append(sample_batch(3, 10, 9), 0).expect("append");
        assert_eq!((info.base_offset, info.last_offset), (5, 7));
        // A cut inside a batch removes the whole batch.
        log.truncate_to(6).expect("truncate");
        assert_eq!(log.log_end_offset(), 5);
        log.truncate_to(100).expect("no-op");
        assert_eq!(log.log_end_offset(), 5);
        drop(log);
        let mut log = open(tmp.path(), config());
        assert_eq!(log.log_end_offset(), 5);
        // Offsets 0-4 remain (timestamps 1000, 1000, 2000, 2000, 3000).
        assert_eq!(
            log.offset_for_timestamp(3001),
            None,
            "truncated timestamps are gone"
        );
        assert_eq!(log.offset_for_timestamp(2500), Some((4, 3000)));
        // Below the log start: the log restarts empty at that offset.
        log.delete_records_before(3).expect("delete");
        log.truncate_to(1).expect("truncate");
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (1, 1));
        assert_eq!(log.segment_base_offsets(), vec![1]);
    }

    #[test]
    fn flush_by_message_count_moves_the_recovery_point() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cfg = LogConfig {
            flush_interval_messages: Some(3),
            ..config()
        };
        let mut log = open(tmp.path(), cfg);
        append_batches(&mut log, 2, 1, 1);
        let checkpoint = tmp.path().join(RECOVERY_POINT_CHECKPOINT);
        assert_eq!(read_checkpoint(&checkpoint).unwrap_or(0), 0);
        append_batches(&mut log, 1, 1, 1);
        assert_eq!(
            read_checkpoint(&tmp.path().join(RECOVERY_POINT_CHECKPOINT)),
            Some(3)
        );
    }

    #[test]
    fn replicated_batches_keep_their_offsets() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let leader_dir = tmp.path().join("leader");
        let mut leader = open(&leader_dir, config());
        append_batches(&mut leader, 4, 2, 1);
        let data = leader.read(0, 1 << 20, i64::MAX).expect("read");
        let mut follower = open(&tmp.path().join("follower"), config());
        let info = follower
            .append_replicated(data.clone(), 0)
            .expect("replicate");
        assert_eq!((info.base_offset, info.last_offset), (0, 7));
        assert_eq!(follower.read(0, 1 << 20, i64::MAX).expect("read"), data);
        // Offsets already present are refused.
        assert!(follower.append_replicated(data.clone(), 0).is_err());
    }

    /// The `.log` files of `dir` and their sizes on disk, oldest first.
    fn segment_file_sizes(dir: &Path) -> Vec<(String, u64)> {
        files(dir)
            .into_iter()
            .filter(|n| n.ends_with(".log"))
            .map(|n| {
                let len = fs::metadata(dir.join(&n)).expect("stat").len();
                (n, len)
            })
            .collect()
    }

    #[test]
    fn an_append_whose_flush_fails_is_undone_and_the_next_one_is_clean() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("t-0");
        // An index entry every batch, and an fsync plus checkpoint after every append.
        let cfg = LogConfig {
            flush_interval_messages: Some(1),
            index_interval_bytes: 1,
            ..config()
        };
        let mut log = open(&dir, cfg.clone());
        append_batches(&mut log, 3, 2, 10);
        let before = (log.log_end_offset(), log.size_bytes());
        let stored_before = log.read(0, 1 << 20, i64::MAX).expect("read");

        // The recovery checkpoint cannot be written: a directory stands where its temporary
        // file goes (as good as a full disk for `File::create`, and root cannot bypass it).
        let blocker = dir.join("recovery-point-offset.checkpoint.tmp");
        fs::create_dir(&blocker).expect("mkdir");
        let err = log
            .append(sample_batch(2, 10, 20), 20)
            .expect_err("the flush fails");
        assert!(matches!(err, LogError::Io { .. }), "{err}");
        assert_eq!(err.kafka_error_code(), 56, "KAFKA_STORAGE_ERROR");
        assert_eq!(
            (log.log_end_offset(), log.size_bytes()),
            before,
            "offsets and size as before the failed append"
        );
        assert_eq!(
            segment_file_sizes(&dir),
            vec![("00000000000000000000.log".to_string(), before.1)],
            "the written bytes were cut off the file"
        );
        assert_eq!(log.read(0, 1 << 20, i64::MAX).expect("read"), stored_before);

        // Space returns: the next append takes the offsets the failed one would have had.
        fs::remove_dir(&blocker).expect("rmdir");
        let info = log.append(sample_batch(2, 10, 30), 30).expect("append");
        assert_eq!((info.base_offset, info.last_offset), (6, 7));
        let stored = log.read(0, 1 << 20, i64::MAX).expect("read");
        assert_eq!(base_offsets(&stored), vec![0, 2, 4, 6]);
        assert_eq!(validate_all(&stored), 4);
        let lookup = log.read(6, 1, i64::MAX).expect("read through the index");
        assert_eq!(base_offsets(&lookup), vec![6]);
        drop(log);

        // A reopen (with a recovery scan) finds exactly that log, nothing cut.
        fs::remove_file(dir.join(RECOVERY_POINT_CHECKPOINT)).expect("rm checkpoint");
        let log = open(&dir, cfg);
        assert_eq!(log.log_end_offset(), 8);
        assert_eq!(log.read(0, 1 << 20, i64::MAX).expect("read"), stored);
    }

    #[test]
    fn an_append_that_cannot_be_written_changes_nothing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("t-0");
        fs::create_dir_all(&dir).expect("mkdir");
        // A segment whose every write fails with ENOSPC.
        std::os::unix::fs::symlink("/dev/full", dir.join("00000000000000000000.log"))
            .expect("symlink");
        let mut log = open(&dir, config());
        let err = log
            .append(sample_batch(2, 10, 1), 1)
            .expect_err("the disk is full");
        let LogError::Io { source, .. } = &err else {
            panic!("not a storage error: {err}");
        };
        assert!(super::dir_health::is_full(source), "{source}");
        assert_eq!(err.kafka_error_code(), 56);
        assert_eq!((log.log_end_offset(), log.size_bytes()), (0, 0));
        // `/dev/full` cannot be cut either, so the segment keeps refusing appends until it can
        // be: nothing is ever written after bytes a failed append may have left.
        for _ in 0..2 {
            let err = log
                .append(sample_batch(2, 10, 1), 1)
                .expect_err("the cut is still owed");
            assert!(
                err.to_string().contains("cannot cut a failed append"),
                "{err}"
            );
            assert_eq!(err.kafka_error_code(), 56);
            assert_eq!((log.log_end_offset(), log.size_bytes()), (0, 0));
        }
        assert_eq!(log.read(0, 1 << 20, i64::MAX).expect("read").len(), 0);
        // A replicated append is refused the same way.
        let mut leader = open(&tmp.path().join("leader"), config());
        append_batches(&mut leader, 1, 2, 1);
        let data = leader.read(0, 1 << 20, i64::MAX).expect("read");
        assert!(log.append_replicated(data.clone(), 1).is_err());
        assert_eq!(log.log_end_offset(), 0);
    }

    #[test]
    fn a_roll_that_cannot_create_the_new_segment_leaves_no_file_behind() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("t-0");
        let batch_len = sample_batch(2, 10, 1).len() as u64;
        let cfg = LogConfig {
            segment_bytes: 3 * batch_len,
            ..config()
        };
        let mut log = open(&dir, cfg.clone());
        append_batches(&mut log, 3, 2, 1);
        // The next segment's index cannot be created.
        let blocker = dir.join("00000000000000000006.index");
        fs::create_dir(&blocker).expect("mkdir");
        let err = log
            .append(sample_batch(2, 10, 1), 1)
            .expect_err("the roll fails");
        assert_eq!(err.kafka_error_code(), 56, "{err}");
        assert_eq!(log.segment_base_offsets(), vec![0]);
        assert_eq!(log.log_end_offset(), 6);
        assert!(
            !files(&dir).contains(&"00000000000000000006.log".to_string()),
            "a stray segment file would be taken for the active one on the next open: {:?}",
            files(&dir)
        );
        // Once the files can be made, the next append rolls as it should have.
        fs::remove_dir(&blocker).expect("rmdir");
        append_batches(&mut log, 2, 2, 1);
        assert_eq!(log.segment_base_offsets(), vec![0, 6]);
        assert_eq!(log.log_end_offset(), 10);
        drop(log);
        let log = open(&dir, cfg);
        assert_eq!(log.segment_base_offsets(), vec![0, 6]);
        assert_eq!(log.log_end_offset(), 10);
    }

    /// Appends one payload of several batches of different sizes (`n` records each).
    fn append_payload(log: &mut PartitionLog, counts: &[usize], ts: i64) {
        let mut payload = BytesMut::new();
        for &n in counts {
            payload.extend_from_slice(&sample_batch(n, 10 + 7 * n, ts));
        }
        log.append(payload, ts).expect("append");
    }

    /// Every read of `[log start, log end)` (each offset, several byte budgets and upper bounds,
    /// with and without the first-batch exception) answers what the segment files hold. Returns
    /// how many offsets the cache answered.
    fn assert_reads_match_the_file(log: &PartitionLog) -> usize {
        let (start, end) = (log.log_start_offset(), log.log_end_offset());
        let mut cached = 0;
        for offset in start..end {
            if log.cache.read(offset, 1 << 20, i64::MAX, true).is_some() {
                cached += 1;
            }
            for max in [0, 1, 61, 150, 400, 1000, 3000, 1 << 20] {
                for upper in [offset, offset + 1, offset + 4, end - 1, end, i64::MAX] {
                    for first in [true, false] {
                        let read = log.read_recent(offset, max, upper, first).expect("read");
                        let file = log.read_file(offset, max, upper, first).expect("file");
                        assert_eq!(
                            read, file,
                            "offset {offset} max {max} upper {upper} first {first}"
                        );
                    }
                }
            }
        }
        cached
    }

    #[test]
    fn reads_from_the_cache_are_exactly_the_file_reads() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut log = open(tmp.path(), config());
        for i in 0..6 {
            append_payload(&mut log, &[1, 3, 2][..1 + i % 3], i as i64);
        }
        append_batches(&mut log, 3, 4, 9);
        // Everything is cached: every offset is answered from memory, as the file would.
        let end = log.log_end_offset();
        assert_eq!(assert_reads_match_the_file(&log), end as usize);
        // A read spanning several appends is one buffer of whole batches.
        let all = log.read_recent(0, 1 << 20, i64::MAX, true).expect("read");
        assert_eq!(all.len() as u64, log.size_bytes());
        assert_eq!(validate_all(&all), 3 + 1 + 2 + 3 + 1 + 2 + 3);
    }

    #[test]
    fn a_consumer_read_shows_a_byte_damaged_on_disk_that_the_cache_does_not() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut log = open(tmp.path(), config());
        append_payload(&mut log, &[3], 1);
        let written = log.read_recent(0, 1 << 20, i64::MAX, true).expect("read");
        // Damage one byte of the record data in the segment file, behind the broker's back.
        let seg = tmp.path().join("00000000000000000000.log");
        let mut bytes = std::fs::read(&seg).expect("segment");
        bytes[written.len() - 5] ^= 0xFF;
        std::fs::write(&seg, &bytes).expect("damage");
        let consumed = log.read(0, 1 << 20, i64::MAX).expect("read");
        assert_ne!(consumed, written, "a consumer reads the file as it is now");
        assert_eq!(&consumed[..], &bytes[..written.len()]);
        assert_eq!(
            log.read_recent(0, 1 << 20, i64::MAX, true).expect("read"),
            written,
            "a follower is served the bytes that were appended"
        );
    }

    #[test]
    fn a_reopened_log_reads_from_the_file_until_new_appends() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("t-0");
        {
            let mut log = open(&dir, config());
            append_payload(&mut log, &[2, 3], 1);
        }
        let mut log = open(&dir, config());
        assert_eq!(assert_reads_match_the_file(&log), 0);
        append_payload(&mut log, &[1, 4], 2);
        // The new appends are cached; the older batches still come from the file.
        assert_eq!(assert_reads_match_the_file(&log), 5);
    }

    #[test]
    fn truncation_empties_the_cache_and_later_appends_are_read_as_written() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut log = open(tmp.path(), config());
        append_payload(&mut log, &[2, 3, 1], 1);
        append_payload(&mut log, &[4], 2);
        log.truncate_to(5).expect("truncate");
        assert_eq!(log.cache.len_bytes(), 0);
        assert_eq!(log.log_end_offset(), 5);
        assert_eq!(assert_reads_match_the_file(&log), 0);
        // New data at the truncated offsets: the cache holds it, not what was cut.
        append_payload(&mut log, &[1, 1], 3);
        assert_eq!(assert_reads_match_the_file(&log), 2);
        let tail = log.read(5, 1 << 20, i64::MAX).expect("read");
        assert_eq!(base_offsets(&tail), vec![5, 6]);
        assert!(headers(&tail).iter().all(|h| h.max_timestamp == 3));

        log.truncate_fully_and_start_at(20).expect("restart");
        assert_eq!(log.cache.len_bytes(), 0);
        append_payload(&mut log, &[2], 4);
        assert_eq!(assert_reads_match_the_file(&log), 2);
    }

    #[test]
    fn a_roll_starts_the_cache_over_in_the_new_segment() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let batch_len = sample_batch(2, 24, 0).len() as u64;
        let cfg = LogConfig {
            segment_bytes: 3 * batch_len,
            ..config()
        };
        let mut log = open(tmp.path(), cfg);
        for ts in 0..7 {
            append_payload(&mut log, &[2], ts);
        }
        assert_eq!(log.segment_count(), 3);
        // Only the active segment's batches are cached (reads never cross a segment).
        assert_eq!(assert_reads_match_the_file(&log), 2);
    }

    #[test]
    fn a_log_start_move_empties_the_cache() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut log = open(tmp.path(), config());
        append_payload(&mut log, &[2, 3], 1);
        log.delete_records_before(3).expect("delete records");
        assert_eq!(log.cache.len_bytes(), 0);
        assert_eq!(assert_reads_match_the_file(&log), 0);
        assert!(log.read(1, 100, i64::MAX).is_err());
        append_payload(&mut log, &[1], 2);
        assert_eq!(assert_reads_match_the_file(&log), 1);
    }

    #[test]
    fn a_disabled_cache_holds_nothing_and_reads_stay_the_same() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut log = open(tmp.path(), config());
        append_payload(&mut log, &[2, 3], 1);
        log.set_read_cache(false);
        assert_eq!(log.cache.len_bytes(), 0);
        append_payload(&mut log, &[1], 2);
        let data = log.read(0, 1 << 20, i64::MAX).expect("read");
        let mut follower = open(&tmp.path().join("follower"), config());
        follower.set_read_cache(false);
        follower
            .append_replicated(data.clone(), 3)
            .expect("replicate");
        assert_eq!(follower.cache.len_bytes(), 0);
        assert_eq!(assert_reads_match_the_file(&log), 0);
        assert_eq!(assert_reads_match_the_file(&follower), 0);
        // Turned back on, it caches from the next append.
        log.set_read_cache(true);
        append_payload(&mut log, &[2], 3);
        assert_eq!(assert_reads_match_the_file(&log), 2);
    }

    #[test]
    fn replicated_appends_are_cached_as_received() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut leader = open(&tmp.path().join("leader"), config());
        append_payload(&mut leader, &[2, 1, 3], 1);
        let data = leader.read(0, 1 << 20, i64::MAX).expect("read");
        let mut follower = open(&tmp.path().join("follower"), config());
        follower
            .append_replicated(data.clone(), 0)
            .expect("replicate");
        assert_eq!(assert_reads_match_the_file(&follower), 6);
        assert_eq!(follower.read(0, 1 << 20, i64::MAX).expect("read"), data);
    }
}
