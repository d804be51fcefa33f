//! The files a partition keeps about transactions, beside its segments:
//!
//! - `aborted-transactions.index`: one entry per aborted transaction, in the order of their
//!   abort markers, each in the layout of an entry of Kafka's `<base>.txnindex` (34 bytes:
//!   `version:i16=0, producerId:i64, firstOffset:i64, lastOffset:i64, lastStableOffset:i64`,
//!   big-endian). One file per partition rather than one per segment: the list is small (one
//!   entry per aborted transaction) and is kept in memory; entries below the log start offset
//!   are dropped when retention moves it ([`TxnIndex::retain`]).
//! - `transactions.checkpoint`: the transaction state as of one offset (which producers had a
//!   transaction open, from which offset, and how many index entries existed), so that
//!   recovery replays only the log written after it instead of the whole log.
//!
//! Both are derived data: the log is the truth and either file can be rebuilt by replaying batch
//! headers (see [`crate::log::PartitionLog::batches_from`]). Neither is fsynced on every write
//! (the log is not either, unless `flush.*` says so); a checkpoint that does not agree with the
//! index or the log is ignored, which makes recovery replay from the log start.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::{io_err, LogError};

/// File name of the aborted-transaction index inside the partition directory.
pub const ABORTED_INDEX_FILE: &str = "aborted-transactions.index";
/// File name of the transaction checkpoint inside the partition directory.
pub const TXN_CHECKPOINT_FILE: &str = "transactions.checkpoint";
/// Bytes of one index entry.
const ENTRY_LEN: usize = 34;
/// First line of a checkpoint file.
const CHECKPOINT_VERSION: &str = "kbroker-transactions 0";

