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
//! This function runs on the main thread (inside `block_on`), which is also the thread that
//! forks broker processes: `PR_SET_PDEATHSIG` follows the forking thread, and the main thread
//! lives as long as kbench does.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::fault;
use crate::ledger::{AckLedger, GroupLedger};
use crate::measure::{now_us, Collector, ConsumerMeter, ProducerMeter, WarmupEnd};
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

/// Everything the tasks of one run share.
struct Tasks {
    producers: Vec<JoinHandle<Result<(), String>>>,
    consumers: Vec<JoinHandle<Result<(), String>>>,
    stop_producers: Stop,
    stop_consumers: Stop,
    abandon: Stop,
}

impl Tasks {
    fn stop_all(&self) {
        self.stop_producers.raise();
        self.stop_consumers.raise();
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        // Never leave client threads running past the run, whatever path got us here.
        self.stop_all();
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

/// What `summary.json` says of this kbench process and its run.
fn run_info(started_at: chrono::DateTime<chrono::Utc>, wall_s: f64) -> RunInfo {
    RunInfo {
        kbench_version: env!("CARGO_PKG_VERSION").into(),
        started_at: started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        wall_s,
        host: hostname(),
    }
}

/// What `summary.json` says of the scenario (and its matrix cell) that ran.
fn scenario_info(
    s: &Scenario,
    file: &Path,
    matrix_values: &[(String, toml::Value)],
) -> ScenarioInfo {
    ScenarioInfo {
        name: s.name.clone(),
        description: s.description.clone(),
        file: file.display().to_string(),
        matrix_cell: matrix_values
            .iter()
            .map(|(k, v)| (k.clone(), cell_value(v)))
            .collect(),
    }
}

/// `summary.json` of a run that could not start, and nothing else beside it (the empty
/// report files [`crate::report::prepare_dir`] made are removed; broker logs stay).
fn write_not_started(
    s: &Scenario,
    file: &Path,
    matrix_values: &[(String, toml::Value)],
    out: &Path,
    started_at: chrono::DateTime<chrono::Utc>,
    why: &str,
) {
    let summary = Summary {
        schema_version: SCHEMA_VERSION,
        run: run_info(
            started_at,
            (chrono::Utc::now() - started_at).num_milliseconds() as f64 / 1000.0,
        ),
        scenario: scenario_info(s, file, matrix_values),
        config: s.resolved(),
        events: vec![Event {
            t_s: 0.0,
            kind: Event::NOT_STARTED.into(),
            detail: why.to_string(),
        }],
        verdict: Verdict {
            passed: false,
            failures: vec![format!("could not start: {why}")],
        },
        ..Default::default()
    };
    for name in [
        crate::report::TIMESERIES_CSV,
        crate::report::SYSTEM_CSV,
        crate::report::REPORT_HTML,
    ] {
        let path = out.join(name);
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == 0) {
            let _ = std::fs::remove_file(path);
        }
    }
    match summary.to_json() {
        Ok(json) => {
            if let Err(e) = std::fs::write(out.join(crate::report::SUMMARY_JSON), json) {
                eprintln!(
                    "kbench: cannot write {}: {e}",
                    out.join("summary.json").display()
                );
            }
        }
        Err(e) => eprintln!("kbench: cannot write summary.json: {e}"),
    }
}

async fn run_prepared(
    s: &Scenario,
    file: &Path,
    matrix_values: &[(String, toml::Value)],
    out: &Path,
    args: &ClusterArgs<'_>,
    interrupt: &Stop,
) -> anyhow::Result<Summary> {
    let started_at = chrono::Utc::now();
    let t0 = Instant::now();
    let t_s = || t0.elapsed().as_secs_f64();
    let mut events = Vec::new();
    let mut failures: Vec<String> = Vec::new();

    // Target.
    let bootstrap = args
        .bootstrap
        .map(str::to_string)
        .or_else(|| s.cluster.bootstrap.clone());
    let settings = args.settings(s);
    let mut target = match &bootstrap {
        Some(b) => {
            eprintln!("kbench: connecting to {b}");
            Target::external(&ClusterAccess::new(b, settings.clone()), EXTERNAL_TIMEOUT)
                .with_context(|| format!("--bootstrap {b}: cannot reach the cluster"))?
        }
        None => {
            eprintln!(
                "kbench: starting {} embedded broker(s) in {}",
                s.cluster.brokers,
                out.join("brokers").display()
            );
            Target::Embedded(
                EmbeddedCluster::start(s, out, SETUP_TIMEOUT)
                    .context("cannot start the embedded cluster")?,
            )
        }
    };
    let bootstrap = target.bootstrap();
    let cluster = ClusterAccess::new(&bootstrap, settings);
    phase(&mut events, t_s(), "cluster_ready", &bootstrap);
    let mut watched = vec![("kbench".to_string(), std::process::id())];
    watched.extend(target.processes());
    let sampler = Sampler::start_at(t0, s.sampling.interval.0, watched);

    // Topic.
    let shard = args.shard;
    let run_tag: u32 = shard.map_or_else(
        || rand::random::<u32>() | 1,
        |r| crate::shard::run_tag(&r.shard.run_id),
    );
    let run_id = format!("{run_tag:08x}");
    let topic = s
        .topic
        .name
        .clone()
        .unwrap_or_else(|| format!("kbench-{}-{run_id}", s.name));
    let partitions = match shard {
        // Shard 1 creates the topic; the others wait for it (bounded).
        Some(r) if r.shard.index != 1 => {
            topic::wait_ready(&cluster, &topic, r.shard.barrier_timeout, false).await?
        }
        _ => topic::ensure(s, &cluster, &topic, SETUP_TIMEOUT).await?,
    };
    if partitions != s.topic.partitions {
        eprintln!("kbench: topic {topic} already exists with {partitions} partitions (scenario says {}); using it as is", s.topic.partitions);
    }
    phase(
        &mut events,
        t_s(),
        "topic_ready",
        &format!("{topic}: {partitions} partitions"),
    );
    let disk_before = target.log_dirs().as_deref().map(verify::on_disk::dir_bytes);
    // Without log dirs to walk (an external cluster), the brokers report replica sizes.
    let reported_before = match (&disk_before, s.verify.on_disk) {
        (None, true) => Some(verify::log_dirs::snapshot(&cluster, &topic, partitions).await),
        _ => None,
    };
    let marks_before = topic::watermarks(&cluster, &topic, partitions, Duration::from_secs(10))?;
    // With a pipeline the groups read its output topic; without, the producers' topic.
    let output = match &s.pipeline {
        Some(pl) => {
            let name = pl
                .output_topic
                .clone()
                .unwrap_or_else(|| format!("{topic}-output"));
            let n = topic::ensure(s, &cluster, &name, SETUP_TIMEOUT).await?;
            phase(
                &mut events,
                t_s(),
                "topic_ready",
                &format!("{name}: {n} partitions (pipeline output)"),
            );
            Some((name, n))
        }
        None => None,
    };
    let consume_topic = output.as_ref().map_or(topic.clone(), |o| o.0.clone());
    let consume_partitions = output.as_ref().map_or(partitions, |o| o.1);
    let consume_marks_before = match &output {
        Some((name, n)) => topic::watermarks(&cluster, name, *n, Duration::from_secs(10))?,
        None => marks_before.clone(),
    };

    // Tasks.
    let scenario = Arc::new(s.clone());
    let warmup_end = Arc::new(WarmupEnd::default());
    let producer_meters: Vec<Arc<ProducerMeter>> =
        (0..s.producers.count).map(|_| Arc::default()).collect();
    let group_meters: Vec<Vec<Arc<ConsumerMeter>>> = (0..s.consumers.groups)
        .map(|_| (0..s.consumers.members).map(|_| Arc::default()).collect())
        .collect();
    if let Some(r) = shard {
        let local = r.first_producer..r.first_producer + s.producers.count;
        for m in group_meters.iter().flatten() {
            m.with_state(|st| st.local_producers = Some(local.clone()));
        }
    }
    let group_ids: Vec<String> = (0..s.consumers.groups)
        .map(|g| format!("kbench-{}-{run_id}-g{g}", s.name))
        .collect();
    let mut collector = Collector::new(producer_meters.clone(), group_meters.clone());
    let filler = Filler::new(
        s.producers.payload,
        s.producers.compress_ratio,
        s.producers.message_size.0 as usize,
        u64::from(run_tag),
    );
    // What the groups read is checked message by message: the producers' own messages, or
    // the pipeline's output, which must show the transform.
    let check = match &s.pipeline {
        Some(pl) => Check::transformed(run_tag, filler.clone(), pl.transform),
        None => Check::new(run_tag),
    };
    let mut member_tasks: Vec<consumer::MemberTask> = Vec::new();
    // Catch-up: the groups start only once the producers are done (the backlog is built).
    let catch_up = s.consumers.begin == scenario::Begin::AfterProduce;
    let mut tasks = Tasks {
        producers: Vec::new(),
        consumers: Vec::new(),
        stop_producers: Stop::default(),
        stop_consumers: Stop::default(),
        abandon: Stop::default(),
    };
    for (g, members) in group_meters.iter().enumerate() {
        for (m, meter) in members.iter().enumerate() {
            let task = consumer::MemberTask {
                group_index: g as u32,
                member: m as u32,
                group_id: group_ids[g].clone(),
                check: check.clone(),
                topic: consume_topic.clone(),
                cluster: cluster.clone(),
                scenario: scenario.clone(),
                meter: meter.clone(),
                warmup_end: warmup_end.clone(),
                stop: tasks.stop_consumers.clone(),
                abandon: tasks.abandon.clone(),
                kill: Stop::default(),
            };
            member_tasks.push(task.clone());
            if !catch_up {
                tasks
                    .consumers
                    .push(consumer::spawn(task).context("cannot start a consumer thread")?);
            }
        }
    }
    let groups = Groups {
        s,
        meters: &group_meters,
        ids: &group_ids,
        topic: &consume_topic,
        partitions: consume_partitions,
        shard,
    };
    if s.consumers.groups > 0 && !catch_up {
        groups.await_assignment(&mut target, interrupt).await?;
        if s.consumers.start == Start::Latest {
            // Let every member resolve "latest" before the first message is written.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    if s.consumers.groups > 0 && !catch_up {
        phase(
            &mut events,
            t_s(),
            "consumers_assigned",
            &group_ids.join(","),
        );
    }
    let pipeline_meter = s
        .pipeline
        .as_ref()
        .map(|pl| Arc::new(PipelineMeter::new(pl.workers)));
    let pipeline_events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop_pipeline = Stop::default();
    let mut supervisor = None;
    let pipeline_produce_start = Arc::new(std::sync::OnceLock::new());
    if let (Some((out_name, out_partitions)), Some(meter)) = (&output, &pipeline_meter) {
        let task = pipeline::PipelineTask {
            scenario: scenario.clone(),
            cluster: cluster.clone(),
            input: topic.clone(),
            output: out_name.clone(),
            output_partitions: *out_partitions,
            group_id: format!("kbench-{}-{run_id}-transform", s.name),
            run_tag,
            meter: meter.clone(),
            t0,
            produce_start: pipeline_produce_start.clone(),
            events: pipeline_events.clone(),
            stop: stop_pipeline.clone(),
        };
        supervisor = Some(pipeline::spawn(task).context("cannot start the pipeline")?);
        eprintln!(
            "kbench: pipeline of {} worker(s) {topic} → {out_name}",
            meter.workers.len()
        );
        // The workers' first init_transactions may create the transaction log (on a fresh
        // cluster, a topic of 50 replicated partitions): produce once they can transform, so
        // that `at` kills find them working. A worker that cannot start is reported by the
        // pipeline itself.
        let deadline = Instant::now() + s.consumers.assign_timeout.0;
        while meter.initialised() < meter.workers.len() && Instant::now() < deadline {
            if interrupt.is_raised() {
                bail!("interrupted while waiting for the pipeline workers to initialise");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let mut faults = (!s.faults.is_empty()).then(|| {
        let log = out.join("faults.log");
        let _ = fault::create_log(&log);
        fault::Supervisor::new(fault::Plan::new(&s.faults), &cluster, &topic, &log)
    });
    // Producers: clients created and transactions initialised behind the start gate, so the
    // measured window begins at the first send, not before the set-up.
    let gate = crate::workload::StartGate::default();
    let clients_t0 = t_s();
    for (i, meter) in producer_meters.iter().enumerate() {
        let task = producer::ProducerTask {
            index: shard.map_or(0, |r| r.first_producer) + i as u32,
            run_tag,
            topic: topic.clone(),
            partitions,
            cluster: cluster.clone(),
            scenario: scenario.clone(),
            filler: filler.clone(),
            meter: meter.clone(),
            warmup_end: warmup_end.clone(),
            gate: gate.clone(),
            stop: tasks.stop_producers.clone(),
        };
        tasks
            .producers
            .push(producer::spawn(task).context("cannot start a producer thread")?);
    }
    let deadline = Instant::now() + CLIENTS_TIMEOUT;
    // A producer whose client cannot be created ends at once; its error is reported below.
    while gate.ready_count() + tasks.producers.iter().filter(|h| h.is_finished()).count()
        < tasks.producers.len()
    {
        if interrupt.is_raised() {
            bail!("interrupted while the producers' clients were being created");
        }
        if Instant::now() >= deadline {
            bail!(
                "{} of {} producer clients were ready after {CLIENTS_TIMEOUT:?} (client creation and init_transactions); is the cluster answering?",
                gate.ready_count(),
                tasks.producers.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let clients_s = t_s() - clients_t0;
    let mut record = shard.map(|r| shard_record(r, &topic, &marks_before));
    // The on-disk check of a sharded run is made once, from shard 1's sizes (by the merge).
    let sizes_by_shard_1 = shard.is_some_and(|r| r.shard.index == 1 && r.whole.verify.on_disk);
    if let (true, Some(rec)) = (sizes_by_shard_1, record.as_mut()) {
        rec.log_dirs_before = Some(
            verify::log_dirs::snapshot(&cluster, &topic, partitions)
                .await
                .map(|m| m.into_iter().collect())
                .map_err(|e| format!("{e:#}")),
        );
    }
    if let (Some(r), Some(rec)) = (shard, record.as_mut()) {
        rec.write(out)?;
        let start_us = start_barrier(r, &cluster, &topic, interrupt).await?;
        rec.start_wall_us = start_us;
        rec.start_t_s = t_s();
        rec.write(out)?;
    }
    let produce_start_us = now_us();
    let produce_start = Instant::now();
    let _ = pipeline_produce_start.set(produce_start);
    let produce_t0 = t_s();
    warmup_end.set(produce_start_us + s.producers.warmup.0.as_micros() as u64);
    gate.open(produce_start_us);
    phase(
        &mut events,
        produce_t0,
        "producers_start",
        &format!(
            "{} producer(s), clients ready in {clients_s:.3} s",
            s.producers.count
        ),
    );
    if !s.producers.warmup.0.is_zero() {
        events.push(Event {
            t_s: produce_t0 + s.producers.warmup.0.as_secs_f64(),
            kind: Event::WARMUP_END.into(),
            detail: format!("warm-up of {:?} ends", s.producers.warmup.0),
        });
    }
    eprintln!(
        "kbench: producing to {topic} ({partitions} partitions) with {} producer(s)",
        s.producers.count
    );

    // Produce phase.
    let interval = s.sampling.interval.0;
    let progress = progress_bar(s);
    // A shard's rows start at the agreed start, so the shards' intervals line up.
    let mut next_row = if shard.is_some() {
        Instant::now() + interval
    } else {
        t0 + interval
    };
    let mut last_progress = (0u64, 0u64, Instant::now());
    let produce_limit = Instant::now() + s.producers.time_limit.0;
    let mut stopped_early = false;
    let mut time_limited = false;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if Instant::now() >= next_row {
            let in_warmup = now_us() < warmup_end.get();
            collector.collect(t_s(), interval.as_secs_f64(), in_warmup);
            next_row += interval;
            if let Some(sup) = faults.as_mut() {
                sup.snapshot(t_s(), producer_errors(&producer_meters));
            }
        }
        if let Some(sup) = faults.as_mut() {
            let acked = collector.progress().1;
            let mut members = RunMembers {
                templates: &mut member_tasks,
                handles: &mut tasks.consumers,
                per_group: s.consumers.members,
            };
            let mut hands = fault::Hands {
                target: &mut target,
                members: &mut members,
            };
            events.extend(sup.poll(produce_start.elapsed(), acked, t_s(), &mut hands));
        }
        let phase = if now_us() < warmup_end.get() {
            Phase::WarmUp
        } else {
            Phase::Producing
        };
        update_progress(&progress, &collector, s, phase, t_s() - produce_t0);
        if tasks.producers.iter().all(JoinHandle::is_finished) {
            break;
        }
        if interrupt.is_raised() {
            failures.push("interrupted (Ctrl-C) while producing".into());
            events.push(Event {
                t_s: t_s(),
                kind: "interrupted".into(),
                detail: "Ctrl-C".into(),
            });
            stopped_early = true;
        } else if let Some(dead) = target.dead_broker() {
            failures.push(dead.clone());
            tasks.abandon.raise();
            events.push(Event {
                t_s: t_s(),
                kind: "broker_exit".into(),
                detail: dead.lines().next().unwrap_or("").into(),
            });
            stopped_early = true;
        } else if Instant::now() >= produce_limit {
            time_limited = true;
            stopped_early = true;
        } else if let Some(refused) = storage_refusals(&producer_meters) {
            // A full or failing log dir does not heal itself within a run: stop now with the
            // cause named rather than send the rest of the messages into the same error.
            failures.push(format!(
                "storage: the cluster refused {refused} message(s) with KAFKA_STORAGE_ERROR \
                 (a broker's log directory is full or failing; its log names it); \
                 producing stopped"
            ));
            events.push(Event {
                t_s: t_s(),
                kind: "storage_error".into(),
                detail: format!("{refused} message(s) refused with KAFKA_STORAGE_ERROR"),
            });
            stopped_early = true;
        } else {
            let (sent, acked, _) = collector.progress();
            let failed: u64 = producer_meters
                .iter()
                .map(|m| m.with_state(|st| st.failed))
                .sum();
            if acked + failed != last_progress.1 {
                last_progress = (sent, acked + failed, Instant::now());
            } else if sent > acked + failed && last_progress.2.elapsed() >= STALL_TIMEOUT {
                failures.push(format!(
                    "no message acknowledged or failed for {:?} with {} outstanding: the cluster stopped answering",
                    STALL_TIMEOUT,
                    sent - acked - failed
                ));
                tasks.abandon.raise();
                stopped_early = true;
            }
        }
        if stopped_early {
            // Consumers keep going: they get a short drain below, so the verdict reflects
            // what was written rather than what happened to be read when the run stopped.
            tasks.stop_producers.raise();
            break;
        }
    }
    join_bounded(
        &mut tasks.producers,
        Duration::from_secs(10),
        "producer",
        &mut failures,
    );
    if let Some(r) = shard {
        // Drain only once every shard has stopped producing: the end offsets are final then.
        let (c, control, sh) = (
            cluster.clone(),
            crate::shard::control_topic(&topic),
            r.shard.clone(),
        );
        let done =
            tokio::task::spawn_blocking(move || crate::shard::barrier(&c, &control, &sh, "done"))
                .await
                .map_err(|e| anyhow::anyhow!("shard barrier task failed: {e}"))
                .and_then(|r| r);
        if let Err(e) = done {
            failures.push(format!("{e:#}"));
        }
    }
    let producers_done = t_s();
    phase(&mut events, producers_done, "producers_done", "");
    // Producers stop on their own at the time limit: a run that ended with messages never
    // sent, and nothing else stopped it, was stopped by the time limit. That is said first.
    let sent_total: u64 = producer_meters.iter().map(|m| m.sent_totals().0).sum();
    let never_sent = match s.producers.stop() {
        StopAt::Messages(n) => Some((n * u64::from(s.producers.count)).saturating_sub(sent_total)),
        StopAt::Duration(_) => None,
    };
    let planned = match s.producers.stop() {
        StopAt::Duration(d) => Some(d + s.producers.warmup.0),
        StopAt::Messages(_) => None,
    };
    time_limited |= !stopped_early
        && (never_sent.is_some_and(|n| n > 0)
            || planned.is_some_and(|d| {
                d > s.producers.time_limit.0 && produce_start.elapsed() >= s.producers.time_limit.0
            }));
    if time_limited {
        let what = match never_sent {
            Some(n) => format!("{n} of {} messages were never sent", n + sent_total),
            None => format!(
                "producing stopped after {:.1} s of the {:.1} s planned",
                s.producers.time_limit.0.as_secs_f64(),
                planned.unwrap_or_default().as_secs_f64()
            ),
        };
        failures.insert(
            0,
            format!(
                "time limit: the run was stopped by producers.time_limit = {:?}; {what}",
                s.producers.time_limit.0
            ),
        );
        events.push(Event {
            t_s: producers_done,
            kind: "time_limit".into(),
            detail: what,
        });
    }
    // Restarts (and resumes, commands) of faults that fired are still carried out, so the
    // drain reads from a whole cluster; faults not yet due never fire.
    if let Some(sup) = faults.as_mut() {
        let deadline = Instant::now() + FAULT_SETTLE_TIMEOUT;
        while sup.follow_ups_pending() && Instant::now() < deadline {
            let mut members = RunMembers {
                templates: &mut member_tasks,
                handles: &mut tasks.consumers,
                per_group: s.consumers.members,
            };
            let mut hands = fault::Hands {
                target: &mut target,
                members: &mut members,
            };
            events.extend(sup.poll_follow_ups(t_s(), &mut hands));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // Catch-up: the backlog is built; drop the page cache and start the groups now.
    let mut catch_up_times = crate::catch_up::Times::default();
    let mut page_cache = String::new();
    if catch_up {
        catch_up_times.last_ack_us = producer_meters
            .iter()
            .map(|m| m.with_state(|st| st.last_ack_us))
            .max()
            .unwrap_or(0);
        page_cache = crate::catch_up::drop_page_cache(
            s.consumers.drop_page_cache,
            target.info().kind == crate::summary::TargetKind::Embedded,
        );
        eprintln!("kbench: backlog built; page cache {page_cache}; starting the consumer groups");
        catch_up_times.started_us = now_us();
        phase(&mut events, t_s(), "consumers_start", &page_cache);
        for task in &member_tasks {
            tasks
                .consumers
                .push(consumer::spawn(task.clone()).context("cannot start a consumer thread")?);
        }
        match groups.await_assignment(&mut target, interrupt).await {
            Ok(()) => {
                catch_up_times.assigned_us = now_us();
                phase(
                    &mut events,
                    t_s(),
                    "consumers_assigned",
                    &group_ids.join(","),
                );
            }
            Err(e) => failures.push(format!("catch-up: {e:#}")),
        }
    }

    // Drain phase.
    let down = target.down_on_purpose();
    let marks_after = match target.dead_broker() {
        Some(_) => Err("not read: a broker of the cluster exited".to_string()),
        None if !down.is_empty() => Err(format!(
            "not read: broker(s) {down:?} taken down by a fault and not restarted (give the fault restart_after)"
        )),
        None => {
            let (c, t) = (cluster.clone(), topic.clone());
            let bound = s.consumers.drain_timeout.0;
            tokio::task::spawn_blocking(move || {
                topic::settled_watermarks(
                    &c,
                    &t,
                    partitions,
                    Duration::from_secs(10),
                    Duration::from_millis(250),
                    bound,
                )
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
        }
    };
    let interrupted_before_drain = interrupt.is_raised();
    // Pipeline: first the transform group must have read and committed the whole input; only
    // then are the output's end offsets final.
    let mut consume_marks_after = marks_after.clone();
    if let (Some((out_name, out_partitions)), Some(meter)) = (&output, &pipeline_meter) {
        let mut input_acks = AckLedger::default();
        for m in &producer_meters {
            m.with_state(|st| input_acks.merge(&st.ledger));
        }
        let bound = if stopped_early {
            s.consumers.drain_timeout.0.min(Duration::from_secs(5))
        } else {
            s.consumers.drain_timeout.0
        };
        let deadline = Instant::now() + bound;
        while let Err(behind) = meter.drained(&input_acks) {
            if Instant::now() >= deadline
                || (interrupt.is_raised() && !interrupted_before_drain)
                || target.dead_broker().is_some()
            {
                failures.push(format!(
                    "pipeline: the transform group did not finish the input within {bound:?} (consumers.drain_timeout): {behind}"
                ));
                break;
            }
            if Instant::now() >= next_row {
                collector.collect(t_s(), interval.as_secs_f64(), false);
                next_row += interval;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        phase(&mut events, t_s(), "pipeline_drained", "");
        consume_marks_after = match target.dead_broker() {
            Some(_) => Err("not read: a broker of the cluster exited".to_string()),
            None => topic::watermarks(&cluster, out_name, *out_partitions, Duration::from_secs(10))
                .map_err(|e| e.to_string()),
        };
    }
    if s.consumers.groups > 0 {
        match &consume_marks_after {
            Ok(after) => {
                let bound = if stopped_early {
                    s.consumers.drain_timeout.0.min(Duration::from_secs(5))
                } else {
                    s.consumers.drain_timeout.0
                };
                let deadline = Instant::now() + bound;
                loop {
                    // A shard drains the partitions its own members hold.
                    let after = &match shard {
                        Some(_) => held_only(&group_meters, after),
                        None => after.clone(),
                    };
                    let behind = lagging(&group_meters, &group_ids, &consume_marks_before, after);
                    if behind.is_none() {
                        break;
                    }
                    let interrupted = interrupt.is_raised() && !interrupted_before_drain;
                    if Instant::now() >= deadline || interrupted || target.dead_broker().is_some() {
                        let why = if interrupted {
                            "interrupted (Ctrl-C) while draining".to_string()
                        } else if let Some(dead) = target.dead_broker() {
                            dead
                        } else {
                            format!("consumers did not reach the end offsets within {bound:?} (consumers.drain_timeout, or 5 s after a run stopped early)")
                        };
                        failures.push(format!("{why}: {}", behind.unwrap_or_default()));
                        break;
                    }
                    if Instant::now() >= next_row {
                        collector.collect(t_s(), interval.as_secs_f64(), false);
                        next_row += interval;
                    }
                    update_progress(
                        &progress,
                        &collector,
                        s,
                        Phase::Draining,
                        t_s() - produce_t0,
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            Err(e) => failures.push(format!("cannot read end offsets to drain: {e}")),
        }
    }
    if target.dead_broker().is_some() || !target.down_on_purpose().is_empty() {
        // Closing clients would wait for brokers that are gone.
        tasks.abandon.raise();
    }
    tasks.stop_consumers.raise();
    stop_pipeline.raise();
    let mut fault_summaries = Vec::new();
    if let Some(sup) = faults.take() {
        let window_start = produce_t0 + s.producers.warmup.0.as_secs_f64();
        let held_up = fault::Span::from_held_up(
            producer_meters
                .iter()
                .flat_map(|m| m.with_state(|st| st.held_up.clone())),
            produce_start_us,
            produce_t0,
        );
        let (summaries, f, e) = sup.finish(
            &mut target,
            &collector.rows,
            &held_up,
            window_start,
            producers_done,
            t_s(),
        );
        fault_summaries = summaries;
        failures.extend(f);
        events.extend(e);
        events.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
    }
    let pipeline_outcome = supervisor.map(|h| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !h.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if h.is_finished() {
            h.join().unwrap_or_else(|_| pipeline::PipelineOutcome {
                failures: vec!["pipeline: the supervisor panicked".into()],
                ..Default::default()
            })
        } else {
            pipeline::PipelineOutcome {
                failures: vec!["pipeline: workers did not stop within 60 s (left behind)".into()],
                ..Default::default()
            }
        }
    });
    join_bounded(
        &mut tasks.consumers,
        Duration::from_secs(15),
        "consumer",
        &mut failures,
    );
    let last = collector.rows.last().map_or(0.0, |r| r.t_s);
    let tail_s = t_s() - last;
    if tail_s > 0.01 {
        collector.collect(t_s(), tail_s, false);
    }
    update_progress(
        &progress,
        &collector,
        s,
        Phase::Verifying,
        t_s() - produce_t0,
    );
    phase(&mut events, t_s(), "consumers_done", "");
    let system = sampler.stop();

    // Verification.
    let mut acks = AckLedger::default();
    let mut per_partition = vec![0u64; partitions.max(0) as usize];
    let mut per_partition_other = vec![0u64; partitions.max(0) as usize];
    let mut txns = crate::measure::TxnCounts::default();
    let mut produce_hist = latency_histogram();
    let mut failed_hist = latency_histogram();
    let mut produce = ProduceSummary::default();
    let mut measured = (0u64, 0u64);
    let mut last_ack_us = 0;
    let mut errors = std::collections::BTreeMap::new();
    for m in &producer_meters {
        let (msgs, bytes) = m.sent_totals();
        produce.messages += msgs;
        produce.bytes += bytes;
        m.with_state(|st| {
            acks.merge(&st.ledger);
            for (i, n) in st.per_partition.iter().enumerate() {
                if i < per_partition.len() {
                    per_partition[i] += n;
                }
            }
            for (i, n) in st.per_partition_other.iter().enumerate() {
                if i < per_partition_other.len() {
                    per_partition_other[i] += n;
                }
            }
            txns.merge(&st.txns);
            let _ = produce_hist.add(&st.latency);
            let _ = failed_hist.add(&st.failed_latency);
            produce.acked += st.acked.0;
            produce.failed += st.failed;
            measured.0 += st.measured.0;
            measured.1 += st.measured.1;
            last_ack_us = last_ack_us.max(st.last_ack_us);
            for (k, v) in &st.errors {
                *errors.entry(k.clone()).or_insert(0) += v;
            }
        });
    }
    let acked_bytes: u64 = producer_meters
        .iter()
        .map(|m| m.with_state(|st| st.acked.1))
        .sum();
    produce.duration_s = last_ack_us.saturating_sub(warmup_end.get()) as f64 / 1e6;
    if produce.duration_s > 0.0 {
        produce.msgs_per_s = measured.0 as f64 / produce.duration_s;
        produce.mib_per_s = measured.1 as f64 / MIB / produce.duration_s;
    }
    produce.latency_ms = Percentiles::from_histogram(&produce_hist);
    produce.latency_means = if s.producers.acks.as_config() == "0" {
        "time to send (acks=0: no acknowledgement)"
    } else {
        "send to acknowledgement"
    }
    .into();
    produce.failed_latency_ms = Percentiles::from_histogram(&failed_hist);
    if produce.acked + produce.failed > 0 {
        produce.error_ratio = produce.failed as f64 / (produce.acked + produce.failed) as f64;
    }
    produce.setup_s = produce_t0;
    produce.clients_s = clients_s;
    produce.never_sent = never_sent;
    produce.time_limited = time_limited;
    produce.target_msgs_per_s = s
        .producers
        .rate_each()
        .map(|r| r * f64::from(s.producers.count));
    produce.rate_reached = produce
        .target_msgs_per_s
        .map(|t| produce.msgs_per_s >= 0.95 * t);
    if s.verify.require_rate && produce.rate_reached == Some(false) {
        failures.push(format!(
            "rate: reached {:.0} msg/s of the {:.0} msg/s target (below 95 %)",
            produce.msgs_per_s,
            produce.target_msgs_per_s.unwrap_or_default()
        ));
    }
    if produce.failed > 0 && s.verify.delivery != scenario::Delivery::None {
        failures.push(format!(
            "produce: {} of {} messages failed delivery (produce errors: {})",
            produce.failed,
            produce.messages,
            produce_error_list(&errors)
        ));
    }

    let mut e2e_hist = latency_histogram();
    let mut consume = ConsumeSummary {
        groups: s.consumers.groups,
        ..Default::default()
    };
    let mut group_ledgers = Vec::new();
    let mut last_recv_us = 0;
    let mut consumed_measured = (0u64, 0u64);
    for (g, members) in group_meters.iter().enumerate() {
        let mut ledger = GroupLedger::default();
        for m in members {
            m.with_state(|st| {
                ledger.merge(&st.ledger);
                let _ = e2e_hist.add(&st.latency);
                consume.messages += st.consumed.0;
                consume.bytes += st.consumed.1;
                consumed_measured.0 += st.measured.0;
                consumed_measured.1 += st.measured.1;
                last_recv_us = last_recv_us.max(st.last_recv_us);
                for (k, v) in &st.errors {
                    *errors.entry(k.clone()).or_insert(0) += v;
                }
            });
        }
        if ledger.foreign > 0 {
            *errors.entry("consume:ForeignMessage".into()).or_insert(0) += ledger.foreign;
        }
        group_ledgers.push((group_ids[g].clone(), ledger));
    }
    // A catch-up's consumers read only from their start: their window begins there.
    let consume_from = warmup_end.get().max(catch_up_times.started_us);
    consume.duration_s = last_recv_us.saturating_sub(consume_from) as f64 / 1e6;
    if consume.duration_s > 0.0 {
        consume.msgs_per_s = consumed_measured.0 as f64 / consume.duration_s;
        consume.mib_per_s = consumed_measured.1 as f64 / MIB / consume.duration_s;
    }
    consume.e2e_latency_ms = Percentiles::from_histogram(&e2e_hist);
    if catch_up {
        catch_up_times.last_recv_us = last_recv_us;
        catch_up_times.first_recv_us = group_meters
            .iter()
            .flatten()
            .map(|m| m.with_state(|st| st.first_recv_us))
            .filter(|&t| t > 0)
            .min()
            .unwrap_or(0);
    }

    let (mut delivery, delivery_failures) = verify::delivery::check(
        s.verify.delivery,
        s.verify.order,
        s.consumers.isolation,
        &acks,
        &group_ledgers,
    );
    let catch_up = catch_up.then(|| {
        crate::catch_up::summarize(
            (produce.acked, acked_bytes),
            (consume.messages, consume.bytes),
            catch_up_times,
            std::mem::take(&mut page_cache),
            !delivery.per_group.is_empty() && delivery.per_group.iter().all(|g| g.lost == 0),
        )
    });
    failures.extend(delivery_failures);
    if shard.is_some() {
        // One shard's acks against its own members' receipts mean nothing: the merge judges.
        delivery.expected = "judged by kbench merge (sharded run)".into();
        (delivery.lost, delivery.unexpected) = (0, 0);
        delivery.per_group.clear();
    }
    delivery.faults = fault_summaries;
    if s.producers.transactional {
        delivery.transactions = Some(transactions_summary(&txns, 0));
    }
    if let (Some(outcome), Some(meter), Some((out_name, _))) =
        (pipeline_outcome, &pipeline_meter, &output)
    {
        let (t, input_committed, worker_errors) = pipeline::totals(meter);
        for (k, v) in worker_errors {
            *errors.entry(k).or_insert(0) += v;
        }
        let left_open = outcome
            .kills
            .iter()
            .filter(|k| k.open_transaction_records > 0)
            .count() as u64;
        delivery.pipeline = Some(crate::summary::PipelineSummary {
            input_topic: topic.clone(),
            output_topic: out_name.clone(),
            workers: meter.workers.len() as u32,
            input_committed,
            transactions: transactions_summary(&t, left_open),
            kills: outcome.kills,
        });
        failures.extend(outcome.failures);
        events.extend(std::mem::take(
            &mut *pipeline_events
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        ));
        events.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
    }

    if s.verify.final_read {
        let (fr, fr_failures) = final_read(
            s,
            &mut target,
            &cluster,
            &topic,
            partitions,
            run_tag,
            &acks,
            &per_partition,
        )
        .await;
        delivery.lost += fr.lost;
        delivery.corrupted += fr.corrupted;
        failures.extend(fr_failures);
        delivery.final_read = Some(fr);
    }

    let mut offsets = Default::default();
    if s.verify.offsets {
        match &marks_after {
            Ok(after) => {
                let (o, f) = verify::offsets::check(
                    &topic,
                    &marks_before,
                    after,
                    &per_partition,
                    &per_partition_other,
                );
                offsets = o;
                failures.extend(f);
            }
            Err(e) => failures.push(format!("offsets: {e}")),
        }
    }

    let rf = u32::try_from(s.topic.replication_factor).unwrap_or(1);
    let on_disk = if s.verify.on_disk {
        let per_partition_bytes =
            producer_meters
                .iter()
                .fold(vec![0u64; per_partition.len()], |mut v, m| {
                    m.with_state(|st| {
                        for (i, b) in st.per_partition_bytes.iter().enumerate() {
                            if let Some(x) = v.get_mut(i) {
                                *x += b;
                            }
                        }
                    });
                    v
                });
        let run = OnDiskRun {
            topic: &topic,
            rf,
            acked_bytes,
            compressed: s.producers.compression != Compression::None,
            marks_before: &marks_before,
            marks_after: marks_after.as_ref().ok(),
            per_partition: &per_partition,
            per_partition_other: &per_partition_other,
            per_partition_bytes: &per_partition_bytes,
            no_loss: matches!(
                s.verify.delivery,
                scenario::Delivery::ExactlyOnce | scenario::Delivery::AtLeastOnce
            ),
            offsets: s.verify.offsets,
        };
        let (o, f) = on_disk_check(&run, &target, &cluster, disk_before, reported_before).await;
        failures.extend(f);
        o
    } else {
        crate::summary::OnDiskSummary {
            method: "skipped".into(),
            payload_bytes: acked_bytes,
            replication_factor: rf,
            detail: "verify.on_disk = false".into(),
            ..Default::default()
        }
    };
    progress.finish_and_clear();
    // Stop the brokers now (before the report is drawn) so their shutdown is part of the run.
    drop(tasks);
    let target_info = target.info();
    drop(target);
    let durability = crate::summary::DurabilitySummary::from_run(
        s.producers.acks.as_config(),
        u32::try_from(s.topic.replication_factor).unwrap_or(0),
        s.topic.min_insync(),
        target_info.brokers,
        &delivery,
        &errors,
    );

    let warnings = crate::summary::window_warnings(
        &produce,
        s.sampling.interval.0.as_secs_f64(),
        s.producers
            .batch_size
            .map_or(LIBRDKAFKA_BATCH_SIZE, |b| b.0),
        s.producers.count,
    );
    let summary = Summary {
        schema_version: SCHEMA_VERSION,
        run: run_info(started_at, t_s()),
        scenario: scenario_info(s, file, matrix_values),
        config: s.resolved(),
        target: target_info,
        produce,
        consume,
        durability,
        delivery,
        offsets,
        on_disk,
        system: system.summary.clone(),
        errors,
        events,
        verdict: Verdict {
            passed: failures.is_empty(),
            failures,
        },
        warnings,
        catch_up,
        max_rate: None,
        hosts: Vec::new(),
    };
    let data = RunData {
        summary: summary.clone(),
        intervals: collector.rows.clone(),
        system,
        produce_latency: produce_hist,
        e2e_latency: e2e_hist,
    };
    crate::report::write_run(out, &data)
        .with_context(|| format!("writing the report into {}", out.display()))?;
    if let Some(mut rec) = record {
        crate::shard::write_ledgers(out, &acks, &group_ledgers)?;
        let mut cross = latency_histogram();
        for m in group_meters.iter().flatten() {
            let _ = m.with_state(|st| cross.add(&st.cross_latency));
        }
        let path = out.join(crate::shard::E2E_CROSS_HDR);
        std::fs::write(&path, crate::report::hgrm::encode_hdr(&cross)?)
            .with_context(|| format!("writing {}", path.display()))?;
        rec.e2e_local = data.e2e_latency.len();
        rec.per_partition_bytes =
            producer_meters
                .iter()
                .fold(vec![0u64; per_partition.len()], |mut v, m| {
                    m.with_state(|st| {
                        for (i, b) in st.per_partition_bytes.iter().enumerate() {
                            if let Some(x) = v.get_mut(i) {
                                *x += b;
                            }
                        }
                    });
                    v
                });
        if sizes_by_shard_1 {
            rec.log_dirs_after = Some(
                verify::log_dirs::snapshot(&cluster, &topic, partitions)
                    .await
                    .map(|m| m.into_iter().collect())
                    .map_err(|e| format!("{e:#}")),
            );
            let (c, t) = (cluster.clone(), topic.clone());
            if let Ok(Ok(roles)) =
                tokio::task::spawn_blocking(move || verify::log_dirs::partition_roles(&c, &t)).await
            {
                rec.roles = roles
                    .into_iter()
                    .map(|(p, r)| (p, r.leader, r.replicas, r.isr))
                    .collect();
            }
        }
        rec.e2e_cross = cross.len();
        rec.marks_after = marks_after.clone().unwrap_or_default();
        rec.per_partition = per_partition;
        rec.per_partition_other = per_partition_other;
        rec.groups = group_ledgers
            .iter()
            .map(|(id, g)| (id.clone(), crate::shard::counters(g)))
            .collect();
        rec.finished = true;
        rec.write(out)?;
    }
    Ok(summary)
}

/// The consumer groups of a run, as the wait for their assignment sees them.
struct Groups<'a> {
    s: &'a Scenario,
    meters: &'a [Vec<Arc<ConsumerMeter>>],
    ids: &'a [String],
    topic: &'a str,
    partitions: i32,
    /// In a sharded run, only this shard's members are seen here.
    shard: Option<&'a crate::shard::ShardRun>,
}

impl Groups<'_> {
    /// Waits until every group is settled: every partition assigned *and* every member that
    /// can have one holding one (the first member to join is briefly given everything, and
    /// producing then would put the second rebalance inside the measured run). Bounded by
    /// `consumers.assign_timeout`; an error names the group and the counts.
    async fn await_assignment(&self, target: &mut Target, interrupt: &Stop) -> anyhow::Result<()> {
        let s = self.s;
        let (consume_partitions, consume_topic) = (self.partitions, self.topic);
        eprintln!(
            "kbench: waiting for {} group(s) of {} member(s) to be assigned {consume_partitions} partitions of {consume_topic}",
            s.consumers.groups, s.consumers.members
        );
        let deadline = Instant::now() + s.consumers.assign_timeout.0;
        let busy_members = (s.consumers.members as usize).min(consume_partitions as usize);
        loop {
            let assigned: Vec<usize> = self
                .meters
                .iter()
                .map(|ms| ms.iter().map(|m| m.with_state(|st| st.assigned)).sum())
                .collect();
            let settled = self
                .meters
                .iter()
                .zip(&assigned)
                .all(|(ms, a)| match self.shard {
                    Some(r) => r.members_settled(members_assigned(ms), consume_partitions),
                    None => {
                        *a >= consume_partitions as usize && members_assigned(ms) >= busy_members
                    }
                });
            if settled {
                return Ok(());
            }
            if let Some(dead) = target.dead_broker() {
                bail!("{dead}");
            }
            if interrupt.is_raised() {
                bail!("interrupted while waiting for consumer group assignment");
            }
            if Instant::now() >= deadline {
                let g = (0..assigned.len())
                    .find(|&g| {
                        assigned[g] < consume_partitions as usize
                            || members_assigned(&self.meters[g]) < busy_members
                    })
                    .unwrap_or(0);
                bail!(
                    "consumer group {} has {} of {consume_partitions} partitions of {consume_topic} assigned, to {} of {} members, after {:?} (consumers.assign_timeout); is the group coordinator working?",
                    self.ids[g],
                    assigned[g],
                    members_assigned(&self.meters[g]),
                    s.consumers.members,
                    s.consumers.assign_timeout.0
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The final read of the producers' topic ([`verify::final_read`]), when the cluster is whole:
/// its summary and failures. A cluster with a broker down cannot be read to its end; the
/// summary then says why it was not read.
#[allow(clippy::too_many_arguments)]
async fn final_read(
    s: &Scenario,
    target: &mut Target,
    cluster: &ClusterAccess,
    topic: &str,
    partitions: i32,
    run_tag: u32,
    acks: &AckLedger,
    per_partition: &[u64],
) -> (crate::summary::FinalRead, Vec<String>) {
    let unread = |why: String| crate::summary::FinalRead {
        error: Some(why),
        ..Default::default()
    };
    if let Some(dead) = target.dead_broker() {
        let first = dead.lines().next().unwrap_or("").to_string();
        return (unread(format!("not read: {first}")), Vec::new());
    }
    let down = target.down_on_purpose();
    if !down.is_empty() {
        return (
            unread(format!(
                "not read: broker(s) {down:?} taken down by a fault"
            )),
            Vec::new(),
        );
    }
    let started = Instant::now();
    let (c, t, check) = (cluster.clone(), topic.to_string(), Check::new(run_tag));
    let bound = s.consumers.drain_timeout.0;
    let read = tokio::task::spawn_blocking(move || {
        verify::final_read::read(&c, &t, partitions, &check, bound)
    })
    .await
    .map_err(|e| format!("final read: the reader panicked: {e}"))
    .and_then(|r| r);
    let (ledger, found) = match read {
        Ok(r) => r,
        Err(e) => return (unread(e.clone()), vec![e]),
    };
    let (summary, mut failures) = verify::final_read::judge(
        topic,
        acks,
        per_partition,
        &ledger,
        &found,
        started.elapsed().as_secs_f64(),
    );
    let must_hold = matches!(
        s.verify.delivery,
        scenario::Delivery::ExactlyOnce | scenario::Delivery::AtLeastOnce
    );
    if !must_hold {
        failures.retain(|f| f.contains("corrupted"));
    }
    (summary, failures)
}

/// What the on-disk check needs to know about a finished run.
struct OnDiskRun<'a> {
    topic: &'a str,
    rf: u32,
    acked_bytes: u64,
    compressed: bool,
    marks_before: &'a BTreeMap<i32, (i64, i64)>,
    marks_after: Option<&'a BTreeMap<i32, (i64, i64)>>,
    per_partition: &'a [u64],
    per_partition_other: &'a [u64],
    per_partition_bytes: &'a [u64],
    /// The scenario promises no loss (exactly-once, at-least-once).
    no_loss: bool,
    /// `verify.offsets`.
    offsets: bool,
}

/// The on-disk check ([`verify::on_disk`]): embedded, the replicas' segment files; external,
/// DescribeLogDirs before and after. When it cannot be made (no end offsets, no metadata, a
/// listener kbench cannot speak to), the summary says why and the run is not failed for it.
async fn on_disk_check(
    run: &OnDiskRun<'_>,
    target: &Target,
    cluster: &ClusterAccess,
    disk_before: Option<u64>,
    reported_before: Option<anyhow::Result<BTreeMap<(i32, i32), u64>>>,
) -> (crate::summary::OnDiskSummary, Vec<String>) {
    let unavailable = |why: String| verify::on_disk::unavailable(run.acked_bytes, run.rf, &why);
    let Some(after) = run.marks_after else {
        return (
            unavailable("the end offsets could not be read".into()),
            Vec::new(),
        );
    };
    let roles = {
        let (c, t) = (cluster.clone(), run.topic.to_string());
        match tokio::task::spawn_blocking(move || verify::log_dirs::partition_roles(&c, &t)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return (unavailable(format!("{e:#}")), Vec::new()),
            Err(e) => {
                return (
                    unavailable(format!("metadata task failed: {e}")),
                    Vec::new(),
                )
            }
        }
    };
    let at = |v: &[u64], p: i32| {
        usize::try_from(p)
            .ok()
            .and_then(|i| v.get(i))
            .copied()
            .unwrap_or(0)
    };
    let partitions = after
        .iter()
        .map(|(p, (_, end))| {
            let verify::log_dirs::Roles {
                leader,
                replicas,
                isr,
            } = roles.get(p).cloned().unwrap_or_default();
            let other = at(run.per_partition_other, *p);
            verify::on_disk::PartitionExpect {
                partition: *p,
                leader,
                replicas,
                isr,
                offsets: (run.marks_before.get(p).map_or(0, |w| w.1), *end),
                records: at(run.per_partition, *p) + other,
                other_records: other,
                payload_bytes: at(run.per_partition_bytes, *p),
            }
        })
        .collect();
    let e = verify::on_disk::Expectation {
        topic: run.topic,
        replication_factor: run.rf,
        payload_bytes: run.acked_bytes,
        partitions,
        fewer_fail: run.no_loss,
        more_fail: run.offsets,
    };
    match (target.replica_dirs(), disk_before, reported_before) {
        (Some(dirs), Some(before), _) => {
            // Blocking (segment headers read, followers waited for), as the rest of this
            // function is: it runs on the main thread, not on a runtime worker.
            verify::on_disk::check(&dirs, before, &e)
        }
        (_, _, Some(Ok(before))) => {
            let partitions = e.partitions.len() as i32;
            match verify::log_dirs::snapshot(cluster, run.topic, partitions).await {
                Ok(after) => verify::on_disk::check_reported(&before, &after, run.compressed, &e),
                Err(err) => (
                    unavailable(format!("DescribeLogDirs failed: {err:#}")),
                    Vec::new(),
                ),
            }
        }
        (_, _, Some(Err(err))) => (
            unavailable(format!("DescribeLogDirs failed: {err:#}")),
            Vec::new(),
        ),
        _ => (
            unavailable("no sizes were taken before the run".into()),
            Vec::new(),
        ),
    }
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

/// The producers' errors so far, by kind.
fn producer_errors(meters: &[Arc<ProducerMeter>]) -> std::collections::BTreeMap<String, u64> {
    let mut all = std::collections::BTreeMap::new();
    for m in meters {
        m.with_state(|st| {
            for (k, v) in &st.errors {
                *all.entry(k.clone()).or_insert(0) += v;
            }
        });
    }
    all
}

/// Messages the producers saw refused with a storage error so far, if any.
fn storage_refusals(meters: &[Arc<ProducerMeter>]) -> Option<u64> {
    let key = format!("produce:{}", crate::workload::STORAGE_ERROR_KIND);
    let refused: u64 = meters
        .iter()
        .map(|m| m.with_state(|st| st.errors.get(&key).copied().unwrap_or(0)))
        .sum();
    (refused > 0).then_some(refused)
}

/// The producer errors by kind, most frequent first: `storage 120, MessageTimedOut 3`.
fn produce_error_list(errors: &std::collections::BTreeMap<String, u64>) -> String {
    let mut kinds: Vec<(&str, u64)> = errors
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("produce:").map(|k| (k, *v)))
        .collect();
    kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    if kinds.is_empty() {
        return "none counted".into();
    }
    kinds
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The run's consumer members, as `kill_member` faults see them.
struct RunMembers<'a> {
    /// Every member's task (group-major), kept to start a member again.
    templates: &'a mut Vec<consumer::MemberTask>,
    /// Member threads; restarted members are added.
    handles: &'a mut Vec<JoinHandle<Result<(), String>>>,
    /// Members per group.
    per_group: u32,
}

impl RunMembers<'_> {
    fn index(&self, group: u32, member: u32) -> Result<usize, String> {
        let i = (group * self.per_group + member) as usize;
        if member >= self.per_group || i >= self.templates.len() {
            return Err(format!(
                "there is no consumer group {group} member {member}"
            ));
        }
        Ok(i)
    }
}

impl fault::Members for RunMembers<'_> {
    fn kill(&mut self, group: u32, member: u32) -> Result<(), String> {
        let i = self.index(group, member)?;
        self.templates[i].kill.raise();
        Ok(())
    }

    fn restart(&mut self, group: u32, member: u32) -> Result<(), String> {
        let i = self.index(group, member)?;
        let mut task = self.templates[i].clone();
        task.kill = Stop::default();
        self.templates[i] = task.clone();
        let handle = consumer::spawn(task)
            .map_err(|e| format!("cannot start group {group} member {member} again: {e}"))?;
        self.handles.push(handle);
        Ok(())
    }
}

/// What a shard's record says before it has run.
fn shard_record(
    r: &crate::shard::ShardRun,
    topic: &str,
    marks_before: &BTreeMap<i32, (i64, i64)>,
) -> crate::shard::ShardRecord {
    crate::shard::ShardRecord {
        run_id: r.shard.run_id.clone(),
        index: r.shard.index,
        count: r.shard.count,
        host: hostname(),
        scenario: serde_json::to_value(&r.whole).unwrap_or_default(),
        producers: (r.first_producer, r.shard.share(r.whole.producers.count).1),
        members: r.shard.share(r.members_total).1,
        topic: topic.to_string(),
        marks_before: marks_before.clone(),
        ..Default::default()
    }
}

/// The start barrier of a shard: every shard has arrived, then the agreed start has come.
async fn start_barrier(
    r: &crate::shard::ShardRun,
    cluster: &ClusterAccess,
    topic: &str,
    interrupt: &Stop,
) -> anyhow::Result<u64> {
    let control = crate::shard::control_topic(topic);
    let mut cs = r.whole.clone();
    cs.topic.partitions = 1;
    cs.topic.name = Some(control.clone());
    topic::ensure(&cs, cluster, &control, SETUP_TIMEOUT).await?;
    eprintln!(
        "kbench: shard {}: waiting for the other shards on {control}",
        r.shard.label()
    );
    let (c, sh) = (cluster.clone(), r.shard.clone());
    let latest =
        tokio::task::spawn_blocking(move || crate::shard::barrier(&c, &control, &sh, "arrive"))
            .await
            .map_err(|e| anyhow::anyhow!("shard barrier task failed: {e}"))??;
    let start = crate::shard::start_after(latest);
    while now_us() < start {
        if interrupt.is_raised() {
            bail!("interrupted at the shard start barrier");
        }
        tokio::time::sleep(Duration::from_micros((start - now_us()).min(20_000))).await;
    }
    Ok(start)
}

/// The end offsets of the partitions some local member holds.
fn held_only(
    groups: &[Vec<Arc<ConsumerMeter>>],
    after: &BTreeMap<i32, (i64, i64)>,
) -> BTreeMap<i32, (i64, i64)> {
    let held: std::collections::BTreeSet<i32> = groups
        .iter()
        .flatten()
        .flat_map(|m| m.with_state(|st| st.held.clone()))
        .collect();
    after
        .iter()
        .filter(|(p, _)| held.contains(p))
        .map(|(p, w)| (*p, *w))
        .collect()
}

/// The first group still short of the end offsets, described; `None` when every group is there.
fn lagging(
    groups: &[Vec<Arc<ConsumerMeter>>],
    ids: &[String],
    before: &std::collections::BTreeMap<i32, (i64, i64)>,
    after: &std::collections::BTreeMap<i32, (i64, i64)>,
) -> Option<String> {
    for (g, members) in groups.iter().enumerate() {
        let mut reached = std::collections::BTreeMap::<i32, i64>::new();
        for m in members {
            m.with_state(|st| {
                for (p, o) in &st.next_offsets {
                    let e = reached.entry(*p).or_insert(0);
                    *e = (*e).max(*o);
                }
            });
        }
        for (p, (_, end)) in after {
            let start = before.get(p).map_or(0, |w| w.1);
            let at = reached.get(p).copied().unwrap_or(0);
            if *end > start && at < *end {
                return Some(format!(
                    "group {} is at offset {at} of {end} in partition {p}",
                    ids[g]
                ));
            }
        }
    }
    None
}

fn join_bounded(
    handles: &mut Vec<JoinHandle<Result<(), String>>>,
    bound: Duration,
    what: &str,
    failures: &mut Vec<String>,
) {
    let deadline = Instant::now() + bound;
    while !handles.iter().all(JoinHandle::is_finished) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    for h in handles.drain(..) {
        if !h.is_finished() {
            failures.push(format!(
                "a {what} task did not stop within {bound:?} (left behind)"
            ));
            continue;
        }
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(e),
            Err(_) => failures.push(format!("a {what} task panicked")),
        }
    }
}

fn progress_bar(_s: &Scenario) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
    bar.set_style(
        ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// What the progress line shows: the phase, and during the produce phase how far it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    WarmUp,
    Producing,
    Draining,
    Verifying,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::WarmUp => "warm-up",
            Phase::Producing => "producing",
            Phase::Draining => "draining",
            Phase::Verifying => "verifying",
        }
    }
}

/// `1234` → `1234`, `1234567` → `1.23M`: counts short enough for one 80-column line.
fn compact(n: u64) -> String {
    match n {
        0..=99_999 => n.to_string(),
        100_000..=999_999 => format!("{:.0}k", n as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.2}M", n as f64 / 1e6),
        _ => format!("{:.2}G", n as f64 / 1e9),
    }
}

/// One progress line, at most 80 columns: the phase, a bar of the messages sent (or of the
/// time produced), and while producing the throughput and p99 so far; once producing has
/// ended, what the consumers have read instead (the throughput of a finished phase would be
/// a falling average, not a rate).
fn progress_line(
    phase: Phase,
    done: u64,
    total: u64,
    by_time: bool,
    mib_s: f64,
    p99_ms: f64,
    consumed: u64,
) -> String {
    const WIDTH: usize = 20;
    let done = done.min(total);
    let filled = if total == 0 {
        0
    } else {
        ((done.min(total) as f64 / total as f64) * WIDTH as f64) as usize
    };
    let bar = format!("{}{}", "=".repeat(filled), " ".repeat(WIDTH - filled));
    let amount = if by_time {
        format!("{:.0}/{:.0} s", done as f64 / 1000.0, total as f64 / 1000.0)
    } else {
        format!("{}/{} msgs", compact(done), compact(total))
    };
    let tail = match phase {
        Phase::WarmUp | Phase::Producing => {
            format!("{mib_s:.0} MiB/s p99 {p99_ms:.1} ms")
        }
        Phase::Draining | Phase::Verifying => format!("consumed {}", compact(consumed)),
    };
    let line = format!("{:<9} [{bar}] {amount} {tail}", phase.as_str());
    line.chars().take(80).collect()
}

fn update_progress(bar: &ProgressBar, c: &Collector, s: &Scenario, phase: Phase, produce_s: f64) {
    if bar.is_hidden() {
        return;
    }
    let (sent, _acked, consumed) = c.progress();
    let p99 = c.produce_latency();
    let p99_ms = if p99.is_empty() {
        0.0
    } else {
        p99.value_at_quantile(0.99) as f64 / 1000.0
    };
    let bytes: u64 = c.producers.iter().map(|p| p.sent_totals().1).sum();
    let mib_s = if produce_s > 0.0 {
        bytes as f64 / MIB / produce_s
    } else {
        0.0
    };
    let (done, total, by_time) = match s.producers.stop() {
        StopAt::Messages(n) => (sent, n * u64::from(s.producers.count), false),
        StopAt::Duration(d) => (
            (produce_s * 1000.0) as u64,
            (d + s.producers.warmup.0).as_millis() as u64,
            true,
        ),
    };
    bar.set_message(progress_line(
        phase, done, total, by_time, mib_s, p99_ms, consumed,
    ));
}

/// Records a phase boundary as an event (and in the trace log).
fn phase(events: &mut Vec<Event>, t_s: f64, kind: &str, detail: &str) {
    tracing::debug!(t_s, kind, detail, "phase");
    events.push(Event {
        t_s,
        kind: kind.into(),
        detail: detail.into(),
    });
}

/// The summary of transaction counts.
fn transactions_summary(
    t: &crate::measure::TxnCounts,
    left_open: u64,
) -> crate::summary::TransactionsSummary {
    crate::summary::TransactionsSummary {
        committed: t.committed,
        aborted: t.aborted,
        aborted_on_error: t.aborted_on_error,
        left_open,
        commit_latency_ms: Percentiles::from_histogram(&t.commit_latency),
    }
}

fn hostname() -> String {
    sysinfo::System::host_name().unwrap_or_default()
}

/// How many of a group's members hold at least one partition.
fn members_assigned(members: &[Arc<ConsumerMeter>]) -> usize {
    members
        .iter()
        .filter(|m| m.with_state(|st| st.assigned) > 0)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_fits_80_columns_and_shows_no_rate_after_producing() {
        let producing = progress_line(
            Phase::Producing,
            12_345_678,
            1_048_576_000,
            false,
            12345.6,
            1234.5,
            9_999_999,
        );
        assert!(producing.chars().count() <= 80, "{producing}");
        assert!(
            producing.starts_with("producing [") && producing.contains("MiB/s"),
            "{producing}"
        );
        let draining = progress_line(Phase::Draining, 10_000, 10_000, false, 99.0, 1.0, 9_000);
        assert_eq!(
            draining,
            "draining  [====================] 10000/10000 msgs consumed 9000"
        );
        let timed = progress_line(Phase::WarmUp, 2_500, 10_000, true, 5.0, 0.5, 0);
        assert_eq!(
            timed,
            "warm-up   [=====               ] 2/10 s 5 MiB/s p99 0.5 ms"
        );
    }

    #[test]
    fn produce_error_list_names_kinds_most_frequent_first() {
        let errors = std::collections::BTreeMap::from([
            ("produce:MessageTimedOut".to_string(), 3),
            ("produce:storage".to_string(), 120),
            ("consume:BrokerTransportFailure".to_string(), 9),
        ]);
        assert_eq!(
            produce_error_list(&errors),
            "storage 120, MessageTimedOut 3"
        );
        assert_eq!(
            produce_error_list(&std::collections::BTreeMap::new()),
            "none counted"
        );
    }
}
