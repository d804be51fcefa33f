//! `kbench compare`: runs and run sets side by side, and the regression gate CI calls.
//!
//! Inputs are run-set folders (`kbench run --runs N`), run folders or `summary.json` files;
//! each is a [`RunSet`] (one run is a set of one) and becomes one [`CompareRow`] of medians
//! (throughput, latency percentiles, delivery, on-disk), shown as a terminal table, a markdown
//! table and a CSV, with bar charts of throughput and p99 latency.
//!
//! With two or more inputs the **last** (candidate) is judged against the **first** (base), per
//! metric ([`crate::runset::METRICS`]): the ratio of the medians with its 95 % bootstrap interval
//! ([`crate::stats::ratio_of_medians`]) and a [`Judgement`] against the metric's threshold:
//! *regressed* only when the whole interval lies beyond the threshold on the bad side, *improved*
//! when it lies beyond it on the good side, *unchanged* when it lies within ±threshold, and
//! *inconclusive* otherwise (the runs are too noisy to tell at that threshold: add runs). Only a
//! regression fails the gate (exit 1). This is criterion.rs's approach to change detection (a
//! bootstrap interval of the change, judged against a noise threshold) applied to run medians;
//! like the public Kafka benchmark write-ups (OpenMessaging Benchmark reruns), it compares
//! repeated runs made on the same machine, and warns when the two sides' configurations,
//! kbench versions or hosts differ, because then a difference is not a regression of the code.
//!
//! Thresholds come from flags (one for throughput, one for latency) or from a calibration file:
//! `kbench compare --calibrate SET` measures this machine's A/A noise on an unchanged run set
//! ([`calibrate`]) and recommends per-metric thresholds; `--thresholds calibration.json` uses them.
//!
//! Building the rows and judging them are pure functions ([`rows`], [`judge`],
//! [`markdown_table`], ...); [`run`] adds the file I/O.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::report::charts::comparison::{write_bar_chart, write_panel_chart, BarChart};
use crate::report::charts::{write_chart, Chart, Line, XAxis};
use crate::report::html::esc;
use crate::report::SUMMARY_JSON;
use crate::runset::{figure, Better, Metric, RunSet, METRICS};
use crate::stats::{self, Estimate};
use crate::summary::Summary;

/// File names written into the output directory.
pub const COMPARISON_MD: &str = "comparison.md";
/// The comparison as a page: the table and the chart.
pub const COMPARISON_HTML: &str = "report.html";
/// Stem of the one chart of every figure of the comparison (`.png`, `.svg`).
pub const COMPARISON_CHART: &str = "comparison";
/// CSV of the comparison rows.
pub const COMPARISON_CSV: &str = "comparison.csv";
/// CSV of the per-metric verdicts (candidate against base).
pub const VERDICTS_CSV: &str = "verdicts.csv";
/// The whole comparison as JSON: rows, verdicts, warnings.
pub const COMPARISON_JSON: &str = "comparison.json";
/// What `--calibrate` writes: per-metric noise and recommended thresholds.
pub const CALIBRATION_JSON: &str = "calibration.json";

/// How to judge: thresholds in percent, by kind of metric or per metric.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A throughput metric regresses when it drops by more than this (percent).
    pub max_throughput_drop_pct: Option<f64>,
    /// A latency metric regresses when it rises by more than this (percent).
    pub max_latency_rise_pct: Option<f64>,
    /// Per-metric thresholds (percent, by [`Metric::key`]), e.g. from a calibration; they win
    /// over the two above.
    pub per_metric_pct: BTreeMap<String, f64>,
}

impl Options {
    /// The threshold (percent) `metric` is judged with, if any.
    pub fn threshold_pct(&self, metric: &Metric) -> Option<f64> {
        self.per_metric_pct
            .get(metric.key)
            .copied()
            .or(if metric.is_throughput() {
                self.max_throughput_drop_pct
            } else {
                self.max_latency_rise_pct
            })
    }

    /// Whether any threshold is set (then the candidate is judged).
    pub fn judging(&self) -> bool {
        self.max_throughput_drop_pct.is_some()
            || self.max_latency_rise_pct.is_some()
            || !self.per_metric_pct.is_empty()
    }

    /// Thresholds from a `calibration.json` written by `--calibrate`.
    pub fn with_calibration(mut self, path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the calibration {}", path.display()))?;
        let c: Calibration = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a calibration written by kbench compare --calibrate",
                path.display()
            )
        })?;
        for m in c.metrics {
            self.per_metric_pct
                .insert(m.key, m.recommended_threshold_pct);
        }
        Ok(self)
    }
}

/// One compared input: a row of every table and of `comparison.csv` (medians for a run set).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompareRow {
    /// Short name: scenario name plus matrix cell (`acks [producers.acks=all]`), or the run
    /// directory's name when that alone would be ambiguous; `×N` for a set of N runs.
    pub label: String,
    /// Where the summary was read from.
    pub source: String,
    /// Runs behind the row (the figures are their medians).
    pub runs: usize,
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
    /// Messages lost (acknowledged, never consumed); the worst run of a set.
    pub lost: u64,
    /// Extra copies consumed; the worst run of a set.
    pub duplicated: u64,
    /// On-disk growth / (payload × replication factor).
    pub on_disk_ratio: f64,
    /// On-disk check: `"ok"`, `"mismatch"` or `"-"` (not checked).
    pub on_disk: String,
    /// Whether the run's own verdict passed (every run of a set).
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

/// What the comparison says of one metric, candidate against base.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Judgement {
    /// The whole interval lies beyond the threshold on the bad side: fails the gate.
    Regressed,
    /// The whole interval lies beyond the threshold on the good side.
    Improved,
    /// The whole interval lies within ±threshold.
    Unchanged,
    /// The interval straddles the threshold: too noisy to tell; more runs narrow it.
    Inconclusive,
    /// No threshold for this metric.
    NotJudged,
}

impl Judgement {
    /// As the tables show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Judgement::Regressed => "REGRESSED",
            Judgement::Improved => "improved",
            Judgement::Unchanged => "unchanged",
            Judgement::Inconclusive => "inconclusive",
            Judgement::NotJudged => "-",
        }
    }
}

