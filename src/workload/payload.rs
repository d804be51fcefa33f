//! Message contents: the identity header every payload starts with, the filler after it, keys,
//! and the check a consumer makes of every message it reads.
//!
//! The identity is a fixed 32-byte little-endian header at the start of the value — cheaper
//! than Kafka headers (no per-message header allocation in librdkafka) and invisible to the
//! broker:
//!
//! | bytes  | field                                                        |
//! |--------|--------------------------------------------------------------|
//! | 0..4   | run tag (random per run; tells this run's messages from others) |
//! | 4..8   | producer index                                               |
//! | 8..16  | sequence number within the producer                          |
//! | 16..24 | (intended) send time, µs since the Unix epoch                 |
//! | 24..28 | body length: bytes after the header                          |
//! | 28..32 | CRC32C of bytes 0..28 and of the body                         |
//!
//! The checksum and the length make every message self-checking: a consumer that finds a body
//! shorter or longer than the header says, or bytes that do not match the checksum, counts the
//! message as corrupted ([`Identity::Corrupted`]) instead of as delivered. CRC32C runs in
//! hardware (carry-less multiply or SSE 4.2 `crc32`, ARMv8 CRC) at tens of GB/s, a small cost
//! next to the copy into the client. A pipeline worker writes its output with a checksum of its
//! own ([`seal`]); whoever reads a pipeline's output also checks the transform was applied, by
//! comparing the body with the transform of the original body, which it regenerates from the
//! filler ([`Check`]).
//!
//! Filler comes from one pool generated at start (random, compressible or zeros), cut into up to
//! 4,096 slots; message `seq` of a producer takes the slot a hash of (producer, seq mod the
//! filler's [`Filler::period`]) picks, so building a message is one copy of the body and a
//! 32-byte header. The period spans at least 2 MiB of messages (more than a batch, so a batch's
//! bodies are as varied as the pool), and it lets a producer keep a ring of buffers whose bodies
//! are written once and only the header per message (`super::ring`). The checksum is still the
//! CRC32C of the whole message, but the producer does not read the body again to make it: CRC is
//! affine, so crc(header ‖ body) = crc(header ‖ 0ᴸ) ⊕ crc(0²⁸ ‖ body) ⊕ crc(0²⁸⁺ᴸ), where the last
//! two terms are one constant per slot (computed when the pool is made) and the first is the CRC
//! of the 28 header bytes pushed through L zero bytes, a fixed linear map done with four table
//! look-ups ([`Filler::build`]; docs/hot-path.md). Consumers verify the whole message as it
//! arrived, body included ([`Check::identify`]).

use std::sync::Arc;

use rand::{Rng, SeedableRng};

use crate::measure::{Identity, Received};
use crate::scenario::{Keys, PayloadKind, Transform, IDENTITY_BYTES};

/// Header length in bytes.
pub const HEADER: usize = IDENTITY_BYTES as usize;
const POOL: usize = 4 << 20;

/// Bytes of the header the checksum covers (all of it but the checksum itself).
const SEALED: usize = 28;

/// Writes the identity header into `buf[..32]` and seals the message: call it once the body
/// (`buf[32..]`) is in place.
pub fn write_header(buf: &mut [u8], run_tag: u32, producer: u32, seq: u64, sent_us: u64) {
    buf[0..4].copy_from_slice(&run_tag.to_le_bytes());
    buf[4..8].copy_from_slice(&producer.to_le_bytes());
    buf[8..16].copy_from_slice(&seq.to_le_bytes());
    buf[16..24].copy_from_slice(&sent_us.to_le_bytes());
    seal(buf);
}

/// Writes the body length and checksum of a message whose identity and body are in place (a
/// pipeline worker reseals what it transformed). Does nothing to a buffer shorter than the
/// header.
pub fn seal(buf: &mut [u8]) {
    if buf.len() < HEADER {
        return;
    }
    let body = u32::try_from(buf.len() - HEADER).unwrap_or(u32::MAX);
    buf[24..28].copy_from_slice(&body.to_le_bytes());
    let crc = checksum(buf);
    buf[28..32].copy_from_slice(&crc.to_le_bytes());
}

