//! Producer id allocation for idempotent and transactional producers.
//!
//! Ids must never be handed out twice, also across restarts and crashes, or a new producer
//! could be mistaken for an old one's retries. Ids are therefore reserved in blocks: the end of
//! the current block is written (and fsynced) to `kbroker-producer-ids` before any id of the
//! block is given out, and a restart begins at the next block, skipping whatever was unused.
//!
//! In a cluster every broker answers InitProducerId, so each allocates from its own range: ids
//! of broker `n` are `n << 32` plus its local counter. Kafka gets the same guarantee by having
//! the controller hand out blocks (KIP-730); disjoint ranges need no round trip and survive a
//! controller change trivially.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Ids reserved per write of the block file.
const BLOCK: i64 = 1000;
const FILE: &str = "kbroker-producer-ids";

/// Hands out producer ids.
pub(crate) struct ProducerIds {
    path: PathBuf,
    /// Added to every id handed out (this broker's range in a cluster; 0 alone).
    base: i64,
    /// (next id to give, end of the reserved block, exclusive).
    state: Mutex<(i64, i64)>,
}

impl ProducerIds {
    /// Opens the allocator whose block file is in `dir`; ids start at `base`.
    pub(crate) fn open(dir: &Path, base: i64) -> std::io::Result<Self> {
        let path = dir.join(FILE);
        let end = match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<i64>().map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: not a producer id ({e})", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok(ProducerIds {
            path,
            base,
            state: Mutex::new((end, end)),
        })
    }

    /// A producer id never given out before.
    pub(crate) fn allocate(&self) -> std::io::Result<i64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.0 == state.1 {
            let end = state.1 + BLOCK;
            let tmp = self.path.with_extension("tmp");
            std::fs::write(&tmp, format!("{end}\n"))?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            state.1 = end;
        }
        let id = state.0;
        state.0 += 1;
        Ok(self.base + id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let a = ProducerIds::open(dir.path(), 0).unwrap();
        let first: Vec<i64> = (0..3).map(|_| a.allocate().unwrap()).collect();
        assert_eq!(first, vec![0, 1, 2]);
        drop(a);
        let b = ProducerIds::open(dir.path(), 0).unwrap();
        let next = b.allocate().unwrap();
        assert!(next > 2, "id {next} reused after restart");
    }

    #[test]
    fn brokers_of_a_cluster_allocate_from_disjoint_ranges() {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let one = ProducerIds::open(d1.path(), 1 << 32).unwrap();
        let two = ProducerIds::open(d2.path(), 2 << 32).unwrap();
        let a: Vec<i64> = (0..3).map(|_| one.allocate().unwrap()).collect();
        let b: Vec<i64> = (0..3).map(|_| two.allocate().unwrap()).collect();
        assert_eq!(a[0], 1 << 32);
        assert!(
            a.iter().all(|id| !b.contains(id)),
            "{a:?} and {b:?} overlap"
        );
    }

    #[test]
    fn a_corrupt_block_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), "garbage").unwrap();
        let e = ProducerIds::open(dir.path(), 0).err().unwrap().to_string();
        assert!(e.contains(FILE), "{e}");
    }
}
