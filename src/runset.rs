//! Run sets: the same scenario run N times (`kbench run --runs N`, `runs = N`), and the figures
//! a verdict is drawn from.
//!
//! One run of a benchmark is one draw from a noisy machine: identical `smoke.toml` runs have
//! differed 8× in consume rate. So a figure people bet on is the median of several runs with an
//! interval that says how far it could move ([`crate::stats`]), and a comparison is made between
//! run sets, never between two single runs without saying that nothing is known about noise.
//!
//! On disk a run set is a folder of ordinary run folders, `run-1/` .. `run-N/`, each complete
//! (summary, CSVs, histograms, charts), plus the set's own `summary.json` (kind `run-set`: per
//! metric the values, median, min, max and the 95 % bootstrap interval of the median) and
//! `report.html`. [`RunSet::load`] reads a set folder, a single run folder or a `summary.json`
//! file alike, so everything downstream (compare, calibrate) handles one run as a set of one.
//!
//! The metrics are named for what they measure ([`Metric`]): with `acks=0` nothing is
//! acknowledged, and the produce latency is the time to send.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::report::SUMMARY_JSON;
use crate::stats::{self, Estimate};
use crate::summary::Summary;

/// Prefix of the run folders in a set (`run-1`, `run-2`, ...).
pub const RUN_DIR_PREFIX: &str = "run-";
/// The set's page.
pub const RUN_SET_HTML: &str = "report.html";
pub use crate::summary::RUN_SET_KIND;

/// Which way a metric gets better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// Throughput.
    Higher,
    /// Latency.
    Lower,
}

/// A figure judged across runs: throughput or a latency percentile.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// Stable key (JSON, CSV): `produce_msgs_per_s`, `e2e_latency_p99_ms`, ...
    pub key: &'static str,
    /// Which way is better.
    pub better: Better,
    read: fn(&Summary) -> f64,
    name: fn(&Summary) -> String,
}

impl Metric {
    /// Its value in one run.
    pub fn of(&self, s: &Summary) -> f64 {
        (self.read)(s)
    }

    /// What it measures, as a person reads it, for the runs of `s`'s configuration.
    pub fn name(&self, s: &Summary) -> String {
        (self.name)(s)
    }

    /// Whether it is a throughput figure (judged by the throughput threshold).
    pub fn is_throughput(&self) -> bool {
        self.better == Better::Higher
    }
}

/// What the produce latency is: the time to an acknowledgement, except with `acks=0`.
fn produce_latency_name(s: &Summary, pct: &str) -> String {
    if s.durability.acks == "0" {
        format!("produce time-to-send {pct} (ms, acks=0: no ack)")
    } else {
        format!("produce→ack latency {pct} (ms)")
    }
}

/// Every metric of a run, in report order.
pub const METRICS: &[Metric] = &[
    Metric {
        key: "produce_msgs_per_s",
        better: Better::Higher,
        read: |s| s.produce.msgs_per_s,
        name: |s| {
            if s.durability.acks == "0" {
                "produce throughput (sent msgs/s, acks=0)".into()
            } else {
                "produce throughput (acked msgs/s)".into()
            }
        },
    },
    Metric {
        key: "produce_mib_per_s",
        better: Better::Higher,
        read: |s| s.produce.mib_per_s,
        name: |_| "produce throughput (MiB/s)".into(),
    },
    Metric {
        key: "consume_msgs_per_s",
        better: Better::Higher,
        read: |s| s.consume.msgs_per_s,
        name: |_| "consume throughput (msgs/s, all groups)".into(),
    },
    Metric {
        key: "produce_latency_p50_ms",
        better: Better::Lower,
        read: |s| s.produce.latency_ms.p50,
        name: |s| produce_latency_name(s, "p50"),
    },
    Metric {
        key: "produce_latency_p99_ms",
        better: Better::Lower,
        read: |s| s.produce.latency_ms.p99,
        name: |s| produce_latency_name(s, "p99"),
    },
    Metric {
        key: "produce_latency_p999_ms",
        better: Better::Lower,
        read: |s| s.produce.latency_ms.p999,
        name: |s| produce_latency_name(s, "p99.9"),
    },
    Metric {
        key: "e2e_latency_p50_ms",
        better: Better::Lower,
        read: |s| s.consume.e2e_latency_ms.p50,
        name: |_| "end-to-end latency p50 (ms, produce→consume)".into(),
    },
    Metric {
        key: "e2e_latency_p99_ms",
        better: Better::Lower,
        read: |s| s.consume.e2e_latency_ms.p99,
        name: |_| "end-to-end latency p99 (ms, produce→consume)".into(),
    },
    Metric {
        key: "e2e_latency_p999_ms",
        better: Better::Lower,
        read: |s| s.consume.e2e_latency_ms.p999,
        name: |_| "end-to-end latency p99.9 (ms, produce→consume)".into(),
    },
];

