//! The leader epoch cache of one partition: for every leader epoch that wrote to the log, the
//! first offset it wrote. It answers "where does epoch E end?" (OffsetForLeaderEpoch, and the
//! divergence check of follower fetches, KIP-101/279/320/595), so a follower that kept a tail
//! written under an old leader finds out where to cut it.
//!
//! Persisted like Kafka's `leader-epoch-checkpoint` file in the partition directory: a text file
//! of `0` (version), the entry count, then one `epoch startOffset` line per entry, replaced
//! atomically (temporary file, fsync, rename). The cache is derived data: a missing or unreadable
//! file is rebuilt by the caller from the `partitionLeaderEpoch` of the stored batches, and
//! entries past the log end (a crash between a truncation and the checkpoint) are dropped on open.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::log::{io_err, LogError};

/// Name of the checkpoint file, as in Kafka.
pub(crate) const EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";

/// One entry: `epoch` wrote its first record at `start_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EpochEntry {
    /// The leader epoch.
    pub(crate) epoch: i32,
    /// Offset of the first record written in that epoch.
    pub(crate) start_offset: i64,
}

/// The cache, in epoch order (epochs and start offsets both strictly increasing).
#[derive(Debug)]
pub(crate) struct EpochCache {
    /// The checkpoint file.
    path: PathBuf,
    /// Entries, oldest first.
    entries: Vec<EpochEntry>,
}

impl EpochCache {
    /// Loads the checkpoint in `dir`. `None` when the file is missing or malformed (the caller
    /// rebuilds the cache from the log); entries starting past `log_end` are dropped.
    pub(crate) fn open(dir: &Path, log_end: i64) -> Option<EpochCache> {
        let path = dir.join(EPOCH_CHECKPOINT_FILE);
        let text = fs::read_to_string(&path).ok()?;
        let entries = parse(&text)?;
        let mut cache = EpochCache { path, entries };
        let before = cache.entries.len();
        cache.entries.retain(|e| e.start_offset <= log_end);
        if cache.entries.len() != before {
            cache.persist_logged();
        }
        Some(cache)
    }

    /// An empty cache for `dir` (nothing written until the first entry).
    pub(crate) fn empty(dir: &Path) -> EpochCache {
        EpochCache {
            path: dir.join(EPOCH_CHECKPOINT_FILE),
            entries: Vec::new(),
        }
    }

