//! Orchestration of one run, and of a matrix of runs.
//!
//! One run is a straight line, each step bounded in time: scenario → output folder (created
//! first, so a bad `--out` fails in the first second) → target (embedded brokers or external
//! bootstrap) → topic → consumers subscribed and assigned → producers (warm-up first) → sampling
//! every interval → producers finish → consumers drain to the end offsets → verification →
//! report → exit code. Anything that stops the run early (Ctrl-C, a broker process exiting, no
//! acknowledgement for too long, the time limit, a message refused with a storage error: a full
//! disk) raises the tasks' stop flags, and the run still writes its report with the reason among
//! the failures.
//!
//! A run runs on the main thread (inside `block_on`), which is also the thread that
//! forks broker processes: `PR_SET_PDEATHSIG` follows the forking thread, and the main thread
//! lives as long as kbench does.
//!
//! This file turns a scenario source into runs (a matrix, repeats, a max-rate search, a shard)
//! and prepares each run's folder; [`prepared`] is one run, start to summary: a straight line
//! of phases joined by small state types, one file each: [`setup`], [`produce`], [`drain`],
//! [`verification`] and [`reporting`]. What they need is in files of their own: the producer
//! and consumer threads ([`tasks`]), the consumer groups ([`groups`]), the checks against the
//! cluster after the drain ([`checks`]), a shard's record and start barrier ([`shard`]), the
//! progress line ([`progress`]) and what the run writes about itself ([`summary`]).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::fault;
use crate::ledger::AckLedger;
use crate::measure::{
    now_us, Collector, ConsumerMeter, GroupTotals, ProduceTotals, ProducerMeter, WarmupEnd,
};
use crate::sampler::Sampler;
use crate::scenario::{self, Compression, Loaded, Scenario, Start, Stop as StopAt};
use crate::summary::{
    latency_histogram, ConsumeSummary, Event, Percentiles, ProduceSummary, RunData, RunInfo,
    ScenarioInfo, Summary, Verdict, MIB, SCHEMA_VERSION,
};
use crate::sut::{load_client_config, topic, ClusterAccess, EmbeddedCluster, Target};
use crate::verify;
use crate::workload::payload::{Check, Filler};
use crate::workload::pipeline::{self, PipelineMeter};
use crate::workload::{consumer, producer, Stop};

mod checks;
mod drain;
mod groups;
mod prepared;
mod produce;
mod progress;
mod reporting;
mod setup;
mod shard;
mod summary;
mod tasks;
mod verification;

use checks::*;
use groups::*;
use prepared::*;
use progress::*;
use shard::*;
use summary::*;
use tasks::*;

/// How the binary asked for the run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `--bootstrap`: use this cluster instead of starting brokers.
    pub bootstrap: Option<String>,
    /// `--client-config`: librdkafka properties every client gets.
    pub client_config: Option<PathBuf>,
    /// `--out`: output folder (default `reports/<name>/<UTC timestamp>/`).
    pub out: Option<PathBuf>,
    /// The quick mode's flags and `--set` overrides, in that order.
    pub overrides: Vec<scenario::Override>,
    /// `--json`: stdout holds the summary only; the tables go to stderr.
    pub json: bool,
    /// `--shard I/N --run-id ID`: run this process's share of the scenario ([`crate::shard`]).
    pub shard: Option<crate::shard::Shard>,
}

