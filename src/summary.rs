//! The results of one run, as data: the `summary.json` schema, the rows of `timeseries.csv`
//! and `system.csv`, and [`RunData`], everything the reporters need.
//!
//! This module is the contract between the run path (which fills these structs) and the output
//! path (`report`, `compare`, which turn them into bytes). It holds no logic beyond small
//! constructors, so both sides can depend on it without depending on each other.
//!
//! Rules for the schema:
//! - field names are snake_case and stable; a field is added with `#[serde(default)]` so older
//!   `summary.json` files still load; a rename bumps [`SCHEMA_VERSION`] and keeps the old name as
//!   a serde `alias`, and [`Summary::from_json`] upgrades what an alias cannot (a unit change);
//! - every number carries its unit in its own name (`_s`, `_ms`, `_bytes`, `_pct`, `_ratio`,
//!   `_msgs_per_s`, `_mib_per_s`) or in the name of the object holding it (`latency_ms.p99`);
//!   bare nouns (`messages`, `acked`, `lost`) are counts;
//! - every CPU % is a share of the **whole machine** (0–100, all cores busy = 100), the
//!   machine's total and each process's alike ([`cpu_share_of_machine`]);
//! - floats are written rounded ([`Summary::to_json`]): 3 decimals from 1 up, 4 significant
//!   digits below 1;
//! - counts are counted, not estimated (DESIGN.md, "Measurement rules");
//! - latency histograms are kept in microseconds ([`latency_histogram`]); the summary shows them
//!   in milliseconds ([`Percentiles`]).
//!
//! Every struct derives `Default` so the run path can fill what it knows and leave the rest.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Version of the `summary.json` schema written by this build. Bumped only on an incompatible
/// change (which the rules above try to avoid). `docs/summary-json.md` lists the changes.
///
/// 2: units in every name (`on_disk.growth_bytes`, `produce.target_msgs_per_s`,
/// `produce.error_ratio`, `system.processes[].written_bytes`), process CPU as a share of the
/// whole machine (it was % of one core), rounded floats, `catch_up` and `max_rate` sections.
pub const SCHEMA_VERSION: u32 = 2;

/// `kind` of a run set's `summary.json` (a single run's has none).
pub const RUN_SET_KIND: &str = "run-set";

/// The oldest `summary.json` schema this build still reads ([`Summary::from_json`] upgrades it).
pub const OLDEST_READABLE_SCHEMA: u32 = 1;

/// A process's CPU use as sysinfo and `top` give it (% of one core, 200 = two cores busy) as a
/// share of the whole machine of `cores` logical CPUs (0–100), the one base of every CPU %.
pub fn cpu_share_of_machine(pct_of_one_core: f64, cores: usize) -> f64 {
    pct_of_one_core / cores.max(1) as f64
}

/// Why a `summary.json` cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// Not JSON, or not a summary.
    #[error("not a kbench summary: {0}")]
    Json(#[from] serde_json::Error),
    /// Written by a newer (or unknown) kbench.
    #[error(
        "summary.json has schema_version {found}; this kbench reads versions \
         {OLDEST_READABLE_SCHEMA} to {SCHEMA_VERSION}: use the kbench that wrote it (or a newer one)"
    )]
    Version {
        /// The version in the file.
        found: u64,
    },
}

/// Bytes in one MiB, the unit of every `mib_per_s` figure.
pub const MIB: f64 = 1024.0 * 1024.0;

/// A latency histogram as kbench records it: values in **microseconds**, 1 µs to 1 hour,
/// 3 significant digits, auto-resizing so an outlier above an hour is kept rather than lost.
pub fn latency_histogram() -> Histogram<u64> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)
        .expect("static histogram bounds are valid");
    h.auto(true);
    h
}

/// Everything a run produced that the reporters need. `report::write_run` turns this into the
/// run directory; `report::rebuild` reads it back from there.
#[derive(Debug, Clone)]
pub struct RunData {
    /// The whole-run figures and the verdict (`summary.json`).
    pub summary: Summary,
    /// One row per sampling interval (`timeseries.csv`), in time order.
    pub intervals: Vec<IntervalRow>,
    /// What the system sampler saw (`system.csv`); its aggregate is also in `summary.system`.
    pub system: SystemData,
    /// Produce latency (send call, or intended send time when rate-limited, to acknowledgement),
    /// in **microseconds**, warm-up excluded. Written as `produce_latency.hgrm` / `.hdr`.
    pub produce_latency: Histogram<u64>,
    /// End-to-end latency (producer timestamp in the message to consumer receipt), in
    /// **microseconds**, warm-up excluded. Written as `e2e_latency.hgrm` / `.hdr`.
    pub e2e_latency: Histogram<u64>,
}

impl RunData {
    /// A `RunData` holding `summary` and nothing else: no intervals, no samples, empty histograms.
    pub fn new(summary: Summary) -> Self {
        RunData {
            summary,
            intervals: Vec::new(),
            system: SystemData::default(),
            produce_latency: latency_histogram(),
            e2e_latency: latency_histogram(),
        }
    }
}

/// The `summary.json` document: one run, whole-run figures, and the verdict.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Version of this schema ([`SCHEMA_VERSION`]).
    #[serde(default)]
    pub schema_version: u32,
    /// When, where and by what the run was made.
    #[serde(default)]
    pub run: RunInfo,
    /// Which scenario ran.
    pub scenario: ScenarioInfo,
    /// The resolved scenario (after `--set` overrides and matrix expansion), as JSON.
    pub config: serde_json::Value,
    /// The cluster the run was pointed at.
    pub target: TargetInfo,
    /// Producer side figures.
    pub produce: ProduceSummary,
    /// Consumer side figures.
    pub consume: ConsumeSummary,
    /// The delivery ledger's verdict.
    pub delivery: DeliverySummary,
    /// What the run's durability settings cost when brokers failed: acks, replication,
    /// acknowledged messages lost, recovery time per fault, produce errors by kind (absent in
    /// summaries written before it existed).
    #[serde(default)]
    pub durability: DurabilitySummary,
    /// Per-partition offset check.
    pub offsets: OffsetsSummary,
    /// Log-directory growth against payload bytes.
    pub on_disk: OnDiskSummary,
    /// What the system sampler saw, aggregated over the run.
    pub system: SystemSummary,
    /// Errors by kind (e.g. `"produce:MsgTimedOut"`, `"consume:BrokerTransportFailure"`) → count.
    pub errors: BTreeMap<String, u64>,
    /// Things that happened during the run (warm-up end, faults fired, ...), in time order.
    pub events: Vec<Event>,
    /// Whether every expectation of the scenario held.
    pub verdict: Verdict,
    /// What makes the figures weak without failing the run: a measured window too short to
    /// mean anything ([`window_warnings`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The catch-up figures (`consumers.begin = "after-produce"`): the backlog built with the
    /// consumers stopped and how fast they drained it; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up: Option<CatchUpSummary>,
    /// The maximum sustainable rate search (`[max_rate]`): every step walked and the rate
    /// found; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rate: Option<MaxRateSummary>,
    /// A merged sharded run (`kbench merge`): each shard's host and what its system sampler saw,
    /// side by side (`system` above is shard 1's host); absent for a single run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostSummary>,
}

