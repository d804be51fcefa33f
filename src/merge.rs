//! `kbench merge RUN_DIR... --out DIR`: the run folders of the shards of one sharded run
//! ([`crate::shard`]) made into one report and one verdict, as if one process had run it.
//!
//! Nothing is re-measured and nothing is estimated: counters are summed, HDR histograms are
//! added from their `.hdr` files, time series are summed per interval of the shared clock (the
//! start barrier is t0 of every shard), and the delivery verdict is the one verifier
//! ([`crate::verify::delivery`]) run on the merged ledgers, so a message produced on one host
//! and consumed on another is judged exactly as in one process. The offsets check runs once for
//! the whole topic (watermarks before from the shards' records, after from the last reader,
//! acknowledgements summed), and so does the on-disk check (shard 1's DescribeLogDirs sizes
//! before the start barrier and after every shard drained, against every shard's bytes). Per-interval percentiles of the merged series are the highest
//! shard's (an upper bound: the interval histograms are not kept).
//!
//! End-to-end latency compares a producer's clock with a consumer's: across hosts that is
//! only meaningful with synchronised clocks, so by default only messages consumed by the
//! shard that produced them count, and the report says how many that is.
//!
//! A shard given twice, missing, or from another run id, shard count or scenario is an error
//! (exit 2) naming it; a shard that started but did not finish (killed) fails the verdict
//! with its number.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use crate::ledger::{read_bitmaps, AckLedger, GroupLedger};
use crate::scenario::Scenario;
use crate::shard::{ShardRecord, E2E_CROSS_HDR, LEDGER_DIR};
use crate::summary::{latency_histogram, IntervalRow, Percentiles, RunData, Summary, MIB};

/// File name of the per-shard listing in a merged report.
pub const SHARDS_JSON: &str = "shards.json";

/// One shard's folder as the merge reads it.
struct Part {
    dir: PathBuf,
    record: ShardRecord,
    /// The shard's report, when it finished.
    data: Option<RunData>,
}