/// Whether the human-readable results (tables, verdict lines) go to stderr because stdout
/// holds the JSON summary (`--json`).
static HUMAN_TO_STDERR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Prints human-readable results: to stdout, or to stderr under `--json`.
fn say(text: &str) {
    if HUMAN_TO_STDERR.load(std::sync::atomic::Ordering::Relaxed) {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Ran, every expectation held (exit 0).
    Passed,
    /// Ran, an expectation failed (exit 1).
    Failed,
}

/// Bound on starting a cluster, creating a topic, reaching a bootstrap server.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Bound on reaching an external cluster's bootstrap servers.
const EXTERNAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Bound on the producers' clients being created and their transactions initialised.
const CLIENTS_TIMEOUT: Duration = Duration::from_secs(60);

/// A run in which nothing is acknowledged for this long while producers still send is stopped.
const STALL_TIMEOUT: Duration = Duration::from_secs(40);

/// librdkafka's `batch.size` when the scenario leaves it unset.
const LIBRDKAFKA_BATCH_SIZE: u64 = 1_000_000;

/// Default output folder: `reports/<name>/<UTC timestamp>/`.
pub fn default_out(name: &str) -> PathBuf {
    PathBuf::from("reports")
        .join(name)
        .join(chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string())
}

/// Runs a scenario (a file, a built-in one, or the quick mode's; every matrix combination,
/// then a comparison). Returns the outcome and the output folder, once it is known.
pub async fn run_source(
    source: &scenario::builtin::Source,
    opts: &RunOptions,
    interrupt: &Stop,
) -> (anyhow::Result<Outcome>, Option<PathBuf>) {
    HUMAN_TO_STDERR.store(opts.json, std::sync::atomic::Ordering::Relaxed);
    let mut loaded = match source.text().and_then(|text| {
        scenario::load_overridden(
            &text,
            &source.path(),
            &opts.overrides,
            opts.bootstrap.is_some(),
        )
    }) {
        Ok(l) => l,
        Err(e) => return (Err(e.into()), None),
    };
    let shard_run = match &opts.shard {
        Some(shard) => match plan_shard(shard, &mut loaded, opts.bootstrap.is_some()) {
            Ok(r) => Some(r),
            Err(e) => return (Err(e), None),
        },
        None => None,
    };
    eprintln!("kbench: {}", source.describe());
    for v in &loaded.variants {
        eprintln!(
            "kbench: plan: {}",
            scenario::plan_line(&v.scenario, v.label.as_deref())
        );
    }
    let client_settings = match &opts.client_config {
        Some(file) => match load_client_config(file) {
            Ok(s) => s,
            Err(e) => return (Err(e.into()), None),
        },
        None => BTreeMap::new(),
    };
    let out = opts
        .out
        .clone()
        .unwrap_or_else(|| default_out(&loaded.base.name));
    // An external cluster is checked before anything is written: every bootstrap server
    // resolves and takes a TCP connection, or the run stops here naming the one that does not.
    let bootstrap = opts
        .bootstrap
        .clone()
        .or_else(|| loaded.base.cluster.bootstrap.clone());
    if let Some(b) = &bootstrap {
        let named = if opts.bootstrap.is_some() {
            format!("--bootstrap {b}")
        } else {
            format!("{}: cluster.bootstrap = \"{b}\"", source.path().display())
        };
        match crate::sut::probe::reach_all(b).await {
            Ok(unreachable) => {
                for u in unreachable {
                    eprintln!(
                        "kbench: warning: {named}: {u} (going on with the servers that answer)"
                    );
                }
            }
            Err(e) => {
                return (
                    Err(anyhow::anyhow!("{named}: cannot reach the cluster: {e}")),
                    None,
                )
            }
        }
    }
    let args = ClusterArgs {
        bootstrap: opts.bootstrap.as_deref(),
        client_settings: &client_settings,
        shard: shard_run.as_ref(),
    };
    let result = run_loaded(&loaded, &out, &args, interrupt).await;
    (result, Some(out))
}

/// A sharded run: one scenario (no matrix, one run) against an external cluster; this
/// process's share replaces it in `loaded`.
fn plan_shard(
    shard: &crate::shard::Shard,
    loaded: &mut Loaded,
    bootstrap_flag: bool,
) -> anyhow::Result<crate::shard::ShardRun> {
    let label = shard.label();
    if loaded.variants.len() != 1 {
        bail!("--shard {label}: the scenario is a matrix of {} runs; shard one scenario at a time (pick a cell with --set)", loaded.variants.len());
    }
    let v = &mut loaded.variants[0];
    if v.scenario.runs > 1 {
        bail!("--shard {label}: runs = {} is not supported in a sharded run (repeat the sharded run instead)", v.scenario.runs);
    }
    if !bootstrap_flag && v.scenario.cluster.bootstrap.is_none() {
        bail!("--shard {label}: a sharded run needs an external cluster every shard can reach (--bootstrap HOST:PORT); embedded brokers would give each shard its own cluster");
    }
    let (run, s) = crate::shard::ShardRun::plan(shard.clone(), &v.scenario)?;
    eprintln!(
        "kbench: shard {label} of run {}: producers {}..{}, {} member(s) per group",
        shard.run_id,
        run.first_producer,
        run.first_producer + s.producers.count,
        s.consumers.members
    );
    eprintln!("kbench: shard {label}: delivery, offsets and on-disk are judged by `kbench merge` of every shard's folder, not here");
    v.scenario = s;
    Ok(run)
}

/// What `--json` prints for a run folder: its `summary.json` (a run, or a run set's), or for
/// a matrix its `comparison.json`; `None` when the folder holds neither.
pub fn result_json(out: &Path) -> Option<String> {
    [crate::report::SUMMARY_JSON, "comparison.json"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(out.join(f)).ok())
        .find(|t| !t.trim().is_empty())
}

/// The command line's say on the cluster of a run.
#[derive(Debug, Clone, Copy)]
pub struct ClusterArgs<'a> {
    /// `--bootstrap`: use this cluster instead of starting brokers.
    pub bootstrap: Option<&'a str>,
    /// `--client-config`: settings every client gets (they win over `[cluster] client_configs`).
    pub client_settings: &'a BTreeMap<String, String>,
    /// `--shard`: this process's share of a sharded run.
    pub shard: Option<&'a crate::shard::ShardRun>,
}

