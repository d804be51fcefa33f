//! Message contents: the identity header every payload starts with, the filler after it, and
//! keys.
//!
//! The identity is a fixed 24-byte little-endian header at the start of the value — cheaper
//! than Kafka headers (no per-message header allocation in librdkafka) and invisible to the
//! broker:
//!
//! | bytes  | field                                                        |
//! |--------|--------------------------------------------------------------|
//! | 0..4   | run tag (random per run; tells this run's messages from others) |
//! | 4..8   | producer index                                               |
//! | 8..16  | sequence number within the producer                          |
//! | 16..24 | (intended) send time, µs since the Unix epoch                 |
//!
//! Filler comes from one pool generated at start (random, compressible or zeros), read at an
//! offset that moves with every message, so building a message is two small copies.

use std::sync::Arc;

use rand::{Rng, SeedableRng};

use crate::measure::Received;
use crate::scenario::{Keys, PayloadKind, IDENTITY_BYTES};

/// Header length in bytes.
pub const HEADER: usize = IDENTITY_BYTES as usize;
const POOL: usize = 4 << 20;

/// Writes the identity header into `buf[..24]`.
pub fn write_header(buf: &mut [u8], run_tag: u32, producer: u32, seq: u64, sent_us: u64) {
    buf[0..4].copy_from_slice(&run_tag.to_le_bytes());
    buf[4..8].copy_from_slice(&producer.to_le_bytes());
    buf[8..16].copy_from_slice(&seq.to_le_bytes());
    buf[16..24].copy_from_slice(&sent_us.to_le_bytes());
}

/// Reads the identity header; `None` when the payload is not one of this run's messages.
pub fn read_header(payload: &[u8], run_tag: u32) -> Option<Received> {
    if payload.len() < HEADER {
        return None;
    }
    let u32_at = |i: usize| u32::from_le_bytes(payload[i..i + 4].try_into().unwrap_or_default());
    let u64_at = |i: usize| u64::from_le_bytes(payload[i..i + 8].try_into().unwrap_or_default());
    if u32_at(0) != run_tag {
        return None;
    }
    let seq = u32::try_from(u64_at(8)).ok()?;
    Some(Received {
        producer: u32_at(4),
        seq,
        sent_us: u64_at(16),
    })
}

/// Filler bytes shared by every producer.
#[derive(Debug, Clone)]
pub struct Filler {
    pool: Arc<Vec<u8>>,
    body: usize,
}

impl Filler {
    /// A pool for messages of `message_size` bytes (header included).
    pub fn new(kind: PayloadKind, compress_ratio: f64, message_size: usize, seed: u64) -> Filler {
        let body = message_size.saturating_sub(HEADER);
        let len = POOL + body;
        let mut pool = vec![0u8; len];
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        match kind {
            PayloadKind::Zeros => {}
            PayloadKind::Random => rng.fill(&mut pool[..]),
            PayloadKind::Compressible => {
                // In every 64-byte block, the first 64/ratio bytes are random, the rest zeros.
                let random = ((64.0 / compress_ratio).round() as usize).clamp(1, 64);
                for block in pool.chunks_mut(64) {
                    let n = random.min(block.len());
                    rng.fill(&mut block[..n]);
                }
            }
        }
        Filler {
            pool: Arc::new(pool),
            body,
        }
    }

    /// Fills `buf` (of `message_size` bytes) after the header for message `seq` of `producer`.
    pub fn fill(&self, buf: &mut [u8], producer: u32, seq: u64) {
        if self.body == 0 {
            return;
        }
        // A multiplicative hash spreads the offsets over the pool, 8-byte aligned.
        let h = (seq.wrapping_add(u64::from(producer) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let offset = ((h >> 20) as usize % (POOL / 8)) * 8;
        buf[HEADER..HEADER + self.body].copy_from_slice(&self.pool[offset..offset + self.body]);
    }
}

/// Chooses the key (and, for round-robin, the partition) of each message.
#[derive(Debug, Clone)]
pub struct KeyChooser {
    keys: Keys,
    key_set: u64,
    partitions: i32,
    buf: Vec<u8>,
}

impl KeyChooser {
    /// A chooser for one producer.
    pub fn new(keys: Keys, key_set: u32, partitions: i32) -> Self {
        KeyChooser {
            keys,
            key_set: u64::from(key_set.max(1)),
            partitions: partitions.max(1),
            buf: Vec::with_capacity(16),
        }
    }

    /// The key and explicit partition of message `seq` of `producer`.
    pub fn choose(&mut self, producer: u32, seq: u64) -> (Option<&[u8]>, Option<i32>) {
        match self.keys {
            Keys::None => (None, None),
            Keys::RoundRobin => {
                let p = (u64::from(producer) + seq) % self.partitions as u64;
                (None, Some(p as i32))
            }
            Keys::Random => {
                let mut x = seq ^ (u64::from(producer) << 40) ^ 0x2545_F491_4F6C_DD1D;
                x ^= x >> 33;
                x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
                x ^= x >> 33;
                self.buf.clear();
                self.buf.extend_from_slice(&x.to_le_bytes());
                (Some(&self.buf), None)
            }
            Keys::Fixed => {
                use std::io::Write;
                self.buf.clear();
                let _ = write!(self.buf, "key-{}", seq % self.key_set);
                (Some(&self.buf), None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_other_runs() {
        let mut buf = vec![0u8; 100];
        write_header(&mut buf, 7, 3, 42, 1_700_000_000_000_000);
        let r = read_header(&buf, 7).unwrap();
        assert_eq!(
            (r.producer, r.seq, r.sent_us),
            (3, 42, 1_700_000_000_000_000)
        );
        assert!(read_header(&buf, 8).is_none());
        assert!(read_header(&buf[..10], 7).is_none());
    }

    #[test]
    fn filler_fills_the_body_only() {
        let f = Filler::new(PayloadKind::Random, 1.0, 1024, 1);
        let mut buf = vec![0u8; 1024];
        write_header(&mut buf, 1, 2, 3, 4);
        f.fill(&mut buf, 2, 3);
        assert!(read_header(&buf, 1).is_some());
        assert!(buf[HEADER..].iter().any(|b| *b != 0));
        let z = Filler::new(PayloadKind::Zeros, 1.0, 1024, 1);
        let mut buf = vec![1u8; 1024];
        z.fill(&mut buf, 0, 0);
        assert!(buf[HEADER..].iter().all(|b| *b == 0));
        let c = Filler::new(PayloadKind::Compressible, 4.0, 1024, 1);
        let mut buf = vec![1u8; 1024];
        c.fill(&mut buf, 0, 9);
        let zeros = buf[HEADER..].iter().filter(|b| **b == 0).count();
        assert!(zeros > 600, "{zeros}");
    }

    #[test]
    fn keys_follow_the_distribution() {
        let mut k = KeyChooser::new(Keys::RoundRobin, 0, 4);
        let parts: Vec<_> = (0..5).map(|s| k.choose(1, s).1.unwrap()).collect();
        assert_eq!(parts, vec![1, 2, 3, 0, 1]);
        let mut k = KeyChooser::new(Keys::Fixed, 3, 4);
        assert_eq!(k.choose(0, 4).0.unwrap(), b"key-1");
        let mut k = KeyChooser::new(Keys::Random, 0, 4);
        let a = k.choose(0, 1).0.unwrap().to_vec();
        assert_ne!(a, k.choose(0, 2).0.unwrap());
        assert_eq!(KeyChooser::new(Keys::None, 0, 4).choose(0, 0), (None, None));
    }
}