/// Merges the shards' run folders into `out`; returns the merged summary (already written).
pub fn merge(dirs: &[PathBuf], out: &Path, clocks_synced: bool) -> anyhow::Result<Summary> {
    let parts = read_parts(dirs)?;
    let whole: Scenario = serde_json::from_value(parts[0].record.scenario.clone())
        .with_context(|| format!("{}: the scenario in shard.json", parts[0].dir.display()))?;
    crate::report::prepare_dir(out)?;
    let finished: Vec<&Part> = parts.iter().filter(|p| p.data.is_some()).collect();
    let Some(first) = finished.first() else {
        bail!(
            "no shard of run {} finished: nothing to merge",
            parts[0].record.run_id
        );
    };
    let first_data = first.data.as_ref().expect("finished");
    let mut failures = Vec::new();
    for p in &parts {
        let label = format!("shard {}/{}", p.record.index, p.record.count);
        match &p.data {
            None => failures.push(format!(
                "{label} ({}, host {}) did not finish (killed or crashed?): its acknowledgements and receipts are missing from this verdict",
                p.dir.display(),
                p.record.host
            )),
            Some(d) => failures.extend(
                d.summary
                    .verdict
                    .failures
                    .iter()
                    .map(|f| format!("{label} ({}): {f}", p.record.host)),
            ),
        }
    }

    // Ledgers: one verifier for the whole run.
    let mut acks = AckLedger::default();
    let mut groups: Vec<(String, GroupLedger)> = Vec::new();
    for p in &finished {
        let (a, g) = read_ledgers(&p.dir, &p.record)?;
        acks.merge(&a);
        for (i, (id, ledger)) in g.into_iter().enumerate() {
            match groups.get_mut(i) {
                Some((_, mine)) => mine.merge(&ledger),
                None => groups.push((id, ledger)),
            }
        }
    }
    let (mut delivery, f) = crate::verify::delivery::check(
        whole.verify.delivery,
        whole.verify.order,
        whole.consumers.isolation,
        &acks,
        &groups,
    );
    failures.extend(f);

    // Histograms and counters.
    let mut produce_hist = latency_histogram();
    let mut e2e_hist = latency_histogram();
    let (mut e2e_local, mut e2e_cross) = (0u64, 0u64);
    let mut s = first_data.summary.clone();
    let (mut produce, mut consume) = (s.produce.clone(), s.consume.clone());
    zero_counts(&mut produce, &mut consume);
    let mut errors = BTreeMap::new();
    let (mut produced_measured, mut consumed_measured) = ((0.0, 0.0), (0.0, 0.0));
    let mut wall_s: f64 = 0.0;
    for p in &finished {
        let d = p.data.as_ref().expect("finished");
        let ps = &d.summary.produce;
        let _ = produce_hist.add(&d.produce_latency);
        let _ = e2e_hist.add(&d.e2e_latency);
        e2e_local += p.record.e2e_local;
        e2e_cross += p.record.e2e_cross;
        if clocks_synced {
            if let Some(cross) = read_hdr(&p.dir.join(E2E_CROSS_HDR))? {
                let _ = e2e_hist.add(&cross);
            }
        }
        produce.messages += ps.messages;
        produce.bytes += ps.bytes;
        produce.acked += ps.acked;
        produce.failed += ps.failed;
        produce.duration_s = produce.duration_s.max(ps.duration_s);
        produced_measured.0 += ps.msgs_per_s * ps.duration_s;
        produced_measured.1 += ps.mib_per_s * ps.duration_s;
        produce.setup_s = produce.setup_s.max(ps.setup_s);
        produce.clients_s = produce.clients_s.max(ps.clients_s);
        produce.time_limited |= ps.time_limited;
        if let Some(n) = ps.never_sent {
            produce.never_sent = Some(produce.never_sent.unwrap_or(0) + n);
        }
        let cs = &d.summary.consume;
        consume.messages += cs.messages;
        consume.bytes += cs.bytes;
        consume.duration_s = consume.duration_s.max(cs.duration_s);
        consumed_measured.0 += cs.msgs_per_s * cs.duration_s;
        consumed_measured.1 += cs.mib_per_s * cs.duration_s;
        for (k, v) in &d.summary.errors {
            *errors.entry(k.clone()).or_insert(0) += v;
        }
        wall_s = wall_s.max(d.summary.run.wall_s);
    }
    if produce.duration_s > 0.0 {
        produce.msgs_per_s = produced_measured.0 / produce.duration_s;
        produce.mib_per_s = produced_measured.1 / produce.duration_s;
    }
    if consume.duration_s > 0.0 {
        consume.msgs_per_s = consumed_measured.0 / consume.duration_s;
        consume.mib_per_s = consumed_measured.1 / consume.duration_s;
    }
    produce.latency_ms = Percentiles::from_histogram(&produce_hist);
    consume.e2e_latency_ms = Percentiles::from_histogram(&e2e_hist);
    let target = whole
        .producers
        .rate_each()
        .map(|r| r * f64::from(whole.producers.count));
    if let Some(failure) = produce.judge_rate(target, whole.verify.require_rate) {
        failures.push(format!("{failure}, all shards together"));
    }

    // Offsets, once for the whole topic.
    let record = &first.record;
    if whole.verify.offsets {
        let mut after: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
        let n = record.marks_before.len();
        let (mut acked, mut other) = (vec![0u64; n], vec![0u64; n]);
        for p in &finished {
            for (part, w) in &p.record.marks_after {
                let e = after.entry(*part).or_insert(*w);
                *e = ((e.0).min(w.0), (e.1).max(w.1));
            }
            for (i, v) in p.record.per_partition.iter().enumerate().take(n) {
                acked[i] += v;
            }
            for (i, v) in p.record.per_partition_other.iter().enumerate().take(n) {
                other[i] += v;
            }
        }
        if after.is_empty() {
            failures.push("offsets: no shard could read the end offsets".into());
        } else {
            let (o, f) = crate::verify::offsets::check(
                &record.topic,
                &record.marks_before,
                &after,
                &acked,
                &other,
            );
            s.offsets = o;
            failures.extend(f);
        }
    }
    let (on_disk, f) = on_disk(&whole, &parts, &finished);
    s.on_disk = on_disk;
    failures.extend(f);

    delivery.faults = Vec::new();
    s.durability = crate::summary::DurabilitySummary::from_run(
        whole.producers.acks.as_config(),
        u32::try_from(whole.topic.replication_factor).unwrap_or(0),
        whole.topic.min_insync(),
        s.target.brokers,
        &delivery,
        &errors,
    );
    let mut warnings = crate::summary::window_warnings(
        &produce,
        whole.sampling.interval.0.as_secs_f64(),
        whole.producers.batch_size.map_or(1_000_000, |b| b.0),
        whole.producers.count,
    );
    warnings.push(if clocks_synced {
        format!("end-to-end latency from all {} messages measured (--clocks-synced: {e2e_cross} of them produced on another shard's host)", e2e_local + e2e_cross)
    } else {
        format!("end-to-end latency from the {e2e_local} of {} measured messages consumed by the shard that produced them (clocks of different hosts are not compared; --clocks-synced to include the other {e2e_cross})", e2e_local + e2e_cross)
    });
    let hosts: Vec<String> = parts
        .iter()
        .map(|p| format!("{}={}", p.record.index, p.record.host))
        .collect();
    s.run.host = format!("{} shards: {}", parts.len(), hosts.join(" "));
    s.run.wall_s = wall_s;
    s.config = whole.resolved();
    s.produce = produce;
    s.consume = consume;
    s.delivery = delivery;
    s.errors = errors;
    s.events = first_data
        .summary
        .events
        .iter()
        .map(|e| crate::summary::Event {
            t_s: e.t_s - record.start_t_s,
            ..e.clone()
        })
        .collect();
    s.verdict = crate::summary::Verdict {
        passed: failures.is_empty(),
        failures,
    };
    s.warnings = warnings;
    s.hosts = parts
        .iter()
        .map(|p| crate::summary::HostSummary {
            shard: format!("{}/{}", p.record.index, p.record.count),
            host: p.record.host.clone(),
            finished: p.data.is_some(),
            acked: p.data.as_ref().map_or(0, |d| d.summary.produce.acked),
            system: p
                .data
                .as_ref()
                .map(|d| d.summary.system.clone())
                .unwrap_or_default(),
        })
        .collect();
    let interval = whole.sampling.interval.0.as_secs_f64();
    let data = RunData {
        summary: s.clone(),
        intervals: merge_intervals(&finished, interval),
        system: first_data.system.clone(),
        produce_latency: produce_hist,
        e2e_latency: e2e_hist,
    };
    crate::report::write_run(out, &data)
        .with_context(|| format!("writing the merged report into {}", out.display()))?;
    write_shards(out, &parts)?;
    Ok(s)
}

