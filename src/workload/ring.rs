//! A producer's ring of message buffers that librdkafka reads in place.
//!
//! Building a message in memory librdkafka allocates (or having librdkafka copy it) costs a
//! `malloc`, a write of the whole message into cold memory (page faults included) and a `free`
//! on the delivery-report thread: on a 1 KiB message that was more than half of the sending
//! thread's time, where librdkafka's own `rdkafka_performance` hands the same buffer to every
//! message. A ring cannot share one buffer (every message has its own identity header), but it
//! comes close: the body of a message depends on its `seq` only modulo the filler's
//! [`Filler::period`], and the ring holds a few copies of one period, written once when the ring
//! is made, so sending a message writes its 32-byte header and nothing else. The message goes to
//! librdkafka without `RD_KAFKA_MSG_F_COPY` or `F_FREE`: it reads the buffer until the delivery
//! report, which gives the buffer back ([`PayloadRing::release`]).
//!
//! Message `seq` may take any copy's buffer of its position `seq mod period`: the first free one,
//! starting from its lap's copy. A message whose every copy is still in flight is not waited for:
//! it is built in a scratch buffer and copied by librdkafka as before, so the ring never changes
//! how much the client may queue (the user's `queue.buffering.max.*`). The ring holds one copy
//! more than what librdkafka may queue takes: reports do not come back in send order
//! (partitions' batches complete independently), and with one fixed buffer per message (a ring
//! as long as the queue) a quarter of the messages of a 1-producer run at full speed found theirs
//! still out; it took twice the queue to bring that to 1–3 %, twice the memory to make (fresh
//! pages, which the kernel zeroes) and to keep. All rings of a run share [`RINGS_BYTES`]; a
//! producer whose share is less than one period of messages sends every message copied.
//!
//! The ring lives in the producer's client context, which the client keeps until it is
//! destroyed: a buffer librdkafka still holds when the task ends is freed only after every
//! message is gone.

use std::sync::atomic::{AtomicBool, Ordering};

use memmap2::{Advice, MmapMut};

use super::payload::Filler;

/// Most bytes the rings of all producers of a run take together.
pub const RINGS_BYTES: usize = 256 << 20;

/// See the module docs.
pub struct PayloadRing {
    /// `copies × period × size` bytes of anonymous memory, asked for in huge pages; buffer `i`
    /// at `i × size`, copy `c` of position `j` is buffer `c × period + j`. Kept for its
    /// lifetime; read and written only through `base`.
    _bytes: MmapMut,
    /// Start of the mapping, taken once: every access goes through this pointer, so the sending
    /// thread's writes and librdkafka's reads never go through a Rust reference to the whole.
    base: *mut u8,
    size: usize,
    /// Messages of one period (positions).
    period: u64,
    /// Copies of the period.
    copies: u64,
    /// Buffers: `copies × period`.
    len: u64,
    /// Per buffer: librdkafka holds it (between a send and its delivery report).
    busy: Box<[AtomicBool]>,
}

// SAFETY: the bytes of a buffer are written only by the one sending thread and only while the
// buffer is not busy (`claim`); librdkafka and the delivery-report thread only read a buffer
// while it is busy. `busy` is set before the hand-over (which goes through librdkafka's locked
// queues) and cleared with Release after the last read, and `claim` loads it with Acquire, so a
// write never overlaps a read.
#[allow(unsafe_code)]
unsafe impl Sync for PayloadRing {}
// SAFETY: the ring owns its mapping; `base` points into it and moves with it.
#[allow(unsafe_code)]
unsafe impl Send for PayloadRing {}