/// One shard's host in a merged run: which shard, where it ran, and its machine's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostSummary {
    /// The shard, `I/N`.
    pub shard: String,
    /// The host name the shard recorded.
    pub host: String,
    /// Whether the shard finished (a killed shard left no figures).
    pub finished: bool,
    /// Messages the shard's producers had acknowledged.
    pub acked: u64,
    /// What the shard's system sampler saw (all zero if it did not finish).
    pub system: SystemSummary,
}

impl Summary {
    /// Reads a `summary.json` of this schema or an older readable one, upgraded to this one:
    /// renamed fields are read by their serde aliases; version 1's process CPU (% of one core)
    /// becomes a share of the whole machine. A newer or unknown version is refused, naming it.
    /// A file without `schema_version` is taken as version 1 (it predates the field).
    pub fn from_json(text: &str) -> Result<Summary, SchemaError> {
        let value: serde_json::Value = serde_json::from_str(text)?;
        let found = value
            .get("schema_version")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(1)
            .max(1);
        if found > u64::from(SCHEMA_VERSION) || found < u64::from(OLDEST_READABLE_SCHEMA) {
            return Err(SchemaError::Version { found });
        }
        let mut s: Summary = serde_json::from_value(value)?;
        if found == 1 {
            let cores = s.system.cores as usize;
            for p in &mut s.system.processes {
                p.cpu_avg_pct = cpu_share_of_machine(p.cpu_avg_pct, cores);
                p.cpu_max_pct = cpu_share_of_machine(p.cpu_max_pct, cores);
            }
        }
        s.schema_version = SCHEMA_VERSION;
        Ok(s)
    }

    /// The `summary.json` text: pretty JSON with every float of the figures rounded
    /// ([`rounded_json`]); the resolved scenario (`config`) is written as it is.
    pub fn to_json(&self) -> serde_json::Result<String> {
        rounded_json(self)
    }
}

/// Pretty JSON of `value` (a run's or a run set's `summary.json`) with every float rounded by
/// [`round_figure`], except under a top-level `config` (the resolved scenario, written as
/// given).
pub fn rounded_json<T: Serialize>(value: &T) -> serde_json::Result<String> {
    let mut value = serde_json::to_value(value)?;
    if let serde_json::Value::Object(map) = &mut value {
        for (key, v) in map.iter_mut() {
            if key != "config" {
                round_floats(v);
            }
        }
    }
    Ok(serde_json::to_string_pretty(&value)? + "\n")
}

/// A figure as `summary.json` writes it: 3 decimals from 1 up (327123.457 msgs/s, 12.346 ms),
/// 4 significant digits below 1 (0.0001234 as an error ratio), so small figures keep their
/// meaning and large ones lose only noise.
pub fn round_figure(v: f64) -> f64 {
    if !v.is_finite() || v == 0.0 {
        return v;
    }
    let decimals = if v.abs() >= 1.0 {
        3
    } else {
        (3 - v.abs().log10().floor() as i32).min(15)
    };
    let scale = 10f64.powi(decimals);
    (v * scale).round() / scale
}

fn round_floats(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Number(n) if n.is_f64() => {
            if let Some(r) = n
                .as_f64()
                .map(round_figure)
                .and_then(serde_json::Number::from_f64)
            {
                *n = r;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(round_floats),
        serde_json::Value::Object(map) => map.values_mut().for_each(round_floats),
        _ => {}
    }
}

/// The catch-up figures: a backlog produced with the consumer groups stopped, then drained.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CatchUpSummary {
    /// Messages acknowledged before the consumers started: the backlog.
    pub backlog_messages: u64,
    /// Payload bytes of the backlog (acknowledged, one copy).
    pub backlog_bytes: u64,
    /// Whether the page cache was dropped between producing and draining, so the drain read
    /// from disk: `"dropped"`, or `"not dropped: <why>"` (not root, an external cluster, ...).
    pub page_cache: String,
    /// Seconds from the last acknowledgement to the consumers' start (sync, cache drop).
    pub pause_s: f64,
    /// Seconds from the consumers' start to every group settled (every partition assigned, every
    /// member holding one); may come after the drain, since the first member to join reads
    /// everything until the group rebalances.
    pub assign_s: f64,
    /// Seconds from the consumers' start to the first message received.
    pub first_message_s: f64,
    /// Seconds from the consumers' start to the last message received: the drain time.
    pub drain_s: f64,
    /// Messages received by all groups during the drain.
    pub drained_messages: u64,
    /// Payload bytes received by all groups during the drain.
    pub drained_bytes: u64,
    /// `drained_messages / drain_s`.
    pub drain_msgs_per_s: f64,
    /// `drained_bytes / drain_s`, MiB (2^20 bytes) per second.
    pub drain_mib_per_s: f64,
    /// Whether every group read the whole backlog.
    pub complete: bool,
}

/// The search for the maximum sustainable rate: steps of increasing target rate (doubling,
/// then bisection), each judged sustainable when the achieved rate is at least
/// `achieved_min_ratio` of the target and the produce p99 within `p99_bound_ms`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MaxRateSummary {
    /// The highest sustainable target rate found, msgs/s (all producers); `null` when no step
    /// was sustainable (not even the first).
    pub found_msgs_per_s: Option<f64>,
    /// The latency bound: produce p99 must be at most this, ms.
    pub p99_bound_ms: f64,
    /// The achieved rate must be at least this share of the target (0.95).
    pub achieved_min_ratio: f64,
    /// Length of each step's produce phase, s.
    pub step_s: f64,
    /// Why the search stopped.
    pub stopped: String,
    /// Every step in the order walked.
    pub steps: Vec<MaxRateStep>,
}

/// One step of the max-rate search.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MaxRateStep {
    /// Target rate, msgs/s (all producers).
    pub target_msgs_per_s: f64,
    /// Achieved (acknowledged) rate, msgs/s.
    pub achieved_msgs_per_s: f64,
    /// Produce latency median, ms.
    pub p50_ms: f64,
    /// Produce latency 99th percentile, ms.
    pub p99_ms: f64,
    /// `"sustained"` or `"not sustained: <why>"`.
    pub verdict: String,
    /// Whether the step was sustainable.
    pub sustained: bool,
    /// The step's run folder, relative to the search's folder.
    pub dir: String,
}