/// CRC32C of the header's first 28 bytes and the body: every consumed message goes through it.
/// Computed by `crc-fast` (carry-less multiply folding, VPCLMULQDQ where the CPU has AVX-512):
/// about 27 ns per 1 KiB message on the 2-core machine against 49 ns for the `crc32c` crate's
/// SSE 4.2 `crc32` loop (docs/hot-path.md); the same CRC32C, byte for byte, as `crc32c`, which
/// the rest of kbench uses where speed does not matter.
fn checksum(payload: &[u8]) -> u32 {
    let mut d = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
    d.update(&payload[..SEALED]);
    d.update(&payload[HEADER..]);
    // CRC-32/ISCSI is 32 bits wide: the u64 holds it in its low half.
    d.finalize() as u32
}

/// Reads the identity header of a payload without checking the body (the producer's delivery
/// report, which hands back the bytes it sent); `None` when it is not one of this run's.
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

/// How consumers check what they read: the run tag, and for a pipeline's output the transform
/// the body must show.
#[derive(Debug, Clone)]
pub struct Check {
    run_tag: u32,
    /// The producers' filler and the transform the pipeline applies to it (pipeline output only).
    transformed: Option<(Filler, Transform)>,
}

impl Check {
    /// Checks the producers' own messages.
    pub fn new(run_tag: u32) -> Check {
        Check {
            run_tag,
            transformed: None,
        }
    }

    /// Checks a pipeline's output: each body must be `transform` of what the producers wrote.
    pub fn transformed(run_tag: u32, filler: Filler, transform: Transform) -> Check {
        Check {
            run_tag,
            transformed: Some((filler, transform)),
        }
    }

