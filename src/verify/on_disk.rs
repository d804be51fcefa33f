//! The on-disk check: what the brokers' logs hold after the run, replica by replica.
//!
//! Consumers read only leaders, so this check is the only evidence that followers hold the
//! data. It is exact, not a total against a loose bound:
//!
//! - **Embedded (kbroker).** kbroker stores record batches as they arrive, on leader and
//!   followers alike, so for the run's offsets every in-sync replica must hold the very same
//!   batches as its leader: the same bytes, batch for batch (base offset, length and the
//!   batch's own CRC32C). The segment files (`<log.dir>/<topic>-<p>/*.log`) are walked batch
//!   header by batch header ([`ReplicaLog::read`]); the leader must hold the records the run
//!   wrote (acknowledged messages plus, with transactions, aborted records and markers): fewer
//!   fails when the scenario promises no loss, more when the offsets check is on. What
//!   is left of a replica's bytes after the batch headers (61 B each) and the payload must be
//!   the records' own framing: 7 to 27 B per record in the v2 format (attributes, then varints
//!   for length, timestamp delta, offset delta, key length, value length and header count), so
//!   a surplus or a shortfall of even one record's worth fails. Followers still fetching are
//!   given a few seconds to catch up before they are judged.
//! - **External clusters.** DescribeLogDirs ([`super::log_dirs`]) gives every replica's size
//!   before and after the run: every in-sync replica must have grown by exactly its leader's
//!   growth, and (uncompressed) the leader by at least the payload plus the smallest framing.
//!   When that request cannot be made (a TLS or SASL listener, a cluster that refuses it) the
//!   method is reported as `"unavailable"` with the reason, rather than guessed.
//!
//! Bytes under the whole log dirs (like `du -b`) before and after are reported beside the
//! payload × replication factor as the overhead ratio.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::summary::{OnDiskSummary, ReplicaDisk};

/// Bytes of a v2 record batch header (base offset … records count).
pub const BATCH_HEADER: u64 = 61;
/// Fewest bytes of framing a v2 record takes besides its key and value.
pub const MIN_RECORD_FRAMING: u64 = 7;
/// Most bytes of framing a v2 record of kbench's takes (no headers, key under 2 MiB).
pub const MAX_RECORD_FRAMING: u64 = 27;
/// How long followers get to catch up with their leader before they are judged.
const CATCH_UP: Duration = Duration::from_secs(10);

/// Apparent bytes of every file under `dirs`.
pub fn dir_bytes(dirs: &[PathBuf]) -> u64 {
    dirs.iter().map(|d| walk(d, &|_| true)).sum()
}

fn walk(dir: &Path, keep: &dyn Fn(&Path) -> bool) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut total = 0;
    for e in entries.flatten() {
        let path = e.path();
        match e.metadata() {
            Ok(m) if m.is_dir() => total += walk(&path, keep),
            Ok(m) if keep(&path) => total += m.len(),
            _ => {}
        }
    }
    total
}

/// Segment bytes of one partition, over every log dir (and every replica).
pub fn segment_bytes(dirs: &[PathBuf], topic: &str, partition: i32) -> u64 {
    let name = format!("{topic}-{partition}");
    dirs.iter()
        .map(|d| {
            walk(&d.join(&name), &|p| {
                p.extension().is_some_and(|e| e == "log")
            })
        })
        .sum()
}

/// What one replica's segment files hold for a range of offsets, from the batch headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaLog {
    /// Bytes of the batches whose base offset lies in the range.
    pub bytes: u64,
    /// Those batches.
    pub batches: u64,
    /// Records in them (control records included).
    pub records: u64,
    /// Records in control batches (transaction markers).
    pub control_records: u64,
    /// Whether any of them is compressed.
    pub compressed: bool,
    /// CRC32C over every batch's base offset, length and own CRC: equal digests, equal batches.
    pub digest: u32,
}