/// When, where and by what a run was made.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// kbench version (`CARGO_PKG_VERSION`) that made the run.
    #[serde(default)]
    pub kbench_version: String,
    /// Start of the run, RFC 3339 in UTC (e.g. `2025-01-31T12:00:00Z`).
    #[serde(default)]
    pub started_at: String,
    /// Wall-clock duration of the whole run, in seconds, cluster start-up and verification
    /// included.
    #[serde(default)]
    pub wall_s: f64,
    /// Host name of the machine kbench ran on (so results of several hosts can be told apart).
    #[serde(default)]
    pub host: String,
}

/// Which scenario ran.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScenarioInfo {
    /// The scenario's `name`.
    pub name: String,
    /// The scenario's `description`.
    pub description: String,
    /// Path of the scenario file as given on the command line.
    pub file: String,
    /// For a matrix run: the keys this cell sets and their values as written
    /// (e.g. `"producers.acks" → "all"`); empty for a plain run.
    #[serde(default)]
    pub matrix_cell: BTreeMap<String, String>,
}

/// Whether kbench started the cluster itself or was given one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// kbench started `kbroker` processes on loopback.
    #[default]
    Embedded,
    /// A cluster given with `--bootstrap` (any Kafka).
    External,
}

impl TargetKind {
    /// `"embedded"` or `"external"`, as in `summary.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Embedded => "embedded",
            TargetKind::External => "external",
        }
    }
}

/// The cluster the run was pointed at.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetInfo {
    /// `"embedded"` or `"external"`.
    pub kind: TargetKind,
    /// Bootstrap servers, `host:port,...`.
    pub bootstrap: String,
    /// Number of brokers in the cluster (from Metadata).
    pub brokers: u32,
}

/// Producer side figures. Counts cover the whole run (warm-up included, since verification
/// needs every message); rates and latency cover the measured window (warm-up excluded).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProduceSummary {
    /// Messages handed to the client library (whole run).
    pub messages: u64,
    /// Payload bytes handed to the client library (whole run; key + value).
    pub bytes: u64,
    /// Messages acknowledged by the cluster (whole run).
    pub acked: u64,
    /// Messages whose delivery report was an error (whole run).
    pub failed: u64,
    /// Length of the measured window, in seconds: warm-up end (the first send, without a
    /// warm-up) to the last acknowledgement.
    pub duration_s: f64,
    /// Acknowledged messages per second over the measured window.
    pub msgs_per_s: f64,
    /// Acknowledged payload MiB (2^20 bytes) per second over the measured window.
    pub mib_per_s: f64,
    /// Target rate for all producers together, in messages per second; `None` = flat out.
    #[serde(alias = "target_rate")]
    pub target_msgs_per_s: Option<f64>,
    /// Whether the achieved rate reached the target (within the scenario's tolerance);
    /// `None` when there is no target.
    pub rate_reached: Option<bool>,
    /// Produce latency of acknowledged messages, in milliseconds (warm-up excluded): from the
    /// send call (with a rate, the intended send time) to the acknowledgement; with `acks=0`
    /// to the moment the client sent it (see `latency_means`).
    pub latency_ms: Percentiles,
    /// What `latency_ms` measures: `"send to acknowledgement"`, or with `acks=0`
    /// `"time to send (acks=0: no acknowledgement)"`.
    #[serde(default)]
    pub latency_means: String,
    /// Latency of the deliveries that failed, in milliseconds (whole run): from the send call
    /// (or intended send time) to the failed delivery report. Kept apart so failures neither
    /// vanish from the latency nor flatter it.
    #[serde(default)]
    pub failed_latency_ms: Percentiles,
    /// `failed / (acked + failed)`, 0..=1: the share of deliveries that failed.
    #[serde(default, alias = "error_rate")]
    pub error_ratio: f64,
    /// Seconds from the start of the run to the first send: brokers, topic, consumer groups
    /// joining, producer clients and `init_transactions`. Outside the measured window.
    #[serde(default)]
    pub setup_s: f64,
    /// Of `setup_s`, seconds the producers took to create their clients (and initialise their
    /// transactions).
    #[serde(default)]
    pub clients_s: f64,
    /// Messages the scenario asked for that were never handed to the client (a run stopped
    /// early, e.g. by `producers.time_limit`); `None` for runs bounded by duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub never_sent: Option<u64>,
    /// Whether `producers.time_limit` stopped the producers before they were done.
    #[serde(default)]
    pub time_limited: bool,
}

impl ProduceSummary {
    /// The share of failed deliveries and the target rate's verdict, from the counts and
    /// `msgs_per_s` already set: `target` is all producers' rate together (`None` = flat out).
    /// Returns the failure line when `required` and the achieved rate is below 95 % of the
    /// target (one rule for a run and for shards merged).
    pub fn judge_rate(&mut self, target: Option<f64>, required: bool) -> Option<String> {
        if self.acked + self.failed > 0 {
            self.error_ratio = self.failed as f64 / (self.acked + self.failed) as f64;
        }
        self.target_msgs_per_s = target;
        self.rate_reached = target.map(|t| self.msgs_per_s >= 0.95 * t);
        (required && self.rate_reached == Some(false)).then(|| {
            format!(
                "rate: reached {:.0} msg/s of the {:.0} msg/s target (below 95 %)",
                self.msgs_per_s,
                target.unwrap_or_default()
            )
        })
    }
}

/// Consumer side figures, all groups together.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConsumeSummary {
    /// Number of consumer groups.
    pub groups: u32,
    /// Messages received, summed over all groups (so 2 groups reading N messages give 2N).
    pub messages: u64,
    /// Payload bytes received, summed over all groups.
    pub bytes: u64,
    /// Length of the measured window, in seconds: warm-up end (in a catch-up, the consumers'
    /// start) to the last message received.
    pub duration_s: f64,
    /// Messages received per second over the measured window, all groups.
    pub msgs_per_s: f64,
    /// Payload MiB received per second over the measured window, all groups.
    pub mib_per_s: f64,
    /// End-to-end latency, in milliseconds (warm-up excluded).
    pub e2e_latency_ms: Percentiles,
}

/// Latency percentiles, in **milliseconds**.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median, ms.
    pub p50: f64,
    /// 90th percentile, ms.
    pub p90: f64,
    /// 99th percentile, ms.
    pub p99: f64,
    /// 99.9th percentile, ms.
    pub p999: f64,
    /// Largest value recorded, ms.
    pub max: f64,
    /// Arithmetic mean, ms.
    pub mean: f64,
    /// Number of values recorded.
    #[serde(default)]
    pub count: u64,
}

