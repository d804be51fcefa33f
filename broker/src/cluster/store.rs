//! Durable Raft storage under `metadata_dir` (openraft v2 storage API).
//!
//! Files:
//! - `vote.json`, `committed.json`, `purged.json`: small values, each replaced atomically
//!   (write a temp file, fsync, rename, fsync the directory), so a crash leaves the old or the new.
//! - `raft.log`: append-only entries, each `u32 len | u32 crc32c | json`. Appends are fsynced
//!   before openraft is told they are flushed. On open, a torn or corrupt tail (a crash mid-append)
//!   is cut off; that tail was never acknowledged. Truncation cuts the file at the first removed
//!   entry; purge rewrites the file without the purged prefix (temp + rename) after recording the
//!   purge point, so a crash between the two only leaves entries that load skips.
//! - `snapshot.json`: the last snapshot (meta + the image as JSON), replaced atomically.
//!
//! The metadata log is small (brokers and topics, not messages), so all entries are also kept in
//! memory and the I/O is done inline.
//!
//! The state machine itself is not persisted beyond snapshots: on restart openraft replays the log
//! from the snapshot up to the saved committed id, which rebuilds the same image.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Cursor, Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{
    BasicNode, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, LogState, OptionalSend,
    RaftLogReader, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StoredMembership,
    Vote,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::image::ClusterImage;
use super::TypeConfig;

type NodeId = u64;
type SErr = StorageError<NodeId>;

const LOG_FILE: &str = "raft.log";
const VOTE_FILE: &str = "vote.json";
const COMMITTED_FILE: &str = "committed.json";
const PURGED_FILE: &str = "purged.json";
const SNAPSHOT_FILE: &str = "snapshot.json";
/// An entry larger than this on disk is treated as corruption.
const MAX_ENTRY: u32 = 64 << 20;

fn err(subject: ErrorSubject<NodeId>, verb: ErrorVerb, e: io::Error) -> SErr {
    StorageError::from_io_error(subject, verb, e)
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Replaces `dir/name` with `bytes` atomically and durably.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()
}

fn read_json<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| invalid(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn encode_entry(entry: &Entry<TypeConfig>) -> io::Result<Vec<u8>> {
    let json = serde_json::to_vec(entry).map_err(invalid)?;
    let mut out = Vec::with_capacity(json.len() + 8);
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&json).to_be_bytes());
    out.extend_from_slice(&json);
    Ok(out)
}

/// Decodes entries from a log file image; returns them with their offsets and the end of the
/// last valid entry (where a torn tail begins).
fn decode_entries(buf: &[u8]) -> (Vec<(u64, Entry<TypeConfig>)>, u64) {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while buf.len() - pos >= 8 {
        let len = u32::from_be_bytes([buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]]);
        let crc = u32::from_be_bytes([buf[pos + 4], buf[pos + 5], buf[pos + 6], buf[pos + 7]]);
        if len > MAX_ENTRY || buf.len() - pos - 8 < len as usize {
            break;
        }
        let body = &buf[pos + 8..pos + 8 + len as usize];
        if crc32c::crc32c(body) != crc {
            break;
        }
        match serde_json::from_slice::<Entry<TypeConfig>>(body) {
            Ok(e) => out.push((pos as u64, e)),
            Err(_) => break,
        }
        pos += 8 + len as usize;
    }
    (out, pos as u64)
}

/// The Raft log and vote. Cloning shares the same store (the clone is the log reader).
#[derive(Clone)]
pub(crate) struct LogStore {
    inner: Arc<Mutex<LogInner>>,
}

struct LogInner {
    dir: PathBuf,
    file: File,
    /// index -> (file offset, entry)
    entries: BTreeMap<u64, (u64, Entry<TypeConfig>)>,
    /// Length of the valid part of the file.
    end: u64,
    last_purged: Option<LogId<NodeId>>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
}

