//! `kbench compare`: runs side by side, and the regression gate CI calls.
//!
//! Inputs are run directories or `summary.json` files. Each becomes one [`CompareRow`]
//! (throughput, latency percentiles, delivery, on-disk), shown as a terminal table, a markdown
//! table and a CSV, with bar charts of throughput and p99 latency. With thresholds, the **last**
//! input is judged against the **first**: a throughput drop or a latency rise beyond the
//! threshold marks the comparison as regressed (kbench then exits 1). The matrix runner calls
//! [`run`] with its cells' run directories.
//!
//! Building the rows and judging them are pure functions ([`rows`], [`judge`],
//! [`markdown_table`], ...); [`run`] adds the file I/O.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::report::charts::comparison::{write_bar_chart, BarChart};
use crate::report::{read_summary, SUMMARY_JSON};
use crate::summary::Summary;

/// File names written into the output directory.
pub const COMPARISON_MD: &str = "comparison.md";
/// CSV of the comparison rows.
pub const COMPARISON_CSV: &str = "comparison.csv";

/// One compared run: a row of every table and of `comparison.csv`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompareRow {
    /// Short name: scenario name plus matrix cell (`acks [producers.acks=all]`), or the run
    /// directory's name when that alone would be ambiguous.
    pub label: String,
    /// Where the summary was read from.
    pub source: String,
    /// Acknowledged messages per second.
    pub produce_msgs_per_s: f64,
    /// Acknowledged payload MiB per second.
    pub produce_mib_per_s: f64,
    /// Consumed messages per second, all groups.
    pub consume_msgs_per_s: f64,
    /// Produce latency median, ms.
    pub produce_p50_ms: f64,
    /// Produce latency 99th percentile, ms.
    pub produce_p99_ms: f64,
    /// Produce latency 99.9th percentile, ms.
    pub produce_p999_ms: f64,
    /// End-to-end latency median, ms.
    pub e2e_p50_ms: f64,
    /// End-to-end latency 99th percentile, ms.
    pub e2e_p99_ms: f64,
    /// End-to-end latency 99.9th percentile, ms.
    pub e2e_p999_ms: f64,
    /// Messages lost (acknowledged, never consumed).
    pub lost: u64,
    /// Extra copies consumed.
    pub duplicated: u64,
    /// On-disk growth / (payload × replication factor).
    pub on_disk_ratio: f64,
    /// On-disk check: `"ok"`, `"mismatch"` or `"-"` (not checked).
    pub on_disk: String,
    /// Whether the run's own verdict passed.
    pub passed: bool,
}

/// What a comparison found.
#[derive(Debug, Clone)]
pub struct CompareOutcome {
    /// One row per input, in input order.
    pub rows: Vec<CompareRow>,
    /// The side-by-side table for the terminal (ends with the regression verdict, if judged).
    pub table: String,
    /// The same as a markdown table.
    pub markdown: String,
    /// Whether the last input regressed against the first beyond the thresholds.
    pub regressed: bool,
    /// One line per threshold exceeded (empty when not regressed).
    pub regressions: Vec<String>,
}