impl Percentiles {
    /// Percentiles of a histogram recorded in **microseconds**, converted to milliseconds.
    /// An empty histogram gives all zeros.
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Percentiles::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
            count: h.len(),
        }
    }
}

/// The delivery ledger's verdict. Definitions as in DESIGN.md ("Verification rules").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeliverySummary {
    /// What the scenario expects: `"exactly-once"`, `"at-least-once"`, `"at-most-once"`, `"none"`.
    pub expected: String,
    /// Distinct messages acknowledged by the cluster.
    pub acked: u64,
    /// Messages consumed, summed over groups (duplicates included).
    pub consumed: u64,
    /// Acknowledged but never consumed, summed over groups, plus those the final read did not
    /// find in the log.
    pub lost: u64,
    /// Consumed more than once (each extra copy counts once), summed over groups.
    pub duplicated: u64,
    /// Consumed but never acknowledged, summed over groups.
    pub unexpected: u64,
    /// Out of per-producer order within a partition, summed over groups.
    pub reordered: u64,
    /// Messages of aborted transactions seen by a `read_committed` consumer, summed over groups.
    #[serde(default)]
    pub aborted_visible: u64,
    /// Messages of this run that arrived corrupted, summed over groups: a body shorter or longer
    /// than its header says, bytes that do not match the header's CRC32C, or (pipeline output)
    /// a body that is not the transform of what the producer wrote. Not counted as received.
    #[serde(default)]
    pub corrupted: u64,
    /// The same figures per consumer group.
    pub per_group: Vec<GroupDelivery>,
    /// Distinct messages the producers sent in aborted transactions (deliberately or after an
    /// error); not in `acked`, and never to be seen under `read_committed`.
    #[serde(default)]
    pub aborted: u64,
    /// The producers' transactions; present when `producers.transactional`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transactions: Option<TransactionsSummary>,
    /// The consume-transform-produce stage; present when the scenario has `[pipeline]` (the
    /// figures above then compare the output topic with the producers' acknowledgements).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<PipelineSummary>,
    /// The scenario's `[[faults]]` as they happened, with the time to recover from each
    /// (absent in runs without faults and in summaries written before faults existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultSummary>,
    /// The final read of the producers' topic after the run (`verify.final_read`); its `lost`
    /// is part of `lost` above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_read: Option<FinalRead>,
}

/// The final read: one reader, every partition of the producers' topic from the start, after
/// the run; the acknowledged messages the log no longer holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FinalRead {
    /// Records of this run read (every copy).
    pub read: u64,
    /// Acknowledged messages not in the log.
    pub lost: u64,
    /// Records of this run whose length or CRC32C did not check out.
    pub corrupted: u64,
    /// Partitions holding fewer distinct messages of this run than were acknowledged to them.
    pub partitions: Vec<PartitionLoss>,
    /// How long the read took, s.
    pub duration_s: f64,
    /// Why the read could not be completed, when it could not (then the run fails).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One partition short of acknowledged messages in the final read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionLoss {
    /// Partition index.
    pub partition: i32,
    /// Messages acknowledged to it.
    pub acked: u64,
    /// Distinct messages of this run it still holds.
    pub held: u64,
    /// `acked − held`.
    pub missing: u64,
}

/// Transactions of a set of transactional clients (producer tasks or pipeline workers).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TransactionsSummary {
    /// Transactions committed.
    pub committed: u64,
    /// Transactions aborted on purpose (`abort_ratio`).
    pub aborted: u64,
    /// Transactions aborted because an operation failed with an abortable error.
    pub aborted_on_error: u64,
    /// Transactions left open by a killed pipeline worker (aborted by the broker).
    #[serde(default)]
    pub left_open: u64,
    /// Begin → `commit_transaction` returned, ms, committed transactions only.
    pub commit_latency_ms: Percentiles,
}

/// The consume-transform-produce stage of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PipelineSummary {
    /// Input topic (the producers' topic).
    pub input_topic: String,
    /// Output topic (what the consumer groups verified).
    pub output_topic: String,
    /// Transform workers.
    pub workers: u32,
    /// Input records whose transformed output was committed (every commit counted, so records
    /// re-processed after a kill count again).
    pub input_committed: u64,
    /// Worker transactions.
    pub transactions: TransactionsSummary,
    /// Worker kills carried out, in order.
    pub kills: Vec<WorkerKill>,
}

/// One worker kill and its restart.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerKill {
    /// Worker index.
    pub worker: u32,
    /// When the worker's clients were dropped, s since the run start.
    pub killed_at_s: f64,
    /// Output records of the transaction left open at the kill (sent, not committed).
    pub open_transaction_records: u64,
    /// When the restarted worker had initialised its transactional producer (fencing the dead
    /// instance), s since the run start; `None` if it was not restarted before the run ended.
    pub restarted_at_s: Option<f64>,
}

/// Delivery figures of one consumer group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupDelivery {
    /// Consumer group id.
    pub group: String,
    /// Messages this group consumed (duplicates included).
    pub consumed: u64,
    /// Acknowledged but never consumed by this group.
    pub lost: u64,
    /// Extra copies this group consumed.
    pub duplicated: u64,
    /// Consumed by this group but never acknowledged.
    pub unexpected: u64,
    /// Out of per-producer order within a partition, for this group.
    pub reordered: u64,
    /// Aborted-transaction messages this group saw under `read_committed`.
    #[serde(default)]
    pub aborted_visible: u64,
    /// Messages this group received corrupted.
    #[serde(default)]
    pub corrupted: u64,
}

/// Per-partition offset check: end − start offset against acknowledged messages.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OffsetsSummary {
    /// Whether every partition agreed.
    pub ok: bool,
    /// One entry per partition.
    pub partitions: Vec<PartitionOffsets>,
}

/// Offsets of one partition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PartitionOffsets {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// High watermark before the run (offset).
    pub start: i64,
    /// High watermark after the run (offset).
    pub end: i64,
    /// Messages acknowledged into this partition during the run.
    pub acked: u64,
    /// Whether `end - start` agrees with `acked` (transaction markers accounted for).
    pub ok: bool,
}