impl ClusterArgs<'_> {
    /// The shared client settings of a run of `s`: its `[cluster] client_configs`, then the
    /// command line's file over them.
    fn settings(&self, s: &Scenario) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = s
            .cluster
            .client_configs
            .iter()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        out.extend(self.client_settings.clone());
        out
    }
}

async fn run_loaded(
    loaded: &Loaded,
    out: &Path,
    args: &ClusterArgs<'_>,
    interrupt: &Stop,
) -> anyhow::Result<Outcome> {
    if loaded.variants.len() == 1 {
        let outcome = run_variant(&loaded.variants[0], &loaded.file, out, args, interrupt).await?;
        eprintln!("kbench: report in {}", out.display());
        return Ok(outcome);
    }
    std::fs::create_dir_all(out).with_context(|| {
        format!(
            "cannot create the output directory {} (choose another with --out DIR)",
            out.display()
        )
    })?;
    let mut dirs = Vec::new();
    let mut outcome = Outcome::Passed;
    for (i, v) in loaded.variants.iter().enumerate() {
        let label = v.label.clone().unwrap_or_else(|| format!("run-{i}"));
        let dir = out.join(&label);
        eprintln!(
            "kbench: matrix run {}/{}: {label}",
            i + 1,
            loaded.variants.len()
        );
        if run_variant(v, &loaded.file, &dir, args, interrupt)
            .await
            .with_context(|| format!("matrix run {label}"))?
            == Outcome::Failed
        {
            outcome = Outcome::Failed;
        }
        dirs.push(dir);
        if interrupt.is_raised() {
            bail!("interrupted after matrix run {label}");
        }
    }
    let cmp = crate::compare::run(&dirs, &crate::compare::Options::default(), Some(out))?;
    say(&cmp.table);
    eprintln!("kbench: runs and comparison in {}", out.display());
    Ok(outcome)
}

