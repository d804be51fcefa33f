//! One log segment: `<20-digit base offset>.log` holding record batches back to back, plus its
//! `.index` and `.timeindex` (see [`super::index`]).
//!
//! A segment owns the file handle, knows its size, next offset and largest timestamp, and adds
//! index entries as batches arrive (one every `index.interval.bytes`, Kafka's rule). It can
//! re-scan its file ([`Segment::rescan`]): walk the batches from byte 0, check framing, offset
//! order and (when recovering) CRC, cut the file at the first bad batch and rebuild both indexes.
//! That single routine serves crash recovery, a missing or corrupt index, and truncation.
//!
//! All reads are positioned (`pread` through [`FileExt::read_at`]) so `&self` readers never
//! move a shared cursor; appends go through an `O_APPEND` handle.
//!
//! A failed append (a full disk, typically) leaves the segment as it was: the in-memory state
//! only moves once the bytes are written, and the bytes a short write did put in the file are
//! cut off again. If even that cut fails, the segment remembers it and cuts before its next
//! append (refusing the append while it cannot), because an `O_APPEND` write lands at the end
//! of the file and would otherwise follow the torn bytes. Reads never see such bytes: they stop
//! at the in-memory size. [`Segment::mark`] and [`Segment::rollback`] undo a whole append when a
//! later step of it (an fsync, a checkpoint) fails.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::batch::{self, BatchHeader, Compression, BATCH_HEADER_LEN};
use super::index::{OffsetEntry, OffsetIndex, TimeEntry, TimeIndex};
use super::{io_err, LogError};

/// Bytes read per step while walking batch headers from an index entry: one index interval
/// (Kafka's default 4096) plus a header, so small batches need a single `pread`.
const WALK_CHUNK: usize = 4096 + BATCH_HEADER_LEN;

/// File name of the segment log with this base offset, e.g. `00000000000000000000.log`.
pub(crate) fn log_file_name(base_offset: i64) -> String {
    format!("{base_offset:020}.log")
}

fn index_file_name(base_offset: i64) -> String {
    format!("{base_offset:020}.index")
}

fn time_index_file_name(base_offset: i64) -> String {
    format!("{base_offset:020}.timeindex")
}

/// One segment of a partition log.
#[derive(Debug)]
pub(crate) struct Segment {
    /// Offset of the first record the segment may hold; its file name.
    base_offset: i64,
    /// Path of the `.log` file.
    log_path: PathBuf,
    /// The `.log` file, opened for reading and appending.
    file: File,
    /// Valid bytes in the `.log` file.
    size: u64,
    /// Offset the next appended batch receives (`base_offset` when empty).
    next_offset: i64,
    /// Largest batch `maxTimestamp` in the segment, -1 when none.
    max_timestamp: i64,
    /// Wall-clock time (ms) of the first append since the segment was created or opened, the
    /// start of its `segment.ms` countdown.
    rolling_base_ms: Option<i64>,
    /// Bytes appended since the last offset index entry.
    bytes_since_index_entry: u64,
    /// Sparse offset index.
    index: OffsetIndex,
    /// Sparse time index.
    time_index: TimeIndex,
    /// The file holds bytes past `size` (a failed append whose cut failed too); they are cut
    /// before the next append.
    stray_tail: bool,
}

/// The in-memory state of a segment before an append, to undo it ([`Segment::rollback`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegmentMark {
    size: u64,
    next_offset: i64,
    max_timestamp: i64,
    rolling_base_ms: Option<i64>,
    bytes_since_index_entry: u64,
    index_len: usize,
    time_index_len: usize,
}

impl SegmentMark {
    /// The offset the next append was to receive when the mark was taken.
    pub(crate) fn next_offset(&self) -> i64 {
        self.next_offset
    }
}