/// One metric of the candidate against the base.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricVerdict {
    /// [`Metric::key`].
    pub key: String,
    /// What it measures ([`Metric::name`]).
    pub name: String,
    /// Which way is better.
    pub better: Better,
    /// The base's median.
    pub base_median: f64,
    /// The candidate's median.
    pub candidate_median: f64,
    /// Change of the medians, percent.
    pub delta_pct: f64,
    /// Candidate median / base median with its 95 % bootstrap interval.
    pub ratio: Estimate,
    /// The threshold it was judged with, percent.
    pub threshold_pct: Option<f64>,
    /// The verdict.
    pub judgement: Judgement,
}

/// What a comparison found.
#[derive(Debug, Clone, Serialize)]
pub struct CompareOutcome {
    /// One row per input, in input order.
    pub rows: Vec<CompareRow>,
    /// Candidate (last input) against base (first), per metric; empty for one input, and for
    /// more than two without thresholds (a matrix's cells).
    pub verdicts: Vec<MetricVerdict>,
    /// What weakens the verdict: single runs, differing configurations, versions or hosts.
    pub warnings: Vec<String>,
    /// Whether any metric regressed beyond its threshold.
    pub regressed: bool,
    /// One line per regressed metric.
    pub regressions: Vec<String>,
    /// The rows, the verdicts and the warnings as a terminal table.
    #[serde(skip)]
    pub table: String,
    /// The same as markdown (a pull-request comment).
    #[serde(skip)]
    pub markdown: String,
}

impl CompareOutcome {
    /// The verdicts as CSV (columns: [`MetricVerdict`]'s fields; the interval as two columns).
    pub fn verdicts_csv(&self) -> anyhow::Result<Vec<u8>> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record([
            "metric",
            "name",
            "better",
            "base_median",
            "candidate_median",
            "delta_pct",
            "ratio",
            "ratio_ci_low",
            "ratio_ci_high",
            "threshold_pct",
            "verdict",
        ])?;
        for v in &self.verdicts {
            w.write_record([
                v.key.clone(),
                v.name.clone(),
                format!("{:?}", v.better).to_lowercase(),
                v.base_median.to_string(),
                v.candidate_median.to_string(),
                format!("{:.3}", v.delta_pct),
                format!("{:.5}", v.ratio.point),
                format!("{:.5}", v.ratio.low),
                format!("{:.5}", v.ratio.high),
                v.threshold_pct.map(|t| t.to_string()).unwrap_or_default(),
                v.judgement.as_str().to_lowercase(),
            ])?;
        }
        Ok(w.into_inner()?)
    }

    /// The whole comparison as JSON.
    pub fn json(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }
}

/// Compares `inputs` (run-set folders, run folders or `summary.json` files). With thresholds in
/// `opts`, judges the last against the first. With `out`, writes `comparison.md`,
/// `comparison.csv`, `verdicts.csv`, `comparison.json`, the charts and `report.html` there.
pub fn run(
    inputs: &[PathBuf],
    opts: &Options,
    out: Option<&Path>,
) -> anyhow::Result<CompareOutcome> {
    if inputs.is_empty() {
        anyhow::bail!("compare needs at least one run directory or summary.json");
    }
    if opts.judging() && inputs.len() < 2 {
        anyhow::bail!(
            "thresholds judge the last input against the first: give at least two runs or run sets"
        );
    }
    let sets = inputs
        .iter()
        .map(|i| RunSet::load(i))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let rows = rows(&sets);
    let (verdicts, warnings) = match (sets.first(), sets.last()) {
        // Two inputs, or thresholds: a base and a candidate. A matrix's cells side by side are
        // not a candidate against a base.
        (Some(base), Some(candidate)) if sets.len() == 2 || opts.judging() => {
            (judge(base, candidate, opts), warnings(base, candidate))
        }
        _ => (Vec::new(), Vec::new()),
    };
    let regressions: Vec<String> = verdicts
        .iter()
        .filter(|v| v.judgement == Judgement::Regressed)
        .map(regression_line)
        .collect();
    let mut outcome = CompareOutcome {
        regressed: !regressions.is_empty(),
        regressions,
        rows,
        verdicts,
        warnings,
        table: String::new(),
        markdown: String::new(),
    };
    outcome.table = terminal_table(&outcome.rows);
    outcome.markdown = markdown_table(&outcome.rows);
    if !outcome.verdicts.is_empty() {
        outcome.table.push('\n');
        outcome.table.push_str(&verdict_table(&outcome, opts));
        outcome.markdown.push('\n');
        outcome.markdown.push_str(&verdict_markdown(&outcome, opts));
    }
    if let Some(dir) = out {
        let curve = sweeps_rate(&sets).then(|| latency_curve(&outcome.rows));
        write_files(dir, &outcome, curve.as_ref())?;
    }
    Ok(outcome)
}

fn write_files(dir: &Path, outcome: &CompareOutcome, curve: Option<&Chart>) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
    };
    write(COMPARISON_MD, outcome.markdown.as_bytes())?;
    write(COMPARISON_CSV, &csv_bytes(&outcome.rows)?)?;
    write(COMPARISON_JSON, outcome.json()?.as_bytes())?;
    if !outcome.verdicts.is_empty() {
        write(VERDICTS_CSV, &outcome.verdicts_csv()?)?;
    }
    // A figure not measured this time leaves no chart from an earlier comparison behind.
    for stem in ["compare_p99", "compare_e2e_p99"] {
        for ext in ["png", "svg"] {
            let _ = std::fs::remove_file(dir.join(format!("{stem}.{ext}")));
        }
    }
    for chart in charts(&outcome.rows) {
        write_bar_chart(dir, &chart)?;
    }
    let mut figures = vec![(
        "What was measured, per run".to_string(),
        write_panel_chart(dir, COMPARISON_CHART, &panels(&outcome.rows))?,
    )];
    let _ = std::fs::remove_file(dir.join(format!("{LATENCY_CURVE}.svg")));
    let _ = std::fs::remove_file(dir.join(format!("{LATENCY_CURVE}.png")));
    let mut notes = Vec::new();
    if let Some(curve) = curve {
        match curve.not_drawn() {
            None => figures.push((curve.title.clone(), write_chart(dir, curve)?)),
            Some(why) => notes.push(format!("{}: not drawn: {why}.", curve.title)),
        }
    }
    write(
        COMPARISON_HTML,
        html_page(&outcome.rows, &verdict_text(outcome), &figures, &notes).as_bytes(),
    )
}

/// The matrix key whose sweep draws the latency-throughput curve.
pub const RATE_KEY: &str = "producers.total_rate";
/// Stem of the latency-throughput curve's files.
pub const LATENCY_CURVE: &str = "latency_throughput";