/// One aborted transaction: what a `read_committed` fetch lists so that clients skip its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The producer whose transaction was aborted.
    pub producer_id: i64,
    /// Offset of the transaction's first batch on this partition.
    pub first_offset: i64,
    /// Offset of the abort marker.
    pub last_offset: i64,
    /// The partition's last stable offset once the marker was written (Kafka keeps it too).
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut out = [0u8; ENTRY_LEN];
        out[0..2].copy_from_slice(&0i16.to_be_bytes());
        out[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        out[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        out[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        out[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        out
    }

    fn decode(b: &[u8]) -> Option<AbortedTxn> {
        let i64_at = |at: usize| -> Option<i64> {
            Some(i64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
        };
        if b.get(0..2)? != [0, 0] {
            return None;
        }
        Some(AbortedTxn {
            producer_id: i64_at(2)?,
            first_offset: i64_at(10)?,
            last_offset: i64_at(18)?,
            last_stable_offset: i64_at(26)?,
        })
    }
}

/// The aborted-transaction index of one partition: the entries in memory, appended to the file
/// as aborts happen.
#[derive(Debug)]
pub struct TxnIndex {
    /// `<partition dir>/aborted-transactions.index`.
    path: PathBuf,
    /// Entries in marker order (`last_offset` increasing).
    entries: VecDeque<AbortedTxn>,
    /// Largest `last_offset - first_offset` of any entry: bounds the search for overlaps.
    max_span: i64,
}

impl TxnIndex {
    /// Loads the index of the partition in `dir` (empty when the file does not exist). A torn
    /// last entry (kill -9 mid-write) or an unreadable entry ends the list there; the file is
    /// rewritten to match.
    pub fn open(dir: &Path) -> Result<TxnIndex, LogError> {
        let path = dir.join(ABORTED_INDEX_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err("cannot read aborted-transaction index", &path)(e)),
        };
        let mut index = TxnIndex {
            path,
            entries: VecDeque::new(),
            max_span: 0,
        };
        let mut clean = bytes.len() % ENTRY_LEN == 0;
        for chunk in bytes.chunks_exact(ENTRY_LEN) {
            match AbortedTxn::decode(chunk) {
                Some(e)
                    if index
                        .entries
                        .back()
                        .is_none_or(|b| b.last_offset < e.last_offset) =>
                {
                    index.push(e)
                }
                _ => {
                    clean = false;
                    break;
                }
            }
        }
        if !clean {
            tracing::warn!(file = %index.path.display(), kept = index.entries.len(),
                "aborted-transaction index had a torn or invalid tail; cut");
            index.rewrite()?;
        }
        Ok(index)
    }

    fn push(&mut self, e: AbortedTxn) {
        self.max_span = self.max_span.max(e.last_offset - e.first_offset);
        self.entries.push_back(e);
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &VecDeque<AbortedTxn> {
        &self.entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no transaction is recorded as aborted.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends an entry (its `last_offset` must be past every existing entry's) to memory and
    /// to the file. The entry is kept in memory even when the file cannot be written (a full
    /// disk): its abort marker is in the log, so `read_committed` fetches must list it. The
    /// error then means the file is behind memory (what a short write put in it is cut off
    /// again); the caller stops trusting the file, see [`TxnIndex::record`].
    pub fn append(&mut self, entry: AbortedTxn) -> Result<(), LogError> {
        let persisted = self.entries.len();
        self.push(entry);
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io_err("cannot open aborted-transaction index", &self.path))?;
        if let Err(e) = file.write_all(&entry.encode()) {
            let _ = file.set_len((persisted * ENTRY_LEN) as u64);
            return Err(io_err(
                "cannot append to aborted-transaction index",
                &self.path,
            )(e));
        }
        Ok(())
    }

    /// Adds an entry in memory only, once the file is known to be behind (a write failed): the
    /// next open, finding no checkpoint, rebuilds the file from the log.
    pub fn record(&mut self, entry: AbortedTxn) {
        self.push(entry);
    }

    /// Keeps only the entries for which `keep` holds; rewrites the file when any was dropped.
    /// Returns whether anything changed.
    pub fn retain(&mut self, keep: impl Fn(&AbortedTxn) -> bool) -> Result<bool, LogError> {
        let before = self.entries.len();
        self.entries.retain(|e| keep(e));
        if self.entries.len() == before {
            return Ok(false);
        }
        self.max_span = self
            .entries
            .iter()
            .map(|e| e.last_offset - e.first_offset)
            .max()
            .unwrap_or(0);
        self.rewrite()?;
        Ok(true)
    }

    /// Keeps the first `len` entries (nothing changes when there are not more).
    pub fn truncate(&mut self, len: usize) -> Result<(), LogError> {
        if self.entries.len() > len {
            self.entries.truncate(len);
            self.rewrite()?;
        }
        Ok(())
    }

    /// The entries a fetch of `[from, upper)` must list: `last_offset >= from` and
    /// `first_offset < upper` (Kafka's `collectAbortedTransactions`).
    pub fn overlapping(&self, from: i64, upper: i64) -> Vec<AbortedTxn> {
        let start = self.entries.partition_point(|e| e.last_offset < from);
        self.entries
            .range(start..)
            // No entry ending this far past `upper` can have started before it.
            .take_while(|e| e.last_offset - self.max_span < upper)
            .filter(|e| e.first_offset < upper)
            .copied()
            .collect()
    }

    /// fsyncs the index file (when it exists).
    pub fn flush(&self) -> Result<(), LogError> {
        match File::open(&self.path) {
            Ok(f) => f
                .sync_all()
                .map_err(io_err("cannot fsync aborted-transaction index", &self.path)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("cannot open aborted-transaction index", &self.path)(
                e,
            )),
        }
    }

    /// Replaces the file with the in-memory entries (temp file, then rename).
    fn rewrite(&self) -> Result<(), LogError> {
        let mut bytes = Vec::with_capacity(self.entries.len() * ENTRY_LEN);
        for e in &self.entries {
            bytes.extend_from_slice(&e.encode());
        }
        replace_file(&self.path, &bytes)
    }
}

/// The transaction state of a partition as of `offset`: replaying the log from `offset` on top
/// of it gives the current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnCheckpoint {
    /// Everything below this offset is accounted for.
    pub offset: i64,
    /// Number of index entries at that point (all with `last_offset < offset`).
    pub aborted_entries: usize,
    /// Open transactions at that point: (producer id, first offset).
    pub ongoing: Vec<(i64, i64)>,
}

impl TxnCheckpoint {
    /// Reads the checkpoint of the partition in `dir`; `None` when missing or malformed (a
    /// warning is logged for the latter).
    pub fn read(dir: &Path) -> Option<TxnCheckpoint> {
        let path = dir.join(TXN_CHECKPOINT_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "ignoring unreadable checkpoint");
                return None;
            }
        };
        let parsed = Self::parse(&text);
        if parsed.is_none() {
            tracing::warn!(file = %path.display(), "ignoring malformed transaction checkpoint");
        }
        parsed
    }

    fn parse(text: &str) -> Option<TxnCheckpoint> {
        let mut lines = text.lines();
        if lines.next()? != CHECKPOINT_VERSION {
            return None;
        }
        let mut field = |name: &str| -> Option<i64> {
            let (key, value) = lines.next()?.split_once(' ')?;
            (key == name).then(|| value.parse().ok())?
        };
        let offset = field("offset").filter(|&o| o >= 0)?;
        let aborted_entries = usize::try_from(field("aborted")?).ok()?;
        let count = usize::try_from(field("ongoing")?).ok()?;
        let mut ongoing = Vec::with_capacity(count.min(1 << 16));
        for _ in 0..count {
            let (pid, first) = lines.next()?.split_once(' ')?;
            ongoing.push((pid.parse().ok()?, first.parse().ok()?));
        }
        (lines.next() == Some("end")).then_some(TxnCheckpoint {
            offset,
            aborted_entries,
            ongoing,
        })
    }

    /// Writes the checkpoint of the partition in `dir` (temp file, then rename; no fsync).
    pub fn write(&self, dir: &Path) -> Result<(), LogError> {
        use std::fmt::Write as _;
        let mut text = format!(
            "{CHECKPOINT_VERSION}\noffset {}\naborted {}\nongoing {}\n",
            self.offset,
            self.aborted_entries,
            self.ongoing.len()
        );
        for (pid, first) in &self.ongoing {
            let _ = writeln!(text, "{pid} {first}");
        }
        text.push_str("end\n");
        replace_file(&dir.join(TXN_CHECKPOINT_FILE), text.as_bytes())
    }

    /// Deletes the checkpoint of the partition in `dir`, so the next recovery replays from the
    /// log start.
    pub fn remove(dir: &Path) -> Result<(), LogError> {
        let path = dir.join(TXN_CHECKPOINT_FILE);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(io_err("cannot remove transaction checkpoint", &path)(e))
            }
            _ => Ok(()),
        }
    }
}