impl Segment {
    /// Creates a new, empty segment in `dir` (replacing stale files of the same name). When
    /// that fails (a full disk), the files it made are removed again: a stray empty `.log` would
    /// otherwise be taken for the active segment on the next open, behind batches that the
    /// previous segment went on receiving.
    pub(crate) fn create(dir: &Path, base_offset: i64) -> Result<Self, LogError> {
        let log_path = dir.join(log_file_name(base_offset));
        let index_path = dir.join(index_file_name(base_offset));
        let time_path = dir.join(time_index_file_name(base_offset));
        let created = Self::create_files(log_path.clone(), index_path.clone(), time_path.clone());
        if created.is_err() {
            for path in [&log_path, &index_path, &time_path] {
                if let Err(e) = fs::remove_file(path) {
                    if e.kind() != io::ErrorKind::NotFound {
                        tracing::warn!(file = %path.display(), error = %e,
                            "cannot remove a segment file left by a failed roll");
                    }
                }
            }
        }
        let (file, index, time_index) = created?;
        Ok(Segment {
            base_offset,
            log_path,
            file,
            size: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            rolling_base_ms: None,
            bytes_since_index_entry: 0,
            index,
            time_index,
            stray_tail: false,
        })
    }

    fn create_files(
        log_path: PathBuf,
        index_path: PathBuf,
        time_path: PathBuf,
    ) -> Result<(File, OffsetIndex, TimeIndex), LogError> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .truncate(false)
            .open(&log_path)
            .map_err(io_err("cannot create segment file", &log_path))?;
        file.set_len(0)
            .map_err(io_err("cannot truncate segment file", &log_path))?;
        let mut index = OffsetIndex::empty(index_path);
        let mut time_index = TimeIndex::empty(time_path);
        index.replace(Vec::new());
        time_index.replace(Vec::new());
        index.persist(false)?;
        time_index.persist(false)?;
        Ok((file, index, time_index))
    }

    /// Opens an existing segment. With `next_base` (the following segment's base offset) and
    /// `trusted` set, the segment is known flushed and sealed: its indexes are loaded and
    /// checked, and it is only re-scanned if they are missing or inconsistent. Otherwise (the
    /// last segment, or one past the recovery point) it is re-scanned with CRC checks, cutting
    /// any torn or corrupt tail.
    pub(crate) fn open(
        dir: &Path,
        base_offset: i64,
        next_base: Option<i64>,
        trusted: bool,
        index_interval_bytes: u32,
    ) -> Result<Self, LogError> {
        let log_path = dir.join(log_file_name(base_offset));
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&log_path)
            .map_err(io_err("cannot open segment file", &log_path))?;
        let size = file
            .metadata()
            .map_err(io_err("cannot stat segment file", &log_path))?
            .len();
        let index_path = dir.join(index_file_name(base_offset));
        let time_path = dir.join(time_index_file_name(base_offset));
        let mut segment = Segment {
            base_offset,
            log_path,
            file,
            size,
            next_offset: base_offset,
            max_timestamp: -1,
            rolling_base_ms: None,
            bytes_since_index_entry: 0,
            index: OffsetIndex::empty(index_path.clone()),
            time_index: TimeIndex::empty(time_path.clone()),
            stray_tail: false,
        };
        if let (Some(next_base), true) = (next_base, trusted) {
            if let Some((index, time_index)) =
                Self::load_sealed_indexes(index_path, time_path, base_offset, next_base, size)?
            {
                segment.max_timestamp = time_index.last().map_or(-1, |e| e.timestamp);
                segment.next_offset = next_base;
                segment.index = index;
                segment.time_index = time_index;
                return Ok(segment);
            }
            tracing::warn!(
                segment = %segment.log_path.display(),
                "index files missing or inconsistent; rebuilding them from the segment"
            );
        }
        segment.rescan(true, index_interval_bytes)?;
        if let Some(next_base) = next_base {
            // Not the last segment: nothing more will be appended to it. It spans up to the
            // next segment even when its last batches are gone (removed by the log cleaner),
            // so that the closing time index entry marks it sealed on the next open.
            segment.next_offset = segment.next_offset.max(next_base);
            segment.seal(false)?;
        } else {
            segment.persist_indexes(false)?;
        }
        Ok(segment)
    }

    /// Loads the indexes of a sealed segment spanning `[base, next_base)`; `None` if either is
    /// missing or inconsistent. A sealed, non-empty segment's time index ends with an entry for
    /// its last offset (written by [`Segment::seal`]), which also gives its largest timestamp.
    fn load_sealed_indexes(
        index_path: PathBuf,
        time_path: PathBuf,
        base: i64,
        next_base: i64,
        log_size: u64,
    ) -> Result<Option<(OffsetIndex, TimeIndex)>, LogError> {
        let span = u64::try_from(next_base - base).unwrap_or(0);
        let (Some(index), Some(time_index)) =
            (OffsetIndex::load(index_path)?, TimeIndex::load(time_path)?)
        else {
            return Ok(None);
        };
        let sealed = match time_index.last() {
            Some(last) => u64::from(last.relative_offset) + 1 == span,
            None => log_size == 0,
        };
        if sealed && index.is_sane(log_size, span) && time_index.is_sane(span) {
            Ok(Some((index, time_index)))
        } else {
            Ok(None)
        }
    }

    /// Base offset (first offset the segment may hold).
    pub(crate) fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// Offset the next appended batch receives.
    pub(crate) fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// Bytes in the `.log` file.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Largest batch `maxTimestamp` in the segment, -1 when none.
    pub(crate) fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    /// The first batch's `maxTimestamp` (Kafka's `LogSegment.getFirstBatchTimestamp`, which
    /// `max.compaction.lag.ms` counts from), -1 when the segment is empty or the batch carries
    /// none. One positioned read of a header: cheap enough to ask each time.
    pub(crate) fn first_batch_timestamp(&self) -> i64 {
        if self.size < BATCH_HEADER_LEN as u64 {
            return -1;
        }
        let mut header = [0u8; BATCH_HEADER_LEN];
        match self.file.read_exact_at(&mut header, 0) {
            Ok(()) => BatchHeader::parse(&header).map_or(-1, |h| h.max_timestamp),
            Err(e) => {
                tracing::warn!(segment = %self.log_path.display(), error = %e,
                    "cannot read the first batch header");
                -1
            }
        }
    }

    /// Path of the `.log` file.
    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Start of the `segment.ms` countdown, if anything was appended since open.
    pub(crate) fn rolling_base_ms(&self) -> Option<i64> {
        self.rolling_base_ms
    }

    /// The timestamp retention compares against: the largest record timestamp, or the file's
    /// modification time when batches carry none (Kafka's fallback).
    pub(crate) fn retention_timestamp(&self) -> i64 {
        if self.max_timestamp >= 0 {
            return self.max_timestamp;
        }
        self.file
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }

    /// Records a batch at `position` in the in-memory state and indexes (Kafka's rule: an index
    /// entry when more than `interval` bytes were appended since the last one).
    fn account_batch(&mut self, header: &BatchHeader, position: u64, interval: u32) {
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
        }
        let relative = (header.last_offset() - self.base_offset) as u32;
        if self.bytes_since_index_entry > u64::from(interval) {
            self.index.push(OffsetEntry {
                relative_offset: relative,
                position: position as u32,
            });
            if self
                .time_index
                .last()
                .is_none_or(|e| self.max_timestamp > e.timestamp)
            {
                self.time_index.push(TimeEntry {
                    timestamp: self.max_timestamp,
                    relative_offset: relative,
                });
            }
            self.bytes_since_index_entry = 0;
        }
        self.bytes_since_index_entry += header.len_total() as u64;
        self.next_offset = header.next_offset();
    }

    /// Appends already-offset-assigned batches (`headers` describe `data` in order). On failure
    /// nothing changes: the state stays as it was and what a short write put in the file is cut
    /// off (see the module docs).
    pub(crate) fn append(
        &mut self,
        data: &[u8],
        headers: &[BatchHeader],
        now_ms: i64,
        interval: u32,
    ) -> Result<(), LogError> {
        if self.stray_tail {
            self.file.set_len(self.size).map_err(io_err(
                "cannot cut a failed append off segment file",
                &self.log_path,
            ))?;
            self.stray_tail = false;
        }
        if let Err(e) = (&self.file).write_all(data) {
            self.cut_to_size();
            return Err(io_err("cannot append to segment file", &self.log_path)(e));
        }
        let mut position = self.size;
        for header in headers {
            self.account_batch(header, position, interval);
            position += header.len_total() as u64;
        }
        self.size = position;
        self.rolling_base_ms.get_or_insert(now_ms);
        Ok(())
    }

    /// Cuts the file back to `size` after a failed write; when that fails too, the cut is left
    /// to the next append.
    fn cut_to_size(&mut self) {
        match self.file.set_len(self.size) {
            Ok(()) => self.stray_tail = false,
            Err(e) => {
                tracing::warn!(file = %self.log_path.display(), size = self.size, error = %e,
                    "cannot cut a failed append off the segment; retrying before the next append");
                self.stray_tail = true;
            }
        }
    }

    /// The state to return to if the append about to be made has to be undone.
    pub(crate) fn mark(&self) -> SegmentMark {
        SegmentMark {
            size: self.size,
            next_offset: self.next_offset,
            max_timestamp: self.max_timestamp,
            rolling_base_ms: self.rolling_base_ms,
            bytes_since_index_entry: self.bytes_since_index_entry,
            index_len: self.index.len(),
            time_index_len: self.time_index.len(),
        }
    }

    /// Undoes the appends made since `mark` (taken on this segment): the file is cut back to
    /// the marked size and the in-memory state and index entries are restored. Index entries
    /// already written are rewritten at the next persist.
    pub(crate) fn rollback(&mut self, mark: SegmentMark) {
        self.size = mark.size;
        self.next_offset = mark.next_offset;
        self.max_timestamp = mark.max_timestamp;
        self.rolling_base_ms = mark.rolling_base_ms;
        self.bytes_since_index_entry = mark.bytes_since_index_entry;
        self.index.truncate(mark.index_len);
        self.time_index.truncate(mark.time_index_len);
        self.cut_to_size();
    }

    /// Walks the file from byte 0, rebuilding size, next offset, largest timestamp and both
    /// indexes. Stops at the first batch that is torn, badly framed, out of offset order or
    /// (with `verify_crc`) fails its CRC, truncates the file there and warns. Returns the number
    /// of bytes cut.
    pub(crate) fn rescan(&mut self, verify_crc: bool, interval: u32) -> Result<u64, LogError> {
        let file_len = self
            .file
            .metadata()
            .map_err(io_err("cannot stat segment file", &self.log_path))?
            .len();
        self.size = 0;
        self.next_offset = self.base_offset;
        self.max_timestamp = -1;
        self.bytes_since_index_entry = 0;
        self.rolling_base_ms = None;
        self.index.replace(Vec::new());
        self.time_index.replace(Vec::new());

        let mut position = 0u64;
        let mut header_buf = [0u8; BATCH_HEADER_LEN];
        let mut batch_buf = Vec::new();
        let mut problem: Option<String> = None;
        while position < file_len {
            let remaining = file_len - position;
            if remaining < BATCH_HEADER_LEN as u64 {
                problem = Some(format!("torn batch header ({remaining} bytes)"));
                break;
            }
            self.file
                .read_exact_at(&mut header_buf, position)
                .map_err(io_err("cannot read segment file", &self.log_path))?;
            let header = match BatchHeader::parse(&header_buf) {
                Ok(h) => h,
                Err(e) => {
                    problem = Some(e.to_string());
                    break;
                }
            };
            let len = header.len_total() as u64;
            if len > remaining {
                problem = Some(format!(
                    "torn batch at offset {}: {len} bytes declared, {remaining} present",
                    header.base_offset
                ));
                break;
            }
            if header.base_offset < self.next_offset
                || header.last_offset_delta < 0
                || header.last_offset() - self.base_offset > i64::from(u32::MAX)
                || position + len > u64::from(u32::MAX)
            {
                problem = Some(format!(
                    "batch offsets {}..={} out of order after offset {}",
                    header.base_offset,
                    header.last_offset(),
                    self.next_offset - 1
                ));
                break;
            }
            if verify_crc {
                batch_buf.resize(len as usize, 0);
                self.file
                    .read_exact_at(&mut batch_buf, position)
                    .map_err(io_err("cannot read segment file", &self.log_path))?;
                if let Err(e) = batch::verify_crc(&batch_buf, &header, position as usize) {
                    problem = Some(e.to_string());
                    break;
                }
            }
            self.account_batch(&header, position, interval);
            position += len;
        }
        self.size = position;
        let cut = file_len - position;
        if cut > 0 {
            tracing::warn!(
                file = %self.log_path.display(),
                position,
                next_offset = self.next_offset,
                bytes_cut = cut,
                reason = problem.as_deref().unwrap_or("unknown"),
                "truncating invalid tail of log segment"
            );
            self.file
                .set_len(position)
                .map_err(io_err("cannot truncate segment file", &self.log_path))?;
        }
        Ok(cut)
    }

    /// Writes pending index entries; with `sync`, fsyncs the log and both index files.
    pub(crate) fn persist_indexes(&mut self, sync: bool) -> Result<(), LogError> {
        self.index.persist(sync)?;
        self.time_index.persist(sync)
    }

    /// fsyncs the log file and both indexes.
    pub(crate) fn flush(&mut self) -> Result<(), LogError> {
        self.file
            .sync_data()
            .map_err(io_err("cannot fsync segment file", &self.log_path))?;
        self.persist_indexes(true)
    }

    /// Marks the segment as no longer active: adds the closing time index entry (largest
    /// timestamp at the last offset, which is how a sealed segment is recognised on open) and
    /// writes the indexes, fsyncing everything when `sync`.
    pub(crate) fn seal(&mut self, sync: bool) -> Result<(), LogError> {
        if self.next_offset > self.base_offset {
            let last = (self.next_offset - 1 - self.base_offset) as u32;
            if self
                .time_index
                .last()
                .is_none_or(|e| e.relative_offset < last)
            {
                self.time_index.push(TimeEntry {
                    timestamp: self.max_timestamp,
                    relative_offset: last,
                });
            }
        }
        if sync {
            self.flush()
        } else {
            self.persist_indexes(false)
        }
    }

    /// Finds the batch containing `target` (the first batch whose last offset is `>= target`):
    /// index lookup, then a walk over batch headers from the indexed position, reading the file
    /// in small chunks so that several headers come from one `pread`. `None` when every batch
    /// ends before `target`.
    pub(crate) fn find_batch(&self, target: i64) -> Result<Option<(u64, BatchHeader)>, LogError> {
        let relative = u32::try_from((target - self.base_offset).max(0)).unwrap_or(u32::MAX);
        let mut position = self
            .index
            .lookup(relative)
            .map_or(0, |e| u64::from(e.position));
        let mut chunk = [0u8; WALK_CHUNK];
        let mut chunk_start = 0u64;
        let mut chunk_len = 0usize;
        while position < self.size {
            let header_end = position + BATCH_HEADER_LEN as u64;
            if position < chunk_start || header_end > chunk_start + chunk_len as u64 {
                let len = (self.size - position).min(WALK_CHUNK as u64) as usize;
                if len < BATCH_HEADER_LEN {
                    return Err(
                        self.corrupt(position, "batch header runs past the end of the segment")
                    );
                }
                self.file
                    .read_exact_at(&mut chunk[..len], position)
                    .map_err(io_err("cannot read segment file", &self.log_path))?;
                chunk_start = position;
                chunk_len = len;
            }
            let at = (position - chunk_start) as usize;
            let header = BatchHeader::parse(&chunk[at..at + BATCH_HEADER_LEN])
                .map_err(|e| self.corrupt(position, e.to_string()))?;
            if position + header.len_total() as u64 > self.size {
                return Err(self.corrupt(position, "batch runs past the end of the segment"));
            }
            if header.last_offset() >= target {
                return Ok(Some((position, header)));
            }
            position += header.len_total() as u64;
        }
        Ok(None)
    }

    /// Reads and parses the batch header at `position` of a stored (hence valid) file.
    pub(crate) fn read_header(
        &self,
        position: u64,
        buf: &mut [u8; BATCH_HEADER_LEN],
    ) -> Result<BatchHeader, LogError> {
        if self.size.saturating_sub(position) < BATCH_HEADER_LEN as u64 {
            return Err(self.corrupt(position, "batch header runs past the end of the segment"));
        }
        self.file
            .read_exact_at(buf, position)
            .map_err(io_err("cannot read segment file", &self.log_path))?;
        let header = BatchHeader::parse(buf).map_err(|e| self.corrupt(position, e.to_string()))?;
        if position + header.len_total() as u64 > self.size {
            return Err(self.corrupt(position, "batch runs past the end of the segment"));
        }
        Ok(header)
    }

    /// Reads `len` bytes at `position`.
    pub(crate) fn read_bytes(&self, position: u64, len: usize) -> Result<Vec<u8>, LogError> {
        let mut buf = vec![0u8; len];
        self.file
            .read_exact_at(&mut buf, position)
            .map_err(io_err("cannot read segment file", &self.log_path))?;
        Ok(buf)
    }

    fn corrupt(&self, position: u64, reason: impl Into<String>) -> LogError {
        LogError::Corrupt {
            path: self.log_path.clone(),
            position,
            reason: reason.into(),
        }
    }

    /// Removes every batch containing an offset `>= offset` (a batch straddling `offset` goes
    /// entirely, as in Kafka), then rebuilds the indexes.
    pub(crate) fn truncate_to(&mut self, offset: i64, interval: u32) -> Result<(), LogError> {
        let Some((position, _)) = self.find_batch(offset)? else {
            return Ok(());
        };
        self.file
            .set_len(position)
            .map_err(io_err("cannot truncate segment file", &self.log_path))?;
        self.stray_tail = false;
        self.rescan(false, interval)?;
        self.persist_indexes(false)
    }

    /// The earliest record at or after `log_start` with a timestamp `>= timestamp`, as
    /// `(offset, timestamp)`. Uncompressed `CreateTime` batches are decoded to find the exact
    /// record; for compressed or `LogAppendTime` batches the answer is the batch's first offset
    /// (not before `log_start`) with its `maxTimestamp`.
    pub(crate) fn offset_for_timestamp(
        &self,
        timestamp: i64,
        log_start: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        if self.size == 0 || self.max_timestamp < timestamp {
            return Ok(None);
        }
        let start = self
            .time_index
            .last_before(timestamp)
            .map_or(self.base_offset, |e| {
                self.base_offset + i64::from(e.relative_offset) + 1
            })
            .max(log_start);
        let Some((mut position, _)) = self.find_batch(start)? else {
            return Ok(None);
        };
        let mut header_buf = [0u8; BATCH_HEADER_LEN];
        while position < self.size {
            let header = self.read_header(position, &mut header_buf)?;
            if header.last_offset() >= log_start && header.max_timestamp >= timestamp {
                let exact =
                    header.compression() == Some(Compression::None) && !header.is_log_append_time();
                if !exact {
                    return Ok(Some((
                        header.base_offset.max(log_start),
                        header.max_timestamp,
                    )));
                }
                let bytes = self.read_bytes(position, header.len_total())?;
                let records = batch::decode_records(&bytes)
                    .map_err(|e| self.corrupt(position, e.to_string()))?;
                for record in records {
                    let offset = header.base_offset + i64::from(record.offset_delta);
                    let ts = header.base_timestamp + record.timestamp_delta;
                    if offset >= log_start && ts >= timestamp {
                        return Ok(Some((offset, ts)));
                    }
                }
            }
            position += header.len_total() as u64;
        }
        Ok(None)
    }

    /// Closes and deletes the segment's files.
    pub(crate) fn delete(self) -> Result<(), LogError> {
        let Segment {
            log_path,
            file,
            index,
            time_index,
            ..
        } = self;
        drop(file);
        for path in [log_path.as_path(), index.path(), time_index.path()] {
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("cannot delete segment file", path)(e)),
            }
        }
        Ok(())
    }
}