/// The runs of one set (one run is a set of one), in run order.
#[derive(Debug, Clone)]
pub struct RunSet {
    /// The folder (or file) it was read from.
    pub source: PathBuf,
    /// Each run's summary path and summary.
    pub runs: Vec<(PathBuf, Summary)>,
}

impl RunSet {
    /// Reads a run-set folder (`run-1/` .. `run-N/` inside), a single run folder, or a run's
    /// `summary.json`.
    pub fn load(path: &Path) -> anyhow::Result<RunSet> {
        let dirs = if path.is_dir() {
            run_dirs(path)?
        } else {
            Vec::new()
        };
        let files: Vec<PathBuf> = if !dirs.is_empty() {
            dirs.iter().map(|d| d.join(SUMMARY_JSON)).collect()
        } else if path.is_dir() {
            vec![path.join(SUMMARY_JSON)]
        } else {
            vec![path.to_path_buf()]
        };
        let mut runs = Vec::new();
        for f in files {
            let summary = crate::report::read_summary(&f)?;
            if let Some(e) = summary
                .events
                .iter()
                .find(|e| e.kind == crate::summary::Event::NOT_STARTED)
            {
                anyhow::bail!(
                    "{}: the run could not start, so there is nothing to compare: {}",
                    f.display(),
                    e.detail
                );
            }
            runs.push((f, summary));
        }
        Ok(RunSet {
            source: path.to_path_buf(),
            runs,
        })
    }

    /// Number of runs.
    pub fn len(&self) -> usize {
        self.runs.len()
    }

    /// Whether the set has no run (never, once loaded).
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// The first run's summary: names, configuration, durability settings of the set.
    pub fn first(&self) -> &Summary {
        &self.runs[0].1
    }

    /// `metric` in every run, in run order.
    pub fn values(&self, metric: &Metric) -> Vec<f64> {
        self.runs.iter().map(|(_, s)| metric.of(s)).collect()
    }

    /// Whether the set measured `metric` at all (a run without consumers has no end-to-end
    /// latency: all zeros).
    pub fn measured(&self, metric: &Metric) -> bool {
        self.values(metric).iter().any(|v| *v > 0.0)
    }

    /// Per-metric figures over the set.
    pub fn aggregate(&self) -> Vec<MetricAggregate> {
        METRICS
            .iter()
            .filter(|m| self.measured(m))
            .filter_map(|m| {
                let values = self.values(m);
                let median = stats::median_ci(&values)?;
                Some(MetricAggregate {
                    key: m.key.to_string(),
                    name: m.name(self.first()),
                    better: m.better,
                    min: values.iter().copied().fold(f64::INFINITY, f64::min),
                    max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    median,
                    values,
                })
            })
            .collect()
    }
}

/// The `run-K` folders inside `dir`, by K; empty when `dir` is not a run set.
fn run_dirs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let k: u32 = name.strip_prefix(RUN_DIR_PREFIX)?.parse().ok()?;
            e.path().join(SUMMARY_JSON).is_file().then(|| (k, e.path()))
        })
        .collect();
    found.sort();
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

/// One metric over a run set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricAggregate {
    /// [`Metric::key`].
    pub key: String,
    /// [`Metric::name`].
    pub name: String,
    /// Which way is better.
    pub better: Better,
    /// The median with its 95 % bootstrap interval.
    pub median: Estimate,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Every run's value, in run order.
    pub values: Vec<f64>,
}

