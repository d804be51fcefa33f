//! Log cleaner throughput: builds a compacted partition log of `KBROKER_CLEANER_BENCH_MIB`
//! MiB (default 512) holding many versions of 10,000 keys (batches of 16 records of 1 KiB
//! values, keys spread evenly, 64 MiB segments) in a temp dir, then times one full cleaning
//! (both passes, the `.cleaned` files with their fsync, the swaps) and prints MiB/s of log
//! cleaned. Not a criterion bench: one cleaning of half a gigabyte is the measurement.
//!
//! `cargo bench -p kbroker --bench cleaner` (release build). The temp dir is under
//! `KBROKER_CLEANER_BENCH_DIR` when set (a real disk rather than a tmpfs /tmp).

use std::time::Instant;

use kbroker::log::{build_batch, CompactionConfig, LogConfig, PartitionLog};

const KEYS: usize = 10_000;
const RECORD_BYTES: usize = 1024;
const RECORDS_PER_BATCH: usize = 16;

fn main() {
    let mib: u64 = std::env::var("KBROKER_CLEANER_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    let tmp = match std::env::var_os("KBROKER_CLEANER_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .expect("temp dir");
    let config = LogConfig {
        segment_bytes: 64 << 20,
        segment_ms: None,
        retention_ms: None,
        compaction: Some(CompactionConfig::default()),
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(&tmp.path().join("bench-0"), config).expect("open log");
    let value = vec![b'x'; RECORD_BYTES];
    let keys: Vec<String> = (0..KEYS).map(|k| format!("key-{k:05}")).collect();
    let now = 1_700_000_000_000;
    let mut next_key = 0usize;
    let built = Instant::now();
    while log.size_bytes() < mib << 20 {
        let records: Vec<_> = (0..RECORDS_PER_BATCH)
            .map(|i| {
                // A stride coprime with KEYS walks every key once per 10,000 records.
                let k = (next_key + i * 7919) % KEYS;
                (Some(keys[k].as_bytes()), Some(value.as_slice()))
            })
            .collect();
        next_key = (next_key + 1) % KEYS;
        log.append(build_batch(&records, now, -1, -1, -1, false, false), now)
            .expect("append");
    }
    log.flush().expect("flush");
    let size_before = log.size_bytes();
    println!(
        "built {:.0} MiB in {} segments ({} records) in {:.1}s",
        size_before as f64 / 1048576.0,
        log.segment_count(),
        log.log_end_offset(),
        built.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let cleaning = log
        .plan_clean(i64::MAX, now + 1000)
        .expect("a fully dirty log is due for cleaning");
    let stats = cleaning
        .run(&|_| {}, &mut |group| log.install_cleaned(group))
        .expect("clean");
    let secs = started.elapsed().as_secs_f64();
    let cleaned_mib = stats.bytes_before as f64 / 1048576.0;
    println!(
        "cleaned {cleaned_mib:.0} MiB -> {:.1} MiB ({} records removed, {} groups) in {secs:.2}s: \
         {:.0} MiB/s of log cleaned ({:.0} MiB/s read over both passes)",
        stats.bytes_after as f64 / 1048576.0,
        stats.records_removed,
        stats.groups,
        cleaned_mib / secs,
        stats.bytes_read as f64 / 1048576.0 / secs,
    );
    println!(
        "log now {:.1} MiB in {} segments",
        log.size_bytes() as f64 / 1048576.0,
        log.segment_count()
    );
}