/// The on-disk check, once for the whole topic: shard 1's DescribeLogDirs sizes before the
/// start barrier and after every shard drained, against every shard's acknowledged records and
/// bytes. Skipped (and said so) when shard 1 did not finish or could not read the sizes.
fn on_disk(
    whole: &Scenario,
    parts: &[Part],
    finished: &[&Part],
) -> (crate::summary::OnDiskSummary, Vec<String>) {
    let rf = u32::try_from(whole.topic.replication_factor).unwrap_or(1);
    let payload: u64 = finished
        .iter()
        .map(|p| p.record.per_partition_bytes.iter().sum::<u64>())
        .sum();
    let skipped = |why: String| {
        (
            crate::summary::OnDiskSummary {
                method: "skipped".into(),
                payload_bytes: payload,
                replication_factor: rf,
                detail: why,
                ..Default::default()
            },
            Vec::new(),
        )
    };
    if !whole.verify.on_disk {
        return skipped("verify.on_disk = false".into());
    }
    let one = &parts[0];
    if one.data.is_none() {
        return skipped(
            "sharded run: shard 1, which takes the brokers' sizes, did not finish".into(),
        );
    }
    let (before, after) = match (&one.record.log_dirs_before, &one.record.log_dirs_after) {
        (Some(Ok(b)), Some(Ok(a))) => (
            b.iter().copied().collect::<BTreeMap<_, _>>(),
            a.iter().copied().collect::<BTreeMap<_, _>>(),
        ),
        (Some(Err(e)), _) | (_, Some(Err(e))) => {
            return skipped(format!(
                "sharded run: DescribeLogDirs failed in shard 1: {e}"
            ))
        }
        _ => return skipped("sharded run: shard 1 took no sizes".into()),
    };
    let n = one.record.marks_before.len();
    let (mut records, mut other, mut bytes) = (vec![0u64; n], vec![0u64; n], vec![0u64; n]);
    for p in finished {
        for (v, from) in [
            (&mut records, &p.record.per_partition),
            (&mut other, &p.record.per_partition_other),
            (&mut bytes, &p.record.per_partition_bytes),
        ] {
            for (i, x) in from.iter().enumerate().take(n) {
                v[i] += x;
            }
        }
    }
    let partitions = one
        .record
        .roles
        .iter()
        .map(|(p, leader, replicas, isr)| {
            let i = usize::try_from(*p).unwrap_or(usize::MAX);
            let at = |v: &[u64]| v.get(i).copied().unwrap_or(0);
            crate::verify::on_disk::PartitionExpect {
                partition: *p,
                leader: *leader,
                replicas: replicas.clone(),
                isr: isr.clone(),
                offsets: (
                    one.record.marks_before.get(p).map_or(0, |w| w.1),
                    one.record.marks_after.get(p).map_or(0, |w| w.1),
                ),
                records: at(&records) + at(&other),
                other_records: at(&other),
                payload_bytes: at(&bytes),
            }
        })
        .collect();
    let e = crate::verify::on_disk::Expectation {
        topic: &one.record.topic,
        replication_factor: rf,
        payload_bytes: payload,
        partitions,
        fewer_fail: matches!(
            whole.verify.delivery,
            crate::scenario::Delivery::ExactlyOnce | crate::scenario::Delivery::AtLeastOnce
        ),
        more_fail: whole.verify.offsets,
    };
    let compressed = whole.producers.compression != crate::scenario::Compression::None;
    crate::verify::on_disk::check_reported(&before, &after, compressed, &e)
}

