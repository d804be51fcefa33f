//! The compact summary table printed at the end of `kbench run`: verdict first, then
//! throughput, latency percentiles, delivery and on-disk figures. Plain text, no colour, so it
//! reads the same in a terminal, a CI log or a closing note.

use std::fmt::Write;

use crate::summary::{Percentiles, Summary};

/// The summary as a compact, aligned text table (ends with a newline).
pub fn terminal_table(s: &Summary) -> String {
    let mut o = String::new();
    let verdict = if s.verdict.passed { "PASSED" } else { "FAILED" };
    let _ = writeln!(
        o,
        "kbench {} — {}{} [{} target, {} broker(s)]",
        s.scenario.name,
        verdict,
        cell_suffix(s),
        s.target.kind.as_str(),
        s.target.brokers
    );
    for f in &s.verdict.failures {
        let _ = writeln!(o, "  ✗ {f}");
    }
    for w in &s.warnings {
        let _ = writeln!(o, "  ! {w}");
    }
    let p = &s.produce;
    let c = &s.consume;
    let _ = writeln!(
        o,
        "{:<10} {:>12} {:>12} {:>10} {:>9}",
        "", "messages", "msgs/s", "MiB/s", "time s"
    );
    let _ = writeln!(
        o,
        "{:<10} {:>12} {:>12.0} {:>10.2} {:>9.2}",
        "produce", p.acked, p.msgs_per_s, p.mib_per_s, p.duration_s
    );
    let _ = writeln!(
        o,
        "{:<10} {:>12} {:>12.0} {:>10.2} {:>9.2}",
        "consume", c.messages, c.msgs_per_s, c.mib_per_s, c.duration_s
    );
    if let Some(target) = p.target_msgs_per_s {
        let reached = match p.rate_reached {
            Some(true) => "reached",
            Some(false) => "NOT reached",
            None => "",
        };
        let _ = writeln!(o, "target rate {target:.0} msgs/s: {reached}");
    }
    let _ = writeln!(
        o,
        "{:<10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "latency ms", "p50", "p90", "p99", "p99.9", "max", "mean"
    );
    let acks0 = p.latency_means.starts_with("time to send");
    latency_line(
        &mut o,
        if acks0 { "time to send" } else { "produce" },
        &p.latency_ms,
    );
    if p.failed > 0 {
        latency_line(&mut o, "failed", &p.failed_latency_ms);
    }
    latency_line(&mut o, "end-to-end", &c.e2e_latency_ms);
    let _ = writeln!(
        o,
        "errors: {} of {} deliveries failed ({:.2} %){}; set-up {:.2} s before the first send (clients {:.2} s)",
        p.failed,
        p.acked + p.failed,
        p.error_ratio * 100.0,
        if acks0 {
            "; acks=0: latency is the time to send, nothing is acknowledged"
        } else {
            ""
        },
        p.setup_s,
        p.clients_s
    );
    let d = &s.delivery;
    let _ = writeln!(
        o,
        "delivery ({}): acked {} consumed {} lost {} duplicated {} unexpected {} reordered {} corrupted {}",
        if d.expected.is_empty() {
            "none"
        } else {
            &d.expected
        },
        d.acked,
        d.consumed,
        d.lost,
        d.duplicated,
        d.unexpected,
        d.reordered,
        d.corrupted
    );
    if let Some(f) = &d.final_read {
        let _ = match &f.error {
            Some(e) => writeln!(o, "final read: {e}"),
            None => writeln!(
                o,
                "final read: {} records of this run in the log, {} acknowledged missing{}",
                f.read,
                f.lost,
                f.partitions
                    .iter()
                    .map(|l| format!(
                        ", partition {} holds {} of {}",
                        l.partition, l.held, l.acked
                    ))
                    .collect::<String>()
            ),
        };
    }
    if !s.offsets.partitions.is_empty() {
        let bad = s.offsets.partitions.iter().filter(|p| !p.ok).count();
        let _ = writeln!(
            o,
            "offsets: {} partition(s), {}",
            s.offsets.partitions.len(),
            if s.offsets.ok {
                "all agree".to_string()
            } else {
                format!("{bad} disagree")
            }
        );
    }
    let od = &s.on_disk;
    if !od.method.is_empty() && od.method != "skipped" {
        let ok = match od.ok {
            Some(true) => "ok",
            Some(false) => "MISMATCH",
            None => "not checked",
        };
        let _ = writeln!(
            o,
            "on disk: grew {} for {} payload × RF {} (ratio {:.3}) — {ok}",
            bytes(od.growth_bytes.max(0) as u64),
            bytes(od.payload_bytes),
            od.replication_factor,
            od.overhead_ratio
        );
    }
    let sys = &s.system;
    if sys.samples > 0 {
        let _ = writeln!(
            o,
            "system: CPU avg {:.0}% max {:.0}% of the machine, memory max {}, network {}, disk written {}",
            sys.cpu_avg_pct,
            sys.cpu_max_pct,
            bytes(sys.mem_max_bytes),
            bytes(sys.net_bytes),
            bytes(sys.disk_write_bytes)
        );
    }
    let errors: u64 = s.errors.values().sum();
    if errors > 0 {
        let kinds: Vec<String> = s.errors.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(o, "errors: {}", kinds.join(", "));
    }
    o
}

