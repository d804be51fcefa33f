//! Sparse per-segment indexes, in Kafka's file formats: the offset index `<base>.index`
//! (relative offset u32, file position u32) and the time index `<base>.timeindex`
//! (timestamp i64, relative offset u32), all big-endian.
//!
//! Both are kept in memory as sorted vectors (lookups are binary searches, no I/O) and mirrored to
//! disk by appending the entries not yet written ([`IndexFile::persist`]). The active segment's
//! index is written at flush, roll and close rather than per append: after an unclean stop the
//! active segment is re-scanned on open and its index rebuilt, so an index that lags the log is
//! never trusted. Plain files and `pread`/`write` are used instead of Kafka's mmap because the
//! workspace forbids `unsafe`; a side effect worth keeping is that a full disk can only make a
//! `write` fail with an error, never fault a store into a mapped page (SIGBUS).
//!
//! A failed write (a full disk) may leave part of the new entries in the file. The file is then
//! rewritten whole at the next persist rather than appended to, so later entries never land
//! after a torn one; until then the file may lag or be torn, which the checks on load catch.
//!
//! An offset entry `(r, p)` says: the batch whose *last* offset is `base + r` starts at byte `p`
//! (Kafka's convention). A time entry `(t, r)` says: every record at an offset `<= base + r` in
//! this segment has a timestamp `<= t`; entries are written with the segment's running maximum
//! timestamp, so `t` never decreases.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::{io_err, LogError};

/// One fixed-size entry of an index file.
pub(crate) trait IndexEntry: Copy + std::fmt::Debug {
    /// Encoded size in bytes.
    const SIZE: usize;
    /// Appends the big-endian encoding to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    /// Decodes from exactly `SIZE` bytes.
    fn decode(b: &[u8]) -> Self;
}

/// Offset index entry: the batch whose last offset is `base + relative_offset` starts at
/// `position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    /// Last offset of the batch, relative to the segment base.
    pub(crate) relative_offset: u32,
    /// Byte position of the batch in the `.log` file.
    pub(crate) position: u32,
}

impl IndexEntry for OffsetEntry {
    const SIZE: usize = 8;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        OffsetEntry {
            relative_offset: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            position: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

/// Time index entry: records at offsets up to `base + relative_offset` have timestamps
/// `<= timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    /// Maximum timestamp seen so far in the segment, milliseconds.
    pub(crate) timestamp: i64,
    /// Last offset covered by `timestamp`, relative to the segment base.
    pub(crate) relative_offset: u32,
}

impl IndexEntry for TimeEntry {
    const SIZE: usize = 12;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&b[0..8]);
        TimeEntry {
            timestamp: i64::from_be_bytes(ts),
            relative_offset: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        }
    }
}

/// An index held in memory and mirrored to `path`.
#[derive(Debug)]
pub(crate) struct IndexFile<E> {
    /// The index file.
    path: PathBuf,
    /// All entries, sorted by relative offset.
    entries: Vec<E>,
    /// How many leading entries are already in the file.
    persisted: usize,
}

/// The `.index` of a segment.
pub(crate) type OffsetIndex = IndexFile<OffsetEntry>;
/// The `.timeindex` of a segment.
pub(crate) type TimeIndex = IndexFile<TimeEntry>;

impl<E: IndexEntry> IndexFile<E> {
    /// An empty index for `path`; nothing is written until [`IndexFile::persist`].
    pub(crate) fn empty(path: PathBuf) -> Self {
        IndexFile {
            path,
            entries: Vec::new(),
            persisted: 0,
        }
    }