/// Log-directory growth against payload bytes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OnDiskSummary {
    /// How bytes were measured: `"walk"` (embedded: walk the log dirs), `"describe_log_dirs"`
    /// (external: the DescribeLogDirs API), `"unavailable"` (with the reason in `detail`) or
    /// `"skipped"` (`verify.on_disk = false`).
    pub method: String,
    /// Bytes under the log dirs before the run, all brokers.
    pub bytes_before: u64,
    /// Bytes under the log dirs after the run, all brokers.
    pub bytes_after: u64,
    /// `bytes_after - bytes_before`, bytes (negative if retention deleted more than was written).
    #[serde(alias = "growth")]
    pub growth_bytes: i64,
    /// Acknowledged payload bytes (key + value), one copy.
    pub payload_bytes: u64,
    /// Replication factor of the topic.
    pub replication_factor: u32,
    /// `growth_bytes / (payload_bytes × replication_factor)`: > 1 is record overhead, < 1 is
    /// compression.
    pub overhead_ratio: f64,
    /// Whether every replica holds what it must (see [`ReplicaDisk::ok`]); `None` when not
    /// checked.
    pub ok: Option<bool>,
    /// Human-readable explanation (on failure: the partition and the numbers).
    pub detail: String,
    /// Every replica of every partition as checked: embedded, what its segment files hold for
    /// the run's offsets; external, how much it grew by (DescribeLogDirs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<ReplicaDisk>,
}

/// One replica of one partition in the on-disk check.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplicaDisk {
    /// Partition index.
    pub partition: i32,
    /// Broker id holding the replica.
    pub broker: i32,
    /// `"leader"`, `"in_sync"` or `"out_of_sync"` (after the run).
    pub role: String,
    /// Embedded: bytes of the batches at the run's offsets; external: growth over the run.
    pub bytes: u64,
    /// Record batches at the run's offsets (embedded only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batches: Option<u64>,
    /// Records at the run's offsets, control records included (embedded only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<u64>,
    /// Whether it holds what it must: an in-sync replica its leader's batches, the leader the
    /// run's records.
    pub ok: bool,
}

/// What the system sampler saw, aggregated over the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SystemSummary {
    /// Number of logical CPUs.
    #[serde(default)]
    pub cores: u32,
    /// Sampling interval, seconds.
    #[serde(default)]
    pub interval_s: f64,
    /// Number of samples taken.
    #[serde(default)]
    pub samples: u64,
    /// Mean machine CPU use, % of the whole machine (0–100).
    pub cpu_avg_pct: f64,
    /// Highest machine CPU use in one interval, % of the whole machine (0–100).
    pub cpu_max_pct: f64,
    /// Highest memory in use, bytes.
    pub mem_max_bytes: u64,
    /// Total memory, bytes.
    #[serde(default)]
    pub mem_total_bytes: u64,
    /// Network bytes received plus transmitted, all interfaces (loopback included).
    pub net_bytes: u64,
    /// Network bytes received, all interfaces (loopback included).
    #[serde(default)]
    pub net_rx_bytes: u64,
    /// Network bytes transmitted, all interfaces (loopback included).
    #[serde(default)]
    pub net_tx_bytes: u64,
    /// Bytes read from disks.
    #[serde(default)]
    pub disk_read_bytes: u64,
    /// Bytes written to disks.
    pub disk_write_bytes: u64,
    /// Per watched process (each broker, kbench itself).
    pub processes: Vec<ProcessSummary>,
}

/// One watched process, aggregated over the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessSummary {
    /// Label, e.g. `"broker-1"` or `"kbench"`.
    pub label: String,
    /// Process id.
    pub pid: u32,
    /// Mean CPU use, % of the whole machine (0–100; on 4 cores, one busy core is 25).
    pub cpu_avg_pct: f64,
    /// Highest CPU use in one interval, % of the whole machine.
    #[serde(default)]
    pub cpu_max_pct: f64,
    /// Highest resident set size, bytes.
    pub rss_max_bytes: u64,
    /// Bytes the process wrote to storage during the run.
    #[serde(alias = "bytes_written")]
    pub written_bytes: u64,
}

/// The durability verdict of a run (`durability` in `summary.json`): the settings that decide
/// what an acknowledgement is worth, and what was lost or repeated, side by side, so runs with
/// different acks / replication can be compared on what they lose and not only on speed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DurabilitySummary {
    /// Producer `acks`: `"0"`, `"1"` or `"all"`.
    pub acks: String,
    /// What "acknowledged" means with these acks: with `acks = 0` the broker never answers, so
    /// a message counts as acknowledged once it was **sent**.
    pub acknowledged_means: String,
    /// Replication factor of the run's topic (as the scenario asked for it).
    pub replication_factor: u32,
    /// The topic's `min.insync.replicas` as the scenario set it; `null` = the cluster default.
    pub min_insync_replicas: Option<u32>,
    /// Brokers in the cluster.
    pub brokers: u32,
    /// Distinct messages acknowledged (sent, with acks = 0).
    pub acknowledged: u64,
    /// Acknowledged messages no consumer group ever read: the largest count of any group (a
    /// message missing from the log is missing for every group). 0 when nothing was consumed
    /// (`consumers.groups = 0`): see `verified`.
    pub acknowledged_lost: u64,
    /// Extra copies read, the largest count of any group (re-reads after a group rebalance
    /// included; `offsets` tells duplicates in the log apart).
    pub duplicated: u64,
    /// Whether a consumer group or the final read read the topic, so `acknowledged_lost` was
    /// measured.
    pub verified: bool,
    /// Faults injected.
    pub faults: u32,
    /// Seconds to recover from each fault, in fault order (`null` = not recovered before the
    /// producers finished); see `delivery.faults[].recovery_s`.
    pub recovery_s: Vec<Option<f64>>,
    /// The longest of `recovery_s`, seconds; `null` when there was no fault or one never
    /// recovered.
    pub max_recovery_s: Option<f64>,
    /// Producer errors over the whole run by kind (`MsgTimedOut`, `NotEnoughReplicas`, ...;
    /// `storage` for KAFKA_STORAGE_ERROR, a broker's full or failing log dir), without the
    /// `produce:` prefix.
    pub produce_errors: BTreeMap<String, u64>,
}