/// Whether the inputs sweep the produce rate: the cells of a matrix over [`RATE_KEY`], or at
/// least three runs with different target rates (e.g. the steps of a max-rate search; two
/// runs at two rates are an A/B comparison, not a curve).
fn sweeps_rate(sets: &[RunSet]) -> bool {
    let distinct = |f: &dyn Fn(&Summary) -> Option<String>| -> usize {
        let rates: Option<std::collections::BTreeSet<String>> =
            sets.iter().map(|s| f(s.first())).collect();
        rates.map_or(0, |r| r.len())
    };
    distinct(&|s| s.scenario.matrix_cell.get(RATE_KEY).cloned()) > 1
        || distinct(&|s| s.produce.target_msgs_per_s.map(|r| format!("{r}")))
            >= crate::report::charts::MIN_POINTS
}

/// The latency-throughput curve: p50 and p99 of produce and end-to-end latency against the
/// achieved produce rate, one point per input (a cell's medians), in rate order. Latencies
/// that were not measured (0) leave their line out.
pub(crate) fn latency_curve(rows: &[CompareRow]) -> Chart {
    let mut sorted: Vec<&CompareRow> = rows.iter().collect();
    sorted.sort_by(|a, b| a.produce_msgs_per_s.total_cmp(&b.produce_msgs_per_s));
    let line = |label: &str, color: usize, f: fn(&CompareRow) -> f64| {
        Line::new(
            label,
            color,
            sorted
                .iter()
                .filter(|r| f(r) > 0.0)
                .map(|r| (r.produce_msgs_per_s, f(r)))
                .collect(),
        )
    };
    Chart {
        stem: LATENCY_CURVE,
        title: "latency against achieved throughput (one point per rate)".into(),
        x: XAxis::Rate,
        y_desc: "latency (ms, log scale)".into(),
        y_log: true,
        lines: vec![
            line("produce p50", 0, |r| r.produce_p50_ms),
            line("produce p99", 2, |r| r.produce_p99_ms),
            line("end-to-end p50", 1, |r| r.e2e_p50_ms),
            line("end-to-end p99", 3, |r| r.e2e_p99_ms),
        ],
        warmup_end_s: None,
        events: Vec::new(),
        skip: None,
    }
}

/// Candidate against base, per metric the base measured.
pub fn judge(base: &RunSet, candidate: &RunSet, opts: &Options) -> Vec<MetricVerdict> {
    METRICS
        .iter()
        .filter(|m| base.measured(m))
        .filter_map(|m| {
            let (b, c) = (base.values(m), candidate.values(m));
            let ratio = stats::ratio_of_medians(&b, &c)?;
            let threshold_pct = opts.threshold_pct(m);
            Some(MetricVerdict {
                key: m.key.to_string(),
                name: m.name(base.first()),
                better: m.better,
                base_median: stats::median(&b)?,
                candidate_median: stats::median(&c)?,
                delta_pct: (ratio.point - 1.0) * 100.0,
                judgement: threshold_pct
                    .map_or(Judgement::NotJudged, |t| judgement(m.better, ratio, t)),
                ratio,
                threshold_pct,
            })
        })
        .collect()
}

/// The verdict on a ratio interval (candidate / base) against a threshold of `pct` percent.
pub fn judgement(better: Better, ratio: Estimate, pct: f64) -> Judgement {
    let t = pct / 100.0;
    let (low_bound, high_bound) = (1.0 - t, 1.0 + t);
    let (bad, good) = match better {
        Better::Higher => (ratio.high < low_bound, ratio.low > high_bound),
        Better::Lower => (ratio.low > high_bound, ratio.high < low_bound),
    };
    if bad {
        Judgement::Regressed
    } else if good {
        Judgement::Improved
    } else if ratio.low >= low_bound && ratio.high <= high_bound {
        Judgement::Unchanged
    } else {
        Judgement::Inconclusive
    }
}

fn regression_line(v: &MetricVerdict) -> String {
    let way = if v.better == Better::Higher {
        "dropped"
    } else {
        "rose"
    };
    format!(
        "{} {way} {:.1}% ({} → {}; 95 % interval of the ratio {:.3} .. {:.3}), beyond the allowed {}%",
        v.name,
        v.delta_pct.abs(),
        figure(v.base_median),
        figure(v.candidate_median),
        v.ratio.low,
        v.ratio.high,
        v.threshold_pct.unwrap_or_default()
    )
}

/// What weakens a verdict of `candidate` against `base`.
pub fn warnings(base: &RunSet, candidate: &RunSet) -> Vec<String> {
    let mut out = Vec::new();
    for (side, set) in [("base", base), ("candidate", candidate)] {
        if set.len() == 1 {
            out.push(format!(
                "the {side} {} is a single run: nothing can be said about noise, and a \
                 difference may be chance (run both sides with --runs 5)",
                set.source.display()
            ));
        }
    }
    let (b, c) = (base.first(), candidate.first());
    let differing = config_differences(&b.config, &c.config);
    if !differing.is_empty() {
        let shown: Vec<&str> = differing.iter().take(6).map(String::as_str).collect();
        out.push(format!(
            "the resolved configurations differ ({}{}): the comparison measures the settings, not only the code",
            shown.join(", "),
            if differing.len() > shown.len() { ", ..." } else { "" }
        ));
    }
    if b.run.kbench_version != c.run.kbench_version {
        out.push(format!(
            "kbench versions differ: {} (base) and {} (candidate)",
            b.run.kbench_version, c.run.kbench_version
        ));
    }
    if b.run.host != c.run.host {
        out.push(format!(
            "the runs were made on different hosts ({} and {}): machine noise is not the noise \
             either side measured",
            b.run.host, c.run.host
        ));
    }
    out
}