/// Replaces `path` with `bytes` through a `.tmp` file and a rename (a leftover `.tmp` is removed
/// when the partition is opened).
fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), LogError> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes).map_err(io_err("cannot write temporary file", &tmp))?;
    fs::rename(&tmp, path).map_err(io_err("cannot replace transaction file", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pid: i64, first: i64, last: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: last + 1,
        }
    }

    #[test]
    fn entries_survive_reopen_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = TxnIndex::open(dir.path()).unwrap();
        assert!(index.is_empty());
        index.append(entry(1, 0, 5)).unwrap();
        index.append(entry(2, 3, 9)).unwrap();
        let reopened = TxnIndex::open(dir.path()).unwrap();
        assert_eq!(
            reopened.entries().iter().copied().collect::<Vec<_>>(),
            vec![entry(1, 0, 5), entry(2, 3, 9)]
        );
        // Half an entry, as kill -9 mid-write could leave.
        let path = dir.path().join(ABORTED_INDEX_FILE);
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend_from_slice(&entry(3, 10, 12).encode()[..20]);
        fs::write(&path, &bytes).unwrap();
        let cut = TxnIndex::open(dir.path()).unwrap();
        assert_eq!(cut.len(), 2);
        assert_eq!(fs::metadata(&path).unwrap().len(), 2 * ENTRY_LEN as u64);
    }

    #[test]
    fn overlapping_entries_follow_kafkas_rule() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = TxnIndex::open(dir.path()).unwrap();
        index.append(entry(1, 0, 4)).unwrap();
        index.append(entry(2, 2, 10)).unwrap();
        index.append(entry(3, 20, 30)).unwrap();
        let pids = |v: Vec<AbortedTxn>| v.iter().map(|e| e.producer_id).collect::<Vec<_>>();
        assert_eq!(pids(index.overlapping(0, 100)), vec![1, 2, 3]);
        assert_eq!(pids(index.overlapping(5, 20)), vec![2]);
        assert_eq!(pids(index.overlapping(5, 21)), vec![2, 3]);
        assert_eq!(pids(index.overlapping(11, 20)), Vec::<i64>::new());
        assert_eq!(pids(index.overlapping(0, 1)), vec![1]);
        assert!(index.retain(|e| e.last_offset >= 5).unwrap());
        assert_eq!(TxnIndex::open(dir.path()).unwrap().len(), 2);
    }

    #[test]
    fn checkpoint_round_trips_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(TxnCheckpoint::read(dir.path()), None);
        let c = TxnCheckpoint {
            offset: 42,
            aborted_entries: 3,
            ongoing: vec![(7, 30), (9, 41)],
        };
        c.write(dir.path()).unwrap();
        assert_eq!(TxnCheckpoint::read(dir.path()), Some(c));
        fs::write(
            dir.path().join(TXN_CHECKPOINT_FILE),
            "kbroker-transactions 0\noffset 4\n",
        )
        .unwrap();
        assert_eq!(TxnCheckpoint::read(dir.path()), None);
        TxnCheckpoint::remove(dir.path()).unwrap();
        TxnCheckpoint::remove(dir.path()).unwrap();
        assert_eq!(TxnCheckpoint::read(dir.path()), None);
    }
}