impl std::fmt::Debug for PayloadRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayloadRing")
            .field("size", &self.size)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl PayloadRing {
    /// The ring of one of `producers` producers for messages of `producer`, of the filler's
    /// message size `size`: as many copies of a period as `queue_bytes` (what librdkafka may
    /// queue) takes, and one more, within the producer's share of [`RINGS_BYTES`] and the
    /// `messages` it will send, every body in place. `None` when the share is less than one
    /// period, or for messages shorter than the header (no body to reuse).
    pub fn new(
        filler: &Filler,
        producer: u32,
        producers: u32,
        size: usize,
        queue_bytes: usize,
        messages: u64,
    ) -> Option<Self> {
        if size < super::payload::HEADER {
            return None;
        }
        let period = filler.period();
        let period_bytes = period as usize * size;
        let share = RINGS_BYTES / producers.max(1) as usize / period_bytes;
        if share == 0 {
            return None;
        }
        let copies = (queue_bytes.div_ceil(period_bytes) + 1)
            .min(share)
            .min(messages.div_ceil(period).max(1) as usize) as u64;
        let len = period * copies;
        let total = len as usize * size;
        // Huge pages when the kernel gives them (transparent huge pages in `madvise` mode, the
        // usual default): the ring is tens of MiB that the sending thread writes a header into
        // and librdkafka's broker thread reads whole, one message after the other; with 4 KiB
        // pages that is a TLB miss every four messages and 16,384 page faults per 64 MiB to
        // make it. A kernel that refuses the advice just gives normal pages.
        let mut bytes = MmapMut::map_anon(total).ok()?;
        let _ = bytes.advise(Advice::HugePage);
        let first = (period as usize).min(len as usize) * size;
        for (i, buf) in bytes[..first].chunks_exact_mut(size).enumerate() {
            // Any message of buffer i has its body: build message i (its header is rewritten
            // per send).
            filler.build(buf, 0, producer, i as u64, 0);
        }
        // Every later period repeats the first (bodies depend on seq modulo the period), copied
        // from memory that is still in cache.
        let mut done = first;
        while done < total {
            let n = first.min(total - done);
            bytes.copy_within(..n, done);
            done += n;
        }
        let base = bytes.as_mut_ptr();
        let busy = (0..len).map(|_| AtomicBool::new(false)).collect();
        Some(PayloadRing {
            _bytes: bytes,
            base,
            size,
            period,
            copies,
            len,
            busy,
        })
    }

    /// A buffer for message `seq`, with its body in place, that librdkafka does not hold: the
    /// first free copy of its position, starting from its lap's. The caller writes the header,
    /// then hands it to librdkafka ([`PayloadRing::slot_ptr`]) or gives it back
    /// ([`PayloadRing::release_slot`]). Only the sending thread calls this.
    #[allow(unsafe_code, clippy::mut_from_ref)]
    pub fn claim(&self, seq: u64) -> Option<(usize, &mut [u8])> {
        let position = seq % self.period;
        let lap = seq / self.period;
        let i = (0..self.copies)
            .map(|k| ((lap + k) % self.copies * self.period + position) as usize)
            .find(|&i| !self.busy[i].load(Ordering::Acquire))?;
        self.busy[i].store(true, Ordering::Relaxed);
        // SAFETY: see the `Sync` impl: buffer i is not busy until now, so nothing else reads
        // or writes it, and only this (the sending) thread claims buffers.
        let buf = unsafe { std::slice::from_raw_parts_mut(self.start(i), self.size) };
        Some((i, buf))
    }

    /// Where buffer `slot` starts (what librdkafka is given).
    pub fn slot_ptr(&self, slot: usize) -> *const u8 {
        self.start(slot)
    }

    /// Start of buffer `slot`, derived from the mapping's base pointer (so it may address the
    /// whole buffer).
    #[allow(unsafe_code)]
    fn start(&self, slot: usize) -> *mut u8 {
        debug_assert!(slot < self.len as usize, "buffer {slot} of {}", self.len);
        // SAFETY: `slot` comes from `claim` (below `len`), so the offset is within the
        // mapping.
        unsafe { self.base.add(slot * self.size) }
    }

    /// Gives buffer `slot` back (librdkafka refused it).
    pub fn release_slot(&self, slot: usize) {
        self.busy[slot].store(false, Ordering::Release);
    }

    /// A delivery report for the payload at `ptr` arrived: if it is one of the ring's buffers,
    /// it is free again. Call after the last read of the payload.
    pub fn release(&self, ptr: *const u8) {
        let base = self.base as usize;
        let at = ptr as usize;
        if at >= base && at < base + self.len as usize * self.size && (at - base) % self.size == 0 {
            self.busy[(at - base) / self.size].store(false, Ordering::Release);
        }
    }

    /// Bytes of each buffer (the message size).
    pub fn buffer_len(&self) -> usize {
        self.size
    }

    /// Buffers in the ring.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Never: a ring has at least one period of buffers.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::Identity;
    use crate::scenario::PayloadKind;
    use crate::workload::payload::{read_header, Check};

    #[test]
    fn a_claimed_buffer_with_its_header_is_the_message_build_makes() {
        for size in [33, 1024, 5000] {
            let f = Filler::new(PayloadKind::Random, 1.0, size, 3);
            let ring = PayloadRing::new(&f, 2, 1, size, 16 << 20, u64::MAX).expect("ring");
            assert_eq!(ring.len() % f.period(), 0);
            for seq in [0, 1, ring.len() - 1, ring.len(), 3 * ring.len() + 7] {
                let (slot, buf) = ring.claim(seq).expect("free");
                f.build_header(buf, 9, 2, seq, 1234);
                let mut want = vec![0u8; size];
                f.build(&mut want, 9, 2, seq, 1234);
                assert_eq!(buf, &want[..], "size {size} seq {seq}");
                assert!(matches!(Check::new(9).identify(buf), Identity::Ours(_)));
                ring.release(ring.slot_ptr(slot));
            }
        }
    }

    #[test]
    fn a_message_takes_a_free_copy_of_its_position_and_none_when_every_copy_is_out() {
        let f = Filler::new(PayloadKind::Random, 1.0, 1024, 1);
        // A queue of 1 MiB, less than a period: one copy for it and one more.
        let ring = PayloadRing::new(&f, 0, 1, 1024, 1 << 20, u64::MAX).expect("ring");
        let p = f.period();
        assert_eq!(ring.len(), 2 * p);
        let (a, buf) = ring.claim(5).expect("free");
        assert_eq!(a, 5, "lap 0 starts at copy 0");
        f.build_header(buf, 1, 0, 5, 7);
        let (b, _) = ring.claim(5 + p).expect("the other copy");
        assert_eq!(b, (p + 5) as usize, "lap 1 starts at copy 1");
        assert!(ring.claim(5 + 2 * p).is_none(), "both copies are out");
        assert!(ring.claim(6).is_some(), "another position");
        // A pointer that is not a buffer start (or not the ring's) frees nothing.
        ring.release(ring.slot_ptr(a).wrapping_add(1));
        ring.release([0u8; 4].as_ptr());
        assert!(ring.claim(5 + 2 * p).is_none());
        // Read back as the delivery report does, then released by it.
        assert_eq!(read_header(buf_at(&ring, a), 1).expect("ours").seq, 5);
        ring.release(ring.slot_ptr(a));
        let (c, _) = ring.claim(5 + 3 * p).expect("free again");
        assert_eq!(
            c, a,
            "lap 3 starts at copy 1, which is out, and takes copy 0"
        );
        ring.release_slot(b);
        assert_eq!(ring.claim(5 + 4 * p).map(|(s, _)| s), Some(b), "given back");
    }

    #[test]
    fn ring_holds_the_queue_and_one_period_more_within_the_producers_share() {
        let f = Filler::new(PayloadKind::Random, 1.0, 1024, 1);
        let p = f.period();
        assert_eq!(p, 2048);
        let ring = |producers, queue| {
            PayloadRing::new(&f, 0, producers, 1024, queue, u64::MAX).map(|r| r.len())
        };
        assert_eq!(
            ring(1, 32 << 20),
            Some(17 * p),
            "the queue's 16 periods and one"
        );
        assert_eq!(ring(1, 1536 << 10), Some(2 * p), "whole periods");
        assert_eq!(
            ring(1, 1000 << 10),
            Some(2 * p),
            "less than a period, and one"
        );
        assert_eq!(
            ring(1, 1 << 30),
            Some((RINGS_BYTES / 1024) as u64),
            "all of the rings' bytes"
        );
        assert_eq!(
            ring(16, 4 << 20),
            Some(3 * p),
            "16 producers: 2 periods each and one"
        );
        assert_eq!(ring(64, 4 << 20), Some(2 * p), "64: their share");
        assert_eq!(
            ring(1000, 2 << 20),
            None,
            "less than a period each: no ring"
        );
        let short =
            |messages| PayloadRing::new(&f, 0, 1, 1024, 32 << 20, messages).map(|r| r.len());
        assert_eq!(short(10), Some(p), "a short run: one period");
        assert_eq!(short(3 * p + 1), Some(4 * p), "whole periods");
        let tiny = Filler::new(PayloadKind::Zeros, 1.0, 8, 1);
        assert!(
            PayloadRing::new(&tiny, 0, 1, 8, 1 << 20, u64::MAX).is_none(),
            "no body"
        );
    }

    #[allow(unsafe_code)]
    fn buf_at(ring: &PayloadRing, slot: usize) -> &[u8] {
        // SAFETY: test-only read of a buffer no one writes meanwhile.
        unsafe { std::slice::from_raw_parts(ring.slot_ptr(slot), ring.size) }
    }
}
