//! The log cleaner: compaction of a partition log whose topic has `cleanup.policy=compact`
//! (alone or with `delete`), so that the log keeps the newest record of each key and its size
//! is bounded by the live state, not by the history of updates.
//!
//! Kafka's design, in kbroker's terms:
//! - **What is cleanable.** Only sealed segments: the active one never is, nor anything at or
//!   past the first uncleanable offset (the active segment's base, the last stable offset,
//!   the high watermark, or a segment whose newest record is younger than
//!   `min.compaction.lag.ms`). The *clean* section ends at the cleaner checkpoint
//!   (`cleaner-offset.checkpoint` in the partition directory: everything below it has been
//!   cleaned); the *dirty* section runs from there to the first uncleanable offset. A log is
//!   cleaned when dirty bytes / cleanable bytes >= `min.cleanable.dirty.ratio`, or when the
//!   earliest first-batch timestamp of its dirty segments is older than
//!   `max.compaction.lag.ms` (Kafka's `maxCompactionDelay`; the active segment of a compacted
//!   log rolls after that long too, so its records do not wait past the bound).
//! - **Pass 1** reads the cleanable segments from the log start and builds a map key → offset
//!   of the newest record, from the dirty section only. Transactional records enter the map
//!   when their transaction's COMMIT marker is seen; aborted ones never do; those whose marker
//!   lies past the cleanable range are left alone (kept whole, not in the map).
//! - **Pass 2** rewrites the cleanable segments in groups (consecutive segments whose sizes
//!   add up to at most `segment.bytes`), one new segment per group, based at the group's
//!   first base offset. A record stays when its key's newest offset is its own or the key is
//!   not in the map (newer data of the key is not cleanable yet); records without a key go (a
//!   compacted topic refuses them at produce time; Kafka's cleaner drops them too). Aborted
//!   transactional batches go. A compressed batch is decompressed, filtered the same way and
//!   its survivors compressed again with its own codec (see [`super::codec`]), as Kafka's
//!   `MemoryRecords.filterTo` does; one that cannot be decompressed is kept whole (with a
//!   warning) rather than stopping the cleaning for good. A batch that loses some records is
//!   re-framed with the same base offset, `lastOffsetDelta`, producer id, epoch and base
//!   sequence (length, count, CRC and the compressed payload change), so survivors keep their
//!   offsets and timestamps; one that loses all is dropped, except the last batch of each
//!   producer, kept empty (and uncompressed) so that the producer's sequence state survives a
//!   restart (Kafka's `BatchRetention.RETAIN_EMPTY`).
//! - **Delete horizon** (KIP-534). Tombstones (null values) and transaction markers whose
//!   transaction has no data left are kept for `delete.retention.ms` after the cleaning that
//!   first keeps them: that cleaning sets the batch's delete-horizon flag (attribute bit 6)
//!   and stores now + `delete.retention.ms` in its `baseTimestamp` (each record's
//!   `timestampDelta` is shifted to match, so record timestamps stay). The clock lives in the
//!   log, so a restart does not reset it. A later cleaning at or past the horizon drops the
//!   tombstones and such markers (a producer's last batch stays).
//! - **Crash safety.** A group is written to `<base>.log.cleaned` and fsynced, without the
//!   partition lock; then, under the lock, the segments are checked to be the ones cleaned
//!   (retention or truncation may have changed them; then the result is dropped), the file is
//!   renamed `<base>.log.<next base>.swap` (the commit point: the name says which segments it
//!   replaces), the old segments are deleted and the swap file is renamed `<base>.log`.
//!   [`super::PartitionLog::open`] deletes a leftover `.cleaned` file and completes a leftover
//!   `.swap`, so a kill at any point loses nothing and never shows a half-written segment.
//!
//! Reads are unaffected by gaps: a fetch at an offset that was removed returns the next
//! surviving batch ([`super::segment::Segment::find_batch`] looks for the first batch ending at
//! or after the offset).
//!
//! The key map holds whole keys (no hash collisions to fear) and is bounded by a key count
//! rather than Kafka's `log.cleaner.dedupe.buffer.size`: pass 1 stops at the end of the segment
//! where the map is full, and only that much of the dirty section is cleaned this time. The
//! checkpoint is one file per partition, not per log dir.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::batch::{self, BatchHeader, Compression, RecordSpan, BATCH_HEADER_LEN};
use super::codec;
use super::partition_log::{read_checkpoint, write_checkpoint};
use super::{io_err, CompactionConfig, LogError};

/// Most distinct keys pass 1 collects before it stops at the end of a segment (Kafka bounds its
/// map by `log.cleaner.dedupe.buffer.size`); the rest of the dirty section waits for the next
/// cleaning. Tens of bytes per key plus the key itself: a few hundred MB at most.
const MAX_MAP_KEYS: usize = 2_000_000;

/// The cleaner checkpoint file in a partition directory.
pub(super) const CLEANER_CHECKPOINT: &str = "cleaner-offset.checkpoint";

/// A callback run after each `.cleaned` file is written and before it is swapped in (tests
/// use it to kill the broker at that point).
pub type CleanerHook<'a> = &'a dyn Fn(&Path);

/// What one cleaning did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanStats {
    /// Bytes of segments read (pass 1 and pass 2).
    pub bytes_read: u64,
    /// Bytes of the cleaned segments before cleaning.
    pub bytes_before: u64,
    /// Bytes of the cleaned segments after cleaning.
    pub bytes_after: u64,
    /// Records removed.
    pub records_removed: u64,
    /// Segment groups swapped in.
    pub groups: usize,
    /// Offset below which the log is now clean (the new cleaner checkpoint).
    pub clean_to: i64,
}

/// A sealed segment as the cleaner sees it: immutable, so it can be read without the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SealedSegment {
    /// Base offset.
    pub(super) base: i64,
    /// Base offset of the segment after it.
    pub(super) next_base: i64,
    /// Bytes in the `.log` file.
    pub(super) size: u64,
    /// Largest record timestamp, -1 when none.
    pub(super) max_timestamp: i64,
    /// The first batch's largest timestamp, -1 when none: Kafka's measure of when the
    /// segment's records began, which `max.compaction.lag.ms` counts from.
    pub(super) first_batch_timestamp: i64,
    /// The `.log` file.
    pub(super) path: PathBuf,
}

/// One group of segments rewritten into a `.cleaned` file, waiting to be swapped in.
#[derive(Debug)]
pub struct CleanedGroup {
    /// The segments it replaces, as they were read.
    pub(super) originals: Vec<SealedSegment>,
    /// The `<base>.log.cleaned` file.
    pub(super) path: PathBuf,
    /// Bytes written.
    pub(super) size: u64,
}

/// A cleaning decided on by [`super::PartitionLog::plan_clean`]; run it with
/// [`Cleaning::run`], outside the partition lock.
#[derive(Debug)]
pub struct Cleaning {
    dir: PathBuf,
    config: CompactionConfig,
    segment_bytes: u64,
    /// Cleanable segments from the log start to the first uncleanable offset.
    segments: Vec<SealedSegment>,
    /// Start of the dirty section (the old checkpoint).
    dirty_from: i64,
    now_ms: i64,
    /// Pass 1 stops after the segment where the key map reaches this many keys.
    max_keys: usize,
}