/// Dotted keys whose values differ between two resolved configurations (`runs` aside: how
/// often a scenario ran is not how it ran).
fn config_differences(a: &serde_json::Value, b: &serde_json::Value) -> Vec<String> {
    fn walk(prefix: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
        use serde_json::Value::Object;
        match (a, b) {
            (Object(x), Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    let null = serde_json::Value::Null;
                    walk(
                        &path,
                        x.get(k).unwrap_or(&null),
                        y.get(k).unwrap_or(&null),
                        out,
                    );
                }
            }
            _ if a != b => out.push(prefix.to_string()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", a, b, &mut out);
    out.retain(|k| k != "runs");
    out
}

/// One row per input, labelled so no two rows share a label; a set's figures are its medians.
pub fn rows(sets: &[RunSet]) -> Vec<CompareRow> {
    let base: Vec<String> = sets.iter().map(|s| base_label(s.first())).collect();
    sets.iter()
        .zip(&base)
        .map(|(set, label)| {
            let ambiguous = label.is_empty() || base.iter().filter(|b| *b == label).count() > 1;
            let mut label = if ambiguous {
                let dir = run_dir_name(&set.source);
                if label.is_empty() {
                    dir
                } else {
                    format!("{label} ({dir})")
                }
            } else {
                label.clone()
            };
            if set.len() > 1 {
                let _ = write!(label, " ×{}", set.len());
            }
            let per_run: Vec<CompareRow> = set
                .runs
                .iter()
                .map(|(path, s)| row(label.clone(), path, s))
                .collect();
            let mut r = fold(per_run);
            r.source = set.source.display().to_string();
            r
        })
        .collect()
}

/// One run's row.
fn row(label: String, path: &Path, s: &Summary) -> CompareRow {
    CompareRow {
        label,
        source: path.display().to_string(),
        runs: 1,
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
}

/// The rows of a set's runs as one: medians of the figures, the worst of the counts and
/// checks (one run that lost messages is a set that lost messages).
fn fold(mut runs: Vec<CompareRow>) -> CompareRow {
    if runs.len() == 1 {
        return runs.remove(0);
    }
    let med = |f: fn(&CompareRow) -> f64| {
        stats::median(&runs.iter().map(f).collect::<Vec<_>>()).unwrap_or_default()
    };
    let max = |f: fn(&CompareRow) -> u64| runs.iter().map(f).max().unwrap_or_default();
    let mut r = runs[0].clone();
    r.runs = runs.len();
    r.produce_msgs_per_s = med(|r| r.produce_msgs_per_s);
    r.produce_mib_per_s = med(|r| r.produce_mib_per_s);
    r.consume_msgs_per_s = med(|r| r.consume_msgs_per_s);
    r.produce_p50_ms = med(|r| r.produce_p50_ms);
    r.produce_p99_ms = med(|r| r.produce_p99_ms);
    r.produce_p999_ms = med(|r| r.produce_p999_ms);
    r.e2e_p50_ms = med(|r| r.e2e_p50_ms);
    r.e2e_p99_ms = med(|r| r.e2e_p99_ms);
    r.e2e_p999_ms = med(|r| r.e2e_p999_ms);
    r.on_disk_ratio = med(|r| r.on_disk_ratio);
    r.lost = max(|r| r.lost);
    r.duplicated = max(|r| r.duplicated);
    r.acked_lost = max(|r| r.acked_lost);
    r.produce_errors = max(|r| r.produce_errors);
    r.passed = runs.iter().all(|r| r.passed);
    if runs.iter().any(|r| r.on_disk == "mismatch") {
        r.on_disk = "mismatch".into();
    }
    if runs.iter().any(|r| r.recovered == "NO") {
        r.recovered = "NO".into();
    }
    r.recovery_s = runs
        .iter()
        .filter_map(|r| r.recovery_s)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    r
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

/// Name of the folder an input came from (`reports/x/2025-...Z/summary.json` → `2025-...Z`).
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

/// Fewest runs a calibration accepts: the noise of fewer is a guess.
pub const MIN_CALIBRATION_RUNS: usize = 3;

/// This machine's A/A noise per metric, from one run set of an unchanged build, and the
/// thresholds it supports (`calibration.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// The run set measured.
    pub source: String,
    /// Runs in it.
    pub runs: usize,
    /// Runs a side of the comparisons the thresholds are for.
    pub runs_per_side: usize,
    /// Per measured metric.
    pub metrics: Vec<MetricNoise>,
}

/// One metric's A/A noise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricNoise {
    /// [`Metric::key`].
    pub key: String,
    /// [`Metric::name`].
    pub name: String,
    /// Median of the runs.
    pub median: f64,
    /// (max − min) / median of the runs, percent.
    pub spread_pct: f64,
    /// 95th percentile of the change between two unchanged sets of `runs_per_side` runs,
    /// percent.
    pub aa_change_p95_pct: f64,
    /// The threshold to gate with: the A/A change rounded up to a whole percent (at least 1).
    /// An unchanged build's interval lies wholly beyond it far less often than 1 time in 20.
    pub recommended_threshold_pct: f64,
    /// The smallest change in the bad direction that a comparison of `runs_per_side` runs a
    /// side flags as regressed at that threshold, on this noise, percent.
    pub smallest_detectable_pct: f64,
}

/// Measures the A/A noise of `set` (runs of an unchanged build) for comparisons of
/// `runs_per_side` runs a side (default: the set's size).
pub fn calibrate(set: &RunSet, runs_per_side: Option<usize>) -> anyhow::Result<Calibration> {
    if set.len() < MIN_CALIBRATION_RUNS {
        anyhow::bail!(
            "{} holds {} run(s); a calibration needs at least {MIN_CALIBRATION_RUNS} runs of an \
             unchanged build (kbench run SCENARIO --runs 5 --out DIR)",
            set.source.display(),
            set.len()
        );
    }
    let k = runs_per_side.unwrap_or(set.len()).max(1);
    let metrics = METRICS
        .iter()
        .filter(|m| set.measured(m))
        .filter_map(|m| {
            let values = set.values(m);
            let median = stats::median(&values)?;
            let noise = stats::noise(&values, k)?;
            let (lo, hi) = values
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                    (a.min(*v), b.max(*v))
                });
            let threshold = (noise.change_p95 * 100.0).ceil().max(1.0);
            let t = threshold / 100.0;
            // A real change d scales the candidate: its interval is the A/A one times (1 ∓ d),
            // and it is flagged once that interval clears the threshold.
            let detectable = match m.better {
                Better::Higher => 1.0 - (1.0 - t) / noise.interval.1,
                Better::Lower => (1.0 + t) / noise.interval.0 - 1.0,
            };
            Some(MetricNoise {
                key: m.key.to_string(),
                name: m.name(set.first()),
                median,
                spread_pct: (hi - lo) / median * 100.0,
                aa_change_p95_pct: noise.change_p95 * 100.0,
                recommended_threshold_pct: threshold,
                smallest_detectable_pct: detectable * 100.0,
            })
        })
        .collect();
    Ok(Calibration {
        source: set.source.display().to_string(),
        runs: set.len(),
        runs_per_side: k,
        metrics,
    })
}