impl ReplicaLog {
    /// Walks the batch headers of the segment files in `dir` (one partition's directory) for
    /// batches with base offset in `from..to`. A missing directory holds nothing; a torn tail
    /// ends the walk, as recovery would cut it.
    pub fn read(dir: &Path, from: i64, to: i64) -> std::io::Result<ReplicaLog> {
        let mut out = ReplicaLog::default();
        let mut segments: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "log"))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        // Names are 20-digit base offsets: name order is offset order.
        segments.sort();
        for seg in segments {
            let mut f = std::io::BufReader::new(std::fs::File::open(&seg)?);
            let len = f.get_ref().metadata()?.len();
            let mut pos = 0u64;
            let mut h = [0u8; BATCH_HEADER as usize];
            while pos + BATCH_HEADER <= len {
                f.read_exact(&mut h)?;
                let base = i64::from_be_bytes(h[0..8].try_into().unwrap_or_default());
                let size =
                    12 + u64::from(u32::from_be_bytes(h[8..12].try_into().unwrap_or_default()));
                if size < BATCH_HEADER || pos + size > len {
                    break;
                }
                if base >= from && base < to {
                    let attributes = i16::from_be_bytes([h[21], h[22]]);
                    let count =
                        u64::from(u32::from_be_bytes(h[57..61].try_into().unwrap_or_default()));
                    out.bytes += size;
                    out.batches += 1;
                    out.records += count;
                    if attributes & 0x20 != 0 {
                        out.control_records += count;
                    }
                    out.compressed |= attributes & 0x07 != 0;
                    let mut id = [0u8; 16];
                    id[..12].copy_from_slice(&h[..12]);
                    id[12..].copy_from_slice(&h[17..21]);
                    out.digest = crc32c::crc32c_append(out.digest, &id);
                }
                f.seek_relative((size - BATCH_HEADER) as i64)?;
                pos += size;
            }
        }
        Ok(out)
    }
}

/// What the check needs to know about one partition after the run.
#[derive(Debug, Clone, Default)]
pub struct PartitionExpect {
    /// Partition index.
    pub partition: i32,
    /// Its leader (broker id) after the run.
    pub leader: i32,
    /// Its replicas (broker ids).
    pub replicas: Vec<i32>,
    /// Its in-sync replicas.
    pub isr: Vec<i32>,
    /// The run's offsets: high watermark before and after.
    pub offsets: (i64, i64),
    /// Records the run wrote to it: acknowledged messages, plus aborted ones and markers.
    pub records: u64,
    /// Of which not acknowledged messages (aborted records and markers).
    pub other_records: u64,
    /// Acknowledged payload bytes (key + value) written to it.
    pub payload_bytes: u64,
}

/// What the check needs to know about the run.
#[derive(Debug, Clone)]
pub struct Expectation<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Replication factor.
    pub replication_factor: u32,
    /// Acknowledged payload bytes (key + value), one copy.
    pub payload_bytes: u64,
    /// Per partition, after the run.
    pub partitions: Vec<PartitionExpect>,
    /// Whether a leader holding fewer records than the run wrote fails (the scenario promises
    /// no loss: exactly-once or at-least-once).
    pub fewer_fail: bool,
    /// Whether a leader holding more records than the run wrote fails (the offsets check is on:
    /// a retry that wrote twice counts against the log).
    pub more_fail: bool,
}