/// Compares `inputs` (run directories or `summary.json` files). With `out`, writes
/// `comparison.md`, `comparison.csv` and the bar charts there. With thresholds (percent),
/// judges the last input against the first.
pub fn run(
    inputs: &[PathBuf],
    out: Option<&Path>,
    max_throughput_drop_pct: Option<f64>,
    max_latency_rise_pct: Option<f64>,
) -> anyhow::Result<CompareOutcome> {
    if inputs.is_empty() {
        anyhow::bail!("compare needs at least one run directory or summary.json");
    }
    let judging = max_throughput_drop_pct.is_some() || max_latency_rise_pct.is_some();
    if judging && inputs.len() < 2 {
        anyhow::bail!(
            "--max-throughput-drop/--max-latency-rise compare the last run against the first: give at least two runs"
        );
    }
    let mut loaded = Vec::new();
    for input in inputs {
        let path = if input.is_dir() {
            input.join(SUMMARY_JSON)
        } else {
            input.clone()
        };
        let summary = read_summary(&path)?;
        loaded.push((path, summary));
    }
    let rows = rows(&loaded);
    let regressions = match (rows.first(), rows.last()) {
        (Some(first), Some(last)) if judging => {
            judge(first, last, max_throughput_drop_pct, max_latency_rise_pct)
        }
        _ => Vec::new(),
    };
    let regressed = !regressions.is_empty();
    let mut table = terminal_table(&rows);
    let mut markdown = markdown_table(&rows);
    if judging {
        let verdict = verdict_text(&rows, &regressions);
        table.push_str(&verdict);
        markdown.push('\n');
        markdown.push_str(&verdict);
    }
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let md = dir.join(COMPARISON_MD);
        std::fs::write(&md, &markdown).with_context(|| format!("writing {}", md.display()))?;
        let csv = dir.join(COMPARISON_CSV);
        std::fs::write(&csv, csv_bytes(&rows)?)
            .with_context(|| format!("writing {}", csv.display()))?;
        for chart in charts(&rows) {
            write_bar_chart(dir, &chart)?;
        }
    }
    Ok(CompareOutcome {
        rows,
        table,
        markdown,
        regressed,
        regressions,
    })
}

/// One row per (source path, summary), labelled so no two rows share a label.
pub fn rows(inputs: &[(PathBuf, Summary)]) -> Vec<CompareRow> {
    let base: Vec<String> = inputs.iter().map(|(_, s)| base_label(s)).collect();
    inputs
        .iter()
        .zip(&base)
        .map(|((path, s), label)| {
            let ambiguous = label.is_empty() || base.iter().filter(|b| *b == label).count() > 1;
            let label = if ambiguous {
                let dir = run_dir_name(path);
                if label.is_empty() {
                    dir
                } else {
                    format!("{label} ({dir})")
                }
            } else {
                label.clone()
            };
            CompareRow {
                label,
                source: path.display().to_string(),
                produce_msgs_per_s: s.produce.msgs_per_s,
                produce_mib_per_s: s.produce.mib_per_s,
                consume_msgs_per_s: s.consume.msgs_per_s,
                produce_p50_ms: s.produce.latency_ms.p50,
                produce_p99_ms: s.produce.latency_ms.p99,
                produce_p999_ms: s.produce.latency_ms.p999,
                e2e_p50_ms: s.consume.e2e_latency_ms.p50,
                e2e_p99_ms: s.consume.e2e_latency_ms.p99,
                e2e_p999_ms: s.consume.e2e_latency_ms.p999,
                lost: s.delivery.lost,
                duplicated: s.delivery.duplicated,
                on_disk_ratio: s.on_disk.overhead_ratio,
                on_disk: match s.on_disk.ok {
                    Some(true) => "ok".into(),
                    Some(false) => "mismatch".into(),
                    None => "-".into(),
                },
                passed: s.verdict.passed,
            }
        })
        .collect()
}

fn base_label(s: &Summary) -> String {
    let mut label = s.scenario.name.clone();
    if !s.scenario.matrix_cell.is_empty() {
        let kv: Vec<String> = s
            .scenario
            .matrix_cell
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = write!(label, " [{}]", kv.join(", "));
    }
    label
}

/// Name of the run directory a summary came from (`reports/x/2025-...Z/summary.json` →
/// `2025-...Z`).
fn run_dir_name(path: &Path) -> String {
    let dir = if path.file_name().is_some_and(|f| f == SUMMARY_JSON) {
        path.parent().unwrap_or(path)
    } else {
        path
    };
    dir.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string())
}