/// A run set's `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSetSummary {
    /// Always [`RUN_SET_KIND`]: tells a set's summary from a run's.
    pub kind: String,
    /// The scenario's name.
    pub scenario: String,
    /// Runs in the set.
    pub runs: usize,
    /// Runs whose own verdict passed.
    pub passed: usize,
    /// The run folders, relative to the set's.
    pub run_dirs: Vec<String>,
    /// Per metric: median, 95 % interval, min, max, values.
    pub metrics: Vec<MetricAggregate>,
    /// Warnings of the runs (a measured window too short to mean anything), `run-K: ...`.
    pub warnings: Vec<String>,
}

impl RunSetSummary {
    /// The summary of `set`, whose runs live in `dir`.
    pub fn of(set: &RunSet, dir: &Path) -> RunSetSummary {
        RunSetSummary {
            kind: RUN_SET_KIND.into(),
            scenario: set.first().scenario.name.clone(),
            runs: set.len(),
            passed: set.runs.iter().filter(|(_, s)| s.verdict.passed).count(),
            run_dirs: set
                .runs
                .iter()
                .map(|(p, _)| {
                    let run = p.parent().unwrap_or(p);
                    run.strip_prefix(dir).unwrap_or(run).display().to_string()
                })
                .collect(),
            metrics: set.aggregate(),
            warnings: set
                .runs
                .iter()
                .enumerate()
                .flat_map(|(i, (_, s))| {
                    s.warnings
                        .iter()
                        .map(move |w| format!("{RUN_DIR_PREFIX}{}: {w}", i + 1))
                })
                .collect(),
        }
    }

    /// The aggregate as terminal lines: one per metric.
    pub fn terminal(&self) -> String {
        let mut o = format!(
            "kbench {} — {} runs, {} passed: median [95 % interval] (min .. max)\n",
            self.scenario, self.runs, self.passed
        );
        let width = self.metrics.iter().map(|m| m.name.len()).max().unwrap_or(0);
        for m in &self.metrics {
            let _ = writeln!(
                o,
                "  {:<width$}  {}  [{} .. {}]  ({} .. {})",
                m.name,
                figure(m.median.point),
                figure(m.median.low),
                figure(m.median.high),
                figure(m.min),
                figure(m.max),
            );
        }
        if self.runs == 1 {
            o.push_str("  (one run: the interval says nothing about noise; use --runs 5)\n");
        }
        for w in &self.warnings {
            let _ = writeln!(o, "  ! {w}");
        }
        o
    }

    /// The set's page: the aggregate table and a link to each run's report.
    pub fn html(&self) -> String {
        let esc = crate::report::html::esc;
        let mut o = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>kbench {0}: {1} runs</title>\n<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}</style></head><body>\n<h1>kbench {0}: {1} runs, {2} passed</h1>\n<p>Median of the runs with its 95 % bootstrap confidence interval (the runs resampled {3} times), smallest and largest run.</p>\n<table><tr><th>metric</th><th>median</th><th>95 % interval</th><th>min</th><th>max</th><th>runs</th></tr>\n",
            esc(&self.scenario),
            self.runs,
            self.passed,
            stats::RESAMPLES
        );
        for m in &self.metrics {
            let values: Vec<String> = m.values.iter().map(|v| figure(*v)).collect();
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{} .. {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&m.name),
                figure(m.median.point),
                figure(m.median.low),
                figure(m.median.high),
                figure(m.min),
                figure(m.max),
                values.join(" ")
            );
        }
        o.push_str("</table>\n");
        if !self.warnings.is_empty() {
            o.push_str("<h2>Warnings</h2><ul>\n");
            for w in &self.warnings {
                let _ = writeln!(o, "<li>{}</li>", esc(w));
            }
            o.push_str("</ul>\n");
        }
        o.push_str("<h2>Runs</h2><ul>\n");
        for d in &self.run_dirs {
            let _ = writeln!(o, "<li><a href=\"{0}/report.html\">{0}</a></li>", esc(d));
        }
        o.push_str("</ul></body></html>\n");
        o
    }

    /// Writes `summary.json` and `report.html` into `dir`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        let json = dir.join(SUMMARY_JSON);
        std::fs::write(&json, crate::summary::rounded_json(self)?)
            .with_context(|| format!("writing {}", json.display()))?;
        let html = dir.join(RUN_SET_HTML);
        std::fs::write(&html, self.html()).with_context(|| format!("writing {}", html.display()))
    }
}

