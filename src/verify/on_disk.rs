//! The on-disk check, the `du` before and after of the seed users: bytes under the embedded
//! brokers' log directories (apparent file sizes, like `du -b`) before and after the run, set
//! against the acknowledged payload bytes × replication factor.
//!
//! The check proper is on the topic's segment files (`<log.dir>/<topic>-<p>/*.log`): without
//! compression every partition that was acknowledged messages must hold at least their payload
//! bytes × RF in segments; with compression it must have grown at all (the ratio is reported).
//! External clusters: the same rule applied to the replica sizes the brokers report through
//! DescribeLogDirs ([`super::log_dirs`]), before and after the run. When that request cannot be
//! made (a TLS or SASL listener, a cluster that refuses it) the method is reported as
//! `"unavailable"` with the reason, rather than guessed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::summary::OnDiskSummary;

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

/// What the check needs to know about the run.
#[derive(Debug, Clone)]
pub struct Expectation<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Replication factor.
    pub replication_factor: u32,
    /// Acknowledged payload bytes (key + value), one copy.
    pub payload_bytes: u64,
    /// Acknowledged messages per partition.
    pub acked_per_partition: &'a [u64],
    /// Payload bytes per message.
    pub message_bytes: u64,
    /// Whether records are compressed (then sizes can shrink).
    pub compressed: bool,
}

/// Runs the check over embedded log dirs.
pub fn check(dirs: &[PathBuf], before: u64, e: &Expectation<'_>) -> (OnDiskSummary, Vec<String>) {
    let after = dir_bytes(dirs);
    judge(
        "walk",
        "log dirs",
        "segment bytes",
        before,
        after,
        |p| segment_bytes(dirs, e.topic, p),
        e,
    )
}

/// Runs the check over replica sizes per partition reported by the brokers (DescribeLogDirs,
/// summed over replicas), taken before and after the run.
pub fn check_reported(
    before: &BTreeMap<i32, u64>,
    after: &BTreeMap<i32, u64>,
    e: &Expectation<'_>,
) -> (OnDiskSummary, Vec<String>) {
    let total = |m: &BTreeMap<i32, u64>| m.values().sum::<u64>();
    judge(
        "describe_log_dirs",
        "replicas (DescribeLogDirs)",
        "replica bytes",
        total(before),
        total(after),
        |p| {
            let b = before.get(&p).copied().unwrap_or(0);
            after.get(&p).copied().unwrap_or(0).saturating_sub(b)
        },
        e,
    )
}

/// The judgement shared by both methods: overall growth against payload × RF, and per
/// partition the bytes its acknowledged messages need at least.
fn judge(
    method: &str,
    what: &str,
    held: &str,
    before: u64,
    after: u64,
    partition_bytes: impl Fn(i32) -> u64,
    e: &Expectation<'_>,
) -> (OnDiskSummary, Vec<String>) {
    let growth = after as i64 - before as i64;
    let copies = e.payload_bytes * u64::from(e.replication_factor);
    let mut failures = Vec::new();
    let mut segments = 0;
    for (p, acked) in e.acked_per_partition.iter().enumerate() {
        let bytes = partition_bytes(p as i32);
        segments += bytes;
        if *acked == 0 {
            continue;
        }
        let need = if e.compressed {
            1
        } else {
            acked * e.message_bytes * u64::from(e.replication_factor)
        };
        if bytes < need {
            failures.push(format!(
                "on disk: {}-{p} holds {bytes} {held} but {acked} acknowledged messages of {} B × RF {} need at least {need}",
                e.topic, e.message_bytes, e.replication_factor
            ));
        }
    }
    let ratio = if copies > 0 {
        growth as f64 / copies as f64
    } else {
        0.0
    };
    let detail = if failures.is_empty() {
        format!(
            "{what} grew by {growth} B for {} B of payload × RF {} (overhead ratio {ratio:.3}); partitions of {} hold {segments} B",
            e.payload_bytes, e.replication_factor, e.topic
        )
    } else {
        failures.join("; ")
    };
    let summary = OnDiskSummary {
        method: method.into(),
        bytes_before: before,
        bytes_after: after,
        growth,
        payload_bytes: e.payload_bytes,
        replication_factor: e.replication_factor,
        overhead_ratio: ratio,
        ok: Some(failures.is_empty()),
        detail,
    };
    (summary, failures)
}

/// The summary part when kbench cannot see the log dirs (external cluster).
pub fn unavailable(payload_bytes: u64, replication_factor: u32, reason: &str) -> OnDiskSummary {
    OnDiskSummary {
        method: "unavailable".into(),
        payload_bytes,
        replication_factor,
        ok: None,
        detail: format!("log-dir growth was not measured: {reason}"),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_segments_per_partition() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().to_path_buf();
        std::fs::create_dir_all(d.join("t-0")).unwrap();
        std::fs::create_dir_all(d.join("t-1")).unwrap();
        let before = dir_bytes(std::slice::from_ref(&d));
        std::fs::write(d.join("t-0/00000000000000000000.log"), vec![0u8; 2200]).unwrap();
        std::fs::write(d.join("t-0/00000000000000000000.index"), vec![0u8; 80]).unwrap();
        std::fs::write(d.join("t-1/00000000000000000000.log"), vec![0u8; 500]).unwrap();
        let e = Expectation {
            topic: "t",
            replication_factor: 1,
            payload_bytes: 4000,
            acked_per_partition: &[2, 2],
            message_bytes: 1000,
            compressed: false,
        };
        let (s, f) = check(&[d], before, &e);
        assert_eq!(s.growth, 2780);
        assert_eq!(s.ok, Some(false));
        assert_eq!(f.len(), 1);
        assert!(
            f[0].contains("t-1 holds 500 segment bytes") && f[0].contains("need at least 2000"),
            "{f:?}"
        );
    }
}