/// One run of a set in one line (`run 2/5: PASSED  produce 95123 msgs/s  p99 3.2 ms ...`),
/// followed by its failures and warnings, if any.
pub fn run_line(s: &Summary, label: &str) -> String {
    let verdict = if s.verdict.passed { "PASSED" } else { "FAILED" };
    let mut o = format!(
        "{label}: {verdict}  produce {:.0} msgs/s ({:.2} MiB/s)  p99 {:.3} ms",
        s.produce.msgs_per_s, s.produce.mib_per_s, s.produce.latency_ms.p99
    );
    if s.consume.messages > 0 {
        let _ = write!(
            o,
            "  consume {:.0} msgs/s  e2e p99 {:.3} ms",
            s.consume.msgs_per_s, s.consume.e2e_latency_ms.p99
        );
    }
    for f in &s.verdict.failures {
        let _ = write!(o, "\n  ✗ {f}");
    }
    for w in &s.warnings {
        let _ = write!(o, "\n  ! {w}");
    }
    o
}

fn cell_suffix(s: &Summary) -> String {
    if s.scenario.matrix_cell.is_empty() {
        return String::new();
    }
    let kv: Vec<String> = s
        .scenario
        .matrix_cell
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(" ({})", kv.join(", "))
}

fn latency_line(o: &mut String, name: &str, p: &Percentiles) {
    let _ = writeln!(
        o,
        "{:<10} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
        name, p.p50, p.p90, p.p99, p.p999, p.max, p.mean
    );
}

/// Bytes in binary units (`1.00 GiB`).
pub(crate) fn bytes(b: u64) -> String {
    bytesize::ByteSize::b(b).display().iec().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testdata;

    #[test]
    fn table_holds_the_key_figures() {
        let s = testdata::run_data().summary;
        let t = terminal_table(&s);
        assert!(t.contains("PASSED"), "{t}");
        assert!(t.contains("produce"));
        assert!(t.contains(&format!("{:.0}", s.produce.msgs_per_s)), "{t}");
        assert!(
            t.contains(&format!("{:.3}", s.produce.latency_ms.p99)),
            "{t}"
        );
        assert!(t.contains("lost 0 duplicated 0"), "{t}");
        assert!(t.contains("on disk:"), "{t}");
        let mut failed = s.clone();
        failed.verdict.passed = false;
        failed.verdict.failures.push("3 messages lost".into());
        let t = terminal_table(&failed);
        assert!(t.contains("FAILED") && t.contains("3 messages lost"), "{t}");
    }
}