/// The thresholds `last` breaks against `first`, one line each. Throughput is judged on
/// produce and consume msgs/s, latency on produce and end-to-end p99; a figure that is 0 in
/// the first run (not measured) is not judged.
pub fn judge(
    first: &CompareRow,
    last: &CompareRow,
    max_throughput_drop_pct: Option<f64>,
    max_latency_rise_pct: Option<f64>,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(max) = max_throughput_drop_pct {
        for (what, a, b) in [
            (
                "produce msgs/s",
                first.produce_msgs_per_s,
                last.produce_msgs_per_s,
            ),
            (
                "consume msgs/s",
                first.consume_msgs_per_s,
                last.consume_msgs_per_s,
            ),
        ] {
            if a > 0.0 {
                let drop = (a - b) / a * 100.0;
                if drop > max {
                    out.push(format!(
                        "{what} dropped {drop:.1}% ({a:.0} → {b:.0}), more than the allowed {max}%"
                    ));
                }
            }
        }
    }
    if let Some(max) = max_latency_rise_pct {
        for (what, a, b) in [
            (
                "produce p99 latency",
                first.produce_p99_ms,
                last.produce_p99_ms,
            ),
            ("end-to-end p99 latency", first.e2e_p99_ms, last.e2e_p99_ms),
        ] {
            if a > 0.0 {
                let rise = (b - a) / a * 100.0;
                if rise > max {
                    out.push(format!(
                        "{what} rose {rise:.1}% ({a:.3} ms → {b:.3} ms), more than the allowed {max}%"
                    ));
                }
            }
        }
    }
    out
}

fn verdict_text(rows: &[CompareRow], regressions: &[String]) -> String {
    let (first, last) = (&rows[0].label, &rows[rows.len() - 1].label);
    if regressions.is_empty() {
        format!("no regression: {last} against {first} is within the thresholds\n")
    } else {
        let mut s = format!("REGRESSION: {last} against {first}\n");
        for r in regressions {
            let _ = writeln!(s, "  - {r}");
        }
        s
    }
}

const HEADERS: [&str; 11] = [
    "run",
    "produce msgs/s",
    "MiB/s",
    "consume msgs/s",
    "p50 ms",
    "p99 ms",
    "p99.9 ms",
    "e2e p99 ms",
    "lost/dup",
    "on disk",
    "verdict",
];

fn cells(r: &CompareRow) -> [String; 11] {
    [
        r.label.clone(),
        format!("{:.0}", r.produce_msgs_per_s),
        format!("{:.2}", r.produce_mib_per_s),
        format!("{:.0}", r.consume_msgs_per_s),
        format!("{:.3}", r.produce_p50_ms),
        format!("{:.3}", r.produce_p99_ms),
        format!("{:.3}", r.produce_p999_ms),
        format!("{:.3}", r.e2e_p99_ms),
        format!("{}/{}", r.lost, r.duplicated),
        if r.on_disk == "-" {
            "-".into()
        } else {
            format!("{} {:.3}", r.on_disk, r.on_disk_ratio)
        },
        if r.passed { "passed" } else { "FAILED" }.into(),
    ]
}