fn zero_counts(
    produce: &mut crate::summary::ProduceSummary,
    consume: &mut crate::summary::ConsumeSummary,
) {
    *produce = crate::summary::ProduceSummary {
        latency_means: produce.latency_means.clone(),
        failed_latency_ms: produce.failed_latency_ms,
        ..Default::default()
    };
    *consume = crate::summary::ConsumeSummary {
        groups: consume.groups,
        ..Default::default()
    };
}

/// Reads every folder's `shard.json` and report; checks they are the shards of one run, each
/// once, none missing.
fn read_parts(dirs: &[PathBuf]) -> anyhow::Result<Vec<Part>> {
    let mut parts = Vec::new();
    for dir in dirs {
        parts.push(Part {
            dir: dir.clone(),
            record: ShardRecord::read(dir)?,
            data: None,
        });
    }
    let Some(first) = parts.first() else {
        bail!("no run folder given");
    };
    let (id, count) = (first.record.run_id.clone(), first.record.count);
    for p in &parts[1..] {
        let r = &p.record;
        if r.run_id != id {
            bail!(
                "{} is shard {}/{} of run {}, but {} is of run {}: merge the shards of one run",
                p.dir.display(),
                r.index,
                r.count,
                r.run_id,
                first.dir.display(),
                id
            );
        }
        if r.count != count {
            bail!(
                "{} says {} shards, {} says {count}",
                p.dir.display(),
                r.count,
                first.dir.display()
            );
        }
        if r.scenario != first.record.scenario {
            bail!(
                "{} ran another scenario (or other --set overrides) than {}",
                p.dir.display(),
                first.dir.display()
            );
        }
    }
    let mut by_index: BTreeMap<u32, &PathBuf> = BTreeMap::new();
    for p in &parts {
        if let Some(other) = by_index.insert(p.record.index, &p.dir) {
            bail!(
                "shard {}/{count} given twice: {} and {}",
                p.record.index,
                other.display(),
                p.dir.display()
            );
        }
    }
    let missing: Vec<String> = (1..=count)
        .filter(|i| !by_index.contains_key(i))
        .map(|i| i.to_string())
        .collect();
    if !missing.is_empty() {
        bail!(
            "shard(s) {} of {count} of run {id} missing: give every shard's run folder",
            missing.join(", ")
        );
    }
    parts.sort_by_key(|p| p.record.index);
    // Reports are read once the folders are known to be one run's shards.
    for p in &mut parts {
        if p.record.finished {
            p.data = Some(crate::report::read_run(&p.dir)?);
        }
    }
    Ok(parts)
}