impl Calibration {
    /// The calibration as a terminal table, with the flags it recommends.
    pub fn table(&self) -> String {
        let headers = [
            "metric",
            "median",
            "spread",
            "A/A change p95",
            "threshold",
            "detects",
        ];
        let rows: Vec<[String; 6]> = self
            .metrics
            .iter()
            .map(|m| {
                [
                    m.name.clone(),
                    figure(m.median),
                    format!("{:.1}%", m.spread_pct),
                    format!("{:.1}%", m.aa_change_p95_pct),
                    format!("{}%", m.recommended_threshold_pct),
                    format!("≥ {:.1}%", m.smallest_detectable_pct),
                ]
            })
            .collect();
        let mut o = format!(
            "A/A noise of {} ({} runs), for comparisons of {} run(s) a side:\n",
            self.source, self.runs, self.runs_per_side
        );
        o.push_str(&aligned(&headers, &rows));
        let worst = |throughput: bool| {
            self.metrics
                .iter()
                .filter(|m| {
                    METRICS
                        .iter()
                        .any(|x| x.key == m.key && x.is_throughput() == throughput)
                })
                .map(|m| m.recommended_threshold_pct)
                .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.max(v))))
        };
        let _ = writeln!(
            o,
            "gate with: kbench compare BASE CANDIDATE --thresholds {CALIBRATION_JSON} (per metric), \
             or --max-throughput-drop {} --max-latency-rise {}",
            worst(true).map_or("-".into(), |v| v.to_string()),
            worst(false).map_or("-".into(), |v| v.to_string())
        );
        o
    }
}

const VERDICT_HEADERS: [&str; 7] = [
    "metric",
    "base",
    "candidate",
    "Δ%",
    "ratio",
    "95 % interval",
    "verdict",
];

fn verdict_cells(v: &MetricVerdict) -> [String; 7] {
    [
        v.name.clone(),
        figure(v.base_median),
        figure(v.candidate_median),
        format!("{:+.1}%", v.delta_pct),
        format!("{:.3}", v.ratio.point),
        format!("{:.3} .. {:.3}", v.ratio.low, v.ratio.high),
        match v.threshold_pct {
            Some(t) => format!("{} (±{t}%)", v.judgement.as_str()),
            None => v.judgement.as_str().to_string(),
        },
    ]
}

fn heading(o: &CompareOutcome) -> String {
    match (o.rows.first(), o.rows.last()) {
        (Some(b), Some(c)) => format!("candidate {} against base {}", c.label, b.label),
        _ => String::new(),
    }
}

/// The closing lines: the gate's verdict and the warnings.
fn verdict_text(o: &CompareOutcome) -> String {
    if o.verdicts.is_empty() {
        return String::new();
    }
    let mut s = String::new();
    if o.verdicts
        .iter()
        .all(|v| v.judgement == Judgement::NotJudged)
    {
        s.push_str("not judged: no thresholds (--max-throughput-drop, --max-latency-rise or --thresholds)\n");
    } else if o.regressed {
        let _ = writeln!(s, "REGRESSION: {}", heading(o));
        for r in &o.regressions {
            let _ = writeln!(s, "  - {r}");
        }
    } else {
        let inconclusive = o
            .verdicts
            .iter()
            .filter(|v| v.judgement == Judgement::Inconclusive)
            .count();
        let _ = write!(s, "no regression: {}", heading(o));
        if inconclusive > 0 {
            let _ = write!(
                s,
                " ({inconclusive} metric(s) inconclusive: their interval straddles the threshold; more runs narrow it)"
            );
        }
        s.push('\n');
    }
    for w in &o.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    s
}

fn verdict_table(o: &CompareOutcome, _opts: &Options) -> String {
    let all: Vec<[String; 7]> = o.verdicts.iter().map(verdict_cells).collect();
    let mut out = format!("{}\n", heading(o));
    out.push_str(&aligned(&VERDICT_HEADERS, &all));
    out.push_str(&verdict_text(o));
    out
}

fn verdict_markdown(o: &CompareOutcome, _opts: &Options) -> String {
    let mut out = format!("**{}**\n\n", heading(o));
    out.push_str(&format!("| {} |\n", VERDICT_HEADERS.join(" | ")));
    out.push_str(&format!("|{}\n", ["---|"; 7].concat()));
    for v in &o.verdicts {
        let c: Vec<String> = verdict_cells(v)
            .iter()
            .map(|c| c.replace('|', "\\|"))
            .collect();
        let _ = writeln!(out, "| {} |", c.join(" | "));
    }
    out.push('\n');
    for line in verdict_text(o).lines() {
        let _ = writeln!(out, "{line}  ");
    }
    out
}