    /// Classifies one payload: this run's and intact, this run's but corrupted, or foreign.
    pub fn identify(&self, payload: &[u8]) -> Identity {
        let Some(id) = read_header(payload, self.run_tag) else {
            // A payload cut inside the header but carrying our tag is ours, corrupted.
            return if payload.len() >= 4 && payload[..4] == self.run_tag.to_le_bytes() {
                Identity::Corrupted
            } else {
                Identity::Foreign
            };
        };
        let body = u32::from_le_bytes(payload[24..28].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(payload[28..32].try_into().unwrap_or_default());
        if payload.len() - HEADER != body || checksum(payload) != crc {
            return Identity::Corrupted;
        }
        if let Some((filler, kind)) = &self.transformed {
            let original = filler.body(id.producer, u64::from(id.seq));
            if original.len() != body || !shows(*kind, original, &payload[HEADER..]) {
                return Identity::Corrupted;
            }
        }
        Identity::Ours(id)
    }
}

/// Applies a pipeline transform to a value (the header is kept, the body changed), into `out`,
/// and reseals it.
pub fn transform(kind: Transform, value: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(value);
    if out.len() < HEADER {
        return;
    }
    if kind == Transform::Uppercase {
        out[HEADER..].make_ascii_uppercase();
    }
    seal(out);
}

/// Whether `body` is `kind` applied to `original`.
fn shows(kind: Transform, original: &[u8], body: &[u8]) -> bool {
    match kind {
        Transform::Identity => original == body,
        Transform::Uppercase => original
            .iter()
            .zip(body)
            .all(|(o, b)| o.to_ascii_uppercase() == *b),
    }
}

/// Filler bytes shared by every producer.
#[derive(Debug, Clone)]
pub struct Filler(Arc<Pool>);

#[derive(Debug)]
struct Pool {
    /// The generated bytes.
    bytes: Vec<u8>,
    /// Body length (message size minus the header).
    body: usize,
    /// Start of slot `i` in `bytes`.
    slots: Vec<usize>,
    /// Per slot: crc(0²⁸ ‖ body) ⊕ crc(0²⁸⁺ᴸ), the body's share of a message's checksum.
    slot_crc: Vec<u32>,
    /// crc(h ‖ 0ᴸ) from crc(h) for the 28 sealed header bytes h (see [`ZeroShift`]).
    shift: ZeroShift,
    /// See [`Filler::period`].
    period: u64,
}

/// Most slots a pool is cut into; fewer for large messages, so the pool's checksums cost at most
/// about [`SLOT_CRC_BYTES`] of CRC at start.
const MAX_SLOTS: usize = 4096;
const SLOT_CRC_BYTES: usize = 64 << 20;
/// Bytes of messages in one [`Filler::period`] (rounded to whole messages).
pub const PERIOD_BYTES: usize = 2 << 20;
/// The shortest period, whatever the message size: 16 messages of 1 MiB are 16 MiB.
const MIN_PERIOD: usize = 16;

impl Filler {
    /// A pool for messages of `message_size` bytes (header included).
    pub fn new(kind: PayloadKind, compress_ratio: f64, message_size: usize, seed: u64) -> Filler {
        let body = message_size.saturating_sub(HEADER);
        let len = POOL + body;
        let mut bytes = vec![0u8; len];
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        match kind {
            PayloadKind::Zeros => {}
            PayloadKind::Random => rng.fill(&mut bytes[..]),
            PayloadKind::Compressible => {
                // In every 64-byte block, the first 64/ratio bytes are random, the rest zeros.
                let random = ((64.0 / compress_ratio).round() as usize).clamp(1, 64);
                for block in bytes.chunks_mut(64) {
                    let n = random.min(block.len());
                    rng.fill(&mut block[..n]);
                }
            }
        }
        let count = (SLOT_CRC_BYTES / body.max(1)).clamp(16, MAX_SLOTS);
        // Slots spread evenly over the pool, 8-byte aligned (1 KiB messages: 4,096 slots of
        // distinct bytes; larger ones overlap).
        let stride = (POOL / count) & !7;
        let slots: Vec<usize> = (0..count).map(|i| i * stride).collect();
        let zero_header = crc32c::crc32c(&[0u8; SEALED]);
        // The checksum covers the 28 sealed header bytes and the body (not the checksum's own
        // four): crc(0²⁸ ‖ body) ⊕ crc(0²⁸⁺ᴸ) per slot.
        let all_zero = crc32c::crc32c_append(zero_header, &vec![0u8; body]);
        let slot_crc = slots
            .iter()
            .map(|&o| crc32c::crc32c_append(zero_header, &bytes[o..o + body]) ^ all_zero)
            .collect();
        Filler(Arc::new(Pool {
            bytes,
            body,
            slots,
            slot_crc,
            shift: ZeroShift::new(body),
            period: (PERIOD_BYTES / message_size.max(1)).clamp(MIN_PERIOD, MAX_SLOTS) as u64,
        }))
    }

    /// The body of message `seq` of a producer is the body of message `seq + period()`: the
    /// messages of a period span [`PERIOD_BYTES`] (at most [`MAX_SLOTS`] messages, at least
    /// [`MIN_PERIOD`]), more than a batch holds, so consecutive messages still differ.
    pub fn period(&self) -> u64 {
        self.0.period
    }

