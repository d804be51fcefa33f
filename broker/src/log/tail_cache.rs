//! The read cache of a partition log: the most recently appended batches of the active
//! segment, kept as the `Bytes` that were written, so that the fetches that follow an append
//! from followers copying the leader are answered from memory instead of re-reading what was
//! just written (an index lookup, header `pread`s, a zeroed buffer and a `pread` of the range
//! per fetch). Consumers always read the segment files
//! ([`super::PartitionLog::read_limited`]): a byte damaged on disk after the append must reach
//! them (kbench's verification catches corruption that way), and a copy in memory would hide
//! it; what a follower copies is what this leader appended.
//!
//! What it holds is always a contiguous run of whole batches ending at the log end, all in
//! the active segment: [`super::PartitionLog`] pushes every successful append and clears the
//! cache on anything else that changes the active segment or what is readable (roll,
//! truncation, a full restart of the log, compaction installs, log-start moves). Clearing is
//! the only form of invalidation, so the cache can never answer with bytes the file no longer
//! holds; a read it cannot answer whole goes to the file. Its answers are exactly the file
//! read's ([`TailCache::read`] applies the same whole-batch and limit rules), which the tests
//! in `partition_log` check offset by offset.
//!
//! Bounded in bytes (the oldest appends are dropped first); an append larger than the bound
//! empties it. All caches of the process together hold at most [`ALL_CACHES_BYTES`]: a broker
//! leading thousands of partitions would otherwise keep a few MiB of each. A cache that cannot
//! take an append within that budget, even after dropping its own older appends, empties itself
//! (it must stay a contiguous run ending at the log end), and reads go to the file. A disabled
//! cache (a follower's log: nothing fetches from it) holds nothing.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};

use super::batch::BatchHeader;

/// Most bytes all the read caches of the process hold together.
pub(super) const ALL_CACHES_BYTES: usize = 256 << 20;

/// Bytes that several caches share: at most `max` held by all of them together.
#[derive(Debug)]
pub(super) struct Budget {
    max: usize,
    held: AtomicUsize,
}

impl Budget {
    pub(super) const fn new(max: usize) -> Budget {
        Budget {
            max,
            held: AtomicUsize::new(0),
        }
    }

    /// Takes `len` bytes if they fit.
    fn take(&self, len: usize) -> bool {
        self.held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                (held + len <= self.max).then_some(held + len)
            })
            .is_ok()
    }

    fn give_back(&self, len: usize) {
        self.held.fetch_sub(len, Ordering::Relaxed);
    }
}

/// The budget of every cache of the process.
static ALL_CACHES: Budget = Budget::new(ALL_CACHES_BYTES);

/// One cached batch, located in its chunk.
#[derive(Debug, Clone, Copy)]
struct CachedBatch {
    /// Offset of its first record.
    base_offset: i64,
    /// Offset of its last record.
    last_offset: i64,
    /// Byte position in the chunk.
    start: usize,
    /// Total size in bytes.
    len: usize,
}

/// The bytes of one append and the batches in them.
#[derive(Debug)]
struct Chunk {
    /// Exactly what was written to the segment.
    data: Bytes,
    /// The batches of `data`, in order; never empty.
    batches: Vec<CachedBatch>,
}

/// See the module docs.
#[derive(Debug)]
pub(super) struct TailCache {
    /// Largest number of bytes held.
    limit: usize,
    /// Whether appends are kept at all.
    enabled: bool,
    /// Base offset of the segment the chunks belong to.
    segment_base: i64,
    /// Appends, oldest first, each starting where the previous one ended.
    chunks: VecDeque<Chunk>,
    /// Sum of the chunks' lengths.
    bytes: usize,
    /// Shared with the other caches.
    budget: &'static Budget,
}

impl TailCache {
    /// An empty, enabled cache holding at most `limit` bytes, within the process's budget.
    pub(super) fn new(limit: usize) -> Self {
        Self::with_budget(limit, &ALL_CACHES)
    }

    /// An empty, enabled cache holding at most `limit` bytes, within `budget`.
    fn with_budget(limit: usize, budget: &'static Budget) -> Self {
        TailCache {
            limit,
            enabled: true,
            segment_base: 0,
            chunks: VecDeque::new(),
            bytes: 0,
            budget,
        }
    }