/// Decides whether the log needs cleaning; see the module docs. `segments` are the sealed
/// segments from the log start; `uncleanable` the first offset that must not be cleaned.
pub(super) fn plan(
    dir: &Path,
    config: &CompactionConfig,
    segment_bytes: u64,
    segments: Vec<SealedSegment>,
    uncleanable: i64,
    now_ms: i64,
) -> Option<Cleaning> {
    let lag_limit = now_ms.saturating_sub(config.min_compaction_lag_ms);
    let segments: Vec<SealedSegment> = segments
        .into_iter()
        .take_while(|s| s.next_base <= uncleanable && s.max_timestamp <= lag_limit)
        .collect();
    let first = segments.first()?.base;
    let end = segments.last()?.next_base;
    let checkpoint = read_checkpoint(&dir.join(CLEANER_CHECKPOINT)).unwrap_or(first);
    // A checkpoint past the cleanable range (the log was truncated) starts over.
    let dirty_from = if checkpoint > end {
        first
    } else {
        checkpoint.max(first)
    };
    if dirty_from >= end {
        return None;
    }
    let dirty: u64 = segments
        .iter()
        .filter(|s| s.next_base > dirty_from)
        .map(|s| s.size)
        .sum();
    let total: u64 = segments.iter().map(|s| s.size).sum();
    let ratio = if total == 0 {
        0.0
    } else {
        dirty as f64 / total as f64
    };
    // Kafka's LogCleanerManager.maxCompactionDelay: the earliest first-batch timestamp of the
    // dirty segments, not their newest record nor the file's age.
    let overdue = segments
        .iter()
        .filter(|s| s.next_base > dirty_from && s.first_batch_timestamp >= 0)
        .map(|s| s.first_batch_timestamp)
        .min()
        .is_some_and(|earliest| now_ms.saturating_sub(earliest) > config.max_compaction_lag_ms);
    if dirty == 0 || (ratio < config.min_cleanable_dirty_ratio && !overdue) {
        return None;
    }
    Some(Cleaning {
        dir: dir.to_path_buf(),
        config: config.clone(),
        segment_bytes,
        segments,
        dirty_from,
        now_ms,
        max_keys: MAX_MAP_KEYS,
    })
}

/// What pass 1 learnt.
#[derive(Default)]
struct OffsetMap {
    /// Key → offset of its newest record in the dirty section.
    latest: HashMap<Vec<u8>, i64>,
    /// Base offsets of aborted transactional batches.
    aborted: HashSet<i64>,
    /// Base offsets of transactional batches whose marker is past the cleanable range.
    unresolved: HashSet<i64>,
    /// Base offset of the last batch of each producer id.
    last_of_producer: HashMap<i64, i64>,
}

impl Cleaning {
    /// Runs both passes: each group is written to a `.cleaned` file, `hook` is called with
    /// its path, then `install` swaps it in under the partition lock (returning `false` when
    /// the log changed meanwhile, which ends the cleaning without harm). Finally the cleaner
    /// checkpoint moves to the end of what was cleaned.
    pub fn run(
        mut self,
        hook: CleanerHook<'_>,
        install: &mut dyn FnMut(CleanedGroup) -> Result<bool, LogError>,
    ) -> Result<CleanStats, LogError> {
        let mut stats = CleanStats::default();
        let (map, mapped) = self.build_map(&mut stats)?;
        // Only what the map covers is cleaned this time.
        self.segments.truncate(mapped);
        let mut producers = TxnTracker::default();
        let mut start = 0;
        while start < self.segments.len() {
            let end = self.group_end(start);
            let path = self
                .dir
                .join(format!("{:020}.log.cleaned", self.segments[start].base));
            let written = self.write_group(
                &self.segments[start..end],
                &path,
                &map,
                &mut producers,
                &mut stats,
            );
            let group = match written {
                Ok(group) => group,
                Err(e) => {
                    // A segment deleted by retention meanwhile, a full disk: leave no file.
                    let _ = fs::remove_file(&path);
                    return Err(e);
                }
            };
            hook(&group.path);
            stats.bytes_before += group.originals.iter().map(|s| s.size).sum::<u64>();
            stats.bytes_after += group.size;
            if !install(group)? {
                tracing::info!(dir = %self.dir.display(), "log changed during cleaning; stopping");
                return Ok(stats);
            }
            stats.groups += 1;
            start = end;
        }
        let clean_to = self
            .segments
            .last()
            .map_or(self.dirty_from, |s| s.next_base);
        write_checkpoint(&self.dir.join(CLEANER_CHECKPOINT), clean_to)?;
        stats.clean_to = clean_to;
        Ok(stats)
    }

    /// End (exclusive index) of the group starting at `start`: consecutive segments whose
    /// sizes add up to at most `segment.bytes` and whose offsets fit a 32-bit index.
    fn group_end(&self, start: usize) -> usize {
        let base = self.segments[start].base;
        let mut size = self.segments[start].size;
        let mut end = start + 1;
        while let Some(next) = self.segments.get(end) {
            if size + next.size > self.segment_bytes || next.next_base - base > i64::from(u32::MAX)
            {
                break;
            }
            size += next.size;
            end += 1;
        }
        end
    }

    /// Pass 1; see the module docs. Returns the map and how many segments it covers (all,
    /// unless the map reached `max_keys`).
    fn build_map(&self, stats: &mut CleanStats) -> Result<(OffsetMap, usize), LogError> {
        let mut map = OffsetMap::default();
        let mut open: HashMap<i64, OpenTxn> = HashMap::new();
        let mut mapped = 0;
        for segment in &self.segments {
            if map.latest.len() >= self.max_keys {
                break;
            }
            mapped += 1;
            stats.bytes_read += segment.size;
            let dirty = segment.next_base > self.dirty_from;
            for item in SegmentBatches::open(segment)? {
                let (header, bytes) = item?;
                if header.producer_id >= 0 {
                    map.last_of_producer
                        .insert(header.producer_id, header.base_offset);
                }
                if header.is_control() {
                    let Some((keys, bases)) = open.remove(&header.producer_id) else {
                        continue;
                    };
                    if marker_is_commit(&bytes) {
                        for (key, offset) in keys {
                            map.latest.insert(key, offset);
                        }
                    } else {
                        map.aborted.extend(bases);
                    }
                    continue;
                }
                let txn = header.is_transactional() && header.producer_id >= 0;
                let wanted = dirty && header.base_offset >= self.dirty_from;
                let mut keys = Vec::new();
                if wanted {
                    if let Some(records) = open_records(&header, &bytes, segment)? {
                        for span in &records.spans {
                            if let Some(key) = &span.key {
                                let offset = header.base_offset + i64::from(span.offset_delta);
                                keys.push((records.data[key.clone()].to_vec(), offset));
                            }
                        }
                    }
                }
                if txn {
                    let entry = open.entry(header.producer_id).or_default();
                    entry.0.extend(keys);
                    entry.1.push(header.base_offset);
                } else {
                    for (key, offset) in keys {
                        map.latest.insert(key, offset);
                    }
                }
            }
        }
        for (_, (_, bases)) in open {
            map.unresolved.extend(bases);
        }
        Ok((map, mapped))
    }