/// Runs the check over the embedded brokers' log dirs (`(broker id, log dir)`): replica by
/// replica, giving followers [`CATCH_UP`] to reach their leader.
pub fn check(
    dirs: &[(i32, PathBuf)],
    before: u64,
    e: &Expectation<'_>,
) -> (OnDiskSummary, Vec<String>) {
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let (replicas, failures, lagging) = judge_replicas(dirs, e);
        if !lagging || Instant::now() >= deadline {
            let all: Vec<PathBuf> = dirs.iter().map(|(_, d)| d.clone()).collect();
            return summarize(
                "walk",
                "log dirs",
                before,
                dir_bytes(&all),
                e,
                replicas,
                failures,
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every replica of every partition read and judged; the third value says whether an in-sync
/// follower is behind its leader (worth another look).
fn judge_replicas(
    dirs: &[(i32, PathBuf)],
    e: &Expectation<'_>,
) -> (Vec<ReplicaDisk>, Vec<String>, bool) {
    let mut replicas = Vec::new();
    let mut failures = Vec::new();
    let mut lagging = false;
    for p in &e.partitions {
        let (from, to) = p.offsets;
        let tp = format!("{}-{}", e.topic, p.partition);
        let mut logs = BTreeMap::new();
        for b in &p.replicas {
            let Some((_, dir)) = dirs.iter().find(|(id, _)| id == b) else {
                continue;
            };
            match ReplicaLog::read(&dir.join(&tp), from, to) {
                Ok(l) => {
                    logs.insert(*b, l);
                }
                Err(err) => failures.push(format!(
                    "on disk: cannot read {tp} on broker {b} ({}): {err}",
                    dir.join(&tp).display()
                )),
            }
        }
        let Some(leader) = logs.get(&p.leader).cloned() else {
            failures.push(format!(
                "on disk: {tp} has no leader whose log kbench can read (leader {}, replicas {:?})",
                p.leader, p.replicas
            ));
            continue;
        };
        let mut problems = Vec::new();
        if (leader.records < p.records && e.fewer_fail)
            || (leader.records > p.records && e.more_fail)
        {
            problems.push(format!(
                "on disk: {tp} leader (broker {}) holds {} records for offsets {from}..{to} but the run wrote {} ({} acknowledged + {} aborted or markers)",
                p.leader, leader.records, p.records, p.records - p.other_records, p.other_records
            ));
        }
        // The framing is judged when the records are the run's (else the count says it).
        if let Some(f) = framing_failure(&tp, p, &leader).filter(|_| leader.records == p.records) {
            problems.push(f);
        }
        let leader_ok = problems.is_empty();
        failures.extend(problems);
        for (b, l) in &logs {
            let in_sync = p.isr.contains(b);
            let same = l.bytes == leader.bytes && l.digest == leader.digest;
            let ok = if *b == p.leader {
                leader_ok
            } else {
                !in_sync || same
            };
            if in_sync && !same {
                lagging |= l.bytes < leader.bytes;
                failures.push(format!(
                    "on disk: {tp} replica on broker {b} (in sync) holds {} B in {} batches ({} records) for offsets {from}..{to}, its leader (broker {}) {} B in {} batches ({} records){}",
                    l.bytes, l.batches, l.records, p.leader, leader.bytes, leader.batches, leader.records,
                    if l.bytes == leader.bytes { "; the batches differ" } else { "" }
                ));
            }
            replicas.push(ReplicaDisk {
                partition: p.partition,
                broker: *b,
                role: role(*b, p).into(),
                bytes: l.bytes,
                batches: Some(l.batches),
                records: Some(l.records),
                ok,
            });
        }
    }
    (replicas, failures, lagging)
}

fn role(broker: i32, p: &PartitionExpect) -> &'static str {
    if broker == p.leader {
        "leader"
    } else if p.isr.contains(&broker) {
        "in_sync"
    } else {
        "out_of_sync"
    }
}

/// Uncompressed, without transactions: what the leader holds beyond batch headers and payload
/// must be 7..=27 B of framing per record.
fn framing_failure(tp: &str, p: &PartitionExpect, l: &ReplicaLog) -> Option<String> {
    let data = l.records - l.control_records;
    if l.compressed || p.other_records > 0 || data == 0 {
        return None;
    }
    let framing = l.bytes as i64 - (BATCH_HEADER * l.batches) as i64 - p.payload_bytes as i64;
    let (lo, hi) = (MIN_RECORD_FRAMING * data, MAX_RECORD_FRAMING * data);
    if framing >= lo as i64 && framing <= hi as i64 {
        return None;
    }
    Some(format!(
        "on disk: {tp} leader (broker {}) holds {} B: {} batch headers of {BATCH_HEADER} B and {} B of payload leave {framing} B for {data} records, outside the {MIN_RECORD_FRAMING}..={MAX_RECORD_FRAMING} B of framing a v2 record takes ({lo}..={hi} B)",
        p.leader, l.bytes, l.batches, p.payload_bytes
    ))
}

/// Runs the check over replica sizes the brokers reported (DescribeLogDirs), keyed by
/// (partition, broker), before and after the run.
pub fn check_reported(
    before: &BTreeMap<(i32, i32), u64>,
    after: &BTreeMap<(i32, i32), u64>,
    compressed: bool,
    e: &Expectation<'_>,
) -> (OnDiskSummary, Vec<String>) {
    let total = |m: &BTreeMap<(i32, i32), u64>| m.values().sum::<u64>();
    let mut replicas = Vec::new();
    let mut failures = Vec::new();
    for p in &e.partitions {
        let tp = format!("{}-{}", e.topic, p.partition);
        let growth = |b: i32| {
            let a = after.get(&(p.partition, b)).copied()?;
            Some(a as i64 - before.get(&(p.partition, b)).copied().unwrap_or(0) as i64)
        };
        let Some(leader) = growth(p.leader) else {
            failures.push(format!(
                "on disk: broker {} (the leader of {tp}) reported no size for it",
                p.leader
            ));
            continue;
        };
        let data = p.records - p.other_records;
        let least = p.payload_bytes
            + (BATCH_HEADER + MIN_RECORD_FRAMING) * u64::from(data > 0)
            + MIN_RECORD_FRAMING * data.saturating_sub(1);
        let leader_ok =
            compressed || p.other_records > 0 || !e.fewer_fail || leader >= least as i64;
        if !leader_ok {
            failures.push(format!(
                "on disk: {tp} leader (broker {}) grew by {leader} B but {data} acknowledged records of {} B payload need at least {least} B",
                p.leader, p.payload_bytes
            ));
        }
        for b in &p.replicas {
            let Some(g) = growth(*b) else {
                if p.isr.contains(b) {
                    failures.push(format!(
                        "on disk: broker {b} (in sync for {tp}) reported no size for it"
                    ));
                }
                continue;
            };
            let in_sync = p.isr.contains(b);
            if in_sync && g != leader {
                failures.push(format!(
                    "on disk: {tp} replica on broker {b} (in sync) grew by {g} B, its leader (broker {}) by {leader} B",
                    p.leader
                ));
            }
            replicas.push(ReplicaDisk {
                partition: p.partition,
                broker: *b,
                role: role(*b, p).into(),
                bytes: g.max(0) as u64,
                batches: None,
                records: None,
                ok: if *b == p.leader {
                    leader_ok
                } else {
                    !in_sync || g == leader
                },
            });
        }
    }
    summarize(
        "describe_log_dirs",
        "replicas (DescribeLogDirs)",
        total(before),
        total(after),
        e,
        replicas,
        failures,
    )
}

fn summarize(
    method: &str,
    what: &str,
    before: u64,
    after: u64,
    e: &Expectation<'_>,
    replicas: Vec<ReplicaDisk>,
    failures: Vec<String>,
) -> (OnDiskSummary, Vec<String>) {
    let growth = after as i64 - before as i64;
    let copies = e.payload_bytes * u64::from(e.replication_factor);
    let ratio = if copies > 0 {
        growth as f64 / copies as f64
    } else {
        0.0
    };
    let detail = if failures.is_empty() {
        format!(
            "{what} grew by {growth} B for {} B of payload × RF {} (overhead ratio {ratio:.3}); {} replicas of {} partitions hold exactly what their leaders hold",
            e.payload_bytes,
            e.replication_factor,
            replicas.len(),
            e.partitions.len()
        )
    } else {
        failures.join("; ")
    };
    let summary = OnDiskSummary {
        method: method.into(),
        bytes_before: before,
        bytes_after: after,
        growth_bytes: growth,
        payload_bytes: e.payload_bytes,
        replication_factor: e.replication_factor,
        overhead_ratio: ratio,
        ok: Some(failures.is_empty()),
        detail,
        replicas,
    };
    (summary, failures)
}

/// The summary part when the check cannot be made, with the reason.
pub fn unavailable(payload_bytes: u64, replication_factor: u32, reason: &str) -> OnDiskSummary {
    OnDiskSummary {
        method: "unavailable".into(),
        payload_bytes,
        replication_factor,
        ok: None,
        detail: format!("the on-disk check was not made: {reason}"),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v2 batch of `records` records of `value` bytes each (no key), as a segment holds it.
    fn batch(base: i64, records: u32, value: usize, control: bool) -> Vec<u8> {
        let mut body = Vec::new();
        for i in 0..records {
            // attributes, timestamp delta, offset delta, key length -1, value length, value,
            // header count: zigzag varints.
            let mut rec = vec![0u8, 0, (i * 2) as u8, 1];
            let mut v = (value as u64) << 1;
            while v >= 0x80 {
                rec.push((v as u8) | 0x80);
                v >>= 7;
            }
            rec.push(v as u8);
            rec.extend(std::iter::repeat_n(b'x', value));
            rec.push(0);
            body.push((rec.len() * 2) as u8);
            body.extend(rec);
        }
        let mut b = Vec::new();
        b.extend(base.to_be_bytes());
        b.extend(((49 + body.len()) as u32).to_be_bytes());
        b.extend(0i32.to_be_bytes()); // leader epoch
        b.push(2); // magic
        b.extend(crc32c::crc32c(&body).to_be_bytes());
        b.extend((if control { 0x20i16 } else { 0 }).to_be_bytes());
        b.extend((records as i32 - 1).to_be_bytes());
        b.extend([0u8; 8 + 8 + 8 + 2 + 4]);
        b.extend(records.to_be_bytes());
        b.extend(body);
        b
    }

    fn expect(leader: i32, isr: Vec<i32>, records: u64) -> Expectation<'static> {
        Expectation {
            topic: "t",
            replication_factor: 2,
            payload_bytes: records * 50,
            partitions: vec![PartitionExpect {
                partition: 0,
                leader,
                replicas: vec![1, 2],
                isr,
                offsets: (0, records as i64),
                records,
                other_records: 0,
                payload_bytes: records * 50,
            }],
            fewer_fail: true,
            more_fail: true,
        }
    }

    #[test]
    fn replicas_must_hold_their_leaders_batches_exactly() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs: Vec<(i32, PathBuf)> = (1..=2)
            .map(|b| {
                let d = tmp.path().join(b.to_string());
                std::fs::create_dir_all(d.join("t-0")).unwrap();
                (b, d)
            })
            .collect();
        let before = dir_bytes(&[dirs[0].1.clone(), dirs[1].1.clone()]);
        let log: Vec<u8> = [batch(0, 4, 50, false), batch(4, 4, 50, false)].concat();
        for (_, d) in &dirs {
            std::fs::write(d.join("t-0/00000000000000000000.log"), &log).unwrap();
        }
        let r = ReplicaLog::read(&dirs[0].1.join("t-0"), 0, 8).unwrap();
        assert_eq!((r.batches, r.records, r.bytes), (2, 8, log.len() as u64));
        let (s, f) = check(&dirs, before, &expect(1, vec![1, 2], 8));
        assert!(f.is_empty(), "{f:?}");
        assert_eq!(s.ok, Some(true));
        assert_eq!(s.replicas.len(), 2);

        // The follower misses the second batch: named, with both sizes.
        std::fs::write(
            dirs[1].1.join("t-0/00000000000000000000.log"),
            batch(0, 4, 50, false),
        )
        .unwrap();
        let started = Instant::now();
        let (s, f) = check(&dirs, before, &expect(1, vec![1, 2], 8));
        assert!(
            started.elapsed() >= CATCH_UP,
            "a lagging follower gets time to catch up"
        );
        assert_eq!(s.ok, Some(false));
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].contains("t-0 replica on broker 2 (in sync) holds")
                && f[0].contains("its leader (broker 1)"),
            "{f:?}"
        );
        // Out of the ISR it may lag.
        let (_, f) = check(&dirs, before, &expect(1, vec![1], 8));
        assert!(f.is_empty(), "{f:?}");
        // Same size, other bytes: the batches differ.
        let mut other = log.clone();
        other[17] ^= 1; // the second byte of the first batch's CRC
        std::fs::write(dirs[1].1.join("t-0/00000000000000000000.log"), &other).unwrap();
        let (_, f) = check(&dirs, before, &expect(1, vec![1, 2], 8));
        assert!(f[0].contains("the batches differ"), "{f:?}");
    }

    #[test]
    fn the_leader_must_hold_the_records_and_only_their_framing() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("1");
        std::fs::create_dir_all(d.join("t-0")).unwrap();
        std::fs::write(
            d.join("t-0/00000000000000000000.log"),
            batch(0, 4, 50, false),
        )
        .unwrap();
        let dirs = vec![(1, d)];
        let mut e = expect(1, vec![1], 5);
        e.partitions[0].replicas = vec![1];
        let (_, f) = check(&dirs, 0, &e);
        assert!(
            f.iter()
                .any(|f| f.contains("holds 4 records for offsets 0..5 but the run wrote 5")),
            "{f:?}"
        );
        // Payload claimed larger than what is there: no room left for framing.
        let mut e = expect(1, vec![1], 4);
        e.partitions[0].replicas = vec![1];
        e.partitions[0].payload_bytes = 4 * 60;
        let (_, f) = check(&dirs, 0, &e);
        assert!(
            f.iter()
                .any(|f| f.contains("outside the 7..=27 B of framing")),
            "{f:?}"
        );
        // Payload claimed smaller: too much left over.
        e.partitions[0].payload_bytes = 4 * 20;
        let (_, f) = check(&dirs, 0, &e);
        assert!(
            f.iter()
                .any(|f| f.contains("outside the 7..=27 B of framing")),
            "{f:?}"
        );
    }
}