    /// Turns caching on or off; off also empties the cache.
    pub(super) fn set_enabled(&mut self, enabled: bool) {
        self.enabled = enabled;
        if !enabled {
            self.clear();
        }
    }

    /// Forgets everything.
    pub(super) fn clear(&mut self) {
        self.chunks.clear();
        self.budget.give_back(self.bytes);
        self.bytes = 0;
    }

    /// Drops the oldest append; false when there is none.
    fn drop_oldest(&mut self) -> bool {
        match self.chunks.pop_front() {
            Some(old) => {
                self.bytes -= old.data.len();
                self.budget.give_back(old.data.len());
                true
            }
            None => false,
        }
    }

    /// Bytes held.
    #[cfg(test)]
    pub(super) fn len_bytes(&self) -> usize {
        self.bytes
    }

    /// Keeps `data`, just appended to the segment based at `segment_base` right after what the
    /// cache holds, with `headers` describing its batches (offsets assigned).
    pub(super) fn push(&mut self, segment_base: i64, data: Bytes, headers: &[BatchHeader]) {
        if !self.enabled || headers.is_empty() {
            return;
        }
        if segment_base != self.segment_base || data.len() > self.limit {
            self.clear();
            self.segment_base = segment_base;
            if data.len() > self.limit {
                return;
            }
        }
        let mut start = 0;
        let mut batches = Vec::with_capacity(headers.len());
        for h in headers {
            batches.push(CachedBatch {
                base_offset: h.base_offset,
                last_offset: h.last_offset(),
                start,
                len: h.len_total(),
            });
            start += h.len_total();
        }
        if start != data.len() {
            // Headers that do not describe the data: keep nothing rather than guess.
            self.clear();
            return;
        }
        while self.bytes + data.len() > self.limit && self.drop_oldest() {}
        // The process-wide budget: make room from this cache's own older appends; if that is
        // not enough, hold nothing (the cache must end at the log end).
        let len = data.len();
        while !self.budget.take(len) {
            if !self.drop_oldest() {
                return;
            }
        }
        self.bytes += len;
        self.chunks.push_back(Chunk { data, batches });
    }

    /// What [`super::PartitionLog::read_limited`] would read from the file, when the cache
    /// holds the batch containing `offset` (or the first one after it); `None` otherwise. The
    /// caller has checked that `offset` lies in `[log start, log end)`.
    pub(super) fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        upper_bound: i64,
        first_may_exceed: bool,
    ) -> Option<Bytes> {
        let oldest = self.chunks.front()?.batches.first()?;
        if offset < oldest.base_offset {
            return None;
        }
        // The chunk and batch holding `offset`: the first batch whose last offset reaches it.
        let chunk_at = self
            .chunks
            .partition_point(|c| c.batches.last().is_some_and(|b| b.last_offset < offset));
        let chunk = self.chunks.get(chunk_at)?;
        let batch_at = chunk.batches.partition_point(|b| b.last_offset < offset);
        let first = chunk.batches.get(batch_at)?;
        if first.base_offset >= upper_bound || (!first_may_exceed && first.len > max_bytes) {
            return Some(Bytes::new());
        }
        // As the file read: `max_bytes` (at least the first batch) of the segment from the first
        // batch on, cut to the whole batches below `upper_bound`.
        let available = chunk.data.len() - first.start
            + self
                .chunks
                .iter()
                .skip(chunk_at + 1)
                .map(|c| c.data.len())
                .sum::<usize>();
        let read_len = max_bytes.min(available).max(first.len);
        let mut end = 0;
        let following = self
            .chunks
            .iter()
            .skip(chunk_at)
            .enumerate()
            .flat_map(|(i, c)| {
                let skip = if i == 0 { batch_at } else { 0 };
                c.batches.iter().skip(skip)
            });
        for (i, b) in following.enumerate() {
            if i > 0 && (b.base_offset >= upper_bound || end + b.len > read_len) {
                break;
            }
            end += b.len;
        }
        Some(self.gather(chunk_at, first.start, end))
    }

    /// `len` bytes from position `start` of chunk `chunk_at` on: a slice of that chunk when
    /// they lie in it, else one copy of the pieces.
    fn gather(&self, chunk_at: usize, start: usize, len: usize) -> Bytes {
        let mut chunks = self.chunks.iter().skip(chunk_at);
        let Some(first) = chunks.next() else {
            return Bytes::new();
        };
        if start + len <= first.data.len() {
            return first.data.slice(start..start + len);
        }
        let mut out = BytesMut::with_capacity(len);
        out.extend_from_slice(&first.data[start..]);
        for c in chunks {
            let want = len - out.len();
            if want == 0 {
                break;
            }
            out.extend_from_slice(&c.data[..want.min(c.data.len())]);
        }
        out.freeze()
    }
}