    /// The slot of message `seq` of `producer`.
    fn slot(&self, producer: u32, seq: u64) -> usize {
        // A multiplicative hash spreads consecutive messages over the slots.
        let seq = seq % self.0.period;
        let h = (seq.wrapping_add(u64::from(producer) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (h >> 20) as usize % self.0.slots.len()
    }

    /// The body of message `seq` of `producer`.
    pub fn body(&self, producer: u32, seq: u64) -> &[u8] {
        let o = self.0.slots[self.slot(producer, seq)];
        &self.0.bytes[o..o + self.0.body]
    }

    /// Builds message `seq` of `producer` in `buf` (of the filler's message size): the body from
    /// its slot, the identity header, the length and the checksum of the whole message, the
    /// same bytes [`write_header`] after a copy of [`Filler::body`] would make, without reading
    /// the body a second time.
    pub fn build(&self, buf: &mut [u8], run_tag: u32, producer: u32, seq: u64, sent_us: u64) {
        let pool = &*self.0;
        let o = pool.slots[self.slot(producer, seq)];
        buf[HEADER..HEADER + pool.body].copy_from_slice(&pool.bytes[o..o + pool.body]);
        self.build_header(buf, run_tag, producer, seq, sent_us);
    }

    /// Writes the header of message `seq` of `producer` into `buf` whose body is already that
    /// message's ([`Filler::body`]: the body of any message `period()` apart), leaving the body
    /// untouched: what [`Filler::build`] does after its copy.
    pub fn build_header(
        &self,
        buf: &mut [u8],
        run_tag: u32,
        producer: u32,
        seq: u64,
        sent_us: u64,
    ) {
        let pool = &*self.0;
        let slot = self.slot(producer, seq);
        buf[0..4].copy_from_slice(&run_tag.to_le_bytes());
        buf[4..8].copy_from_slice(&producer.to_le_bytes());
        buf[8..16].copy_from_slice(&seq.to_le_bytes());
        buf[16..24].copy_from_slice(&sent_us.to_le_bytes());
        let body = u32::try_from(pool.body).unwrap_or(u32::MAX);
        buf[24..28].copy_from_slice(&body.to_le_bytes());
        let crc = pool.shift.apply(sealed_crc(&buf[..SEALED])) ^ pool.slot_crc[slot];
        buf[28..32].copy_from_slice(&crc.to_le_bytes());
    }
}

/// CRC32C of a header's 28 sealed bytes, per message on the producer's hot path: three 8-byte
/// and one 4-byte SSE 4.2 `crc32` instruction where the CPU has them. The `crc32c` crate's entry
/// point prepares for long inputs (alignment, three interleaved streams) and took about 150
/// instructions for these 28 bytes, 2.5 % of the producing client's work per message (callgrind,
/// docs/hot-path.md part 8); it remains the fallback and the reference the unit test checks
/// against.
fn sealed_crc(sealed: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if let Ok(h) = <&[u8; SEALED]>::try_from(sealed) {
        if std::is_x86_feature_detected!("sse4.2") {
            // SAFETY: the CPU has SSE 4.2, checked just above.
            #[allow(unsafe_code)]
            return unsafe { sealed_crc_sse42(h) };
        }
    }
    crc32c::crc32c(sealed)
}

/// [`sealed_crc`] with the CPU's `crc32` instruction; the caller checks the CPU has SSE 4.2.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[target_feature(enable = "sse4.2")]
unsafe fn sealed_crc_sse42(h: &[u8; SEALED]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u32, _mm_crc32_u64};
    let word = |i: usize| {
        u64::from_le_bytes([
            h[i],
            h[i + 1],
            h[i + 2],
            h[i + 3],
            h[i + 4],
            h[i + 5],
            h[i + 6],
            h[i + 7],
        ])
    };
    let mut c = u64::from(u32::MAX);
    c = _mm_crc32_u64(c, word(0));
    c = _mm_crc32_u64(c, word(8));
    c = _mm_crc32_u64(c, word(16));
    let last = u32::from_le_bytes([h[24], h[25], h[26], h[27]]);
    // The CRC register is 32 bits wide: the u64 holds it in its low half.
    !_mm_crc32_u32(c as u32, last)
}

/// The map crc(h) → crc(h ‖ 0ᴸ) for a fixed L: appending L zero bytes is affine in the CRC
/// (`crc32c_append`'s register update is linear), so it is g(0) ⊕ M·crc for a 32×32 bit matrix
/// M, applied a byte at a time with four 256-entry tables built from 33 CRCs of L zeros.
#[derive(Debug)]
struct ZeroShift {
    base: u32,
    tables: Box<[[u32; 256]; 4]>,
}

impl ZeroShift {
    fn new(zeros: usize) -> ZeroShift {
        let z = vec![0u8; zeros];
        let base = crc32c::crc32c_append(0, &z);
        let column: Vec<u32> = (0..32)
            .map(|i| crc32c::crc32c_append(1u32 << i, &z) ^ base)
            .collect();
        let mut tables = Box::new([[0u32; 256]; 4]);
        for (k, table) in tables.iter_mut().enumerate() {
            for (b, out) in table.iter_mut().enumerate() {
                *out = (0..8)
                    .filter(|j| b & (1 << j) != 0)
                    .fold(0, |acc, j| acc ^ column[8 * k + j]);
            }
        }
        ZeroShift { base, tables }
    }