impl DurabilitySummary {
    /// The verdict from the run's settings and results: `acks` as written in the producer
    /// config (`"0"`, `"1"`, `"all"`), `errors` the run's errors by kind (`produce:` ones kept).
    pub fn from_run(
        acks: &str,
        replication_factor: u32,
        min_insync_replicas: Option<u32>,
        brokers: u32,
        delivery: &DeliverySummary,
        errors: &BTreeMap<String, u64>,
    ) -> Self {
        let acks = match acks {
            "-1" => "all",
            a => a,
        }
        .to_string();
        let acknowledged_means = match acks.as_str() {
            "0" => {
                "sent (acks=0: the broker never acknowledges; a message counts once it was sent)"
            }
            "1" => "written by the partition leader (acks=1)",
            _ => "written by every in-sync replica (acks=all)",
        }
        .to_string();
        let worst = |f: fn(&GroupDelivery) -> u64, whole: u64| {
            delivery.per_group.iter().map(f).max().unwrap_or(whole)
        };
        let recovery_s: Vec<Option<f64>> = delivery.faults.iter().map(|f| f.recovery_s).collect();
        let max_recovery_s = if recovery_s.is_empty() || recovery_s.iter().any(Option::is_none) {
            None
        } else {
            recovery_s.iter().flatten().copied().reduce(f64::max)
        };
        DurabilitySummary {
            acks,
            acknowledged_means,
            replication_factor,
            min_insync_replicas,
            brokers,
            acknowledged: delivery.acked,
            acknowledged_lost: worst(|g| g.lost, delivery.lost)
                .max(delivery.final_read.as_ref().map_or(0, |f| f.lost)),
            duplicated: worst(|g| g.duplicated, delivery.duplicated),
            verified: !delivery.per_group.is_empty() || delivery.final_read.is_some(),
            faults: delivery.faults.len() as u32,
            recovery_s,
            max_recovery_s,
            produce_errors: errors
                .iter()
                .filter_map(|(k, v)| k.strip_prefix("produce:").map(|k| (k.to_string(), *v)))
                .collect(),
        }
    }

    /// One terminal line: `durability: acks=all RF 3 min.insync 2 — acknowledged 1000 lost 0
    /// duplicated 0; recovery 1.5 s; produce errors: NotLeader 12`.
    pub fn line(&self) -> String {
        let mut o = format!(
            "durability: acks={} RF {} min.insync {} on {} broker(s) — acknowledged{} {} lost {} duplicated {}",
            self.acks,
            self.replication_factor,
            self.min_insync_replicas
                .map_or("default".to_string(), |m| m.to_string()),
            self.brokers,
            if self.acks == "0" { " (= sent)" } else { "" },
            self.acknowledged,
            if self.verified {
                self.acknowledged_lost.to_string()
            } else {
                "unverified".to_string()
            },
            self.duplicated
        );
        if self.faults > 0 {
            let each: Vec<String> = self
                .recovery_s
                .iter()
                .map(|r| r.map_or("not recovered".to_string(), |s| format!("{s:.1} s")))
                .collect();
            o.push_str(&format!("; recovery {}", each.join(", ")));
        }
        if !self.produce_errors.is_empty() {
            let errs: Vec<String> = self
                .produce_errors
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            o.push_str(&format!("; produce errors: {}", errs.join(", ")));
        }
        o
    }
}

/// One fault of the run (`delivery.faults[]`) and how the producers came through it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultSummary {
    /// When it fired, seconds since the start of the run (same clock as the events).
    pub t_s: f64,
    /// `kill`, `stop`, `pause`, `kill_member`, `partition` or `command`.
    pub action: String,
    /// What it hit: `broker 1`, `group 0 member 1`, `brokers 1 | 2,3` (the two sides of a
    /// partition), or the command line.
    pub target: String,
    /// When the broker or member was started again (or a paused broker resumed, or a partition
    /// healed), seconds since the start of the run; `null` = never.
    #[serde(default)]
    pub restarted_at_s: Option<f64>,
    /// Seconds from the fault to the end of the first interval whose acknowledged-message rate
    /// (consumed-message rate for `kill_member`) is back to 90 % of the pre-fault average; `null` = not recovered before the producers
    /// finished.
    #[serde(default)]
    pub recovery_s: Option<f64>,
    /// Producer errors by kind between the fault and the recovery (or the producers' end).
    #[serde(default)]
    pub errors: BTreeMap<String, u64>,
    /// The window in which writes were held up around this fault; `null` = every write was
    /// acknowledged within 1 s.
    #[serde(default)]
    pub unavailable: Option<Unavailability>,
}

/// Writes held up around a fault: from the (intended) send time of the first write that took
/// more than 1 s to be acknowledged, or failed, to the acknowledgement (or failure) of the last
/// such write; after it every write is acknowledged within 1 s again. Held-up writes less than
/// 1 s apart make one window; a window that ends after the fault fired (and begins before the
/// next fault fired) belongs to it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Unavailability {
    /// Start, seconds since the start of the run (a write in flight when the fault fired may
    /// start it a little before the fault).
    pub from_s: f64,
    /// End, seconds since the start of the run.
    pub to_s: f64,
    /// `to_s - from_s`, seconds.
    pub duration_s: f64,
    /// Writes held up in the window (acknowledged after more than 1 s, or failed).
    pub messages: u64,
    /// Of those, writes that failed.
    pub failed: u64,
}

/// Something that happened during the run, drawn as a vertical line on time charts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Seconds since the start of the run (same clock as `IntervalRow::t_s`).
    pub t_s: f64,
    /// What kind: [`Event::WARMUP_END`], `"fault"`, `"producers_done"`, `"storage_error"` (the
    /// run stopped producing on a storage error), ...
    pub kind: String,
    /// Human-readable detail (e.g. `"kill broker-2"`).
    pub detail: String,
}

impl Event {
    /// Kind of the event that ends the warm-up period.
    pub const WARMUP_END: &'static str = "warmup_end";
    /// The one event of a run that could not start (its detail says why).
    pub const NOT_STARTED: &'static str = "not_started";
    /// Kind of an injected fault.
    pub const FAULT: &'static str = "fault";
}

/// Whether every expectation of the scenario held.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// `true` when every expectation held (exit code 0).
    pub passed: bool,
    /// One line per broken expectation, naming the subject and the numbers.
    pub failures: Vec<String>,
}

/// One sampling interval of the workload: a row of `timeseries.csv`. Counts are for this
/// interval only (not cumulative); latency percentiles are of the values recorded in it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IntervalRow {
    /// End of the interval, seconds since the start of the run.
    pub t_s: f64,
    /// Length of the interval, seconds (the last one may be short). Rates = count / `interval_s`.
    pub interval_s: f64,
    /// Messages handed to the client in this interval.
    pub produced_msgs: u64,
    /// Payload bytes handed to the client in this interval.
    pub produced_bytes: u64,
    /// Messages acknowledged in this interval.
    pub acked_msgs: u64,
    /// Payload bytes acknowledged in this interval.
    pub acked_bytes: u64,
    /// Messages consumed in this interval, all groups.
    pub consumed_msgs: u64,
    /// Payload bytes consumed in this interval, all groups.
    pub consumed_bytes: u64,
    /// Errors of any kind in this interval.
    pub errors: u64,
    /// Produce latency median in this interval, µs (0 when nothing was acknowledged).
    pub produce_p50_us: u64,
    /// Produce latency 99th percentile in this interval, µs.
    pub produce_p99_us: u64,
    /// Largest produce latency in this interval, µs.
    pub produce_max_us: u64,
    /// End-to-end latency median in this interval, µs (0 when nothing was consumed).
    pub e2e_p50_us: u64,
    /// End-to-end latency 99th percentile in this interval, µs.
    pub e2e_p99_us: u64,
    /// Largest end-to-end latency in this interval, µs.
    pub e2e_max_us: u64,
    /// Whether the interval lies (at least partly) in the warm-up period.
    pub in_warmup: bool,
}

