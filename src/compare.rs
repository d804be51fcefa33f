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

use crate::report::charts::comparison::{write_bar_chart, write_panel_chart, BarChart};
use crate::report::{read_summary, SUMMARY_JSON};
use crate::summary::Summary;

/// File names written into the output directory.
pub const COMPARISON_MD: &str = "comparison.md";
/// The comparison as a page: the table and the chart.
pub const COMPARISON_HTML: &str = "report.html";
/// Stem of the one chart of every figure of the comparison (`.png`, `.svg`).
pub const COMPARISON_CHART: &str = "comparison";
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
    /// Producer `acks` (`0`, `1`, `all`; empty in summaries written before durability).
    pub acks: String,
    /// Replication factor of the run's topic.
    pub replication_factor: u32,
    /// The topic's `min.insync.replicas` as the scenario set it (empty = cluster default).
    pub min_insync_replicas: String,
    /// Acknowledged messages lost (sent ones with acks = 0), the worst consumer group.
    pub acked_lost: u64,
    /// Faults injected during the run.
    pub faults: u32,
    /// Longest time to recover from a fault, seconds (empty = no fault, or one never recovered:
    /// see `recovered`).
    pub recovery_s: Option<f64>,
    /// `"yes"`, `"NO"` (a fault was not recovered from before the producers finished) or
    /// `"-"` (no fault).
    pub recovered: String,
    /// Producer errors of every kind over the run.
    pub produce_errors: u64,
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
        write_panel_chart(dir, COMPARISON_CHART, &panels(&rows))?;
        let html = dir.join(COMPARISON_HTML);
        std::fs::write(&html, html_page(&rows, &markdown_verdict(&table, judging)))
            .with_context(|| format!("writing {}", html.display()))?;
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
                acks: s.durability.acks.clone(),
                replication_factor: s.durability.replication_factor,
                min_insync_replicas: s
                    .durability
                    .min_insync_replicas
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
                acked_lost: s.durability.acknowledged_lost,
                faults: s.durability.faults,
                recovery_s: s.durability.max_recovery_s,
                recovered: if s.durability.faults == 0 {
                    "-".into()
                } else if s.durability.recovery_s.iter().all(Option::is_some) {
                    "yes".into()
                } else {
                    "NO".into()
                },
                produce_errors: s.durability.produce_errors.values().sum(),
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

const COLUMNS: usize = 14;

const HEADERS: [&str; COLUMNS] = [
    "run",
    "produce msgs/s",
    "MiB/s",
    "consume msgs/s",
    "p50 ms",
    "p99 ms",
    "p99.9 ms",
    "e2e p99 ms",
    "acks/RF/min.insync",
    "acked lost",
    "recovery s",
    "lost/dup",
    "on disk",
    "verdict",
];