    /// The entries, oldest first (tests).
    #[cfg(test)]
    pub(crate) fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The newest epoch, if any wrote.
    pub(crate) fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset` (a new leader at its log end, or a follower
    /// appending the first batch of a newer epoch). An epoch not newer than the latest is
    /// ignored; entries starting at or after `start_offset` are replaced (they were never
    /// written, or were truncated). Returns whether the cache changed; the change is persisted.
    /// When the checkpoint cannot be written (a full disk) the cache stays as it was, so that
    /// the caller, which then writes nothing, tries again at its next append: an entry kept only
    /// in memory would never reach the file, and a restart would lose it.
    pub(crate) fn assign(&mut self, epoch: i32, start_offset: i64) -> Result<bool, LogError> {
        if epoch < 0 || self.latest_epoch().is_some_and(|latest| epoch <= latest) {
            return Ok(false);
        }
        let before = self.entries.clone();
        self.entries.retain(|e| e.start_offset < start_offset);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        if let Err(e) = self.persist() {
            self.entries = before;
            return Err(e);
        }
        Ok(true)
    }

    /// Where `requested` ends, as Kafka answers OffsetForLeaderEpoch: the largest epoch
    /// `<= requested` with the start offset of the next newer epoch (or `log_end` for the
    /// latest). An epoch older than every entry ends where the oldest entry starts (Kafka's
    /// `(requested, first start offset)`: a replica whose log began under an epoch this leader
    /// never saw, e.g. an empty log, keeps what precedes the leader's first epoch). `(-1, -1)`
    /// (undefined) when `requested` is newer than the latest entry, or the cache is empty.
    pub(crate) fn end_offset_for(&self, requested: i32, log_end: i64) -> (i32, i64) {
        const UNDEFINED: (i32, i64) = (-1, -1);
        let Some(latest) = self.entries.last() else {
            return UNDEFINED;
        };
        if requested == latest.epoch {
            return (latest.epoch, log_end);
        }
        if requested > latest.epoch {
            return UNDEFINED;
        }
        // First entry newer than requested: it exists since requested < latest.
        let next = self.entries.partition_point(|e| e.epoch <= requested);
        if next == 0 {
            return (requested, self.entries[0].start_offset);
        }
        (
            self.entries[next - 1].epoch,
            self.entries[next].start_offset,
        )
    }

    /// Drops entries starting at or after `end_offset` (the log was truncated to it).
    pub(crate) fn truncate_from_end(&mut self, end_offset: i64) -> Result<(), LogError> {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        if self.entries.len() != before {
            self.persist()?;
        }
        Ok(())
    }

    /// Moves the cache's start to `start_offset` (retention or a full truncation): entries
    /// entirely below it go, and the newest of them is kept starting at `start_offset`.
    pub(crate) fn truncate_from_start(&mut self, start_offset: i64) -> Result<(), LogError> {
        let below = self
            .entries
            .partition_point(|e| e.start_offset <= start_offset);
        if below == 0 {
            return Ok(());
        }
        let mut kept = self.entries[below - 1];
        if kept.start_offset == start_offset && below == 1 {
            return Ok(());
        }
        kept.start_offset = start_offset;
        self.entries.drain(..below);
        self.entries.insert(0, kept);
        self.persist()
    }

    /// Writes the checkpoint: temporary file, fsync, rename.
    pub(crate) fn persist(&self) -> Result<(), LogError> {
        let mut text = format!("0\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        let tmp = self.path.with_extension("tmp");
        let mut file = fs::File::create(&tmp).map_err(io_err("cannot create", &tmp))?;
        file.write_all(text.as_bytes())
            .map_err(io_err("cannot write", &tmp))?;
        file.sync_all().map_err(io_err("cannot fsync", &tmp))?;
        fs::rename(&tmp, &self.path).map_err(io_err("cannot rename into place", &self.path))
    }

    fn persist_logged(&self) {
        if let Err(e) = self.persist() {
            tracing::warn!(error = %e, "cannot write the leader epoch checkpoint");
        }
    }
}

/// Parses the checkpoint text; `None` unless well formed and strictly increasing.
fn parse(text: &str) -> Option<Vec<EpochEntry>> {
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut entries: Vec<EpochEntry> = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let mut parts = lines.next()?.split_whitespace();
        let epoch: i32 = parts.next()?.parse().ok()?;
        let start_offset: i64 = parts.next()?.parse().ok()?;
        if let Some(prev) = entries.last() {
            if epoch <= prev.epoch || start_offset < prev.start_offset {
                return None;
            }
        }
        entries.push(EpochEntry {
            epoch,
            start_offset,
        });
    }
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_offset_for_epoch_follows_kafka() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = EpochCache::empty(dir.path());
        assert_eq!(c.end_offset_for(0, 10), (-1, -1), "empty cache");
        c.assign(1, 0).unwrap();
        c.assign(3, 5).unwrap();
        c.assign(4, 9).unwrap();
        assert_eq!(
            c.end_offset_for(4, 12),
            (4, 12),
            "latest ends at the log end"
        );
        assert_eq!(c.end_offset_for(3, 12), (3, 9));
        assert_eq!(c.end_offset_for(2, 12), (1, 5), "an epoch that never wrote");
        assert_eq!(c.end_offset_for(1, 12), (1, 5));
        assert_eq!(
            c.end_offset_for(0, 12),
            (0, 0),
            "older than every entry: ends where the oldest starts"
        );
        assert_eq!(c.end_offset_for(5, 12), (-1, -1), "newer than the latest");
        assert!(!c.assign(2, 20).unwrap(), "older epochs are ignored");
        assert!(!c.assign(4, 20).unwrap(), "the same epoch is ignored");
    }

    #[test]
    fn persisted_and_reopened_truncated_to_the_log_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = EpochCache::empty(dir.path());
        c.assign(0, 0).unwrap();
        c.assign(2, 10).unwrap();
        c.assign(5, 30).unwrap();
        let text = fs::read_to_string(dir.path().join(EPOCH_CHECKPOINT_FILE)).unwrap();
        assert_eq!(text, "0\n3\n0 0\n2 10\n5 30\n", "Kafka's file format");
        let c = EpochCache::open(dir.path(), 100).unwrap();
        assert_eq!(c.entries().len(), 3);
        let c = EpochCache::open(dir.path(), 20).unwrap();
        assert_eq!(c.latest_epoch(), Some(2), "entry past the log end dropped");
        assert_eq!(
            EpochCache::open(dir.path(), 20).unwrap().entries().len(),
            2,
            "and the drop was persisted"
        );
        fs::write(dir.path().join(EPOCH_CHECKPOINT_FILE), "0\n2\n3 10\n1 20\n").unwrap();
        assert!(
            EpochCache::open(dir.path(), 100).is_none(),
            "decreasing epochs are rejected"
        );
        fs::write(dir.path().join(EPOCH_CHECKPOINT_FILE), "0\n3\n1 0\n").unwrap();
        assert!(EpochCache::open(dir.path(), 100).is_none(), "short file");
    }

    #[test]
    fn truncation_from_both_ends() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = EpochCache::empty(dir.path());
        c.assign(1, 0).unwrap();
        c.assign(2, 10).unwrap();
        c.assign(3, 20).unwrap();
        c.truncate_from_end(20).unwrap();
        assert_eq!(c.latest_epoch(), Some(2), "entry starting at the cut goes");
        c.truncate_from_end(15).unwrap();
        assert_eq!(
            c.latest_epoch(),
            Some(2),
            "entry starting before the cut stays"
        );
        c.truncate_from_start(12).unwrap();
        assert_eq!(
            c.entries(),
            &[EpochEntry {
                epoch: 2,
                start_offset: 12
            }]
        );
        // A new epoch assigned below existing entries replaces them.
        c.assign(7, 11).unwrap();
        assert_eq!(c.entries().len(), 1);
        assert_eq!(c.latest_epoch(), Some(7));
    }
}