/// Everything the system sampler saw: one row per interval and the aggregate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SystemData {
    /// One row per sampling interval, in time order (`system.csv`).
    pub rows: Vec<SystemRow>,
    /// The aggregate over all rows (copied into `Summary::system`).
    pub summary: SystemSummary,
}

/// One sampling interval of the machine: a row of `system.csv`. Byte counts are for this
/// interval only (not cumulative).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SystemRow {
    /// End of the interval, seconds since the sampler started (the run's clock).
    pub t_s: f64,
    /// Machine CPU use, % of the whole machine (0–100).
    pub cpu_total_pct: f64,
    /// CPU use of each logical core, % of that core (0–100), in core order.
    pub cpu_per_core_pct: Vec<f64>,
    /// Memory in use, bytes.
    pub mem_used_bytes: u64,
    /// Total memory, bytes.
    pub mem_total_bytes: u64,
    /// Network bytes received in this interval, all interfaces (loopback included).
    pub net_rx_bytes: u64,
    /// Network bytes transmitted in this interval, all interfaces (loopback included).
    pub net_tx_bytes: u64,
    /// The same per interface (`"lo"`, `"eth0"`, ...).
    pub net_per_interface: BTreeMap<String, NetCounts>,
    /// Bytes read from disks in this interval.
    pub disk_read_bytes: u64,
    /// Bytes written to disks in this interval.
    pub disk_write_bytes: u64,
    /// Watched processes, in the order given to the sampler.
    pub processes: Vec<ProcessRow>,
}

/// Network bytes of one interface in one interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetCounts {
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
}

/// One watched process in one interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessRow {
    /// Label, e.g. `"broker-1"` or `"kbench"`.
    pub label: String,
    /// Process id.
    pub pid: u32,
    /// CPU use, % of the whole machine (0–100, [`cpu_share_of_machine`]); 0 once the process
    /// has exited.
    pub cpu_pct: f64,
    /// Resident set size, bytes; 0 once the process has exited.
    pub rss_bytes: u64,
    /// Bytes written to storage in this interval.
    pub written_bytes: u64,
}

/// Fewest sampling intervals a measured window should span for its rates to mean anything.
pub const MIN_WINDOW_INTERVALS: f64 = 10.0;
/// Fewest producer batches (of `batch.size` each, per producer) a measured window should carry.
pub const MIN_WINDOW_BATCHES: f64 = 3.0;