    /// Pass 2 for one group; see the module docs.
    fn write_group(
        &self,
        group: &[SealedSegment],
        path: &Path,
        map: &OffsetMap,
        txns: &mut TxnTracker,
        stats: &mut CleanStats,
    ) -> Result<CleanedGroup, LogError> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(io_err("cannot create cleaned segment", path))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let mut size = 0u64;
        for segment in group {
            stats.bytes_read += segment.size;
            for item in SegmentBatches::open(segment)? {
                let (header, bytes) = item?;
                let kept = self.clean_batch(&header, &bytes, map, txns, segment, stats)?;
                if let Some(kept) = kept {
                    out.write_all(&kept)
                        .map_err(io_err("cannot write cleaned segment", path))?;
                    size += kept.len() as u64;
                }
            }
        }
        let file = out
            .into_inner()
            .map_err(|e| io_err("cannot write cleaned segment", path)(e.into_error()))?;
        file.sync_all()
            .map_err(io_err("cannot fsync cleaned segment", path))?;
        Ok(CleanedGroup {
            originals: group.to_vec(),
            path: path.to_path_buf(),
            size,
        })
    }

    /// What of one batch goes into the cleaned segment: the same bytes, a re-framed batch
    /// (fewer records, re-compressed with the batch's codec, or with its delete horizon set),
    /// or nothing.
    fn clean_batch(
        &self,
        header: &BatchHeader,
        bytes: &[u8],
        map: &OffsetMap,
        txns: &mut TxnTracker,
        segment: &SealedSegment,
        stats: &mut CleanStats,
    ) -> Result<Option<Vec<u8>>, LogError> {
        let pid = header.producer_id;
        let txn = header.is_transactional() && pid >= 0;
        let last_of_producer =
            pid >= 0 && map.last_of_producer.get(&pid) == Some(&header.base_offset);
        let horizon_passed = header
            .delete_horizon_ms()
            .is_some_and(|horizon| horizon <= self.now_ms);
        if header.is_control() {
            if txns.data_left.remove(&pid).unwrap_or(false) {
                return Ok(Some(bytes.to_vec()));
            }
            // Nothing of the marker's transaction is left: the marker goes once its delete
            // horizon has passed (except as its producer's last batch), and gets one if it
            // has none yet.
            if horizon_passed && !last_of_producer {
                stats.records_removed += u64::try_from(header.records_count).unwrap_or(0);
                return Ok(None);
            }
            if header.delete_horizon_ms().is_some() {
                return Ok(Some(bytes.to_vec()));
            }
            let Some(records) = open_records(header, bytes, segment)? else {
                return Ok(Some(bytes.to_vec()));
            };
            let all: Vec<&RecordSpan> = records.spans.iter().collect();
            return Ok(Some(self.rewrite(header, bytes, &records, &all, true)));
        }
        let whole = map.unresolved.contains(&header.base_offset);
        let records = if whole {
            None
        } else {
            open_records(header, bytes, segment)?
        };
        let Some(records) = records else {
            if txn {
                txns.data_left.insert(pid, true);
            }
            return Ok(Some(bytes.to_vec()));
        };
        let aborted = txn && map.aborted.contains(&header.base_offset);
        let kept: Vec<&RecordSpan> = records
            .spans
            .iter()
            .filter(|span| {
                if aborted {
                    return false;
                }
                let Some(key) = &span.key else { return false };
                let offset = header.base_offset + i64::from(span.offset_delta);
                let newest = map
                    .latest
                    .get(&records.data[key.clone()])
                    .is_none_or(|&o| offset >= o);
                newest && !(span.null_value && horizon_passed)
            })
            .collect();
        stats.records_removed += (records.spans.len() - kept.len()) as u64;
        if txn && !kept.is_empty() {
            txns.data_left.insert(pid, true);
        }
        // KIP-534: a batch keeping tombstones gets its delete horizon on its first cleaning.
        let set_horizon =
            header.delete_horizon_ms().is_none() && kept.iter().any(|span| span.null_value);
        if kept.len() == records.spans.len() && !set_horizon {
            Ok(Some(bytes.to_vec()))
        } else if kept.is_empty() && !last_of_producer {
            Ok(None)
        } else {
            Ok(Some(self.rewrite(
                header,
                bytes,
                &records,
                &kept,
                set_horizon,
            )))
        }
    }

    /// The records `kept` of a batch, framed as a batch with its header (same offsets,
    /// producer and sequence) and compressed with its codec; with `set_horizon`, its delete
    /// horizon is set to `delete.retention.ms` from now. No records give an empty,
    /// uncompressed batch. Should the codec fail to compress (it does not on data it just
    /// decompressed), the batch is kept whole.
    fn rewrite(
        &self,
        header: &BatchHeader,
        bytes: &[u8],
        records: &BatchRecords<'_>,
        kept: &[&RecordSpan],
        set_horizon: bool,
    ) -> Vec<u8> {
        let horizon =
            set_horizon.then(|| self.now_ms.saturating_add(self.config.delete_retention_ms));
        let shift = horizon.map_or(0, |h| h.saturating_sub(header.base_timestamp));
        let plain = batch::kept_records(&records.data, kept, shift);
        let codec = match header.compression() {
            Some(codec) if !kept.is_empty() => codec,
            _ => Compression::None,
        };
        let payload = match codec {
            Compression::None => plain,
            codec => match codec::compress(codec, &plain) {
                Ok(payload) => payload,
                Err(e) => {
                    tracing::warn!(base_offset = header.base_offset, error = %e,
                        "cannot re-compress a cleaned batch; keeping it whole");
                    return bytes.to_vec();
                }
            },
        };
        let count = i32::try_from(kept.len()).unwrap_or(i32::MAX);
        batch::reframed_batch(bytes, &payload, count, codec, horizon)
    }
}

/// The records of a data or control batch as the cleaner reads them: the records section
/// (decompressed when the batch is compressed) and where each record lies in it.
struct BatchRecords<'b> {
    /// The records section, uncompressed.
    data: Cow<'b, [u8]>,
    /// Each record's place in `data`, in order.
    spans: Vec<RecordSpan>,
}

/// Opens the records of a batch. An uncompressed batch that does not parse is an error (the
/// segment is corrupt). A compressed one that cannot be decompressed or parsed (an unknown
/// codec, damaged data, more than the decompression limit) gives `None` and a warning: it is
/// kept whole and its keys do not enter the map, as before the cleaner opened compressed
/// batches, so that one bad batch does not stop a partition from ever being cleaned.
fn open_records<'b>(
    header: &BatchHeader,
    bytes: &'b [u8],
    segment: &SealedSegment,
) -> Result<Option<BatchRecords<'b>>, LogError> {
    let section = &bytes[BATCH_HEADER_LEN..header.len_total()];
    let base = header.base_offset;
    let opened = match header.compression() {
        Some(Compression::None) => {
            let spans = batch::record_spans_in(section, base).map_err(|e| corrupt(segment, &e))?;
            return Ok(Some(BatchRecords {
                data: Cow::Borrowed(section),
                spans,
            }));
        }
        Some(codec) => codec::decompress(codec, section)
            .map_err(|e| e.to_string())
            .and_then(|data| {
                let spans = batch::record_spans_in(&data, base).map_err(|e| e.to_string())?;
                Ok(BatchRecords {
                    data: Cow::Owned(data),
                    spans,
                })
            }),
        None => Err(format!(
            "unknown compression codec in attributes {:#x}",
            header.attributes
        )),
    };
    match opened {
        Ok(records) => Ok(Some(records)),
        Err(reason) => {
            tracing::warn!(segment = %segment.path.display(), base_offset = base, %reason,
                "cannot open a compressed batch for cleaning; keeping it whole");
            Ok(None)
        }
    }
}