fn cells(r: &CompareRow) -> [String; COLUMNS] {
    [
        r.label.clone(),
        format!("{:.0}", r.produce_msgs_per_s),
        format!("{:.2}", r.produce_mib_per_s),
        format!("{:.0}", r.consume_msgs_per_s),
        format!("{:.3}", r.produce_p50_ms),
        format!("{:.3}", r.produce_p99_ms),
        format!("{:.3}", r.produce_p999_ms),
        format!("{:.3}", r.e2e_p99_ms),
        if r.acks.is_empty() {
            "-".into()
        } else {
            format!(
                "{}/{}/{}",
                r.acks,
                r.replication_factor,
                if r.min_insync_replicas.is_empty() {
                    "-"
                } else {
                    &r.min_insync_replicas
                }
            )
        },
        r.acked_lost.to_string(),
        match (r.recovered.as_str(), r.recovery_s) {
            ("NO", _) => "not recovered".into(),
            (_, Some(v)) => format!("{v:.2}"),
            _ => "-".into(),
        },
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
    let all: Vec<[String; COLUMNS]> = rows.iter().map(cells).collect();
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
    out.push_str(&format!("|{}\n", ["---|"; COLUMNS].concat()));
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

/// The short name of a row on a chart axis: the matrix cell (`producers.acks=all` →
/// `acks=all`, `replication_factor` → `RF`, `min_insync_replicas` → `minISR`) when the label
/// has one, else the label.
fn axis_label(r: &CompareRow) -> String {
    let cell = match (r.label.find(" ["), r.label.rfind(']')) {
        (Some(a), Some(b)) if b > a => r.label[a + 2..b]
            .split(", ")
            .map(|kv| match kv.split_once('=') {
                // A table of settings (`topic=replication_factor=3 ...`) speaks for itself.
                Some((_, v)) if v.contains('=') => v.to_string(),
                Some((k, v)) => format!("{}={v}", k.rsplit('.').next().unwrap_or(k)),
                None => kv.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => return r.label.clone(),
    };
    cell.replace("min_insync_replicas=", "minISR=")
        .replace("replication_factor=", "RF=")
}

/// The four panels of the comparison chart: throughput, p99 produce latency, acknowledged
/// loss and recovery time (a run that never recovered is drawn at its fault-to-end time, 0
/// when it had no fault; the table says which).
pub(crate) fn panels(rows: &[CompareRow]) -> Vec<BarChart> {
    let bars =
        |f: &dyn Fn(&CompareRow) -> f64| rows.iter().map(|r| (axis_label(r), f(r))).collect();
    vec![
        BarChart {
            stem: COMPARISON_CHART,
            title: "produce throughput (acked msgs/s)".into(),
            y_desc: "messages/s".into(),
            bars: bars(&|r| r.produce_msgs_per_s),
        },
        BarChart {
            stem: COMPARISON_CHART,
            title: "produce latency p99 (ms)".into(),
            y_desc: "ms".into(),
            bars: bars(&|r| r.produce_p99_ms),
        },
        BarChart {
            stem: COMPARISON_CHART,
            title: "acknowledged messages lost".into(),
            y_desc: "messages".into(),
            bars: bars(&|r| r.acked_lost as f64),
        },
        BarChart {
            stem: COMPARISON_CHART,
            title: "time to recover from the fault (s, longest)".into(),
            y_desc: "s".into(),
            bars: bars(&|r| r.recovery_s.unwrap_or(0.0)),
        },
    ]
}

fn markdown_verdict(table: &str, judging: bool) -> String {
    if judging {
        table
            .lines()
            .skip_while(|l| !l.starts_with("no regression") && !l.starts_with("REGRESSION"))
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        String::new()
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The comparison page (`report.html`): the table with every figure, the one chart, and the
/// regression verdict when there is one. Self-contained but for the chart's SVG beside it.
pub fn html_page(rows: &[CompareRow], verdict: &str) -> String {
    let mut o = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>kbench comparison</title>\n<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}</style></head><body>\n<h1>kbench comparison</h1>\n",
    );
    o.push_str("<p>acked lost = acknowledged messages no consumer read (with acks=0 a message counts as acknowledged once sent); recovery s = longest time from a fault until produce throughput was back to 90 % of its pre-fault rate.</p>\n<table><tr>");
    for h in HEADERS {
        let _ = write!(o, "<th>{}</th>", esc(h));
    }
    o.push_str("</tr>\n");
    for r in rows {
        o.push_str("<tr>");
        for c in cells(r) {
            let _ = write!(o, "<td>{}</td>", esc(&c));
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</table>\n");
    if !verdict.is_empty() {
        let _ = writeln!(o, "<pre>{}</pre>", esc(verdict));
    }
    let _ = writeln!(
        o,
        "<h2>Throughput, latency, loss, recovery</h2><img src=\"{COMPARISON_CHART}.svg\" alt=\"comparison chart\" width=\"1200\">"
    );
    o.push_str("</body></html>\n");
    o
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

    fn write_cell(
        dir: &Path,
        cell: &str,
        acks: &str,
        rf: u32,
        lost: u64,
        rec: Option<f64>,
    ) -> PathBuf {
        let mut s = testdata::run_data().summary;
        s.scenario.name = "replication".into();
        s.scenario.matrix_cell = [("producers.acks".to_string(), acks.to_string())].into();
        s.scenario
            .matrix_cell
            .insert("topic".into(), format!("rf{rf}"));
        s.delivery.faults = vec![crate::summary::FaultSummary {
            t_s: 5.0,
            action: "kill".into(),
            target: "broker 2".into(),
            restarted_at_s: Some(8.0),
            recovery_s: rec,
            errors: Default::default(),
            unavailable: None,
        }];
        s.delivery.lost = lost;
        s.delivery.per_group = vec![crate::summary::GroupDelivery {
            group: "g0".into(),
            lost,
            ..Default::default()
        }];
        s.durability = crate::summary::DurabilitySummary::from_run(
            acks,
            rf,
            (rf == 3).then_some(2),
            3,
            &s.delivery,
            &[("produce:NotLeaderForPartition".to_string(), 7)].into(),
        );
        let run = dir.join(cell);
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join(SUMMARY_JSON), serde_json::to_string(&s).unwrap()).unwrap();
        run
    }

    #[test]
    fn matrix_comparison_shows_loss_and_recovery_per_cell() {
        let dir = tempfile::tempdir().unwrap();
        let a = write_cell(dir.path(), "acks-1_rf1", "1", 1, 120, Some(2.5));
        let b = write_cell(dir.path(), "acks-all_rf3", "all", 3, 0, Some(1.0));
        let c = write_cell(dir.path(), "acks-0_rf3", "0", 3, 40, None);
        let out = dir.path().join("cmp");
        let o = run(&[a, b, c], Some(&out), None, None).unwrap();
        assert_eq!(o.rows[0].acked_lost, 120);
        assert_eq!(o.rows[0].recovery_s, Some(2.5));
        assert_eq!(o.rows[0].recovered, "yes");
        assert_eq!(o.rows[0].produce_errors, 7);
        assert_eq!(o.rows[1].min_insync_replicas, "2");
        assert_eq!(o.rows[2].recovered, "NO");
        let lines: Vec<&str> = o.table.lines().collect();
        assert!(
            lines[0].contains("acks/RF/min.insync")
                && lines[0].contains("acked lost")
                && lines[0].contains("recovery s"),
            "{}",
            o.table
        );
        assert!(
            lines[1].contains("1/1/-") && lines[1].contains("2.50"),
            "{}",
            lines[1]
        );
        assert!(lines[2].contains("all/3/2"), "{}", lines[2]);
        assert!(lines[3].contains("not recovered"), "{}", lines[3]);
        for f in [
            COMPARISON_CSV,
            COMPARISON_HTML,
            "comparison.png",
            "comparison.svg",
        ] {
            assert!(out.join(f).exists(), "{f} missing");
        }
        let csv = std::fs::read_to_string(out.join(COMPARISON_CSV)).unwrap();
        let header = csv.lines().next().unwrap();
        assert!(
            header.ends_with("acks,replication_factor,min_insync_replicas,acked_lost,faults,recovery_s,recovered,produce_errors"),
            "{header}"
        );
        let html = std::fs::read_to_string(out.join(COMPARISON_HTML)).unwrap();
        assert!(
            html.contains("<td>120</td>") && html.contains("comparison.svg"),
            "{html}"
        );
        let svg = std::fs::read_to_string(out.join("comparison.svg")).unwrap();
        assert!(
            svg.contains("acknowledged messages lost") && svg.contains("acks=all"),
            "chart lacks a panel or labels"
        );
    }

    #[test]
    fn chart_labels_are_the_matrix_cell() {
        let mut r = CompareRow {
            label: "replication [producers.acks=all, topic.replication_factor=3]".into(),
            source: String::new(),
            produce_msgs_per_s: 0.0,
            produce_mib_per_s: 0.0,
            consume_msgs_per_s: 0.0,
            produce_p50_ms: 0.0,
            produce_p99_ms: 0.0,
            produce_p999_ms: 0.0,
            e2e_p50_ms: 0.0,
            e2e_p99_ms: 0.0,
            e2e_p999_ms: 0.0,
            lost: 0,
            duplicated: 0,
            on_disk_ratio: 0.0,
            on_disk: "-".into(),
            passed: true,
            acks: String::new(),
            replication_factor: 0,
            min_insync_replicas: String::new(),
            acked_lost: 0,
            faults: 0,
            recovery_s: None,
            recovered: "-".into(),
            produce_errors: 0,
        };
        assert_eq!(axis_label(&r), "acks=all RF=3");
        r.label =
            "replication [producers.acks=0, topic=min_insync_replicas=2 replication_factor=3]"
                .into();
        assert_eq!(axis_label(&r), "acks=0 minISR=2 RF=3");
        r.label = "smoke (base)".into();
        assert_eq!(axis_label(&r), "smoke (base)");
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