impl Drop for TailCache {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::tests::sample_batch;
    use crate::log::batch::{self, BatchHeader};

    /// `n` one-record batches from offset `base`, as one append.
    fn append(cache: &mut TailCache, base: i64, n: usize) -> Bytes {
        let mut data = BytesMut::new();
        let mut headers = Vec::new();
        for i in 0..n {
            let mut b = BytesMut::from(&sample_batch(1, 100, 0)[..]);
            batch::set_base_offset(&mut b, base + i as i64).expect("offset");
            headers.push(BatchHeader::parse(&b).expect("header"));
            data.extend_from_slice(&b);
        }
        let data = data.freeze();
        cache.push(0, data.clone(), &headers);
        data
    }

    #[test]
    fn the_oldest_appends_go_first_when_the_bound_is_reached() {
        let one = sample_batch(1, 100, 0).len();
        let mut cache = TailCache::new(5 * one);
        append(&mut cache, 0, 2);
        append(&mut cache, 2, 2);
        assert!(cache.read(0, 1 << 20, i64::MAX, true).is_some());
        append(&mut cache, 4, 2);
        // Offsets 0 and 1 were dropped whole with their append.
        assert_eq!(cache.len_bytes(), 4 * one);
        assert!(cache.read(1, 1 << 20, i64::MAX, true).is_none());
        let read = cache.read(2, 1 << 20, i64::MAX, true).expect("cached");
        assert_eq!(read.len(), 4 * one);
        // An append larger than the bound empties the cache.
        append(&mut cache, 6, 6);
        assert_eq!(cache.len_bytes(), 0);
        assert!(cache.read(6, 1 << 20, i64::MAX, true).is_none());
    }

    #[test]
    fn caches_share_one_budget_and_one_that_cannot_fit_holds_nothing() {
        let one = sample_batch(1, 100, 0).len();
        let budget: &'static Budget = Box::leak(Box::new(Budget::new(5 * one)));
        let mut a = TailCache::with_budget(1 << 20, budget);
        let mut b = TailCache::with_budget(1 << 20, budget);
        append(&mut a, 0, 3);
        append(&mut b, 0, 2);
        assert_eq!(budget.held.load(Ordering::Relaxed), 5 * one);
        // `a` makes room from its own older appends.
        append(&mut a, 3, 1);
        assert_eq!(a.len_bytes(), one);
        assert!(a.read(0, 1 << 20, i64::MAX, true).is_none());
        assert!(a.read(3, 1 << 20, i64::MAX, true).is_some());
        // `b` needs five with one held by `a`: even without its own two it cannot fit, so it
        // holds nothing.
        append(&mut b, 2, 5);
        assert_eq!(b.len_bytes(), 0);
        assert!(b.read(2, 1 << 20, i64::MAX, true).is_none());
        assert_eq!(budget.held.load(Ordering::Relaxed), one);
        // Clearing and dropping give the bytes back.
        a.clear();
        assert_eq!(budget.held.load(Ordering::Relaxed), 0);
        append(&mut b, 7, 4);
        assert_eq!(b.len_bytes(), 4 * one);
        drop(b);
        assert_eq!(budget.held.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_read_within_one_append_shares_its_bytes() {
        let mut cache = TailCache::new(1 << 20);
        let data = append(&mut cache, 10, 3);
        let read = cache.read(11, 1 << 20, i64::MAX, true).expect("cached");
        let one = data.len() / 3;
        assert_eq!(read.as_ptr(), data[one..].as_ptr());
        assert_eq!(read.len(), 2 * one);
    }
}