/// A producer's transaction seen by pass 1 before its marker: its keys with their offsets and
/// the base offsets of its batches.
type OpenTxn = (Vec<(Vec<u8>, i64)>, Vec<i64>);

/// Pass 2's view of transactions: whether data of a producer's current transaction was kept.
#[derive(Default)]
struct TxnTracker {
    data_left: HashMap<i64, bool>,
}

/// Whether a control batch holds a COMMIT marker (key `version:i16, type:i16`, type 1).
fn marker_is_commit(bytes: &[u8]) -> bool {
    batch::record_spans(bytes)
        .ok()
        .and_then(|(records, spans)| {
            let key = spans.first()?.key.clone()?;
            let kind = records.get(key)?.get(2..4)?;
            Some(i16::from_be_bytes([kind[0], kind[1]]) == 1)
        })
        .unwrap_or(false)
}

fn corrupt(segment: &SealedSegment, e: &batch::BatchError) -> LogError {
    LogError::Corrupt {
        path: segment.path.clone(),
        position: 0,
        reason: e.to_string(),
    }
}

/// Reads the batches of a sealed segment in order, through a 1 MiB buffer, up to its size.
struct SegmentBatches<'a> {
    segment: &'a SealedSegment,
    reader: BufReader<File>,
    position: u64,
}

impl<'a> SegmentBatches<'a> {
    fn open(segment: &'a SealedSegment) -> Result<Self, LogError> {
        let file = File::open(&segment.path)
            .map_err(io_err("cannot open segment for cleaning", &segment.path))?;
        Ok(SegmentBatches {
            segment,
            reader: BufReader::with_capacity(1 << 20, file),
            position: 0,
        })
    }
}

impl Iterator for SegmentBatches<'_> {
    type Item = Result<(BatchHeader, Vec<u8>), LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.position >= self.segment.size {
            return None;
        }
        let path = &self.segment.path;
        let mut buf = vec![0u8; BATCH_HEADER_LEN];
        if let Err(e) = self.reader.read_exact(&mut buf) {
            self.position = self.segment.size;
            return Some(Err(io_err("cannot read segment for cleaning", path)(e)));
        }
        let header = match BatchHeader::parse(&buf) {
            Ok(h) if self.position + h.len_total() as u64 <= self.segment.size => h,
            _ => {
                let position = self.position;
                self.position = self.segment.size;
                return Some(Err(LogError::Corrupt {
                    path: path.clone(),
                    position,
                    reason: "unreadable batch header while cleaning".into(),
                }));
            }
        };
        buf.resize(header.len_total(), 0);
        if let Err(e) = self.reader.read_exact(&mut buf[BATCH_HEADER_LEN..]) {
            self.position = self.segment.size;
            return Some(Err(io_err("cannot read segment for cleaning", path)(e)));
        }
        self.position += buf.len() as u64;
        Some(Ok((header, buf)))
    }
}

/// The name of the swap file for a group based at `base` that replaces the segments up to
/// `next_base` (exclusive).
pub(super) fn swap_file_name(base: i64, next_base: i64) -> String {
    format!("{base:020}.log.{next_base:020}.swap")
}

/// Parses a swap file name into `(base, next_base)`.
pub(super) fn parse_swap_file_name(name: &str) -> Option<(i64, i64)> {
    let rest = name.strip_suffix(".swap")?;
    let (base, next) = rest.split_once(".log.")?;
    let digits = |s: &str| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(base) || !digits(next) {
        return None;
    }
    Some((base.parse().ok()?, next.parse().ok()?))
}