impl LogStore {
    /// Opens (or creates) the log in `dir`. The bool is true when there was no log, vote or
    /// purge record at all (a node that never joined).
    pub(crate) fn open(dir: &Path) -> io::Result<(LogStore, bool)> {
        let path = dir.join(LOG_FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        let (decoded, end) = decode_entries(&buf);
        if end < buf.len() as u64 {
            tracing::warn!(
                "{}: cutting {} bytes of torn or corrupt tail at offset {end}",
                path.display(),
                buf.len() as u64 - end
            );
            file.set_len(end)?;
            file.sync_all()?;
        }
        let last_purged: Option<LogId<NodeId>> = read_json(&dir.join(PURGED_FILE))?;
        let vote: Option<Vote<NodeId>> = read_json(&dir.join(VOTE_FILE))?;
        let committed: Option<LogId<NodeId>> = read_json(&dir.join(COMMITTED_FILE))?;
        let purged_index = last_purged.map(|l| l.index);
        let entries: BTreeMap<_, _> = decoded
            .into_iter()
            .filter(|(_, e)| purged_index.is_none_or(|p| e.log_id.index > p))
            .map(|(off, e)| (e.log_id.index, (off, e)))
            .collect();
        let fresh = entries.is_empty() && last_purged.is_none() && vote.is_none();
        let inner = LogInner {
            dir: dir.to_path_buf(),
            file,
            entries,
            end,
            last_purged,
            vote,
            committed,
        };
        Ok((
            LogStore {
                inner: Arc::new(Mutex::new(inner)),
            },
            fresh,
        ))
    }

    fn lock(&self) -> MutexGuard<'_, LogInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + std::fmt::Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, SErr> {
        Ok(self
            .lock()
            .entries
            .range(range)
            .map(|(_, (_, e))| e.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, SErr> {
        let g = self.lock();
        let last = g
            .entries
            .values()
            .next_back()
            .map(|(_, e)| e.log_id)
            .or(g.last_purged);
        Ok(LogState {
            last_purged_log_id: g.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), SErr> {
        let mut g = self.lock();
        let bytes = serde_json::to_vec(vote)
            .map_err(|e| err(ErrorSubject::Vote, ErrorVerb::Write, invalid(e)))?;
        write_atomic(&g.dir, VOTE_FILE, &bytes)
            .map_err(|e| err(ErrorSubject::Vote, ErrorVerb::Write, e))?;
        g.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, SErr> {
        Ok(self.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), SErr> {
        let mut g = self.lock();
        let bytes = serde_json::to_vec(&committed)
            .map_err(|e| err(ErrorSubject::Store, ErrorVerb::Write, invalid(e)))?;
        write_atomic(&g.dir, COMMITTED_FILE, &bytes)
            .map_err(|e| err(ErrorSubject::Store, ErrorVerb::Write, e))?;
        g.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, SErr> {
        Ok(self.lock().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut g = self.lock();
        let mut buf = Vec::new();
        let mut new = Vec::new();
        for e in entries {
            let off = g.end + buf.len() as u64;
            buf.extend_from_slice(
                &encode_entry(&e).map_err(|x| err(ErrorSubject::Logs, ErrorVerb::Write, x))?,
            );
            new.push((off, e));
        }
        let res = g.file.write_all(&buf).and_then(|_| g.file.sync_data());
        match res {
            Ok(()) => {
                g.end += buf.len() as u64;
                for (off, e) in new {
                    g.entries.insert(e.log_id.index, (off, e));
                }
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                // Leave the file as it was so a partial write cannot be mistaken for entries.
                let end = g.end;
                let _ = g.file.set_len(end);
                callback.log_io_completed(Err(io::Error::new(e.kind(), e.to_string())));
                Err(err(ErrorSubject::Logs, ErrorVerb::Write, e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), SErr> {
        let mut g = self.lock();
        let Some(off) = g
            .entries
            .range(log_id.index..)
            .next()
            .map(|(_, (off, _))| *off)
        else {
            return Ok(());
        };
        g.file
            .set_len(off)
            .and_then(|_| g.file.sync_all())
            .map_err(|e| err(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        g.end = off;
        g.entries.retain(|i, _| *i < log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), SErr> {
        let mut g = self.lock();
        let e = |x| err(ErrorSubject::Logs, ErrorVerb::Delete, x);
        let bytes = serde_json::to_vec(&log_id).map_err(|x| e(invalid(x)))?;
        write_atomic(&g.dir, PURGED_FILE, &bytes).map_err(e)?;
        g.last_purged = Some(log_id);
        g.entries.retain(|i, _| *i > log_id.index);
        // Rewrite the file with the remaining entries.
        let mut buf = Vec::new();
        let mut offsets = Vec::new();
        for (i, (_, entry)) in g.entries.iter() {
            offsets.push((*i, buf.len() as u64));
            buf.extend_from_slice(&encode_entry(entry).map_err(e)?);
        }
        let dir = g.dir.clone();
        write_atomic(&dir, LOG_FILE, &buf).map_err(e)?;
        g.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(dir.join(LOG_FILE))
            .map_err(e)?;
        g.end = buf.len() as u64;
        for (i, off) in offsets {
            if let Some(slot) = g.entries.get_mut(&i) {
                slot.0 = off;
            }
        }
        Ok(())
    }
}

/// A snapshot as stored in `snapshot.json`.
#[derive(Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
    /// The image as JSON (what is sent to followers).
    data: Vec<u8>,
}

/// The state machine: the image, last applied id and membership; publishes every new image.
#[derive(Clone)]
pub(crate) struct StateMachine {
    inner: Arc<Mutex<SmInner>>,
    tx: Arc<watch::Sender<Arc<ClusterImage>>>,
}

struct SmInner {
    dir: PathBuf,
    image: ClusterImage,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    snapshot: Option<StoredSnapshot>,
    /// Snapshots built by this process, for unique ids.
    built: u64,
}

impl StateMachine {
    /// Loads the last snapshot from `dir`, if any.
    pub(crate) fn open(
        dir: &Path,
    ) -> io::Result<(StateMachine, watch::Receiver<Arc<ClusterImage>>)> {
        let snapshot: Option<StoredSnapshot> = read_json(&dir.join(SNAPSHOT_FILE))?;
        let (image, last_applied, membership) = match &snapshot {
            Some(s) => (
                serde_json::from_slice(&s.data)
                    .map_err(|e| invalid(format!("{SNAPSHOT_FILE}: {e}")))?,
                s.meta.last_log_id,
                s.meta.last_membership.clone(),
            ),
            None => (ClusterImage::default(), None, StoredMembership::default()),
        };
        let (tx, rx) = watch::channel(Arc::new(image.clone()));
        let inner = SmInner {
            dir: dir.to_path_buf(),
            image,
            last_applied,
            membership,
            snapshot,
            built: 0,
        };
        Ok((
            StateMachine {
                inner: Arc::new(Mutex::new(inner)),
                tx: Arc::new(tx),
            },
            rx,
        ))
    }

    /// True when no snapshot was loaded.
    pub(crate) fn has_no_snapshot(&self) -> bool {
        self.lock().snapshot.is_none()
    }

    fn lock(&self) -> MutexGuard<'_, SmInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SErr> {
        let mut g = self.lock();
        let e = |x| err(ErrorSubject::Snapshot(None), ErrorVerb::Write, x);
        let data = serde_json::to_vec(&g.image).map_err(|x| e(invalid(x)))?;
        g.built += 1;
        let snapshot_id = match g.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, g.built),
            None => format!("none-{}", g.built),
        };
        let meta = SnapshotMeta {
            last_log_id: g.last_applied,
            last_membership: g.membership.clone(),
            snapshot_id,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        };
        let bytes = serde_json::to_vec(&stored).map_err(|x| e(invalid(x)))?;
        write_atomic(&g.dir, SNAPSHOT_FILE, &bytes).map_err(e)?;
        g.snapshot = Some(stored);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), SErr> {
        let g = self.lock();
        Ok((g.last_applied, g.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut g = self.lock();
        let mut out = Vec::new();
        for entry in entries {
            g.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(batch) => {
                    for r in &batch.0 {
                        g.image.apply(r);
                    }
                }
                EntryPayload::Membership(m) => {
                    g.membership = StoredMembership::new(Some(entry.log_id), m)
                }
            }
            out.push(());
        }
        let image = Arc::new(g.image.clone());
        drop(g);
        self.tx.send_replace(image);
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, SErr> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), SErr> {
        let e = |x| {
            err(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Write,
                x,
            )
        };
        let data = snapshot.into_inner();
        let image: ClusterImage = serde_json::from_slice(&data).map_err(|x| e(invalid(x)))?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        let bytes = serde_json::to_vec(&stored).map_err(|x| e(invalid(x)))?;
        let mut g = self.lock();
        write_atomic(&g.dir, SNAPSHOT_FILE, &bytes).map_err(e)?;
        g.image = image;
        g.last_applied = meta.last_log_id;
        g.membership = meta.last_membership.clone();
        g.snapshot = Some(stored);
        let image = Arc::new(g.image.clone());
        drop(g);
        self.tx.send_replace(image);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, SErr> {
        Ok(self.lock().snapshot.clone().map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, LogId};

    fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    fn indexes(store: &LogStore) -> Vec<u64> {
        store.lock().entries.keys().copied().collect()
    }

    #[test]
    fn torn_tail_is_cut_and_entries_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, fresh) = LogStore::open(dir.path()).unwrap();
            assert!(fresh);
            let mut g = store.lock();
            for i in 1..=3 {
                let bytes = encode_entry(&entry(1, i)).unwrap();
                g.file.write_all(&bytes).unwrap();
            }
        }
        // A crash mid-append: half an entry at the end.
        let half = encode_entry(&entry(1, 4)).unwrap();
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(LOG_FILE))
            .unwrap();
        f.write_all(&half[..half.len() / 2]).unwrap();
        drop(f);
        let (store, fresh) = LogStore::open(dir.path()).unwrap();
        assert!(!fresh);
        assert_eq!(indexes(&store), vec![1, 2, 3]);
        let len = fs::metadata(dir.path().join(LOG_FILE)).unwrap().len();
        assert_eq!(len, store.lock().end, "the torn tail is cut from the file");
    }

    #[tokio::test]
    async fn truncate_and_purge_persist() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = LogStore::open(dir.path()).unwrap();
        {
            let mut g = store.lock();
            for i in 1..=6 {
                let bytes = encode_entry(&entry(1, i)).unwrap();
                let off = g.end;
                g.file.write_all(&bytes).unwrap();
                g.end += bytes.len() as u64;
                g.entries.insert(i, (off, entry(1, i)));
            }
        }
        store.truncate(entry(1, 5).log_id).await.unwrap();
        store.purge(entry(1, 2).log_id).await.unwrap();
        store.save_vote(&Vote::new(3, 2)).await.unwrap();
        drop(store);
        let (mut store, _) = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&store), vec![3, 4]);
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(2));
        assert_eq!(state.last_log_id.map(|l| l.index), Some(4));
        assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(3, 2)));
    }
}