    /// Loads `path`. Returns `Ok(None)` when the file is missing or its size is not a whole
    /// number of entries (the caller then rebuilds it); structural checks beyond that are the
    /// caller's (see `OffsetIndex::is_sane` and `TimeIndex::is_sane`).
    pub(crate) fn load(path: PathBuf) -> Result<Option<Self>, LogError> {
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("cannot read index file", &path)(e)),
        };
        if bytes.len() % E::SIZE != 0 {
            return Ok(None);
        }
        let entries: Vec<E> = bytes.chunks_exact(E::SIZE).map(E::decode).collect();
        let persisted = entries.len();
        Ok(Some(IndexFile {
            path,
            entries,
            persisted,
        }))
    }

    /// The index file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// All entries in order.
    #[cfg(test)]
    pub(crate) fn entries(&self) -> &[E] {
        &self.entries
    }

    /// The last entry, if any.
    pub(crate) fn last(&self) -> Option<&E> {
        self.entries.last()
    }

    /// Adds an entry; the caller keeps entries sorted.
    pub(crate) fn push(&mut self, entry: E) {
        self.entries.push(entry);
    }

    /// Replaces all entries (after a rebuild); the file is rewritten at the next persist.
    pub(crate) fn replace(&mut self, entries: Vec<E>) {
        self.entries = entries;
        self.persisted = usize::MAX; // forces a full rewrite
    }

    /// Number of entries (persisted or not).
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Keeps the first `len` entries (an append being undone). When some of the dropped ones
    /// were already written, the file is rewritten at the next persist.
    pub(crate) fn truncate(&mut self, len: usize) {
        if len >= self.entries.len() {
            return;
        }
        self.entries.truncate(len);
        if self.persisted != usize::MAX && self.persisted > len {
            self.persisted = usize::MAX;
        }
    }

    /// Writes entries not yet in the file (or the whole file after a replace/truncate), and
    /// fsyncs it when `sync` is set. On failure the next persist rewrites the whole file (see the
    /// module docs).
    pub(crate) fn persist(&mut self, sync: bool) -> Result<(), LogError> {
        let result = self.write_pending(sync);
        if result.is_err() {
            self.persisted = usize::MAX;
        }
        result
    }

    fn write_pending(&mut self, sync: bool) -> Result<(), LogError> {
        let rewrite = self.persisted == usize::MAX;
        if !rewrite && self.persisted == self.entries.len() && !sync {
            return Ok(());
        }
        let from = if rewrite { 0 } else { self.persisted };
        let mut buf = Vec::with_capacity((self.entries.len() - from) * E::SIZE);
        for e in &self.entries[from..] {
            e.encode(&mut buf);
        }
        let mut file = if rewrite {
            File::create(&self.path)
        } else {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
        }
        .map_err(io_err("cannot open index file", &self.path))?;
        file.write_all(&buf)
            .map_err(io_err("cannot write index file", &self.path))?;
        if sync {
            file.sync_data()
                .map_err(io_err("cannot fsync index file", &self.path))?;
        }
        self.persisted = self.entries.len();
        Ok(())
    }
}

impl OffsetIndex {
    /// The entry with the largest relative offset `<= target`, if any.
    pub(crate) fn lookup(&self, target: u32) -> Option<OffsetEntry> {
        let idx = self
            .entries
            .partition_point(|e| e.relative_offset <= target);
        idx.checked_sub(1).map(|i| self.entries[i])
    }

    /// True when offsets and positions strictly increase and every position lies inside a log
    /// file of `log_size` bytes and every offset below `offset_limit` (relative).
    pub(crate) fn is_sane(&self, log_size: u64, offset_limit: u64) -> bool {
        self.entries
            .windows(2)
            .all(|w| w[0].relative_offset < w[1].relative_offset && w[0].position < w[1].position)
            && self.entries.iter().all(|e| {
                u64::from(e.position) < log_size && u64::from(e.relative_offset) < offset_limit
            })
    }
}

impl TimeIndex {
    /// The last entry whose timestamp is strictly below `timestamp`: every record up to its
    /// offset is older than `timestamp`, so a search for the first record `>= timestamp` can
    /// start after it.
    pub(crate) fn last_before(&self, timestamp: i64) -> Option<TimeEntry> {
        let idx = self.entries.partition_point(|e| e.timestamp < timestamp);
        idx.checked_sub(1).map(|i| self.entries[i])
    }