/// Runs one scenario (one matrix cell) `runs` times: into `out` itself when once, else into
/// `out/run-1` .. `out/run-N` and then the set's `summary.json` and `report.html` (medians and
/// intervals, [`crate::runset`]). Failed when any run failed.
async fn run_variant(
    v: &scenario::Variant,
    file: &Path,
    out: &Path,
    args: &ClusterArgs<'_>,
    interrupt: &Stop,
) -> anyhow::Result<Outcome> {
    let outcome = |passed: bool| {
        if passed {
            Outcome::Passed
        } else {
            Outcome::Failed
        }
    };
    if let Some(m) = &v.scenario.max_rate {
        return run_max_rate(v, m, file, out, args, interrupt).await;
    }
    let n = v.scenario.runs;
    if n <= 1 {
        let summary = run_one(&v.scenario, file, &v.matrix_values, out, args, interrupt).await?;
        discard_broker_data(&v.scenario, &summary, out);
        say(&crate::report::terminal_table(&summary));
        if let Some(c) = &summary.catch_up {
            say(&format!("{}\n", crate::catch_up::terminal_line(c)));
        }
        say(&fault::terminal_lines(&summary.delivery.faults));
        say(&format!("{}\n", summary.durability.line()));
        return Ok(outcome(summary.verdict.passed));
    }
    let mut passed = true;
    for k in 1..=n {
        let dir = out.join(format!("{}{k}", crate::runset::RUN_DIR_PREFIX));
        eprintln!("kbench: run {k}/{n}");
        let summary = run_one(&v.scenario, file, &v.matrix_values, &dir, args, interrupt)
            .await
            .with_context(|| format!("run {k} of {n}"))?;
        discard_broker_data(&v.scenario, &summary, &dir);
        say(&format!(
            "{}\n",
            crate::report::run_line(&summary, &format!("run {k}/{n}"))
        ));
        passed &= summary.verdict.passed;
        if interrupt.is_raised() {
            bail!(
                "interrupted after run {k} of {n} (the runs so far are in {})",
                out.display()
            );
        }
    }
    let set = crate::runset::RunSet::load(out)?;
    let aggregate = crate::runset::RunSetSummary::of(&set, out);
    aggregate.write(out)?;
    say(&aggregate.terminal());
    Ok(outcome(passed))
}

/// Runs the search for the maximum sustainable rate ([`crate::max_rate`]): each step a whole
/// run of the scenario at the step's total rate for `step_duration`, into `out/step-K`; then
/// `out/summary.json`, the summary of the step at the rate found (of the first step when none
/// was sustained) with the `max_rate` section holding every step. Passed when a rate was found
/// and that step's own expectations held.
async fn run_max_rate(
    v: &scenario::Variant,
    m: &scenario::MaxRate,
    file: &Path,
    out: &Path,
    args: &ClusterArgs<'_>,
    interrupt: &Stop,
) -> anyhow::Result<Outcome> {
    use crate::max_rate::{judge, Search, ACHIEVED_MIN_RATIO};
    std::fs::create_dir_all(out).with_context(|| {
        format!(
            "cannot create the output directory {} (choose another with --out DIR)",
            out.display()
        )
    })?;
    let bound_ms = m.p99_bound.0.as_secs_f64() * 1000.0;
    let mut search = Search::new(m.start_rate.0, m.ceiling.0, m.max_steps, m.precision);
    let mut steps = Vec::new();
    let mut first: Option<Summary> = None;
    let mut best: Option<(f64, Summary)> = None;
    while let Some(rate) = search.next_rate() {
        let name = format!("step-{}", steps.len() + 1);
        let dir = out.join(&name);
        let mut s = v.scenario.clone();
        s.max_rate = None;
        s.producers.total_rate = Some(scenario::units::Rate(rate));
        s.producers.duration = Some(m.step_duration);
        eprintln!(
            "kbench: max-rate {name}: target {rate:.0} msgs/s for {:?}",
            m.step_duration.0
        );
        let summary = run_one(&s, file, &v.matrix_values, &dir, args, interrupt)
            .await
            .with_context(|| format!("max-rate {name} at {rate:.0} msgs/s"))?;
        discard_broker_data(&s, &summary, &dir);
        let step = judge(rate, bound_ms, &summary, &name);
        say(&format!(
            "{name}: target {rate:.0} msgs/s, achieved {:.0}, p50 {:.2} ms, p99 {:.2} ms: {}\n",
            step.achieved_msgs_per_s, step.p50_ms, step.p99_ms, step.verdict
        ));
        search.record(rate, step.sustained);
        if step.sustained && best.as_ref().is_none_or(|(r, _)| rate > *r) {
            best = Some((rate, summary.clone()));
        }
        first.get_or_insert(summary);
        steps.push(step);
        if interrupt.is_raised() {
            bail!(
                "interrupted after max-rate {name} (the steps so far are in {})",
                out.display()
            );
        }
    }
    let result = crate::summary::MaxRateSummary {
        found_msgs_per_s: search.found(),
        p99_bound_ms: bound_ms,
        achieved_min_ratio: ACHIEVED_MIN_RATIO,
        step_s: m.step_duration.0.as_secs_f64(),
        stopped: search.stopped().to_string(),
        steps,
    };
    let mut summary = best.map(|(_, s)| s).or(first).unwrap_or_default();
    if result.found_msgs_per_s.is_none() {
        summary.verdict.passed = false;
        summary
            .verdict
            .failures
            .insert(0, format!("max-rate: {}", result.stopped));
    }
    say(&crate::max_rate::terminal(&result));
    summary.max_rate = Some(result);
    std::fs::write(out.join(crate::report::SUMMARY_JSON), summary.to_json()?).with_context(
        || {
            format!(
                "writing {}",
                out.join(crate::report::SUMMARY_JSON).display()
            )
        },
    )?;
    eprintln!("kbench: max-rate steps and summary in {}", out.display());
    Ok(if summary.verdict.passed {
        Outcome::Passed
    } else {
        Outcome::Failed
    })
}