    fn apply(&self, crc: u32) -> u32 {
        let t = &self.tables;
        self.base
            ^ t[0][(crc & 0xff) as usize]
            ^ t[1][((crc >> 8) & 0xff) as usize]
            ^ t[2][((crc >> 16) & 0xff) as usize]
            ^ t[3][(crc >> 24) as usize]
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
    fn checksum_is_crc32c_of_header_and_body() {
        // Known vectors of CRC-32C (the catalogue's check value, RFC 3720 B.4) from the
        // algorithm `checksum` asks crc-fast for.
        let vectors: [(&[u8], u32); 3] = [
            (b"123456789", 0xE306_9283),
            (&[0u8; 32], 0x8A91_36AA),
            (&[0xFFu8; 32], 0x62A8_AB43),
        ];
        for (data, want) in vectors {
            let mut d = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
            d.update(data);
            assert_eq!(d.finalize() as u32, want);
        }
        // Against the old function (crc32c crate) for every length 0..2,100 of varied bytes.
        let bytes: Vec<u8> = (0..2_200u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for len in 0..2_100 {
            let m = &bytes[..HEADER + len];
            let old = crc32c::crc32c_append(crc32c::crc32c(&m[..SEALED]), &m[HEADER..]);
            assert_eq!(checksum(m), old, "body of {len} bytes");
        }
        // A single flipped bit anywhere it covers changes it; the checksum field does not.
        let m = &bytes[..HEADER + 1_000];
        for bit in [0, 8 * 27 + 7, 8 * HEADER, 8 * (HEADER + 999) + 7] {
            let mut f = m.to_vec();
            f[bit / 8] ^= 1 << (bit % 8);
            assert_ne!(checksum(&f), checksum(m), "bit {bit}");
        }
        let mut f = m.to_vec();
        f[SEALED] ^= 0xFF;
        assert_eq!(checksum(&f), checksum(m));
    }

    #[test]
    fn the_sealed_bytes_crc_is_the_crc32c_crates() {
        // Every bit position alone, all ones, and varied headers: the SSE 4.2 path (taken on
        // x86-64 machines, CI's included) against the crate it replaces.
        let mut inputs = vec![[0u8; SEALED], [0xFF; SEALED]];
        for bit in 0..8 * SEALED {
            let mut h = [0u8; SEALED];
            h[bit / 8] = 1 << (bit % 8);
            inputs.push(h);
        }
        for i in 0..1_000u32 {
            inputs.push(std::array::from_fn(|j| {
                (i.wrapping_mul(2_654_435_761) >> (j % 24)).wrapping_add(j as u32) as u8
            }));
        }
        for h in &inputs {
            assert_eq!(sealed_crc(h), crc32c::crc32c(h), "{h:?}");
        }
        // Another length takes the crate's path.
        assert_eq!(sealed_crc(b"123456789"), 0xE306_9283);
    }

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
        let check = Check::new(7);
        assert_eq!(check.identify(&buf), Identity::Ours(r));
        assert_eq!(Check::new(8).identify(&buf), Identity::Foreign);
    }

    #[test]
    fn corrupted_truncated_and_extended_bodies_are_caught() {
        let f = Filler::new(PayloadKind::Random, 1.0, 1024, 1);
        let mut buf = vec![0u8; 1024];
        f.build(&mut buf, 1, 2, 3, 4);
        let check = Check::new(1);
        assert!(matches!(check.identify(&buf), Identity::Ours(_)));
        // One bit flipped anywhere but the run tag: in the body, the sequence, the send time.
        for at in [HEADER, 1000, 1023, 9, 17, 25, 29] {
            let mut bad = buf.clone();
            bad[at] ^= 0x10;
            assert_eq!(check.identify(&bad), Identity::Corrupted, "bit at {at}");
        }
        assert_eq!(check.identify(&buf[..1000]), Identity::Corrupted);
        assert_eq!(check.identify(&buf[..20]), Identity::Corrupted);
        let mut longer = buf.clone();
        longer.push(0);
        assert_eq!(check.identify(&longer), Identity::Corrupted);
    }

    #[test]
    fn a_pipeline_output_must_show_its_transform() {
        let f = Filler::new(PayloadKind::Random, 1.0, 512, 5);
        let mut input = vec![0u8; 512];
        f.build(&mut input, 5, 0, 9, 4);
        assert!(input[HEADER..].iter().any(u8::is_ascii_lowercase));
        let mut out = Vec::new();
        transform(Transform::Uppercase, &input, &mut out);
        assert_eq!(&out[..24], &input[..24]);
        let upper = Check::transformed(5, f.clone(), Transform::Uppercase);
        assert!(matches!(upper.identify(&out), Identity::Ours(_)));
        // The input passed on untouched (even resealed) is not the transform's output.
        let mut untouched = Vec::new();
        transform(Transform::Identity, &input, &mut untouched);
        assert_eq!(untouched, input);
        assert_eq!(upper.identify(&untouched), Identity::Corrupted);
        let same = Check::transformed(5, f, Transform::Identity);
        assert!(matches!(same.identify(&input), Identity::Ours(_)));
        assert_eq!(same.identify(&out), Identity::Corrupted);
    }

    #[test]
    fn build_makes_the_same_message_as_copy_and_seal() {
        for (kind, size) in [
            (PayloadKind::Random, 1024),
            (PayloadKind::Random, 33),
            (PayloadKind::Compressible, 4096),
            (PayloadKind::Random, 100_000),
            (PayloadKind::Zeros, 32),
        ] {
            let f = Filler::new(kind, 4.0, size, 7);
            let mut fast = vec![0u8; size];
            for (producer, seq) in [
                (0, 0),
                (3, 1),
                (15, 65_535),
                (u32::MAX, u64::from(u32::MAX)),
            ] {
                let sent = seq.wrapping_add(1_700_000_000_000_000);
                f.build(&mut fast, 9, producer, seq, sent);
                let mut slow = vec![0u8; size];
                slow[HEADER..].copy_from_slice(f.body(producer, seq));
                write_header(&mut slow, 9, producer, seq, sent);
                assert_eq!(
                    fast, slow,
                    "{kind:?} {size} B, producer {producer} seq {seq}"
                );
                assert!(matches!(Check::new(9).identify(&fast), Identity::Ours(_)));
            }
        }
    }

    #[test]
    fn filler_fills_the_body_only() {
        let f = Filler::new(PayloadKind::Random, 1.0, 1024, 1);
        let mut buf = vec![0u8; 1024];
        f.build(&mut buf, 1, 2, 3, 4);
        assert!(read_header(&buf, 1).is_some());
        assert!(buf[HEADER..].iter().any(|b| *b != 0));
        let z = Filler::new(PayloadKind::Zeros, 1.0, 1024, 1);
        let mut buf = vec![1u8; 1024];
        z.build(&mut buf, 1, 0, 0, 4);
        assert!(buf[HEADER..].iter().all(|b| *b == 0));
        let c = Filler::new(PayloadKind::Compressible, 4.0, 1024, 1);
        let mut buf = vec![1u8; 1024];
        c.build(&mut buf, 1, 0, 9, 4);
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