/// A shard's ledgers from `dir/ledger/`.
fn read_ledgers(
    dir: &Path,
    rec: &ShardRecord,
) -> anyhow::Result<(AckLedger, Vec<(String, GroupLedger)>)> {
    let read = |name: &str| -> anyhow::Result<_> {
        let path = dir.join(LEDGER_DIR).join(name);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        read_bitmaps(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    };
    let acks = AckLedger {
        acked: read("acked.roaring")?,
        aborted: read("aborted.roaring")?,
    };
    let mut groups = Vec::new();
    for (g, (id, counters)) in rec.groups.iter().enumerate() {
        let received = read(&format!("group-{g}.roaring"))?;
        groups.push((id.clone(), GroupLedger::from_parts(received, *counters)));
    }
    Ok((acks, groups))
}

fn read_hdr(path: &Path) -> anyhow::Result<Option<hdrhistogram::Histogram<u64>>> {
    match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => Ok(Some(
            crate::report::hgrm::decode_hdr(&t)
                .with_context(|| format!("reading {}", path.display()))?,
        )),
        _ => Ok(None),
    }
}

/// The shards' time series summed per interval of the shared clock (t = 0 at the agreed
/// start); percentiles are the highest shard's.
fn merge_intervals(parts: &[&Part], interval: f64) -> Vec<IntervalRow> {
    let mut bins: BTreeMap<i64, IntervalRow> = BTreeMap::new();
    for p in parts {
        let Some(d) = &p.data else { continue };
        for r in &d.intervals {
            let k = ((r.t_s - p.record.start_t_s) / interval).round() as i64;
            let b = bins.entry(k).or_insert_with(|| IntervalRow {
                t_s: k as f64 * interval,
                interval_s: r.interval_s,
                ..Default::default()
            });
            b.interval_s = b.interval_s.max(r.interval_s);
            b.produced_msgs += r.produced_msgs;
            b.produced_bytes += r.produced_bytes;
            b.acked_msgs += r.acked_msgs;
            b.acked_bytes += r.acked_bytes;
            b.consumed_msgs += r.consumed_msgs;
            b.consumed_bytes += r.consumed_bytes;
            b.errors += r.errors;
            b.produce_p50_us = b.produce_p50_us.max(r.produce_p50_us);
            b.produce_p99_us = b.produce_p99_us.max(r.produce_p99_us);
            b.produce_max_us = b.produce_max_us.max(r.produce_max_us);
            b.e2e_p50_us = b.e2e_p50_us.max(r.e2e_p50_us);
            b.e2e_p99_us = b.e2e_p99_us.max(r.e2e_p99_us);
            b.e2e_max_us = b.e2e_max_us.max(r.e2e_max_us);
            b.in_warmup |= r.in_warmup;
        }
    }
    bins.into_values().collect()
}