/// Removes the embedded brokers' log data (`<out>/brokers/<id>/data`) of a run that passed,
/// unless `cluster.keep_data`; their `broker.log` files stay. The brokers have stopped by now.
fn discard_broker_data(s: &Scenario, summary: &Summary, out: &Path) {
    if s.cluster.keep_data || !summary.verdict.passed {
        return;
    }
    let Ok(brokers) = std::fs::read_dir(out.join("brokers")) else {
        return; // an external cluster
    };
    for broker in brokers.flatten() {
        let data = broker.path().join("data");
        if data.is_dir() {
            if let Err(e) = std::fs::remove_dir_all(&data) {
                eprintln!("kbench: cannot remove broker data {}: {e}", data.display());
            }
        }
    }
}

/// Runs one scenario into `out` and returns its summary (already written with the report).
/// A run that cannot start (the cluster does not come up or answer, the topic cannot be
/// made, the groups are not assigned) leaves a valid `summary.json` saying why: a failed
/// verdict whose one failure starts `could not start:`, and a `not_started` event.
pub async fn run_one(
    s: &Scenario,
    file: &Path,
    matrix_values: &[(String, toml::Value)],
    out: &Path,
    args: &ClusterArgs<'_>,
    interrupt: &Stop,
) -> anyhow::Result<Summary> {
    crate::report::prepare_dir(out)?;
    let started_at = chrono::Utc::now();
    let result = run_prepared(s, file, matrix_values, out, args, interrupt).await;
    if let Err(e) = &result {
        let written =
            std::fs::metadata(out.join(crate::report::SUMMARY_JSON)).is_ok_and(|m| m.len() > 0);
        if !written {
            write_not_started(s, file, matrix_values, out, started_at, &format!("{e:#}"));
        }
    }
    result
}

/// A matrix value as `summary.json`'s `matrix_cell` shows it: a string as is, a table of
/// settings as `key=value key=value` (one line, so labels and table cells stay readable).
fn cell_value(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Table(t) => t
            .iter()
            .map(|(k, v)| format!("{k}={}", cell_value(v)))
            .collect::<Vec<_>>()
            .join(" "),
        o => o.to_string(),
    }
}

/// Bound on carrying out the restarts of faults that fired once the producers are done.
const FAULT_SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