/// `rows` under `headers`, columns aligned (the first left, the others right).
fn aligned<const N: usize>(headers: &[&str; N], rows: &[[String; N]]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
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
    let mut out = line(headers.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
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
    aligned(&HEADERS, &all)
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

/// The panels of the comparison chart, only for what was measured: throughput always; p99
/// produce and end-to-end latency when any input has it; acknowledged messages lost when any
/// input lost some; recovery time when any input had a fault (a run that never recovered has
/// no bar and says "not recovered").
pub(crate) fn panels(rows: &[CompareRow]) -> Vec<BarChart> {
    let bars = |f: &dyn Fn(&CompareRow) -> f64| -> Vec<(String, f64)> {
        rows.iter().map(|r| (axis_label(r), f(r))).collect()
    };
    let measured = |b: &[(String, f64)]| b.iter().any(|(_, v)| *v > 0.0);
    let mut out = vec![BarChart {
        stem: COMPARISON_CHART,
        title: "produce throughput (acked msgs/s)".into(),
        y_desc: "messages/s".into(),
        bars: bars(&|r| r.produce_msgs_per_s),
        missing: "",
    }];
    let candidates = [
        (
            "produce latency p99 (ms)",
            "ms",
            bars(&|r| r.produce_p99_ms),
        ),
        ("end-to-end latency p99 (ms)", "ms", bars(&|r| r.e2e_p99_ms)),
        (
            "acknowledged messages lost",
            "messages",
            bars(&|r| r.acked_lost as f64),
        ),
    ];
    for (title, y_desc, b) in candidates {
        if measured(&b) {
            out.push(BarChart {
                stem: COMPARISON_CHART,
                title: title.into(),
                y_desc: y_desc.into(),
                bars: b,
                missing: "",
            });
        }
    }
    if rows.iter().any(|r| r.faults > 0) {
        out.push(BarChart {
            stem: COMPARISON_CHART,
            title: "time to recover from the fault (s, longest)".into(),
            y_desc: "s".into(),
            bars: bars(&|r| match (r.faults, r.recovery_s) {
                (0, _) => 0.0,
                (_, Some(s)) => s,
                (_, None) => f64::NAN,
            }),
            missing: "not recovered",
        });
    }
    out
}

/// The comparison page (`report.html`): which inputs passed, the charts (inline SVG: the
/// measured figures side by side, and the latency-throughput curve for a rate sweep), the
/// regression verdict when there is one, then the table with every figure. Self-contained.
pub fn html_page(
    rows: &[CompareRow],
    verdict: &str,
    figures: &[(String, String)],
    notes: &[String],
) -> String {
    let mut o = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>kbench comparison</title>\n<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}svg{max-width:100%;height:auto}figure{margin:1em 0}figcaption{font-weight:bold}.verdict{padding:.8em 1em;border-radius:4px;font-size:1.2em}.pass{background:#dff0d8}.fail{background:#f2dede}</style></head><body>\n<h1>kbench comparison</h1>\n",
    );
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.label.as_str())
        .collect();
    let (class, text) = if failed.is_empty() {
        (
            "pass",
            format!("all {} input(s) passed their checks", rows.len()),
        )
    } else {
        (
            "fail",
            format!(
                "{} of {} input(s) FAILED their checks: {}",
                failed.len(),
                rows.len(),
                failed.join(", ")
            ),
        )
    };
    let _ = writeln!(o, "<div class=\"verdict {class}\">{}</div>", esc(&text));
    if !verdict.is_empty() {
        let _ = writeln!(o, "<pre>{}</pre>", esc(verdict));
    }
    for (title, svg) in figures {
        let _ = writeln!(
            o,
            "<figure class=\"chart\" title=\"{}\">{svg}</figure>",
            esc(title)
        );
    }
    for n in notes {
        let _ = writeln!(o, "<p>{}</p>", esc(n));
    }
    o.push_str("<h2>Every figure</h2><p>acked lost = acknowledged messages no consumer read (with acks=0 a message counts as acknowledged once sent); recovery s = longest time from a fault until produce throughput was back to 90 % of its pre-fault rate.</p>\n<div style=\"overflow-x:auto\"><table style=\"font-size:.85em\"><tr>");
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
    o.push_str("</table></div>\n</body></html>\n");
    o
}