    /// True when timestamps never decrease, offsets strictly increase and stay below
    /// `offset_limit` (relative).
    pub(crate) fn is_sane(&self, offset_limit: u64) -> bool {
        self.entries.windows(2).all(|w| {
            w[0].timestamp <= w[1].timestamp && w[0].relative_offset < w[1].relative_offset
        }) && self
            .entries
            .iter()
            .all(|e| u64::from(e.relative_offset) < offset_limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset_index(entries: &[(u32, u32)]) -> OffsetIndex {
        let mut idx = OffsetIndex::empty(PathBuf::from("unused.index"));
        for &(relative_offset, position) in entries {
            idx.push(OffsetEntry {
                relative_offset,
                position,
            });
        }
        idx
    }

    #[test]
    fn lookup_first_middle_last_and_between_entries() {
        let idx = offset_index(&[(10, 4100), (20, 8200), (30, 12300)]);
        assert_eq!(idx.lookup(5), None, "before the first entry");
        assert_eq!(idx.lookup(10).map(|e| e.position), Some(4100), "first");
        assert_eq!(idx.lookup(15).map(|e| e.position), Some(4100), "between");
        assert_eq!(idx.lookup(20).map(|e| e.position), Some(8200), "middle");
        assert_eq!(idx.lookup(29).map(|e| e.position), Some(8200), "between");
        assert_eq!(idx.lookup(30).map(|e| e.position), Some(12300), "last");
        assert_eq!(
            idx.lookup(u32::MAX).map(|e| e.position),
            Some(12300),
            "past"
        );
        assert_eq!(offset_index(&[]).lookup(3), None);
    }

    #[test]
    fn time_lookup_is_strictly_before() {
        let mut idx = TimeIndex::empty(PathBuf::from("unused.timeindex"));
        for (timestamp, relative_offset) in [(100, 5), (200, 9), (200, 12), (300, 20)] {
            idx.push(TimeEntry {
                timestamp,
                relative_offset,
            });
        }
        assert_eq!(idx.last_before(100), None);
        assert_eq!(idx.last_before(101).map(|e| e.relative_offset), Some(5));
        assert_eq!(idx.last_before(201).map(|e| e.relative_offset), Some(12));
        assert_eq!(idx.last_before(1000).map(|e| e.relative_offset), Some(20));
        assert!(idx.is_sane(21));
        assert!(!idx.is_sane(20));
    }

    #[test]
    fn persist_appends_then_truncate_rewrites() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("00000000000000000000.index");
        let mut idx = OffsetIndex::empty(path.clone());
        idx.push(OffsetEntry {
            relative_offset: 1,
            position: 10,
        });
        idx.persist(false).expect("persist");
        idx.push(OffsetEntry {
            relative_offset: 2,
            position: 20,
        });
        idx.push(OffsetEntry {
            relative_offset: 3,
            position: 30,
        });
        idx.persist(true).expect("persist");
        assert_eq!(fs::metadata(&path).expect("meta").len(), 24);
        let loaded = OffsetIndex::load(path.clone())
            .expect("load")
            .expect("present");
        assert_eq!(loaded.entries(), idx.entries());
        assert!(loaded.is_sane(31, 4));
        assert!(!loaded.is_sane(30, 4), "position 30 is past a 30-byte log");

        idx.replace(idx.entries()[..1].to_vec());
        idx.persist(false).expect("persist");
        let loaded = OffsetIndex::load(path.clone())
            .expect("load")
            .expect("present");
        assert_eq!(loaded.entries().len(), 1);

        fs::write(&path, [0u8; 5]).expect("write");
        assert!(
            OffsetIndex::load(path).expect("load").is_none(),
            "torn file"
        );
    }
}