/// Completes the swaps left by a cleaning interrupted after its commit point: for each
/// `<base>.log.<next>.swap`, deletes the segment files with a base in `[base, next)` and
/// renames the swap file to `<base>.log` (its indexes are rebuilt on open).
pub(super) fn complete_swaps(dir: &Path) -> Result<(), LogError> {
    let entries = fs::read_dir(dir).map_err(io_err("cannot list partition directory", dir))?;
    let mut swaps = Vec::new();
    let mut segment_files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("cannot list partition directory", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(range) = parse_swap_file_name(&name) {
            swaps.push((range, entry.path()));
        } else if let Some((stem, ext)) = name.split_once('.') {
            if matches!(ext, "log" | "index" | "timeindex") {
                if let Ok(base) = stem.parse::<i64>() {
                    segment_files.push((base, entry.path()));
                }
            }
        }
    }
    for ((base, next), swap) in swaps {
        tracing::info!(file = %swap.display(), "completing an interrupted log cleaning swap");
        for (_, path) in segment_files
            .iter()
            .filter(|(b, _)| (base..next).contains(b))
        {
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("cannot delete a cleaned-over segment", path)(e)),
            }
        }
        // As in the swap itself: the deletions are durable before the rename.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("cannot fsync partition directory", dir))?;
        let target = dir.join(super::segment::log_file_name(base));
        fs::rename(&swap, &target).map_err(io_err("cannot install swapped segment", &swap))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::{build_batch, decode_records};
    use crate::log::{LogConfig, PartitionLog};
    use std::io::Write;

    const NOW: i64 = 10_000_000_000;

    fn config(segment_bytes: u64) -> LogConfig {
        LogConfig {
            segment_bytes,
            segment_ms: None,
            retention_ms: None,
            compaction: Some(CompactionConfig::default()),
            ..LogConfig::default()
        }
    }

    fn put(log: &mut PartitionLog, key: &str, value: Option<&str>, ts: i64) -> i64 {
        let batch = build_batch(
            &[(Some(key.as_bytes()), value.map(str::as_bytes))],
            ts,
            -1,
            -1,
            -1,
            false,
            false,
        );
        log.append(batch, ts).expect("append").base_offset
    }

    /// Every record readable from the log start: (offset, key, value).
    fn contents(log: &PartitionLog) -> Vec<(i64, String, Option<String>)> {
        let mut out = Vec::new();
        for item in log.batches_from(log.log_start_offset()) {
            let (header, bytes) = item.expect("batch");
            batch::verify_crc(&bytes, &header, 0).expect("crc");
            if header.is_control() {
                continue;
            }
            for r in decode_records(&plain(&header, &bytes)).expect("records") {
                let text =
                    |b: Option<bytes::Bytes>| b.map(|b| String::from_utf8_lossy(&b).into_owned());
                out.push((
                    header.base_offset + i64::from(r.offset_delta),
                    text(r.key).unwrap_or_default(),
                    text(r.value),
                ));
            }
        }
        out
    }

    /// The batch uncompressed (header otherwise unchanged), for `decode_records`.
    fn plain(header: &BatchHeader, bytes: &[u8]) -> Vec<u8> {
        let codec = header.compression().expect("known codec");
        let section = &bytes[BATCH_HEADER_LEN..header.len_total()];
        let records = codec::decompress(codec, section).expect("decompress");
        batch::reframed_batch(
            bytes,
            &records,
            header.records_count,
            Compression::None,
            None,
        )
    }

    /// `records` (stamped `ts`) as a batch compressed with `codec` by the codec crate's own
    /// encoder, as a client would write it (raw snappy, as librdkafka does).
    fn compressed_batch(
        records: &[batch::KeyValue<'_>],
        ts: i64,
        producer_id: i64,
        codec: Compression,
    ) -> bytes::Bytes {
        let epoch = if producer_id >= 0 { 0 } else { -1 };
        let plain = build_batch(records, ts, producer_id, epoch, epoch.into(), false, false);
        let section = &plain[BATCH_HEADER_LEN..];
        let payload = match codec {
            Compression::None => section.to_vec(),
            Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(section).expect("gzip");
                e.finish().expect("gzip")
            }
            Compression::Snappy => snap::raw::Encoder::new()
                .compress_vec(section)
                .expect("snappy"),
            Compression::Lz4 => {
                let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
                e.write_all(section).expect("lz4");
                e.finish().expect("lz4")
            }
            Compression::Zstd => zstd::stream::encode_all(section, 1).expect("zstd"),
        };
        let count = i32::try_from(records.len()).expect("count");
        batch::reframed_batch(&plain, &payload, count, codec, None).into()
    }

    /// Every batch of the log from its start: (header, bytes).
    fn batches(log: &PartitionLog) -> Vec<(BatchHeader, Vec<u8>)> {
        log.batches_from(log.log_start_offset())
            .map(|b| {
                let (h, bytes) = b.expect("batch");
                (h, bytes.to_vec())
            })
            .collect()
    }

    fn clean(log: &mut PartitionLog, now: i64) -> Option<CleanStats> {
        let cleaning = log.plan_clean(i64::MAX, now)?;
        let stats = cleaning
            .run(&|_| {}, &mut |group| log.install_cleaned(group))
            .expect("clean");
        Some(stats)
    }

    /// 3 keys, 10 versions each, one record per batch; small segments so most are sealed.
    fn updated_log(dir: &Path) -> (PartitionLog, Vec<(i64, String, Option<String>)>) {
        let one = build_batch(&[(Some(b"k0"), Some(b"v00"))], 1, -1, -1, -1, false, false).len();
        let mut log = PartitionLog::open(dir, config(4 * one as u64)).expect("open");
        let mut latest = Vec::new();
        for version in 0..10 {
            for key in 0..3 {
                let k = format!("k{key}");
                let v = format!("v{version}{key}");
                let offset = put(&mut log, &k, Some(&v), 1000 + version);
                if version == 9 {
                    latest.push((offset, k, Some(v)));
                }
            }
        }
        (log, latest)
    }

    #[test]
    fn keeps_the_newest_record_per_key_at_its_offset() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut log, latest) = updated_log(tmp.path());
        let before = log.size_bytes();
        let active_base = *log.segment_base_offsets().last().expect("segments");
        let stats = clean(&mut log, NOW).expect("due");
        assert!(stats.records_removed > 0, "{stats:?}");
        assert_eq!(stats.clean_to, active_base);
        assert!(log.size_bytes() < before);
        let got = contents(&log);
        // The sealed part holds only each key's newest record; the active segment is as it was.
        for (offset, key, _) in &got {
            if *offset < active_base {
                let newest = got
                    .iter()
                    .filter(|(o, k, _)| k == key && *o < active_base)
                    .map(|e| e.0)
                    .max();
                assert_eq!(Some(*offset), newest, "{got:?}");
            }
        }
        for entry in &latest {
            assert!(got.contains(entry), "{entry:?} missing from {got:?}");
        }
        // Offsets are kept: a fetch at a removed offset answers the next surviving batch.
        let from_zero = log.read(0, 1 << 20, i64::MAX).expect("read");
        let first = BatchHeader::parse(&from_zero).expect("header");
        assert_eq!(first.base_offset, got[0].0);
        assert_eq!(log.log_end_offset(), 30);
        // Nothing is dirty any more; a second pass has nothing to do.
        assert!(log.plan_clean(i64::MAX, NOW).is_none());

        // The cleaned log reopens to the same contents.
        drop(log);
        let log = PartitionLog::open(tmp.path(), config(1 << 20)).expect("reopen");
        assert_eq!(contents(&log), got);
        assert_eq!(log.log_end_offset(), 30);
    }

    #[test]
    fn a_fetch_at_any_offset_gets_the_next_surviving_batch_through_the_index() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cfg = LogConfig {
            index_interval_bytes: 1, // an index entry for (almost) every batch
            ..config(2000)
        };
        let mut log = PartitionLog::open(tmp.path(), cfg.clone()).expect("open");
        for i in 0..200 {
            put(&mut log, &format!("k{}", i % 7), Some("v"), 1000);
        }
        clean(&mut log, NOW).expect("due");
        drop(log);
        let log = PartitionLog::open(tmp.path(), cfg).expect("reopen");
        let survivors: Vec<i64> = contents(&log).iter().map(|e| e.0).collect();
        assert!(survivors.len() < 200);
        for offset in 0..log.log_end_offset() {
            let got = log.read(offset, 1, i64::MAX).expect("read");
            let first = BatchHeader::parse(&got).expect("a batch").base_offset;
            let want = survivors.iter().find(|&&o| o >= offset).copied();
            assert_eq!(Some(first), want, "fetch at {offset}");
        }
    }

    #[test]
    fn nothing_is_cleaned_below_the_dirty_ratio_or_past_the_bound() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (log, _) = updated_log(tmp.path());
        // Nothing below offset 1: the first segment is not wholly cleanable.
        assert!(log.plan_clean(1, NOW).is_none());
        // min.compaction.lag.ms: records are too young.
        let mut young = log.config().clone();
        young
            .compaction
            .as_mut()
            .expect("compaction")
            .min_compaction_lag_ms = NOW;
        let mut log = log;
        log.set_config(young).expect("config");
        assert!(log.plan_clean(i64::MAX, NOW).is_none());
        // A dirty ratio of 1 is reached only when nothing was cleaned yet.
        let mut strict = log.config().clone();
        let c = strict.compaction.as_mut().expect("compaction");
        c.min_compaction_lag_ms = 0;
        c.min_cleanable_dirty_ratio = 1.0;
        log.set_config(strict).expect("config");
        clean(&mut log, NOW).expect("all dirty: due");
        put(&mut log, "k0", Some("new"), 2000);
        for _ in 0..4 {
            put(&mut log, "k1", Some("new"), 2000);
        }
        assert!(
            log.plan_clean(i64::MAX, NOW).is_none(),
            "part clean: ratio < 1"
        );
        // ... unless max.compaction.lag.ms has passed for the dirty segment.
        let mut overdue = log.config().clone();
        overdue
            .compaction
            .as_mut()
            .expect("compaction")
            .max_compaction_lag_ms = 1;
        log.set_config(overdue).expect("config");
        assert!(log.plan_clean(i64::MAX, NOW).is_some());
        // A topic that is not compacted is never cleaned.
        let mut plain = log.config().clone();
        plain.compaction = None;
        log.set_config(plain).expect("config");
        assert!(log.plan_clean(i64::MAX, NOW).is_none());
    }

    #[test]
    fn tombstones_stay_until_delete_retention_ms() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut log = PartitionLog::open(tmp.path(), config(200)).expect("open");
        put(&mut log, "a", Some("1"), 1000);
        put(&mut log, "b", Some("1"), 1000);
        let tombstone = put(&mut log, "a", None, 1000);
        for _ in 0..4 {
            put(&mut log, "c", Some("x"), 1000);
        }
        // Within delete.retention.ms of the tombstone: it stays, the value it deletes goes.
        clean(&mut log, 1000 + 1000).expect("due");
        let got = contents(&log);
        assert!(got.contains(&(tombstone, "a".into(), None)), "{got:?}");
        assert!(
            !got.iter().any(|(_, k, v)| k == "a" && v.is_some()),
            "{got:?}"
        );
        // Past it: the tombstone goes too (a dirty segment makes the log due again).
        for _ in 0..4 {
            put(&mut log, "c", Some("y"), 1000);
        }
        // The first cleaning (at 2000) set the delete horizon: 2000 + delete.retention.ms.
        let later = 2000 + CompactionConfig::default().delete_retention_ms;
        clean(&mut log, later).expect("due");
        let got = contents(&log);
        assert!(!got.iter().any(|(_, k, _)| k == "a"), "{got:?}");
        assert!(got.iter().any(|(_, k, _)| k == "b"), "{got:?}");
    }

    /// `segment.bytes` of [`compressed_log`]: two or three batches a segment.
    const COMPRESSED_SEGMENT: u64 = 250;

    /// A log of compressed batches each holding keys that later batches update, behind an
    /// idempotent producer's first batch whose keys all get newer values; returns the log,
    /// every record written (offset, key, value) and the producer batch's (base, last offset).
    #[allow(clippy::type_complexity)]
    fn compressed_log(
        dir: &Path,
        codec: Compression,
    ) -> (PartitionLog, Vec<(i64, String, Option<String>)>, (i64, i64)) {
        let mut log = PartitionLog::open(dir, config(COMPRESSED_SEGMENT)).expect("open");
        let mut written = Vec::new();
        let mut append = |log: &mut PartitionLog, records: &[(String, String)], pid: i64| {
            let kv: Vec<batch::KeyValue<'_>> = records
                .iter()
                .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_bytes())))
                .collect();
            let info = log
                .append(compressed_batch(&kv, 1000, pid, codec), 1000)
                .expect("append");
            for (i, (k, v)) in records.iter().enumerate() {
                written.push((info.base_offset + i as i64, k.clone(), Some(v.clone())));
            }
            (info.base_offset, info.last_offset)
        };
        let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
        let producer = append(&mut log, &[kv("k0", "p"), kv("k1", "p")], 9);
        for b in 0..8 {
            let v = format!("v{b}");
            let records = [
                kv(&format!("k{}", b % 3), &v),
                kv(&format!("k{}", (b + 1) % 3), &v),
                kv(&format!("u{b}"), &v),
            ];
            append(&mut log, &records, -1);
        }
        (log, written, producer)
    }

    #[test]
    fn compressed_batches_keep_their_newest_records_recompressed_with_their_codec() {
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let tmp = tempfile::tempdir().expect("tempdir");
            let (mut log, written, producer) = compressed_log(tmp.path(), codec);
            assert!(log.segment_count() > 3, "{codec:?}");
            let active = *log.segment_base_offsets().last().expect("segments");
            let stats = clean(&mut log, NOW).expect("due");
            // The sealed part holds exactly each key's newest record there, at its offset (the
            // active segment is not cleaned, nor counted).
            let want: Vec<_> = written
                .iter()
                .filter(|(o, k, _)| {
                    *o >= active
                        || written
                            .iter()
                            .all(|(o2, k2, _)| k2 != k || o2 <= o || *o2 >= active)
                })
                .cloned()
                .collect();
            let got = contents(&log);
            assert_eq!(got, want, "{codec:?}");
            assert_eq!(
                stats.records_removed as usize,
                written.len() - want.len(),
                "{codec:?}"
            );
            for (header, bytes) in batches(&log) {
                batch::verify_crc(&bytes, &header, 0).expect("crc");
                if header.base_offset == producer.0 {
                    // The producer's last batch stays, empty and uncompressed, spanning the
                    // same offsets (Kafka's RETAIN_EMPTY).
                    assert_eq!(header.records_count, 0, "{codec:?}");
                    assert_eq!(header.last_offset(), producer.1, "{codec:?}");
                    assert_eq!(header.compression(), Some(Compression::None));
                    assert_eq!(header.producer_id, 9);
                } else {
                    assert_eq!(header.compression(), Some(codec), "{header:?}");
                }
            }
            // Some batch lost part of its records and was compressed again.
            assert!(
                batches(&log)
                    .iter()
                    .any(|(h, _)| h.records_count > 0 && h.records_count < 3),
                "{codec:?}"
            );
            drop(log);
            let log = PartitionLog::open(tmp.path(), config(COMPRESSED_SEGMENT)).expect("reopen");
            assert_eq!(contents(&log), want, "{codec:?} after reopen");
        }
    }

    /// A clean of `log` killed once its first `.cleaned` file is written: returns that group
    /// and the log reopened from `dir` (segments of `segment_bytes`), as a restart would.
    fn killed_after_the_cleaned_file(
        log: PartitionLog,
        dir: &std::path::Path,
        segment_bytes: u64,
    ) -> (CleanedGroup, PartitionLog) {
        let cleaning = log.plan_clean(i64::MAX, NOW).expect("due");
        let mut written = None;
        let _ = cleaning.run(&|_| {}, &mut |group| {
            written = Some(group);
            Ok(false)
        });
        let group = written.expect("a group was written");
        assert!(
            group.path.exists(),
            "the .cleaned file is written before the kill"
        );
        drop(log);
        let log = PartitionLog::open(dir, config(segment_bytes)).expect("reopen");
        (group, log)
    }

    /// A clean of `log` killed right after its commit point (`.cleaned` renamed to `.swap`, the
    /// old segments still there): returns the `.swap` path and the log reopened from `dir`,
    /// which completes the swap.
    fn killed_at_the_commit_point(
        log: PartitionLog,
        dir: &std::path::Path,
        segment_bytes: u64,
    ) -> (std::path::PathBuf, PartitionLog) {
        let cleaning = log.plan_clean(i64::MAX, NOW).expect("due");
        let mut written = None;
        let _ = cleaning.run(&|_| {}, &mut |group| {
            written = Some(group);
            Ok(false)
        });
        let group = written.expect("a group was written");
        let next = group.originals.last().expect("segment").next_base;
        let swap = dir.join(swap_file_name(group.originals[0].base, next));
        fs::rename(&group.path, &swap).expect("rename");
        drop(log);
        let log = PartitionLog::open(dir, config(segment_bytes)).expect("reopen");
        (swap, log)
    }

    #[test]
    fn a_kill_around_the_swap_of_recompressed_batches_loses_nothing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (log, written, _) = compressed_log(tmp.path(), Compression::Zstd);
        let original = contents(&log);
        assert_eq!(original, written);
        // Killed before the swap: the old segments stay as they were.
        let (group, log) = killed_after_the_cleaned_file(log, tmp.path(), COMPRESSED_SEGMENT);
        assert!(!group.path.exists());
        assert_eq!(contents(&log), original);
        // Killed after the commit point: open completes the swap.
        let (_, log) = killed_at_the_commit_point(log, tmp.path(), COMPRESSED_SEGMENT);
        let got = contents(&log);
        assert!(got.len() < original.len());
        for entry in &got {
            assert!(original.contains(entry), "{entry:?} was not written");
        }
        for (header, bytes) in batches(&log) {
            batch::verify_crc(&bytes, &header, 0).expect("crc");
        }
    }

    #[test]
    fn a_batch_that_cannot_be_decompressed_is_kept_whole() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut log = PartitionLog::open(tmp.path(), config(200)).expect("open");
        let old = put(&mut log, "k", Some("old"), 1000);
        // Flagged lz4, but not an LZ4 frame: the cleaner cannot read its keys.
        let plain = build_batch(&[(Some(b"k"), Some(b"x"))], 1000, -1, -1, -1, false, false);
        let junk = batch::reframed_batch(&plain, b"not lz4", 1, Compression::Lz4, None);
        let bad = log
            .append(bytes::Bytes::from(junk.clone()), 1000)
            .expect("append")
            .base_offset;
        for _ in 0..4 {
            put(&mut log, "f", Some("x"), 1000);
        }
        clean(&mut log, NOW).expect("due");
        let kept = batches(&log);
        let (_, bytes) = kept
            .iter()
            .find(|(h, _)| h.base_offset == bad)
            .expect("the unreadable batch is still there");
        assert_eq!(
            &bytes[8..],
            &junk[8..],
            "byte for byte (but the base offset)"
        );
        // Its key never entered the map, so the older record of the key stays.
        assert!(kept.iter().any(|(h, _)| h.base_offset == old));
    }

    #[test]
    fn a_tombstone_gets_a_delete_horizon_that_a_restart_does_not_reset() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut log = PartitionLog::open(tmp.path(), config(200)).expect("open");
        let retention = CompactionConfig::default().delete_retention_ms;
        put(&mut log, "a", Some("1"), 1000);
        let deleting = compressed_batch(
            &[(Some(b"a"), None), (Some(b"c"), Some(b"c1"))],
            1000,
            -1,
            Compression::Zstd,
        );
        let tomb = log.append(deleting, 1000).expect("append").base_offset;
        let fill = |log: &mut PartitionLog| {
            for _ in 0..6 {
                put(log, "f", Some("x"), 1000);
            }
        };
        fill(&mut log);
        let first_clean = 50_000;
        clean(&mut log, first_clean).expect("due");
        let tomb_batch = |log: &PartitionLog| {
            batches(log)
                .into_iter()
                .find(|(h, _)| h.base_offset == tomb)
                .expect("tombstone batch")
        };
        let (header, bytes) = tomb_batch(&log);
        assert_eq!(header.delete_horizon_ms(), Some(first_clean + retention));
        assert_eq!(header.compression(), Some(Compression::Zstd));
        batch::verify_crc(&bytes, &header, 0).expect("crc");
        let records = decode_records(&plain(&header, &bytes)).expect("records");
        assert_eq!(records.len(), 2);
        for r in &records {
            // The base timestamp holds the horizon; each record's timestamp is unchanged.
            assert_eq!(header.base_timestamp + r.timestamp_delta, 1000);
        }
        assert_eq!(header.max_timestamp, 1000);
        assert!(records[0].value.is_none());
        assert!(!contents(&log).iter().any(|e| e.1 == "a" && e.2.is_some()));

        // After a restart, just before the horizon: still there (the record itself is far
        // older than delete.retention.ms; only the stored horizon counts).
        drop(log);
        let mut log = PartitionLog::open(tmp.path(), config(200)).expect("reopen");
        fill(&mut log);
        clean(&mut log, first_clean + retention - 1).expect("due");
        let (header, _) = tomb_batch(&log);
        assert_eq!(header.delete_horizon_ms(), Some(first_clean + retention));
        assert!(contents(&log).iter().any(|e| e.1 == "a"));

        // At the horizon: the tombstone goes, its batch mate stays with its timestamp.
        fill(&mut log);
        clean(&mut log, first_clean + retention).expect("due");
        let got = contents(&log);
        assert!(!got.iter().any(|e| e.1 == "a"), "{got:?}");
        assert!(got.contains(&(tomb + 1, "c".into(), Some("c1".into()))));
        let (header, bytes) = tomb_batch(&log);
        assert_eq!(header.records_count, 1);
        assert_eq!(header.compression(), Some(Compression::Zstd));
        let records = decode_records(&plain(&header, &bytes)).expect("records");
        assert_eq!(header.base_timestamp + records[0].timestamp_delta, 1000);
    }

    #[test]
    fn max_compaction_lag_counts_from_the_earliest_dirty_batch() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let now = 100_000;
        let config = CompactionConfig {
            min_cleanable_dirty_ratio: 1.5, // never reached: only the lag can make it due
            max_compaction_lag_ms: 10_000,
            ..CompactionConfig::default()
        };
        let seg = |base: i64, first: i64, newest: i64| SealedSegment {
            base,
            next_base: base + 10,
            size: 100,
            max_timestamp: newest,
            first_batch_timestamp: first,
            path: tmp.path().join(format!("{base}.log")),
        };
        let due = |segments: Vec<SealedSegment>| {
            plan(tmp.path(), &config, 1 << 20, segments, i64::MAX, now).is_some()
        };
        // The first batch is older than the bound though the newest record is not.
        assert!(due(vec![seg(0, 85_000, 99_000), seg(10, 95_000, 99_500)]));
        assert!(!due(vec![seg(0, 95_000, 99_000)]));
        // The earliest of the dirty segments counts, wherever it is.
        assert!(due(vec![seg(0, 95_000, 99_000), seg(10, 80_000, 99_000)]));
        // Segments whose batches carry no timestamp do not count.
        assert!(!due(vec![seg(0, -1, -1)]));
        // Nor do clean ones.
        write_checkpoint(&tmp.path().join(CLEANER_CHECKPOINT), 10).expect("checkpoint");
        assert!(!due(vec![seg(0, 50_000, 50_000), seg(10, 95_000, 99_000)]));

        // Through a real log: the segments' first batches are read from their files.
        let dir = tmp.path().join("log");
        let one = build_batch(&[(Some(b"k0"), Some(b"v00"))], 1, -1, -1, -1, false, false).len();
        let mut log = PartitionLog::open(&dir, self::config(4 * one as u64)).expect("open");
        put(&mut log, "k0", Some("v00"), 1000);
        for _ in 0..6 {
            put(&mut log, "k1", Some("v11"), NOW - 10);
        }
        let mut cfg = log.config().clone();
        let c = cfg.compaction.as_mut().expect("compaction");
        c.min_cleanable_dirty_ratio = 1.5;
        c.max_compaction_lag_ms = NOW - 5000;
        log.set_config(cfg.clone()).expect("config");
        assert!(log.plan_clean(i64::MAX, NOW).is_some());
        cfg.compaction
            .as_mut()
            .expect("compaction")
            .max_compaction_lag_ms = NOW;
        log.set_config(cfg).expect("config");
        assert!(log.plan_clean(i64::MAX, NOW).is_none());
    }

    fn txn_put(log: &mut PartitionLog, pid: i64, seq: i32, key: &str, value: &str) -> i64 {
        let batch = build_batch(
            &[(Some(key.as_bytes()), Some(value.as_bytes()))],
            1000,
            pid,
            0,
            seq,
            true,
            false,
        );
        log.append(batch, 1000).expect("append").base_offset
    }

    fn marker(log: &mut PartitionLog, pid: i64, commit: bool) -> i64 {
        let key = [0u8, 0, 0, u8::from(commit)];
        let value = [0u8; 6];
        let batch = build_batch(
            &[(Some(&key[..]), Some(&value[..]))],
            1000,
            pid,
            0,
            -1,
            true,
            true,
        );
        log.append(batch, 1000).expect("append").base_offset
    }

    #[test]
    fn aborted_records_go_committed_ones_count_and_markers_stay_while_needed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut log = PartitionLog::open(tmp.path(), config(300)).expect("open");
        let old = put(&mut log, "k", Some("plain"), 1000);
        let committed = txn_put(&mut log, 7, 0, "k", "committed");
        marker(&mut log, 7, true);
        let aborted = txn_put(&mut log, 8, 0, "k", "aborted");
        marker(&mut log, 8, false);
        let lone = txn_put(&mut log, 8, 1, "other", "aborted too");
        marker(&mut log, 8, false);
        for _ in 0..6 {
            put(&mut log, "filler", Some("x"), 1000);
        }
        clean(&mut log, 2000).expect("due");
        let got = contents(&log);
        let offsets: Vec<i64> = got.iter().map(|e| e.0).collect();
        assert!(offsets.contains(&committed), "{got:?}");
        for gone in [old, aborted, lone] {
            assert!(!offsets.contains(&gone), "{gone} in {got:?}");
        }
        // Markers are younger than delete.retention.ms: all kept.
        let markers = log
            .batches_from(0)
            .filter(|b| b.as_ref().expect("batch").0.is_control())
            .count();
        assert_eq!(markers, 3);
        // Once old, a marker whose data is gone goes too, except each producer's last batch.
        for _ in 0..6 {
            put(&mut log, "filler", Some("y"), 1000);
        }
        // Their delete horizon was set by the first cleaning (at 2000).
        clean(
            &mut log,
            2000 + CompactionConfig::default().delete_retention_ms,
        )
        .expect("due");
        let controls: Vec<(i64, i64)> = log
            .batches_from(0)
            .map(|b| b.expect("batch").0)
            .filter(BatchHeader::is_control)
            .map(|h| (h.producer_id, h.base_offset))
            .collect();
        // pid 7: its data is left, so its marker stays; pid 8: only its last marker stays.
        assert_eq!(controls.len(), 2, "{controls:?}");
        assert!(controls.iter().any(|c| c.0 == 7));
    }

    #[test]
    fn a_kill_before_the_swap_leaves_the_old_segments_and_after_it_the_new_ones() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (log, _) = updated_log(tmp.path());
        let original = contents(&log);
        // Kill after the .cleaned file is written: the clean never happened.
        let (group, log) = killed_after_the_cleaned_file(log, tmp.path(), 1 << 20);
        assert!(!group.path.exists(), ".cleaned is removed on open");
        assert_eq!(contents(&log), original);
        let originals = group.originals;

        // Kill right after the commit point (.cleaned renamed to .swap, old segments still
        // there): open completes the swap.
        let (swap, log) = killed_at_the_commit_point(log, tmp.path(), 1 << 20);
        assert!(!swap.exists());
        let got = contents(&log);
        let bases = log.segment_base_offsets();
        for s in originals.iter().skip(1) {
            assert!(!bases.contains(&s.base), "{} replaced: {bases:?}", s.base);
        }
        // Every key's newest record is still there, and no offset appears twice.
        for entry in original
            .iter()
            .filter(|e| original.iter().filter(|o| o.1 == e.1).map(|o| o.0).max() == Some(e.0))
        {
            assert!(got.contains(entry), "{entry:?}");
        }
        let mut offsets: Vec<i64> = got.iter().map(|e| e.0).collect();
        offsets.dedup();
        assert_eq!(offsets.len(), got.len());
        assert!(got.len() < original.len());
    }

    #[test]
    fn a_group_is_not_installed_over_a_changed_log() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = updated_log(tmp.path());
        let original = contents(&log);
        let cleaning = log.plan_clean(i64::MAX, NOW).expect("due");
        let mut groups = Vec::new();
        let _ = cleaning.run(&|_| {}, &mut |group| {
            groups.push(group);
            Ok(false)
        });
        let group = groups.pop().expect("group");
        let path = group.path.clone();
        log.delete_records_before(5).expect("delete records");
        log.apply_retention(NOW).expect("retention");
        assert!(!log.install_cleaned(group).expect("install"));
        assert!(!path.exists());
        assert_eq!(
            contents(&log),
            original
                .into_iter()
                .filter(|e| e.0 >= 5)
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_segment_deleted_before_it_is_read_ends_the_cleaning_without_leftovers() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = updated_log(tmp.path());
        let original = contents(&log);
        let cleaning = log.plan_clean(i64::MAX, NOW).expect("due");
        // Retention deletes the next group's segment once the first group is swapped in.
        let cut = log.segment_base_offsets()[2];
        let mut first = true;
        let err = cleaning
            .run(&|_| {}, &mut |group| {
                let installed = log.install_cleaned(group)?;
                if std::mem::take(&mut first) {
                    log.delete_records_before(cut)?;
                    log.apply_retention(NOW)?;
                }
                Ok(installed)
            })
            .unwrap_err();
        assert!(
            err.to_string().contains("cannot open segment for cleaning"),
            "{err}"
        );
        let cleaned = fs::read_dir(tmp.path())
            .expect("read_dir")
            .filter(|e| {
                let name = e.as_ref().expect("entry").file_name();
                name.to_string_lossy().ends_with(".cleaned")
            })
            .count();
        assert_eq!(cleaned, 0);
        let kept: Vec<_> = original.into_iter().filter(|e| e.0 >= cut).collect();
        assert_eq!(contents(&log), kept);
    }

    #[test]
    fn a_full_key_map_leaves_the_rest_of_the_dirty_section_for_the_next_cleaning() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut log, latest) = updated_log(tmp.path());
        let bases = log.segment_base_offsets();
        let mut cleaning = log.plan_clean(i64::MAX, NOW).expect("due");
        cleaning.max_keys = 3; // reached within the first segment (4 records of 3 keys)
        let stats = cleaning
            .run(&|_| {}, &mut |group| log.install_cleaned(group))
            .expect("clean");
        assert_eq!(stats.clean_to, bases[1], "{stats:?}");
        assert_eq!(stats.groups, 1);
        // The next cleaning goes on from there (the log is still dirty enough).
        let stats = clean(&mut log, NOW).expect("still due");
        assert_eq!(stats.clean_to, *bases.last().expect("active"));
        let got = contents(&log);
        for entry in &latest {
            assert!(got.contains(entry), "{entry:?} missing from {got:?}");
        }
    }

    #[test]
    fn swap_file_names_round_trip_and_junk_is_not_a_swap() {
        assert_eq!(
            parse_swap_file_name(&swap_file_name(12, 340)),
            Some((12, 340))
        );
        assert_eq!(parse_swap_file_name("00000000000000000012.log.swap"), None);
        assert_eq!(parse_swap_file_name("x.log.y.swap"), None);
    }

    #[test]
    fn keyless_records_are_refused_for_a_compacted_topic() {
        let keyed = build_batch(&[(Some(b"k"), Some(b"v"))], 1, -1, -1, -1, false, false);
        let keyless = build_batch(
            &[(Some(b"k"), Some(b"v")), (None, Some(b"v"))],
            1,
            -1,
            -1,
            -1,
            false,
            false,
        );
        let headers = batch::validate_produce(&keyed, 1 << 20).expect("valid");
        batch::check_keys_present(&keyed, &headers).expect("keyed passes");
        let headers = batch::validate_produce(&keyless, 1 << 20).expect("valid");
        let err = batch::check_keys_present(&keyless, &headers).unwrap_err();
        assert_eq!(err.kafka_error_code(), 87);
        assert!(err
            .to_string()
            .contains("Compacted topic cannot accept message without key"));
    }
}