/// One chart file per figure (`compare_*.png`/`.svg`): throughput always, the p99 latencies
/// only when some input measured them (as the panels).
fn charts(rows: &[CompareRow]) -> Vec<BarChart> {
    let bars = |f: fn(&CompareRow) -> f64| -> Vec<(String, f64)> {
        rows.iter().map(|r| (r.label.clone(), f(r))).collect()
    };
    let chart = |stem, title: &str, y_desc: &str, bars| BarChart {
        stem,
        title: title.into(),
        y_desc: y_desc.into(),
        bars,
        missing: "",
    };
    let mut out = vec![chart(
        "compare_throughput",
        "produce throughput (acked msgs/s)",
        "messages/s",
        bars(|r| r.produce_msgs_per_s),
    )];
    for (stem, title, f) in [
        (
            "compare_p99",
            "produce latency p99 (ms)",
            (|r| r.produce_p99_ms) as fn(&CompareRow) -> f64,
        ),
        ("compare_e2e_p99", "end-to-end latency p99 (ms)", |r| {
            r.e2e_p99_ms
        }),
    ] {
        let b = bars(f);
        if b.iter().any(|(_, v)| *v > 0.0) {
            out.push(chart(stem, title, "ms", b));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testdata;

    fn thresholds(drop: f64, rise: f64) -> Options {
        Options {
            max_throughput_drop_pct: Some(drop),
            max_latency_rise_pct: Some(rise),
            ..Default::default()
        }
    }

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
    fn runs_at_three_target_rates_draw_the_latency_curve_and_two_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let step = |name: &str, rate: f64| {
            let run = write_run(dir.path(), name, rate * 0.99, rate / 100.0);
            let path = run.join(SUMMARY_JSON);
            let mut s: Summary =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            s.produce.target_msgs_per_s = Some(rate);
            std::fs::write(&path, serde_json::to_string(&s).unwrap()).unwrap();
            run
        };
        let steps = [
            step("step-1", 1000.0),
            step("step-2", 4000.0),
            step("step-3", 2000.0),
        ];
        let curve = "latency against achieved throughput";
        let out = dir.path().join("three");
        run(&steps, &Options::default(), Some(&out)).unwrap();
        let html = std::fs::read_to_string(out.join(COMPARISON_HTML)).unwrap();
        assert!(
            html.contains(curve) && !html.contains("not drawn"),
            "{html}"
        );
        assert!(out.join(format!("{LATENCY_CURVE}.svg")).exists());
        let out = dir.path().join("two");
        run(&steps[..2], &Options::default(), Some(&out)).unwrap();
        let html = std::fs::read_to_string(out.join(COMPARISON_HTML)).unwrap();
        assert!(!html.contains(curve), "an A/B comparison drew a curve");
    }

    #[test]
    fn flags_a_crafted_regression() {
        let dir = tempfile::tempdir().unwrap();
        let base = write_run(dir.path(), "base", 100_000.0, 5.0);
        let worse = write_run(dir.path(), "worse", 80_000.0, 5.1);
        let out = dir.path().join("cmp");
        let o = run(&[base, worse], &thresholds(10.0, 20.0), Some(&out)).unwrap();
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
        assert!(csv.starts_with("label,source,runs,produce_msgs_per_s,produce_mib_per_s,"));
    }

    #[test]
    fn does_not_flag_a_non_regression() {
        let dir = tempfile::tempdir().unwrap();
        let base = write_run(dir.path(), "base", 100_000.0, 5.0);
        let same = write_run(dir.path(), "same", 95_000.0, 5.5);
        let o = run(
            &[base.join(SUMMARY_JSON), same],
            &thresholds(10.0, 20.0),
            None,
        )
        .unwrap();
        assert!(!o.regressed, "{:?}", o.regressions);
        assert!(o.table.contains("no regression"));
        assert!(o.markdown.starts_with("| run | produce msgs/s |"));
        // Latency beyond the threshold alone is a regression.
        let slow = write_run(dir.path(), "slow", 100_000.0, 7.0);
        let latency_only = Options {
            max_latency_rise_pct: Some(20.0),
            ..Default::default()
        };
        let o = run(&[base, slow], &latency_only, None).unwrap();
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
        // Figures no axis tick lands on (123 and 41 lost, 13.7 s), so the bar labels are found.
        let a = write_cell(dir.path(), "acks-1_rf1", "1", 1, 123, Some(13.7));
        let b = write_cell(dir.path(), "acks-all_rf3", "all", 3, 0, Some(1.0));
        let c = write_cell(dir.path(), "acks-0_rf3", "0", 3, 41, None);
        let out = dir.path().join("cmp");
        let o = run(&[a, b, c], &Options::default(), Some(&out)).unwrap();
        assert_eq!(o.rows[0].acked_lost, 123);
        assert_eq!(o.rows[0].recovery_s, Some(13.7));
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
            lines[1].contains("1/1/-") && lines[1].contains("13.70"),
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
        assert!(html.contains("<td>123</td>"), "{html}");
        // The chart is in the page (inline SVG): a loss panel and a recovery panel, each with
        // a labelled bar per cell.
        let start = html.find("<svg").expect("no inline chart in report.html");
        let svg = &html[start..start + html[start..].find("</svg>").expect("unclosed <svg")];
        let texts: Vec<&str> = svg
            .split("</text>")
            .filter_map(|t| t.rsplit_once('>').map(|(_, s)| s.trim()))
            .collect();
        for want in [
            "acknowledged messages lost",
            "time to recover from the fault (s, longest)",
            "acks=1 topic=rf1",
            "acks=all topic=rf3",
            "acks=0 topic=rf3",
            "123",
            "41",
            "13.7",
            "not recovered",
        ] {
            assert!(
                texts.contains(&want),
                "the inline chart lacks the text {want:?}: {texts:?}"
            );
        }
    }

    #[test]
    fn comparison_panels_only_for_what_was_measured() {
        let row = |label: &str, lost: u64, faults: u32, e2e: f64| CompareRow {
            label: label.into(),
            produce_msgs_per_s: 5000.0,
            produce_p99_ms: 4.0,
            e2e_p99_ms: e2e,
            acked_lost: lost,
            faults,
            recovery_s: (faults > 0).then_some(2.0),
            ..testdata_row()
        };
        let titles = |rows: &[CompareRow]| -> Vec<String> {
            panels(rows).into_iter().map(|p| p.title).collect()
        };
        // Nothing lost, no fault, no consumers: throughput and produce p99 only.
        let quiet = [row("a", 0, 0, 0.0), row("b", 0, 0, 0.0)];
        assert_eq!(
            titles(&quiet),
            [
                "produce throughput (acked msgs/s)",
                "produce latency p99 (ms)"
            ]
        );
        // Consumers in one run: the end-to-end panel; a loss in one run: the loss panel; a
        // fault in one run: the recovery panel.
        let busy = [row("a", 0, 0, 9.0), row("b", 17, 1, 0.0)];
        assert_eq!(
            titles(&busy),
            [
                "produce throughput (acked msgs/s)",
                "produce latency p99 (ms)",
                "end-to-end latency p99 (ms)",
                "acknowledged messages lost",
                "time to recover from the fault (s, longest)"
            ]
        );
        // Drawn, the quiet comparison has no all-zero panel and no row of "0" ticks.
        let dir = tempfile::tempdir().unwrap();
        let svg = write_panel_chart(dir.path(), COMPARISON_CHART, &panels(&quiet)).unwrap();
        let zeros = svg.matches(">0</text>").count();
        assert!(zeros <= 2, "{zeros} \"0\" labels: an all-zero panel?");
        assert!(!svg.contains("lost") && !svg.contains("recover"));
    }

    /// A comparison row with nothing measured.
    fn testdata_row() -> CompareRow {
        CompareRow {
            label: String::new(),
            source: String::new(),
            runs: 1,
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
        }
    }

    #[test]
    fn chart_labels_are_the_matrix_cell() {
        let mut r = CompareRow {
            label: "replication [producers.acks=all, topic.replication_factor=3]".into(),
            ..testdata_row()
        };
        assert_eq!(axis_label(&r), "acks=all RF=3");
        r.label =
            "replication [producers.acks=0, topic=min_insync_replicas=2 replication_factor=3]"
                .into();
        assert_eq!(axis_label(&r), "acks=0 minISR=2 RF=3");
        r.label = "smoke (base)".into();
        assert_eq!(axis_label(&r), "smoke (base)");
    }

    /// A run set of `rates.len()` runs (produce and consume at `rates`, p99 `p99s`).
    fn write_set(dir: &Path, name: &str, rates: &[f64], p99s: &[f64]) -> PathBuf {
        let set = dir.join(name);
        for (k, (rate, p99)) in rates.iter().zip(p99s).enumerate() {
            write_run(&set, &format!("run-{}", k + 1), *rate, *p99);
        }
        set
    }

    const RATES: [f64; 5] = [100_000.0, 103_000.0, 97_000.0, 101_500.0, 98_500.0];
    const P99S: [f64; 5] = [5.0, 5.3, 4.8, 5.1, 4.9];

    #[test]
    fn an_unchanged_set_passes_and_a_throttled_one_fails_the_calibrated_gate() {
        let dir = tempfile::tempdir().unwrap();
        let base = write_set(dir.path(), "base", &RATES, &P99S);
        // The same build again: the same noise, in another order.
        let same = write_set(
            dir.path(),
            "same",
            &[98_000.0, 101_000.0, 103_500.0, 99_000.0, 100_500.0],
            &[5.2, 4.9, 5.0, 4.8, 5.1],
        );
        let throttled: Vec<f64> = RATES.iter().map(|r| r * 0.7).collect();
        let slow = write_set(dir.path(), "slow", &throttled, &P99S);
        let cal = calibrate(&RunSet::load(&base).unwrap(), None).unwrap();
        let produce = &cal.metrics[0];
        assert_eq!(produce.key, "produce_msgs_per_s");
        assert!(
            (1.0..=10.0).contains(&produce.recommended_threshold_pct),
            "{produce:?}"
        );
        assert!(produce.smallest_detectable_pct > produce.recommended_threshold_pct);
        let cal_file = dir.path().join(CALIBRATION_JSON);
        std::fs::write(&cal_file, serde_json::to_string(&cal).unwrap()).unwrap();
        let opts = Options::default().with_calibration(&cal_file).unwrap();

        let aa = run(&[base.clone(), same], &opts, None).unwrap();
        assert!(!aa.regressed, "{}", aa.table);
        assert!(aa.warnings.is_empty(), "{:?}", aa.warnings);
        assert_eq!(aa.rows[0].label, "synthetic (base) ×5");
        assert_eq!(aa.rows[0].produce_msgs_per_s, 100_000.0);

        let out = dir.path().join("cmp");
        let o = run(&[base, slow], &opts, Some(&out)).unwrap();
        assert!(o.regressed, "{}", o.table);
        let v = &o.verdicts[0];
        assert_eq!(v.judgement, Judgement::Regressed);
        assert!((v.delta_pct + 30.0).abs() < 1e-6, "{v:?}");
        assert!(v.ratio.high < 0.9, "{v:?}");
        assert!(
            o.table.contains("REGRESSION")
                && o.table
                    .contains("produce throughput (acked msgs/s) dropped 30.0%"),
            "{}",
            o.table
        );
        // The latency did not move: not a regression.
        let p99 = o
            .verdicts
            .iter()
            .find(|v| v.key == "produce_latency_p99_ms")
            .unwrap();
        assert_ne!(p99.judgement, Judgement::Regressed);
        // Every format, and the files.
        assert!(
            o.markdown.contains("| metric | base | candidate | Δ% |"),
            "{}",
            o.markdown
        );
        let csv = String::from_utf8(o.verdicts_csv().unwrap()).unwrap();
        assert!(csv.starts_with("metric,name,better,base_median,candidate_median,delta_pct,ratio,ratio_ci_low,ratio_ci_high,threshold_pct,verdict"));
        assert!(csv.contains(",regressed"), "{csv}");
        let json: serde_json::Value = serde_json::from_str(&o.json().unwrap()).unwrap();
        assert_eq!(json["regressed"], true);
        assert_eq!(json["verdicts"][0]["judgement"], "regressed");
        for f in [
            COMPARISON_MD,
            COMPARISON_CSV,
            VERDICTS_CSV,
            COMPARISON_JSON,
            COMPARISON_HTML,
        ] {
            assert!(out.join(f).exists(), "{f} missing");
        }
    }

    #[test]
    fn too_few_runs_for_the_threshold_is_inconclusive_not_a_regression() {
        let dir = tempfile::tempdir().unwrap();
        // ±20 % noise, 3 runs a side, a 10 % drop of the median, a 5 % threshold.
        let base = write_set(dir.path(), "base", &[100.0, 120.0, 80.0], &[5.0; 3]);
        let cand = write_set(dir.path(), "cand", &[90.0, 110.0, 72.0], &[5.0; 3]);
        let o = run(&[base, cand], &thresholds(5.0, 20.0), None).unwrap();
        assert_eq!(
            o.verdicts[0].judgement,
            Judgement::Inconclusive,
            "{}",
            o.table
        );
        assert!(!o.regressed);
        assert!(o.table.contains("inconclusive"), "{}", o.table);
    }

    #[test]
    fn judgement_needs_the_whole_interval_beyond_the_threshold() {
        let e = |low, high| Estimate {
            point: (low + high) / 2.0,
            low,
            high,
        };
        use Better::{Higher, Lower};
        assert_eq!(judgement(Higher, e(0.80, 0.94), 5.0), Judgement::Regressed);
        assert_eq!(
            judgement(Higher, e(0.80, 0.96), 5.0),
            Judgement::Inconclusive
        );
        assert_eq!(judgement(Higher, e(0.97, 1.02), 5.0), Judgement::Unchanged);
        assert_eq!(judgement(Higher, e(1.06, 1.20), 5.0), Judgement::Improved);
        assert_eq!(judgement(Lower, e(1.06, 1.20), 5.0), Judgement::Regressed);
        assert_eq!(judgement(Lower, e(0.80, 0.94), 5.0), Judgement::Improved);
        assert_eq!(
            judgement(Lower, e(1.00, 1.06), 5.0),
            Judgement::Inconclusive
        );
    }

    #[test]
    fn single_runs_other_settings_versions_and_hosts_are_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        let base = write_run(dir.path(), "base", 100.0, 5.0);
        let mut s = testdata::run_data().summary;
        s.config["producers"]["count"] = 4.into();
        s.config["runs"] = 5.into();
        s.run.kbench_version = "9.9.9".into();
        s.run.host = "elsewhere".into();
        let other = dir.path().join("other");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join(SUMMARY_JSON), serde_json::to_string(&s).unwrap()).unwrap();
        let o = run(&[base, other], &Options::default(), None).unwrap();
        let all = o.warnings.join("\n");
        assert!(all.contains("base") && all.contains("single run"), "{all}");
        assert!(
            all.contains("configurations differ (producers.count)"),
            "{all}"
        );
        assert!(all.contains("9.9.9") && all.contains("elsewhere"), "{all}");
        // No thresholds: shown, not judged, never a failure.
        assert!(!o.regressed);
        assert!(o
            .verdicts
            .iter()
            .all(|v| v.judgement == Judgement::NotJudged));
        assert!(o.table.contains("not judged"), "{}", o.table);
    }

    #[test]
    fn calibration_needs_a_few_runs() {
        let dir = tempfile::tempdir().unwrap();
        let set = write_set(dir.path(), "two", &[1.0, 2.0], &[1.0, 1.0]);
        let e = calibrate(&RunSet::load(&set).unwrap(), None).unwrap_err();
        assert!(e.to_string().contains("at least 3 runs"), "{e}");
    }

    #[test]
    fn thresholds_need_two_runs() {
        let dir = tempfile::tempdir().unwrap();
        let base = write_run(dir.path(), "base", 1.0, 1.0);
        assert!(run(std::slice::from_ref(&base), &thresholds(5.0, 5.0), None).is_err());
        assert!(run(&[base], &Options::default(), None).is_ok());
        let err = run(&[dir.path().join("nope")], &Options::default(), None).unwrap_err();
        assert!(format!("{err:#}").contains("nope"), "{err:#}");
    }
}