/// Warnings for a produce window too short to measure: shorter than [`MIN_WINDOW_INTERVALS`]
/// sampling intervals of `interval_s`, or carrying fewer payload bytes than
/// [`MIN_WINDOW_BATCHES`] full batches of `batch_bytes` per producer (a rate over a handful of
/// batches is a few round trips, not a throughput).
pub fn window_warnings(
    produce: &ProduceSummary,
    interval_s: f64,
    batch_bytes: u64,
    producers: u32,
) -> Vec<String> {
    let mut out = Vec::new();
    let intervals = produce.duration_s / interval_s;
    if interval_s > 0.0 && intervals < MIN_WINDOW_INTERVALS {
        out.push(format!(
            "measured window too short: {:.2} s of producing is {intervals:.1} sampling interval(s) \
             of {interval_s} s (want at least {MIN_WINDOW_INTERVALS:.0}); rates and percentiles \
             of so short a window are noise: produce for longer",
            produce.duration_s
        ));
    }
    let batches = produce.mib_per_s * MIB * produce.duration_s
        / (batch_bytes.max(1) as f64 * f64::from(producers.max(1)));
    if batches < MIN_WINDOW_BATCHES {
        out.push(format!(
            "measured window too small: {batches:.1} full batch(es) of {batch_bytes} bytes per \
             producer (want at least {MIN_WINDOW_BATCHES:.0}): send more messages"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_required_rate_below_95_percent_of_the_target_fails_the_run() {
        let mut p = ProduceSummary {
            acked: 90,
            failed: 10,
            msgs_per_s: 940.0,
            ..ProduceSummary::default()
        };
        let failure = p
            .judge_rate(Some(1000.0), true)
            .expect("below 95 % must fail");
        assert_eq!(
            failure,
            "rate: reached 940 msg/s of the 1000 msg/s target (below 95 %)"
        );
        assert_eq!(p.rate_reached, Some(false));
        assert!((p.error_ratio - 0.1).abs() < 1e-9);
        // Not required: recorded, not a failure.
        assert_eq!(p.judge_rate(Some(1000.0), false), None);
        assert_eq!(p.rate_reached, Some(false));
        // At 95 % and without a target: no failure.
        p.msgs_per_s = 950.0;
        assert_eq!(p.judge_rate(Some(1000.0), true), None);
        assert_eq!(p.rate_reached, Some(true));
        assert_eq!(p.judge_rate(None, true), None);
        assert_eq!(p.rate_reached, None);
    }

    pub(crate) fn sample_summary() -> Summary {
        let mut h = latency_histogram();
        for v in 1..=10_000u64 {
            h.record(v * 10).unwrap();
        }
        Summary {
            schema_version: SCHEMA_VERSION,
            run: RunInfo {
                kbench_version: "0.1.0".into(),
                started_at: "2025-01-31T12:00:00Z".into(),
                wall_s: 9.5,
                host: "box".into(),
            },
            scenario: ScenarioInfo {
                name: "smoke".into(),
                description: "a quick one".into(),
                file: "scenarios/smoke.toml".into(),
                matrix_cell: [("producers.acks".to_string(), "all".to_string())].into(),
            },
            config: serde_json::json!({"producers": {"count": 16, "acks": "all"}}),
            target: TargetInfo {
                kind: TargetKind::Embedded,
                bootstrap: "127.0.0.1:9092".into(),
                brokers: 3,
            },
            produce: ProduceSummary {
                messages: 1000,
                bytes: 1_024_000,
                acked: 1000,
                failed: 0,
                duration_s: 2.0,
                msgs_per_s: 500.0,
                mib_per_s: 0.49,
                target_msgs_per_s: Some(500.0),
                rate_reached: Some(true),
                latency_ms: Percentiles::from_histogram(&h),
                ..Default::default()
            },
            delivery: DeliverySummary {
                expected: "exactly-once".into(),
                acked: 1000,
                consumed: 1000,
                per_group: vec![GroupDelivery {
                    group: "g1".into(),
                    consumed: 1000,
                    ..Default::default()
                }],
                ..Default::default()
            },
            errors: [("produce:MsgTimedOut".to_string(), 2)].into(),
            events: vec![Event {
                t_s: 1.0,
                kind: Event::WARMUP_END.into(),
                detail: String::new(),
            }],
            verdict: Verdict {
                passed: false,
                failures: vec!["2 messages lost".into()],
            },
            on_disk: OnDiskSummary {
                ok: None,
                growth_bytes: -5,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_window_of_a_few_intervals_or_batches_is_flagged() {
        let produce = |secs: f64, mib_per_s: f64| ProduceSummary {
            duration_s: secs,
            mib_per_s,
            ..Default::default()
        };
        // 10 s at 50 MiB/s, 1 s sampling, 1 MB batches, 2 producers: fine.
        assert!(window_warnings(&produce(10.0, 50.0), 1.0, 1_000_000, 2).is_empty());
        // 0.03 s: 0.1 intervals and ~0.8 batch per producer.
        let w = window_warnings(&produce(0.03, 50.0), 0.5, 1_000_000, 2);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("0.03 s of producing") && w[0].contains("0.1 sampling"),
            "{w:?}"
        );
        assert!(w[1].contains("0.8 full batch"), "{w:?}");
        // Long but slow: enough intervals, too few bytes.
        let w = window_warnings(&produce(20.0, 0.01), 1.0, 1_000_000, 1);
        assert!(w.len() == 1 && w[0].contains("too small"), "{w:?}");
    }

    #[test]
    fn durability_takes_the_worst_group_and_says_what_acks_0_means() {
        let delivery = DeliverySummary {
            acked: 1000,
            lost: 30,
            duplicated: 5,
            per_group: vec![
                GroupDelivery {
                    group: "g0".into(),
                    lost: 10,
                    duplicated: 5,
                    ..Default::default()
                },
                GroupDelivery {
                    group: "g1".into(),
                    lost: 20,
                    ..Default::default()
                },
            ],
            faults: vec![
                FaultSummary {
                    recovery_s: Some(1.5),
                    ..Default::default()
                },
                FaultSummary {
                    recovery_s: Some(2.5),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let errors: BTreeMap<String, u64> = [
            ("produce:NotEnoughReplicas".to_string(), 4),
            ("consume:BrokerTransportFailure".to_string(), 9),
        ]
        .into();
        let d = DurabilitySummary::from_run("-1", 3, Some(2), 3, &delivery, &errors);
        assert_eq!(d.acks, "all");
        assert_eq!(d.acknowledged_lost, 20, "the worst group, not the sum");
        assert_eq!(d.duplicated, 5);
        assert!(d.verified);
        assert_eq!(d.recovery_s, vec![Some(1.5), Some(2.5)]);
        assert_eq!(d.max_recovery_s, Some(2.5));
        assert_eq!(
            d.produce_errors,
            [("NotEnoughReplicas".to_string(), 4)].into()
        );
        let line = d.line();
        assert!(
            line.contains("acks=all RF 3 min.insync 2 on 3 broker(s)")
                && line.contains("lost 20")
                && line.contains("recovery 1.5 s, 2.5 s")
                && line.contains("NotEnoughReplicas 4"),
            "{line}"
        );

        // acks=0: acknowledged = sent; a fault never recovered from has no longest time.
        let mut d0 = delivery.clone();
        d0.faults[1].recovery_s = None;
        d0.per_group.clear();
        let d = DurabilitySummary::from_run("0", 1, None, 3, &d0, &BTreeMap::new());
        assert!(d.acknowledged_means.starts_with("sent"));
        assert_eq!(d.max_recovery_s, None);
        assert!(!d.verified);
        let line = d.line();
        assert!(
            line.contains("acknowledged (= sent) 1000")
                && line.contains("lost unverified")
                && line.contains("not recovered"),
            "{line}"
        );
    }

    #[test]
    fn summary_round_trips_through_json() {
        let s = sample_summary();
        let json = serde_json::to_string_pretty(&s).unwrap();
        let back: Summary = serde_json::from_str(&json).unwrap();
        assert_eq!(s, back);
        assert!(json.contains("\"kind\": \"embedded\""));
        assert!(json.contains("\"e2e_latency_ms\""));
    }

    #[test]
    fn figures_are_written_rounded_and_the_config_as_given() {
        assert_eq!(round_figure(36883.933333333334), 36883.933);
        assert_eq!(round_figure(-1.23456), -1.235);
        assert_eq!(round_figure(0.000123456), 0.0001235);
        assert_eq!(round_figure(0.0), 0.0);
        let mut s = sample_summary();
        s.produce.msgs_per_s = 1234.56789;
        s.produce.error_ratio = 0.000012345;
        s.config = serde_json::json!({"producers": {"abort_ratio": 0.123456789}});
        let text = s.to_json().unwrap();
        assert!(text.contains("\"msgs_per_s\": 1234.568,"), "{text}");
        assert!(text.contains("\"error_ratio\": 0.00001235"), "{text}");
        assert!(text.contains("0.123456789"), "config is written as given");
    }

    #[test]
    fn a_newer_schema_is_refused_naming_both_versions() {
        let text = sample_summary().to_json().unwrap().replace(
            &format!("\"schema_version\": {SCHEMA_VERSION}"),
            "\"schema_version\": 7",
        );
        let e = Summary::from_json(&text).unwrap_err().to_string();
        assert!(
            e.contains("schema_version 7") && e.contains("versions 1 to 2"),
            "{e}"
        );
        // This version reads back what it writes, and rounding a rounded summary changes
        // nothing.
        let once = Summary::from_json(&sample_summary().to_json().unwrap()).unwrap();
        assert_eq!(once.produce.latency_ms.mean, 50.006);
        assert_eq!(Summary::from_json(&once.to_json().unwrap()).unwrap(), once);
    }

    #[test]
    fn percentiles_are_in_milliseconds() {
        let mut h = latency_histogram();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap(); // 1 ms .. 1000 ms
        }
        let p = Percentiles::from_histogram(&h);
        assert!((p.p50 - 500.0).abs() < 1.0, "{p:?}");
        assert!((p.p99 - 990.0).abs() < 1.0, "{p:?}");
        assert!((p.max - 1000.0).abs() < 1.0, "{p:?}");
        assert_eq!(p.count, 1000);
        assert_eq!(
            Percentiles::from_histogram(&latency_histogram()),
            Percentiles::default()
        );
    }
}
