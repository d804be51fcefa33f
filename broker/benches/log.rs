//! Micro-benchmarks of the partition log's hot paths: appending producer-sized batches
//! (16 records of 1 KiB, ~16.5 KiB per batch) and sequential 1 MiB fetch reads, both against a
//! real temp directory (page cache, no fsync, as with Kafka's default flush settings).

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kbroker::log::{build_batch, LogConfig, PartitionLog};

const RECORD_BYTES: usize = 1024;
const RECORDS_PER_BATCH: usize = 16;
const FETCH_BYTES: usize = 1 << 20;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 20,
        segment_ms: None,
        retention_ms: None,
        ..LogConfig::default()
    }
}

fn producer_batch() -> Bytes {
    let value = vec![b'x'; RECORD_BYTES];
    let records: Vec<_> = (0..RECORDS_PER_BATCH)
        .map(|_| (None, Some(value.as_slice())))
        .collect();
    build_batch(&records, 1_700_000_000_000, -1, -1, -1, false, false)
}

fn append(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(&tmp.path().join("bench-0"), config()).expect("open");
    let batch = producer_batch();
    let mut group = c.benchmark_group("log");
    group.throughput(Throughput::Bytes(batch.len() as u64));
    group.bench_function("append_16KiB_batch", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                // The copy stands in for the request buffer the broker receives; not timed.
                let data = BytesMut::from(&batch[..]);
                let start = Instant::now();
                log.append(data, 0).expect("append");
                elapsed += start.elapsed();
                if log.size_bytes() > 512 << 20 {
                    // Keep the temp dir small: drop everything but the active segment.
                    log.delete_records_before(log.log_end_offset())
                        .expect("delete");
                    log.apply_retention(0).expect("retention");
                }
            }
            elapsed
        });
    });
    group.finish();
}

fn read(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(&tmp.path().join("bench-0"), config()).expect("open");
    let batch = producer_batch();
    while log.size_bytes() < 256 << 20 {
        log.append(BytesMut::from(&batch[..]), 0).expect("append");
    }
    let end = log.log_end_offset();
    let mut next = 0i64;
    let mut group = c.benchmark_group("log");
    group.throughput(Throughput::Bytes(FETCH_BYTES as u64));
    group.bench_function("read_1MiB_sequential", |b| {
        b.iter(|| {
            let data = log.read(next, FETCH_BYTES, i64::MAX).expect("read");
            // Continue after the last whole batch returned, wrapping at the end.
            let last = kbroker::log::batch::batches(&data)
                .last()
                .and_then(Result::ok)
                .map_or(end, |(h, _)| h.next_offset());
            next = if last >= end { 0 } else { last };
            data
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(5));
    targets = append, read
}
criterion_main!(benches);