/// The rows as an aligned text table.
pub fn terminal_table(rows: &[CompareRow]) -> String {
    let all: Vec<[String; 11]> = rows.iter().map(cells).collect();
    let mut widths: Vec<usize> = HEADERS.iter().map(|h| h.chars().count()).collect();
    for r in &all {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: Vec<&str>| -> String {
        let mut s = String::new();
        for (i, (c, w)) in cols.iter().zip(&widths).enumerate() {
            let pad = w - c.chars().count();
            if i == 0 {
                let _ = write!(s, "{c}{}", " ".repeat(pad));
            } else {
                let _ = write!(s, "  {}{c}", " ".repeat(pad));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(HEADERS.to_vec());
    for r in &all {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// The rows as a markdown table.
pub fn markdown_table(rows: &[CompareRow]) -> String {
    let mut out = format!("| {} |\n", HEADERS.join(" | "));
    out.push_str(&format!("|{}\n", ["---|"; 11].concat()));
    for r in rows {
        let c: Vec<String> = cells(r).iter().map(|c| c.replace('|', "\\|")).collect();
        let _ = writeln!(out, "| {} |", c.join(" | "));
    }
    out
}

/// The rows as `comparison.csv` (columns: [`CompareRow`]'s fields, units in their names).
pub fn csv_bytes(rows: &[CompareRow]) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r)?;
    }
    Ok(w.into_inner()?)
}

fn charts(rows: &[CompareRow]) -> Vec<BarChart> {
    let bars = |f: fn(&CompareRow) -> f64| rows.iter().map(|r| (r.label.clone(), f(r))).collect();
    vec![
        BarChart {
            stem: "compare_throughput",
            title: "produce throughput (acked msgs/s)".into(),
            y_desc: "messages/s".into(),
            bars: bars(|r| r.produce_msgs_per_s),
        },
        BarChart {
            stem: "compare_p99",
            title: "produce latency p99 (ms)".into(),
            y_desc: "ms".into(),
            bars: bars(|r| r.produce_p99_ms),
        },
        BarChart {
            stem: "compare_e2e_p99",
            title: "end-to-end latency p99 (ms)".into(),
            y_desc: "ms".into(),
            bars: bars(|r| r.e2e_p99_ms),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testdata;

    fn write_run(dir: &Path, name: &str, msgs_per_s: f64, p99: f64) -> PathBuf {
        let mut s = testdata::run_data().summary;
        s.produce.msgs_per_s = msgs_per_s;
        s.consume.msgs_per_s = msgs_per_s;
        s.produce.latency_ms.p99 = p99;
        s.consume.e2e_latency_ms.p99 = p99 * 2.0;
        let run = dir.join(name);
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join(SUMMARY_JSON), serde_json::to_string(&s).unwrap()).unwrap();
        run
    }

    #[test]
    fn flags_a_crafted_regression() {
        let dir = tempfile::tempdir().unwrap();
        let base = write_run(dir.path(), "base", 100_000.0, 5.0);
        let worse = write_run(dir.path(), "worse", 80_000.0, 5.1);
        let out = dir.path().join("cmp");
        let o = run(&[base, worse], Some(&out), Some(10.0), Some(20.0)).unwrap();
        assert!(o.regressed);
        assert_eq!(o.regressions.len(), 2, "{:?}", o.regressions);
        assert!(o.regressions[0].contains("dropped 20.0%"));
        assert!(o.table.contains("REGRESSION"));
        // Labels are disambiguated by directory name.
        assert_eq!(o.rows[0].label, "synthetic (base)");
        for f in [
            COMPARISON_MD,
            COMPARISON_CSV,
            "compare_throughput.png",
            "compare_p99.svg",
        ] {
            assert!(out.join(f).exists(), "{f} missing");
        }
        let csv = std::fs::read_to_string(out.join(COMPARISON_CSV)).unwrap();
        assert!(csv.starts_with("label,source,produce_msgs_per_s,produce_mib_per_s,"));
    }

    #[test]
    fn does_not_flag_a_non_regression() {
        let dir = tempfile::tempdir().unwrap();
        let base = write_run(dir.path(), "base", 100_000.0, 5.0);
        let same = write_run(dir.path(), "same", 95_000.0, 5.5);
        let o = run(
            &[base.join(SUMMARY_JSON), same],
            None,
            Some(10.0),
            Some(20.0),
        )
        .unwrap();
        assert!(!o.regressed, "{:?}", o.regressions);
        assert!(o.table.contains("no regression"));
        assert!(o.markdown.starts_with("| run | produce msgs/s |"));
        // Latency beyond the threshold alone is a regression.
        let slow = write_run(dir.path(), "slow", 100_000.0, 7.0);
        let o = run(&[base, slow], None, None, Some(20.0)).unwrap();
        assert!(o.regressed);
    }

    #[test]
    fn thresholds_need_two_runs() {
        let dir = tempfile::tempdir().unwrap();
        let base = write_run(dir.path(), "base", 1.0, 1.0);
        assert!(run(std::slice::from_ref(&base), None, Some(5.0), None).is_err());
        assert!(run(&[base], None, None, None).is_ok());
        let err = run(&[dir.path().join("nope")], None, None, None).unwrap_err();
        assert!(format!("{err:#}").contains("nope"), "{err:#}");
    }
}