/// `shards.json`: each shard's folder, host, whether it finished, and its figures and system
/// stats side by side (the merged report's system charts are shard 1's host; every shard's
/// sampler rows are copied beside them as `system-shard-I.csv`).
fn write_shards(out: &Path, parts: &[Part]) -> anyhow::Result<()> {
    let rows: Vec<serde_json::Value> = parts
        .iter()
        .map(|p| {
            let d = p.data.as_ref();
            serde_json::json!({
                "index": p.record.index,
                "dir": p.dir.display().to_string(),
                "host": p.record.host,
                "finished": p.data.is_some(),
                "producers": p.record.producers,
                "members_per_group": p.record.members,
                "acked": d.map(|d| d.summary.produce.acked),
                "produce_mib_per_s": d.map(|d| d.summary.produce.mib_per_s),
                "consumed": d.map(|d| d.summary.consume.messages),
                "e2e_local": p.record.e2e_local,
                "e2e_cross": p.record.e2e_cross,
                "system": d.map(|d| &d.summary.system),
            })
        })
        .collect();
    let path = out.join(SHARDS_JSON);
    std::fs::write(&path, serde_json::to_string_pretty(&rows)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    for p in parts.iter().filter(|p| p.data.is_some()) {
        let (from, to) = (
            p.dir.join(crate::report::SYSTEM_CSV),
            out.join(format!("system-shard-{}.csv", p.record.index)),
        );
        if from.exists() {
            std::fs::copy(&from, &to)
                .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        }
    }
    for p in parts {
        match &p.data {
            Some(d) => eprintln!(
                "kbench: shard {}/{} on {}: {} acked, {:.1} MiB/s, cpu avg {:.0} % max {:.0} %, mem max {:.0} MiB",
                p.record.index,
                p.record.count,
                p.record.host,
                d.summary.produce.acked,
                d.summary.produce.mib_per_s,
                d.summary.system.cpu_avg_pct,
                d.summary.system.cpu_max_pct,
                d.summary.system.mem_max_bytes as f64 / MIB
            ),
            None => eprintln!(
                "kbench: shard {}/{} on {}: did not finish",
                p.record.index, p.record.count, p.record.host
            ),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(start_t_s: f64, rows: &[(f64, u64, u64)]) -> Part {
        let mut data = RunData::new(Summary::default());
        data.intervals = rows
            .iter()
            .map(|&(t_s, acked, p99)| IntervalRow {
                t_s,
                interval_s: 0.5,
                acked_msgs: acked,
                produce_p99_us: p99,
                ..Default::default()
            })
            .collect();
        Part {
            dir: PathBuf::new(),
            record: ShardRecord {
                start_t_s,
                ..Default::default()
            },
            data: Some(data),
        }
    }

    #[test]
    fn time_series_are_summed_per_interval_of_the_shared_clock() {
        // Shard a reached the barrier 3.0 s into its run, shard b 0.2 s into its own.
        let a = part(3.0, &[(3.5, 10, 100), (4.0, 20, 300)]);
        let b = part(0.2, &[(0.71, 1, 500), (1.19, 2, 50), (1.7, 4, 50)]);
        let rows = merge_intervals(&[&a, &b], 0.5);
        let got: Vec<(f64, u64, u64)> = rows
            .iter()
            .map(|r| (r.t_s, r.acked_msgs, r.produce_p99_us))
            .collect();
        assert_eq!(got, [(0.5, 11, 500), (1.0, 22, 300), (1.5, 4, 50)]);
    }
}