/// A figure with the precision its size needs: `12345`, `123.4`, `1.234`.
pub fn figure(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testdata;

    /// Writes a run folder whose produce rate is `rate` and p99 `p99`.
    pub(crate) fn write_run(dir: &Path, rate: f64, p99: f64) {
        let mut s = testdata::run_data().summary;
        s.produce.msgs_per_s = rate;
        s.consume.msgs_per_s = rate;
        s.produce.latency_ms.p99 = p99;
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(SUMMARY_JSON), serde_json::to_string(&s).unwrap()).unwrap();
    }

    #[test]
    fn a_set_folder_a_run_folder_and_a_summary_file_all_load() {
        let dir = tempfile::tempdir().unwrap();
        let set = dir.path().join("set");
        // run-10 sorts after run-2: by number, not by name.
        for (k, rate) in [(1, 100.0), (2, 120.0), (10, 80.0)] {
            write_run(&set.join(format!("run-{k}")), rate, 5.0);
        }
        let s = RunSet::load(&set).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s.values(&METRICS[0]), vec![100.0, 120.0, 80.0]);
        let one = RunSet::load(&set.join("run-2")).unwrap();
        assert_eq!(one.len(), 1);
        let file = RunSet::load(&set.join("run-2").join(SUMMARY_JSON)).unwrap();
        assert_eq!(file.values(&METRICS[0]), vec![120.0]);
        let e = RunSet::load(&dir.path().join("nowhere")).unwrap_err();
        assert!(format!("{e:#}").contains("nowhere"), "{e:#}");
    }

    #[test]
    fn the_aggregate_gives_median_interval_and_extremes_of_measured_metrics() {
        let dir = tempfile::tempdir().unwrap();
        for (k, rate) in [100.0, 104.0, 96.0, 102.0, 98.0].iter().enumerate() {
            write_run(&dir.path().join(format!("run-{}", k + 1)), *rate, 5.0);
        }
        let set = RunSet::load(dir.path()).unwrap();
        let summary = RunSetSummary::of(&set, dir.path());
        let produce = &summary.metrics[0];
        assert_eq!(produce.key, "produce_msgs_per_s");
        assert_eq!(produce.median.point, 100.0);
        assert!(produce.median.low < 100.0 && produce.median.high > 100.0);
        assert_eq!((produce.min, produce.max), (96.0, 104.0));
        assert_eq!(summary.run_dirs[0], "run-1");
        summary.write(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(SUMMARY_JSON)).unwrap();
        let back: RunSetSummary = serde_json::from_str(&text).unwrap();
        // Written rounded (3 decimals from 1 up): the same figures within that.
        assert_eq!(back.metrics.len(), summary.metrics.len());
        for (b, s) in back.metrics.iter().zip(&summary.metrics) {
            let close = |x: f64, y: f64| (x - y).abs() <= 0.0005 * y.abs().max(1.0);
            assert!(close(b.min, s.min) && close(b.max, s.max), "{b:?}");
            assert!(b.values.iter().zip(&s.values).all(|(x, y)| close(*x, *y)));
            assert!(close(b.median.low, s.median.low) && close(b.median.high, s.median.high));
        }
        assert!(summary.terminal().contains("5 runs, 5 passed"));
        // Reading a set's summary as a run's says what it is.
        let e = crate::report::read_summary(&dir.path().join(SUMMARY_JSON)).unwrap_err();
        assert!(format!("{e:#}").contains("run set of 5 runs"), "{e:#}");
    }

    #[test]
    fn acks_zero_latency_is_named_time_to_send() {
        let mut s = testdata::run_data().summary;
        s.durability.acks = "1".into();
        assert_eq!(METRICS[4].name(&s), "produce→ack latency p99 (ms)");
        s.durability.acks = "0".into();
        assert!(METRICS[4].name(&s).starts_with("produce time-to-send p99"));
        assert!(METRICS[0].name(&s).contains("sent msgs/s"));
    }
}
