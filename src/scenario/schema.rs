//! The scenario schema: every key a scenario file may hold, its type, unit and default, in one
//! place. `scenarios/README.md` documents the same keys; keep the two in step.
//!
//! The structs deserialize straight from TOML (`deny_unknown_fields`, so a typo is an error, not a
//! silently ignored key) with defaults filled in, and serialize back to the fully resolved
//! configuration that goes into `summary.json`. [`Scenario::validate`] then checks the relations
//! between keys that serde cannot (one of `messages_each`/`duration`, rates, sizes) and names the
//! offending key path, which the loader turns into `file:line:column`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use super::units::{Dur, Rate, Size};

/// Keys whose values are secrets: never printed, never written to a report.
const SECRET_MARKERS: &[&str] = &["password", "secret", "jaas", "ssl.key.pem", "token"];

/// Whether a client setting's value must not be shown.
pub fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_MARKERS.iter().any(|m| key.contains(m))
}

/// Bytes at the start of every payload that carry the message identity (see `workload::payload`).
pub const IDENTITY_BYTES: u64 = 32;

/// A whole scenario: what to run against which cluster and what to expect.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name of the scenario; names the default output folder `reports/<name>/<timestamp>/`.
    pub name: String,
    /// One line saying what the scenario shows.
    #[serde(default)]
    pub description: String,
    /// How many times to run it (each into `<out>/run-K/`, then medians with 95 % intervals:
    /// see `runset`); `kbench run --runs N` wins.
    #[serde(default = "one_run")]
    pub runs: u32,
    /// The cluster to run against.
    #[serde(default)]
    pub cluster: Cluster,
    /// The topic the run writes and reads.
    #[serde(default)]
    pub topic: Topic,
    /// Producer tasks.
    #[serde(default)]
    pub producers: Producers,
    /// Consumer groups.
    #[serde(default)]
    pub consumers: Consumers,
    /// Expectations that decide the exit code.
    #[serde(default)]
    pub verify: Verify,
    /// Time-series sampling.
    #[serde(default)]
    pub sampling: Sampling,
    /// Report output.
    #[serde(default)]
    pub report: Report,
    /// Consume-transform-produce stage between the producers and the consumer groups; absent =
    /// the groups read the producers' topic directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<Pipeline>,
    /// Faults injected during the produce phase (`[[faults]]`), see [`Fault`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<Fault>,
    /// Dotted key → list of values: one run per combination.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub matrix: BTreeMap<String, Vec<toml::Value>>,
    /// Search for the maximum sustainable rate (`[max_rate]`): one run per step, see
    /// [`MaxRate`] and `crate::max_rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rate: Option<MaxRate>,
}

/// `[max_rate]`: the search for the highest total produce rate the cluster sustains (the
/// achieved rate at least 95 % of the target and the produce p99 within `p99_bound`). Each step
/// is a whole run of `step_duration` at one target rate: the rate doubles from `start_rate`
/// until a step fails or `ceiling` is reached, then the search bisects between the highest
/// sustained and the lowest failed rate until they are within `precision` of each other or
/// `max_steps` steps were run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxRate {
    /// Produce p99 latency bound of a sustained step.
    pub p99_bound: Dur,
    /// Target rate of the first step, msgs/s over all producers.
    pub start_rate: Rate,
    /// Highest target rate tried, msgs/s over all producers.
    pub ceiling: Rate,
    /// Most steps run (each a whole run).
    #[serde(default = "default_max_steps")]
    pub max_steps: u32,
    /// Produce phase of each step (`producers.duration` of the step).
    #[serde(default = "default_step_duration")]
    pub step_duration: Dur,
    /// Bisection stops when `(failed − sustained) / sustained` is at most this.
    #[serde(default = "default_precision")]
    pub precision: f64,
}

fn default_max_steps() -> u32 {
    8
}

fn default_step_duration() -> Dur {
    Dur(Duration::from_secs(10))
}

fn default_precision() -> f64 {
    0.1
}

/// Most steps a max-rate search may run.
pub const MAX_RATE_STEPS: u32 = 30;

impl MaxRate {
    fn validate(&self, s: &Scenario) -> Result<(), Invalid> {
        if self.start_rate.0.is_nan() || self.start_rate.0 <= 0.0 {
            return Err(invalid("max_rate.start_rate", "start_rate must be above 0"));
        }
        if self.ceiling.0 < self.start_rate.0 {
            return Err(invalid(
                "max_rate.ceiling",
                format!(
                    "ceiling = {} must be at least start_rate = {}",
                    self.ceiling.0, self.start_rate.0
                ),
            ));
        }
        if self.max_steps == 0 || self.max_steps > MAX_RATE_STEPS {
            return Err(invalid(
                "max_rate.max_steps",
                format!(
                    "max_steps = {} must be 1..={MAX_RATE_STEPS}",
                    self.max_steps
                ),
            ));
        }
        if self.step_duration.0 < Duration::from_secs(1) {
            return Err(invalid(
                "max_rate.step_duration",
                "step_duration must be at least 1s (a step's rate and p99 need a few intervals)",
            ));
        }
        if self.p99_bound.0.is_zero() {
            return Err(invalid(
                "max_rate.p99_bound",
                "p99_bound must be longer than 0s",
            ));
        }
        if !(self.precision > 0.0 && self.precision < 1.0) {
            return Err(invalid(
                "max_rate.precision",
                format!("precision = {} must be above 0 and below 1", self.precision),
            ));
        }
        if !s.matrix.is_empty() {
            return Err(invalid(
                "max_rate",
                "max_rate cannot be combined with [matrix] (each step is already a run of its own)",
            ));
        }
        if s.runs > 1 {
            return Err(invalid(
                "max_rate",
                "max_rate runs each step once; set runs = 1",
            ));
        }
        let p = &s.producers;
        if p.messages_each.is_some()
            || p.duration.is_some()
            || p.rate.is_some()
            || p.total_rate.is_some()
        {
            return Err(invalid(
                "max_rate",
                "max_rate sets each step's producers.total_rate and producers.duration \
                 (max_rate.step_duration): remove producers.messages_each, duration, rate and total_rate",
            ));
        }
        if self.step_duration.0 + p.warmup.0 > p.time_limit.0 {
            return Err(invalid(
                "producers.time_limit",
                "time_limit must exceed max_rate.step_duration + warmup",
            ));
        }
        Ok(())
    }
}

/// `[cluster]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cluster {
    /// Number of embedded kbroker processes (ignored with `bootstrap`).
    pub brokers: u32,
    /// `host:port,...` of an existing cluster; the same as `--bootstrap` (which wins).
    pub bootstrap: Option<String>,
    /// `broker.rack` values handed out to embedded brokers in turn.
    pub racks: Vec<String>,
    /// `server.properties` overrides for every embedded broker.
    pub configs: BTreeMap<String, ConfigValue>,
    /// With `brokers` > 1: one replicated cluster (default) or independent single-node brokers.
    pub mode: ClusterMode,
    /// Keep the embedded brokers' log data after a run that passed (a run that failed always
    /// keeps it, for inspection). Off by default: a 1 GiB run at RF 3 leaves 3 GiB behind, and
    /// the dirty pages of one matrix cell would be written back during the next one.
    pub keep_data: bool,
    /// librdkafka settings every client of the cluster gets (probe, admin, producers,
    /// consumers, pipeline workers): security (`security.protocol`, `sasl.*`, `ssl.*`) and the
    /// like. `--client-config FILE` wins over these; the roles' own `client_configs` win over
    /// both.
    pub client_configs: BTreeMap<String, ConfigValue>,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            brokers: 1,
            bootstrap: None,
            racks: Vec::new(),
            configs: BTreeMap::new(),
            mode: ClusterMode::Replicated,
            keep_data: false,
            client_configs: BTreeMap::new(),
        }
    }
}

/// `cluster.mode`: how several embedded brokers relate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterMode {
    /// One cluster, every broker a Raft voter (kbroker's cluster contract).
    #[default]
    Replicated,
    /// Unrelated single-node brokers, each its own cluster.
    Independent,
}

/// `[topic]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Topic {
    /// Topic name; unset = `kbench-<scenario>-<run id>`, unique per run and created fresh.
    pub name: Option<String>,
    /// Partition count.
    pub partitions: i32,
    /// Replication factor.
    pub replication_factor: i16,
    /// Topic configs (`cleanup.policy`, `min.insync.replicas`, ...).
    pub configs: BTreeMap<String, ConfigValue>,
    /// `min.insync.replicas` of the topic (a topic config); unset = the cluster's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_insync_replicas: Option<u32>,
}

impl Default for Topic {
    fn default() -> Self {
        Topic {
            name: None,
            partitions: 8,
            replication_factor: 1,
            configs: BTreeMap::new(),
            min_insync_replicas: None,
        }
    }
}

impl Topic {
    /// The topic configs CreateTopics is given: `configs` plus `min.insync.replicas` from
    /// `min_insync_replicas` (which wins over the same key in `configs`).
    pub fn create_configs(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .configs
            .iter()
            .filter(|(k, _)| {
                !(self.min_insync_replicas.is_some() && k.as_str() == "min.insync.replicas")
            })
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        if let Some(n) = self.min_insync_replicas {
            out.push(("min.insync.replicas".into(), n.to_string()));
        }
        out
    }

    /// `min.insync.replicas` as the scenario sets it (`min_insync_replicas`, else the key in
    /// `configs`); `None` = the cluster's default.
    pub fn min_insync(&self) -> Option<u32> {
        self.min_insync_replicas.or_else(|| {
            self.configs
                .get("min.insync.replicas")
                .and_then(|v| v.0.trim().parse().ok())
        })
    }
}

/// How producers choose message keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Keys {
    /// No key; librdkafka's sticky partitioner spreads batches over partitions.
    None,
    /// A random 8-byte key per message.
    Random,
    /// No key; partition chosen explicitly, message after message, over all partitions.
    RoundRobin,
    /// Keys `key-0` .. `key-<key_set-1>` in turn.
    Fixed,
}

/// What fills the payload after the identity header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PayloadKind {
    /// Random bytes (incompressible).
    Random,
    /// Random bytes for `1/compress_ratio` of the payload, zeros for the rest.
    Compressible,
    /// All zeros.
    Zeros,
}

/// Producer acknowledgement level (`acks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// `acks=0`: fire and forget.
    None,
    /// `acks=1`: the leader wrote it.
    Leader,
    /// `acks=all`: every in-sync replica wrote it.
    All,
}

impl Acks {
    /// The value librdkafka's `acks` takes.
    pub fn as_config(self) -> &'static str {
        match self {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        }
    }
}

impl Serialize for Acks {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_config())
    }
}

impl<'de> Deserialize<'de> for Acks {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = toml::Value::deserialize(d)?;
        match v.to_string().trim_matches('"') {
            "0" => Ok(Acks::None),
            "1" => Ok(Acks::Leader),
            "all" | "-1" => Ok(Acks::All),
            other => Err(de::Error::custom(format!(
                "acks = {other} is not valid; use 0, 1 or \"all\""
            ))),
        }
    }
}

/// Compression codec (`compression.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// No compression.
    None,
    /// gzip.
    Gzip,
    /// snappy.
    Snappy,
    /// lz4.
    Lz4,
    /// zstd.
    Zstd,
}

impl Compression {
    /// The value librdkafka's `compression.type` takes.
    pub fn as_config(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// `[producers]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Producers {
    /// Number of producer tasks, one client instance each.
    pub count: u32,
    /// Messages each producer sends (exclusive with `duration`).
    pub messages_each: Option<u64>,
    /// How long each producer sends (exclusive with `messages_each`).
    pub duration: Option<Dur>,
    /// Payload size per message, identity header included.
    pub message_size: Size,
    /// Key distribution.
    pub keys: Keys,
    /// Number of distinct keys for `keys = "fixed"`.
    pub key_set: u32,
    /// Payload content.
    pub payload: PayloadKind,
    /// Target compression ratio for `payload = "compressible"` (original / compressed).
    pub compress_ratio: f64,
    /// Acknowledgement level.
    pub acks: Acks,
    /// `linger.ms`; unset = librdkafka's default (5 ms).
    pub linger: Option<Dur>,
    /// `batch.size`; unset = librdkafka's default (1 MB).
    pub batch_size: Option<Size>,
    /// Compression codec.
    pub compression: Compression,
    /// `enable.idempotence` (implied by `transactional`).
    pub idempotence: bool,
    /// Transactional producers: each task gets `transactional.id = kbench-<name>-<run id>-p<i>`
    /// and sends in transactions of `messages_per_transaction` messages.
    pub transactional: bool,
    /// Messages per transaction (with `transactional`).
    pub messages_per_transaction: u32,
    /// Share of transactions deliberately aborted, 0.0–1.0 (with `transactional`), spread
    /// evenly and deterministically over each producer's transactions.
    pub abort_ratio: f64,
    /// `transaction.timeout.ms`: how long the broker lets a transaction stay open.
    pub transaction_timeout: Dur,
    /// `max.in.flight.requests.per.connection`; unset = librdkafka's default.
    pub max_in_flight: Option<u32>,
    /// Messages per second for each producer (exclusive with `total_rate`); unset = flat out.
    pub rate: Option<Rate>,
    /// Messages per second over all producers, split evenly.
    pub total_rate: Option<Rate>,
    /// Time at the start excluded from statistics (messages are still verified).
    pub warmup: Dur,
    /// Hard cap on the produce phase; reaching it stops producers and fails the run.
    pub time_limit: Dur,
    /// librdkafka producer settings passed through as is (they win over kbench's own).
    pub client_configs: BTreeMap<String, ConfigValue>,
}

impl Default for Producers {
    fn default() -> Self {
        Producers {
            count: 1,
            messages_each: None,
            duration: None,
            message_size: Size(1024),
            keys: Keys::None,
            key_set: 1000,
            payload: PayloadKind::Random,
            compress_ratio: 2.0,
            acks: Acks::All,
            linger: None,
            batch_size: None,
            compression: Compression::None,
            idempotence: false,
            transactional: false,
            messages_per_transaction: 100,
            abort_ratio: 0.0,
            transaction_timeout: Dur(Duration::from_secs(60)),
            max_in_flight: None,
            rate: None,
            total_rate: None,
            warmup: Dur(Duration::ZERO),
            time_limit: Dur(Duration::from_secs(600)),
            client_configs: BTreeMap::new(),
        }
    }
}

/// When each producer stops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    /// After this many messages.
    Messages(u64),
    /// After this long.
    Duration(Duration),
}

impl Producers {
    /// When each producer stops (`messages_each` default 10,000 when neither key is set).
    pub fn stop(&self) -> Stop {
        match (self.messages_each, self.duration) {
            (Some(n), _) => Stop::Messages(n),
            (None, Some(d)) => Stop::Duration(d.0),
            (None, None) => Stop::Messages(10_000),
        }
    }

    /// Whether the client runs with `enable.idempotence` (set, or implied by `transactional`).
    pub fn idempotent(&self) -> bool {
        self.idempotence || self.transactional
    }

    /// Target messages per second for one producer, if a rate is set.
    pub fn rate_each(&self) -> Option<f64> {
        match (self.rate, self.total_rate) {
            (Some(r), _) => Some(r.0),
            (None, Some(t)) => Some(t.0 / f64::from(self.count.max(1))),
            (None, None) => None,
        }
    }
}

/// `isolation.level`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// Sees every message, including those of open and aborted transactions.
    ReadUncommitted,
    /// Sees committed messages only.
    ReadCommitted,
}

/// How consumers commit offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Commit {
    /// `enable.auto.commit=true`.
    Auto,
    /// Commit synchronously after every poll batch.
    ManualSync,
    /// Commit asynchronously after every poll batch.
    ManualAsync,
    /// Never commit.
    None,
}

/// Where a new group starts (`auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Start {
    /// From the log start.
    Earliest,
    /// From the end at assignment time.
    Latest,
}

/// When the consumer groups start reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Begin {
    /// Subscribed and assigned before the first message is sent (the default).
    WithProducers,
    /// Started once every producer is done: the topic holds a backlog to catch up on (the
    /// catch-up test, OpenMessaging's `consumerBacklogSizeGB`).
    AfterProduce,
}

/// `[consumers]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Consumers {
    /// Number of consumer groups; each reads the whole topic. 0 = produce only.
    pub groups: u32,
    /// Members per group, one client instance each.
    pub members: u32,
    /// Isolation level.
    pub isolation: Isolation,
    /// Commit mode.
    pub commit: Commit,
    /// Start position of a new group.
    pub start: Start,
    /// When the groups start reading: `"with-producers"` or `"after-produce"` (catch-up).
    pub begin: Begin,
    /// With `begin = "after-produce"`: sync, then drop the page cache (`echo 1 >
    /// /proc/sys/vm/drop_caches`, needs root and embedded brokers on this machine) before the
    /// groups start, so the drain reads from disk; the summary says whether it was dropped.
    pub drop_page_cache: bool,
    /// How long consumers may take to reach the end offsets after producers finish.
    pub drain_timeout: Dur,
    /// How long to wait for every partition to be assigned before producing.
    pub assign_timeout: Dur,
    /// librdkafka consumer settings passed through as is.
    pub client_configs: BTreeMap<String, ConfigValue>,
}

impl Default for Consumers {
    fn default() -> Self {
        Consumers {
            groups: 1,
            members: 1,
            isolation: Isolation::ReadCommitted,
            commit: Commit::Auto,
            start: Start::Earliest,
            begin: Begin::WithProducers,
            drop_page_cache: false,
            drain_timeout: Dur(Duration::from_secs(30)),
            assign_timeout: Dur(Duration::from_secs(30)),
            client_configs: BTreeMap::new(),
        }
    }
}

/// The delivery guarantee a run expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    /// No message lost and none duplicated.
    ExactlyOnce,
    /// No acknowledged message lost.
    AtLeastOnce,
    /// No message duplicated.
    AtMostOnce,
    /// Count, but expect nothing.
    None,
    /// At-least-once where the settings promise it, count only elsewhere: resolved when the
    /// scenario is loaded by [`Delivery::resolve`], so it never reaches a run.
    Durable,
}

impl Delivery {
    /// The name as written in scenario files.
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::ExactlyOnce => "exactly-once",
            Delivery::AtLeastOnce => "at-least-once",
            Delivery::AtMostOnce => "at-most-once",
            Delivery::None => "none",
            Delivery::Durable => "durable",
        }
    }

    /// `durable` becomes `at-least-once` when every acknowledged write is on at least two
    /// in-sync replicas (`acks = "all"`, replication factor ≥ 2, `min_insync_replicas` ≥ 2), so
    /// losing one broker cannot lose it; otherwise `none` (the loss is reported, not judged).
    /// Other expectations are returned unchanged.
    pub fn resolve(self, acks: Acks, replication_factor: i16, min_insync: Option<u32>) -> Delivery {
        match self {
            Delivery::Durable
                if acks == Acks::All
                    && replication_factor >= 2
                    && min_insync.is_some_and(|m| m >= 2) =>
            {
                Delivery::AtLeastOnce
            }
            Delivery::Durable => Delivery::None,
            d => d,
        }
    }
}

/// `[verify]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Verify {
    /// Delivery expectation, checked per consumer group.
    pub delivery: Delivery,
    /// Fail when a producer's messages arrive out of order within a partition.
    pub order: bool,
    /// Check per partition that end − start offset equals the acknowledged messages.
    pub offsets: bool,
    /// Check what the logs hold: every in-sync replica of every partition holds exactly its
    /// leader's bytes and the records the run wrote (embedded: the segment files; external:
    /// DescribeLogDirs), and the log dirs grew by what those batches account for.
    pub on_disk: bool,
    /// After the run, read every partition of the producers' topic from the start with one
    /// reader and check that every acknowledged message is still in the log (Jepsen's final
    /// read): a message the groups saw but the log no longer holds is lost all the same.
    pub final_read: bool,
    /// Fail when the achieved produce rate is below 95 % of the target rate.
    pub require_rate: bool,
}

impl Default for Verify {
    fn default() -> Self {
        Verify {
            delivery: Delivery::AtLeastOnce,
            order: false,
            offsets: true,
            on_disk: true,
            final_read: true,
            require_rate: false,
        }
    }
}

/// `[sampling]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sampling {
    /// Interval of the time series and of the system sampler.
    pub interval: Dur,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            interval: Dur(Duration::from_secs(1)),
        }
    }
}

/// Chart format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// PNG charts.
    Png,
    /// SVG charts.
    Svg,
    /// `report.html`.
    Html,
}

/// `[report]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Report {
    /// Which chart/report formats to write (summary.json and CSVs are always written).
    pub formats: Vec<Format>,
}

impl Default for Report {
    fn default() -> Self {
        Report {
            formats: vec![Format::Png, Format::Svg, Format::Html],
        }
    }
}

/// What a pipeline worker does to each record's value (the identity header is kept, its checksum renewed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transform {
    /// The value as read.
    Identity,
    /// ASCII letters after the header upper-cased.
    Uppercase,
}

/// `[pipeline]`: consume-transform-produce, as in the seeds. A group of transform workers reads
/// the producers' topic (`read_committed`), writes each record transformed to the output topic
/// inside a transaction together with its input offsets (`send_offsets_to_transaction`), and
/// commits; the consumer groups then verify the output against what the producers had
/// acknowledged. `kills` is the fault plan: one data structure, executed by one supervisor.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pipeline {
    /// Transform workers: one read_committed consumer (group `kbench-<name>-<run id>-transform`)
    /// and one transactional producer (`transactional.id = kbench-<name>-<run id>-w<i>`) each.
    pub workers: u32,
    /// What a worker does to each value.
    pub transform: Transform,
    /// Most input records per transaction (one poll batch).
    pub messages_per_transaction: u32,
    /// `transaction.timeout.ms` of the workers' producers: how long an open transaction of a
    /// killed worker that is never restarted blocks the output before the broker aborts it.
    pub transaction_timeout: Dur,
    /// Output topic; unset = `<topic>-output`. Same partitions and replication as `[topic]`.
    pub output_topic: Option<String>,
    /// Worker kills, each followed by a restart of the same worker (same transactional id).
    pub kills: Vec<Kill>,
}

impl Default for Pipeline {
    fn default() -> Self {
        Pipeline {
            workers: 2,
            transform: Transform::Uppercase,
            messages_per_transaction: 500,
            transaction_timeout: Dur(Duration::from_secs(30)),
            output_topic: None,
            kills: Vec::new(),
        }
    }
}

/// `[[pipeline.kills]]`: kill one worker (its clients are dropped in the middle of a
/// transaction, without committing or aborting it) and restart it later.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kill {
    /// Worker index (0-based).
    pub worker: u32,
    /// When, counted from the producers' start (exclusive with `after_messages`).
    #[serde(default)]
    pub at: Option<Dur>,
    /// When the pipeline has committed this many input records (exclusive with `at`).
    #[serde(default)]
    pub after_messages: Option<u64>,
    /// How long the worker stays dead before it is restarted with the same transactional id
    /// (whose `init_transactions` fences the dead instance and aborts its open transaction).
    #[serde(default = "default_restart_after")]
    pub restart_after: Dur,
}

fn default_restart_after() -> Dur {
    Dur(Duration::from_secs(1))
}

/// When a kill fires.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KillTrigger {
    /// This long after the producers' start.
    At(Duration),
    /// When the pipeline has committed this many input records.
    AfterMessages(u64),
}

impl Kill {
    /// When this kill fires (validated: exactly one of `at`, `after_messages`).
    pub fn trigger(&self) -> KillTrigger {
        match (self.at, self.after_messages) {
            (Some(d), _) => KillTrigger::At(d.0),
            (None, Some(n)) => KillTrigger::AfterMessages(n),
            (None, None) => KillTrigger::At(Duration::ZERO),
        }
    }
}

impl Pipeline {
    fn validate(&self, s: &Scenario) -> Result<(), Invalid> {
        if self.workers == 0 || self.workers > 64 {
            return Err(invalid(
                "pipeline.workers",
                format!("workers = {} must be 1..=64", self.workers),
            ));
        }
        if self.messages_per_transaction == 0 || self.messages_per_transaction > 100_000 {
            return Err(invalid(
                "pipeline.messages_per_transaction",
                "messages_per_transaction must be 1..=100000",
            ));
        }
        if self.transaction_timeout.0 < Duration::from_secs(1)
            || self.transaction_timeout.0 > Duration::from_secs(900)
        {
            return Err(invalid(
                "pipeline.transaction_timeout",
                "transaction_timeout must be 1s..=15m",
            ));
        }
        if let Some(name) = &self.output_topic {
            if name.is_empty()
                || name.len() > 249
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                || s.topic.name.as_deref() == Some(name.as_str())
            {
                return Err(invalid(
                    "pipeline.output_topic",
                    format!("output_topic \"{name}\" must be a legal Kafka topic name (1-249 of [a-zA-Z0-9._-]) other than topic.name"),
                ));
            }
        }
        for (i, k) in self.kills.iter().enumerate() {
            let key = format!("pipeline.kills[{i}]");
            if k.worker >= self.workers {
                return Err(invalid(
                    &format!("{key}.worker"),
                    format!(
                        "worker = {}: there are {} workers (0..={})",
                        k.worker,
                        self.workers,
                        self.workers - 1
                    ),
                ));
            }
            if k.at.is_some() == k.after_messages.is_some() {
                return Err(invalid(
                    &key,
                    "a kill needs exactly one of at (a duration after the producers start) or after_messages",
                ));
            }
            if k.restart_after.0 > Duration::from_secs(600) {
                return Err(invalid(
                    &format!("{key}.restart_after"),
                    "restart_after must be at most 10m",
                ));
            }
        }
        Ok(())
    }
}

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultAction {
    /// SIGKILL the broker process (embedded), like `kill -9`.
    Kill,
    /// SIGTERM the broker process (embedded): a clean shutdown.
    Stop,
    /// SIGSTOP the broker process, SIGCONT after `duration` (embedded).
    Pause,
    /// Drop a consumer member's client abruptly, without leaving the group or committing.
    KillMember,
    /// Cut the network between brokers (one isolated, or two groups) for `duration`, then
    /// heal it (embedded brokers in network namespaces; needs root).
    Partition,
    /// SIGKILL the broker process (embedded), delete its partition data (its log dirs but for
    /// `meta.properties` and the cluster metadata), and start it again after `restart_after`
    /// (default at once): a data directory lost at reboot while the topic definitions survived.
    Wipe,
}

impl FaultAction {
    /// The name as written in scenario files.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultAction::Kill => "kill",
            FaultAction::Stop => "stop",
            FaultAction::Pause => "pause",
            FaultAction::KillMember => "kill_member",
            FaultAction::Partition => "partition",
            FaultAction::Wipe => "wipe",
        }
    }
}

/// Which broker a fault hits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerRef {
    /// By `node.id` (embedded brokers are numbered 1..=brokers).
    Id(u32),
    /// The leader of a partition at fire time: `"leader:<topic>-<partition>"`, or
    /// `"leader:<partition>"` for the run's own topic (whose name may be generated).
    Leader {
        /// Topic; `None` = the run's topic.
        topic: Option<String>,
        /// Partition.
        partition: i32,
    },
    /// The controller named by Metadata at fire time: `"controller"`.
    Controller,
}

impl std::fmt::Display for BrokerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BrokerRef::Id(id) => write!(f, "{id}"),
            BrokerRef::Leader {
                topic: Some(t),
                partition,
            } => write!(f, "leader:{t}-{partition}"),
            BrokerRef::Leader {
                topic: None,
                partition,
            } => write!(f, "leader:{partition}"),
            BrokerRef::Controller => write!(f, "controller"),
        }
    }
}

impl Serialize for BrokerRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            BrokerRef::Id(id) => s.serialize_u32(*id),
            other => s.serialize_str(&other.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for BrokerRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bad = |v: &str| {
            de::Error::custom(format!(
                "broker = {v} is not valid; use a broker id (1), \"leader:<topic>-<partition>\", \"leader:<partition>\" or \"controller\""
            ))
        };
        match toml::Value::deserialize(d)? {
            toml::Value::Integer(i) => u32::try_from(i)
                .map(BrokerRef::Id)
                .map_err(|_| bad(&i.to_string())),
            toml::Value::String(s) if s == "controller" => Ok(BrokerRef::Controller),
            toml::Value::String(s) => {
                let Some(rest) = s.strip_prefix("leader:") else {
                    return s
                        .parse::<u32>()
                        .map(BrokerRef::Id)
                        .map_err(|_| bad(&format!("\"{s}\"")));
                };
                let (topic, p) = match rest.rsplit_once('-') {
                    Some((t, p)) if !t.is_empty() => (Some(t.to_string()), p),
                    _ => (None, rest),
                };
                let partition = p
                    .parse::<i32>()
                    .ok()
                    .filter(|p| *p >= 0)
                    .ok_or_else(|| bad(&format!("\"{s}\"")))?;
                Ok(BrokerRef::Leader { topic, partition })
            }
            other => Err(bad(&other.to_string())),
        }
    }
}

/// `[[faults]]`: one fault, fired once during the produce phase by the fault supervisor
/// (`crate::fault`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// When, counted from the producers' start (exclusive with `after_messages`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Dur>,
    /// When this many messages have been acknowledged, all producers (exclusive with `at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_messages: Option<u64>,
    /// What to do (optional with `command`, where it only labels the fault).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<FaultAction>,
    /// Target broker of `kill`, `stop`, `pause`; with `command`, what `{broker}` and `{host}`
    /// in the command stand for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<BrokerRef>,
    /// Group index (0-based) of `kill_member`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<u32>,
    /// Member index (0-based) of `kill_member`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<u32>,
    /// How long a `pause` lasts before SIGCONT, or a `partition` before it heals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Dur>,
    /// The two sides of a `partition` (broker ids, every broker in exactly one), instead of
    /// `broker` (which isolates one broker from the others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<Vec<u32>>>,
    /// Which side of a `partition` kbench's clients are on; unset = `"all"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients: Option<FaultClients>,
    /// Restart the killed/stopped broker (same config, port, log dir) or member this long after
    /// the fault; unset = it stays down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_after: Option<Dur>,
    /// A shell command (`sh -c`) that does the fault instead, for external clusters (e.g.
    /// `ssh {host} sudo systemctl kill -s KILL kafka`); its output goes to `faults.log`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Bound on `command`: killed after this long.
    #[serde(default = "default_command_timeout")]
    pub timeout: Dur,
}

/// `clients` of a partition: where kbench's producers, consumers and metadata look-ups are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultClients {
    /// `"all"`: they reach every broker; only links between brokers are cut.
    All,
    /// `0` or `1`: with that side (with `broker`, side 0 is the isolated broker and side 1 the
    /// others), cut off from the other.
    Side(u32),
}

impl Serialize for FaultClients {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            FaultClients::All => s.serialize_str("all"),
            FaultClients::Side(i) => s.serialize_u32(*i),
        }
    }
}

impl<'de> Deserialize<'de> for FaultClients {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match toml::Value::deserialize(d)? {
            toml::Value::String(s) if s == "all" => Ok(FaultClients::All),
            toml::Value::Integer(i @ 0..=1) => Ok(FaultClients::Side(i as u32)),
            other => Err(de::Error::custom(format!(
                "clients = {other} is not valid; use \"all\" (clients reach every broker), 0 or 1 (the side they are on)"
            ))),
        }
    }
}

/// What validation needs to know about the machine kbench runs on (passed in, so tests can
/// state it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host {
    /// Effective user id of kbench.
    pub uid: u32,
}

impl Host {
    /// This process.
    pub fn current() -> Host {
        Host {
            uid: nix::unistd::geteuid().as_raw(),
        }
    }

    /// Whether kbench may make network namespaces and veth pairs.
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }
}

fn default_command_timeout() -> Dur {
    Dur(Duration::from_secs(30))
}

/// When a fault fires.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FaultTrigger {
    /// This long after the producers' start.
    At(Duration),
    /// When this many messages have been acknowledged.
    AfterMessages(u64),
}

impl Fault {
    /// When this fault fires (validated: exactly one of `at`, `after_messages`).
    pub fn trigger(&self) -> FaultTrigger {
        match (self.at, self.after_messages) {
            (Some(d), _) => FaultTrigger::At(d.0),
            (None, Some(n)) => FaultTrigger::AfterMessages(n),
            (None, None) => FaultTrigger::At(Duration::ZERO),
        }
    }

    /// `duration` is set and within 1ms..=10m (pauses and partitions end by themselves).
    fn check_duration(&self, key: &str, message: &str) -> Result<(), Invalid> {
        match self.duration {
            Some(d) if !d.0.is_zero() && d.0 <= Duration::from_secs(600) => Ok(()),
            _ => Err(invalid(&format!("{key}.duration"), message)),
        }
    }

    /// What the fault is called in events and the summary (`kill`, `command`, ...).
    pub fn label(&self) -> &'static str {
        match (self.action, &self.command) {
            (Some(a), _) => a.as_str(),
            (None, _) => "command",
        }
    }

    fn validate(
        &self,
        key: &str,
        s: &Scenario,
        external: bool,
        host: &Host,
    ) -> Result<(), Invalid> {
        if self.at.is_some() == self.after_messages.is_some() {
            return Err(invalid(
                key,
                "a fault needs exactly one of at (a duration after the producers start) or after_messages",
            ));
        }
        if let Some(c) = &self.command {
            if c.trim().is_empty() {
                return Err(invalid(&format!("{key}.command"), "command is empty"));
            }
            if self.timeout.0.is_zero() || self.timeout.0 > Duration::from_secs(600) {
                return Err(invalid(
                    &format!("{key}.timeout"),
                    "timeout must be 1ms..=10m",
                ));
            }
            return Ok(());
        }
        let Some(action) = self.action else {
            return Err(invalid(
                key,
                "a fault needs action = \"kill\" | \"stop\" | \"pause\" | \"kill_member\" | \"partition\" | \"wipe\", or a command",
            ));
        };
        if action == FaultAction::Partition {
            return self.validate_partition(key, s, external, host);
        }
        if self.groups.is_some() || self.clients.is_some() {
            return Err(invalid(
                &format!(
                    "{key}.{}",
                    if self.groups.is_some() {
                        "groups"
                    } else {
                        "clients"
                    }
                ),
                "groups and clients are keys of action = \"partition\"",
            ));
        }
        if self
            .restart_after
            .is_some_and(|d| d.0 > Duration::from_secs(600))
        {
            return Err(invalid(
                &format!("{key}.restart_after"),
                "restart_after must be at most 10m",
            ));
        }
        if action == FaultAction::KillMember {
            let k = &s.consumers;
            let (Some(g), Some(m)) = (self.group, self.member) else {
                return Err(invalid(key, "kill_member needs group and member (0-based)"));
            };
            if g >= k.groups {
                return Err(invalid(
                    &format!("{key}.group"),
                    format!("group = {g}: there are {} consumer group(s)", k.groups),
                ));
            }
            if m >= k.members {
                return Err(invalid(
                    &format!("{key}.member"),
                    format!("member = {m}: groups have {} member(s)", k.members),
                ));
            }
            if self.broker.is_some() || self.duration.is_some() {
                return Err(invalid(
                    key,
                    "kill_member takes group, member and restart_after, not broker or duration",
                ));
            }
            return Ok(());
        }
        if external {
            return Err(invalid(
                &format!("{key}.action"),
                format!(
                    "action = \"{}\" acts on an embedded broker process, but the run is against an external cluster; give the fault a command (e.g. command = \"ssh host sudo systemctl kill -s KILL kafka\")",
                    action.as_str()
                ),
            ));
        }
        let Some(broker) = &self.broker else {
            return Err(invalid(
                key,
                format!("action = \"{}\" needs broker = <id> | \"leader:<topic>-<partition>\" | \"controller\"", action.as_str()),
            ));
        };
        if let BrokerRef::Id(id) = broker {
            if *id == 0 || *id > s.cluster.brokers {
                return Err(invalid(
                    &format!("{key}.broker"),
                    format!(
                        "broker = {id} does not exist: the embedded cluster has broker ids 1..={}",
                        s.cluster.brokers
                    ),
                ));
            }
        }
        match action {
            FaultAction::Pause => {
                if self.restart_after.is_some() {
                    return Err(invalid(
                        &format!("{key}.restart_after"),
                        "a pause ends by itself after duration; restart_after is for kill and stop",
                    ));
                }
                self.check_duration(key, "pause needs duration, 1ms..=10m")?;
            }
            _ => {
                if self.duration.is_some() {
                    return Err(invalid(
                        &format!("{key}.duration"),
                        "duration is for pause and partition; kill, stop and wipe use restart_after",
                    ));
                }
            }
        }
        Ok(())
    }

    /// `action = "partition"`: embedded brokers (in namespaces, so root), `duration`, and
    /// either `broker` or two `groups` holding every broker once.
    fn validate_partition(
        &self,
        key: &str,
        s: &Scenario,
        external: bool,
        host: &Host,
    ) -> Result<(), Invalid> {
        if external {
            return Err(invalid(
                &format!("{key}.action"),
                "action = \"partition\" cuts links between embedded brokers kbench runs in network namespaces, but the run is against an external cluster; give the fault a command that cuts your network (e.g. command = \"ssh {host} sudo iptables -A INPUT -p tcp --dport 9092 -j DROP\")",
            ));
        }
        if !host.is_root() {
            return Err(invalid(
                &format!("{key}.action"),
                format!(
                    "action = \"partition\" needs root: kbench puts each embedded broker in a network namespace of its own (veth pairs, loopback addresses), which only root may make, and kbench runs as uid {}; run it as root (sudo) or remove the fault",
                    host.uid
                ),
            ));
        }
        let n = s.cluster.brokers;
        if n < 2 {
            return Err(invalid(
                "cluster.brokers",
                format!("a partition needs at least 2 embedded brokers, and cluster.brokers = {n}"),
            ));
        }
        if self.restart_after.is_some() || self.group.is_some() || self.member.is_some() {
            return Err(invalid(
                key,
                "a partition takes broker or groups, duration and clients (not restart_after, group or member)",
            ));
        }
        self.check_duration(
            key,
            "partition needs duration (how long until it heals), 1ms..=10m",
        )?;
        match (&self.broker, &self.groups) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(invalid(
                    key,
                    "a partition needs either broker = <id> | \"leader:<topic>-<partition>\" | \"controller\" (isolate that broker) or groups = [[ids], [ids]] (split the cluster in two), not both",
                ))
            }
            (Some(BrokerRef::Id(id)), None) if *id == 0 || *id > n => {
                return Err(invalid(
                    &format!("{key}.broker"),
                    format!(
                        "broker = {id} does not exist: the embedded cluster has broker ids 1..={n}"
                    ),
                ))
            }
            (Some(_), None) => {}
            (None, Some(groups)) => {
                let k = format!("{key}.groups");
                if groups.len() != 2 || groups.iter().any(Vec::is_empty) {
                    return Err(invalid(
                        &k,
                        "groups must be two non-empty lists of broker ids, e.g. groups = [[1], [2, 3]]",
                    ));
                }
                let mut seen: Vec<u32> = groups.iter().flatten().copied().collect();
                seen.sort_unstable();
                if seen != (1..=n).collect::<Vec<u32>>() {
                    return Err(invalid(
                        &k,
                        format!(
                            "groups = {groups:?} must hold every broker id 1..={n} exactly once"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A client or broker config value: TOML strings, integers, floats and booleans are all accepted
/// and handed over as the string Kafka configs take.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigValue(pub String);

impl Serialize for ConfigValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ConfigValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match toml::Value::deserialize(d)? {
            toml::Value::String(s) => Ok(ConfigValue(s)),
            toml::Value::Integer(i) => Ok(ConfigValue(i.to_string())),
            toml::Value::Float(f) => Ok(ConfigValue(f.to_string())),
            toml::Value::Boolean(b) => Ok(ConfigValue(b.to_string())),
            other => Err(de::Error::custom(format!(
                "a config value must be a string, number or boolean, not {}",
                other.type_str()
            ))),
        }
    }
}

/// A relation between keys that does not hold; `key` is the dotted path to point at.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    /// Dotted key path, e.g. `producers.count`.
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

fn invalid(key: &str, message: impl Into<String>) -> Invalid {
    Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

fn one_run() -> u32 {
    1
}

/// Most runs of one run set: each is a whole benchmark run.
pub const MAX_RUNS: u32 = 100;

impl Scenario {
    /// Checks what serde cannot: ranges and relations between keys, on this machine.
    pub fn validate(&self) -> Result<(), Invalid> {
        self.validate_on(&Host::current())
    }

    /// Whether the embedded brokers run in network namespaces: the scenario has a partition.
    pub fn needs_namespaces(&self) -> bool {
        self.faults
            .iter()
            .any(|f| f.action == Some(FaultAction::Partition) && f.command.is_none())
    }

    /// [`Scenario::validate`] for a machine described by `host`.
    pub fn validate_on(&self, host: &Host) -> Result<(), Invalid> {
        if self.name.trim().is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(invalid("name", format!(
                "name \"{}\" must be non-empty and use only letters, digits, '-', '_' and '.' (it names folders and topics)",
                self.name
            )));
        }
        if self.runs == 0 || self.runs > MAX_RUNS {
            return Err(invalid(
                "runs",
                format!("runs = {} must be 1..={MAX_RUNS}", self.runs),
            ));
        }
        let c = &self.cluster;
        if c.brokers == 0 || c.brokers > 64 {
            return Err(invalid(
                "cluster.brokers",
                format!("brokers = {} must be 1..=64", c.brokers),
            ));
        }
        let t = &self.topic;
        if let Some(name) = &t.name {
            if name.is_empty()
                || name.len() > 249
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(invalid("topic.name", format!(
                    "topic name \"{name}\" is not a legal Kafka topic name (1-249 of [a-zA-Z0-9._-])"
                )));
            }
        }
        if t.partitions < 1 || t.partitions > 100_000 {
            return Err(invalid(
                "topic.partitions",
                format!("partitions = {} must be at least 1", t.partitions),
            ));
        }
        if t.replication_factor < 1 {
            return Err(invalid(
                "topic.replication_factor",
                "replication_factor must be at least 1",
            ));
        }
        if c.bootstrap.is_none() && i64::from(t.replication_factor) > i64::from(c.brokers) {
            return Err(invalid(
                "topic.replication_factor",
                format!(
                "replication_factor = {} exceeds the {} embedded broker(s); raise cluster.brokers",
                t.replication_factor, c.brokers
            ),
            ));
        }
        if let Some(m) = t.min_insync_replicas {
            if m < 1 || i64::from(m) > i64::from(t.replication_factor) {
                return Err(invalid(
                    "topic.min_insync_replicas",
                    format!(
                        "min_insync_replicas = {m} must be 1..=replication_factor ({}); with more, no acks=all write could ever succeed",
                        t.replication_factor
                    ),
                ));
            }
        }
        let p = &self.producers;
        if p.count == 0 || p.count > 10_000 {
            return Err(invalid(
                "producers.count",
                format!("count = {} must be 1..=10000", p.count),
            ));
        }
        if p.messages_each.is_some() && p.duration.is_some() {
            return Err(invalid(
                "producers.duration",
                "set either messages_each or duration, not both",
            ));
        }
        if p.messages_each == Some(0) {
            return Err(invalid(
                "producers.messages_each",
                "messages_each must be at least 1",
            ));
        }
        if p.messages_each.is_some_and(|n| n > u64::from(u32::MAX)) {
            return Err(invalid(
                "producers.messages_each",
                "messages_each must be below 2^32 per producer",
            ));
        }
        if let Some(d) = p.duration {
            if d.0.is_zero() {
                return Err(invalid(
                    "producers.duration",
                    "duration must be longer than 0s",
                ));
            }
        }
        if p.message_size.0 < IDENTITY_BYTES {
            return Err(invalid("producers.message_size", format!(
                "is {} B, too small: kbench puts a {IDENTITY_BYTES}-byte identity header in every payload; use at least {IDENTITY_BYTES}B",
                p.message_size.0
            )));
        }
        if p.message_size.0 > 100 << 20 {
            return Err(invalid(
                "producers.message_size",
                "message_size above 100MiB is not supported",
            ));
        }
        if p.keys == Keys::Fixed && p.key_set == 0 {
            return Err(invalid("producers.key_set", "key_set must be at least 1"));
        }
        if !(p.compress_ratio >= 1.0 && p.compress_ratio <= 1000.0) {
            return Err(invalid(
                "producers.compress_ratio",
                "compress_ratio must be between 1.0 and 1000.0",
            ));
        }
        if p.rate.is_some() && p.total_rate.is_some() {
            return Err(invalid(
                "producers.total_rate",
                "set either rate (per producer) or total_rate, not both",
            ));
        }
        if let Some(m) = p.max_in_flight {
            if m == 0 {
                return Err(invalid(
                    "producers.max_in_flight",
                    "max_in_flight must be at least 1",
                ));
            }
            if p.idempotent() && m > 5 {
                return Err(invalid(
                    "producers.max_in_flight",
                    "idempotence (set, or implied by transactional) allows max_in_flight of at most 5",
                ));
            }
        }
        if p.idempotent() && p.acks != Acks::All {
            return Err(invalid(
                "producers.acks",
                if p.transactional {
                    "transactional = true implies idempotence, which requires acks = \"all\"; set producers.acks = \"all\""
                } else {
                    "idempotence requires acks = \"all\""
                },
            ));
        }
        if !(0.0..=1.0).contains(&p.abort_ratio) {
            return Err(invalid(
                "producers.abort_ratio",
                format!(
                    "abort_ratio = {} must be between 0.0 and 1.0",
                    p.abort_ratio
                ),
            ));
        }
        if p.abort_ratio > 0.0 && !p.transactional {
            return Err(invalid(
                "producers.abort_ratio",
                "abort_ratio needs producers.transactional = true (only transactions can be aborted)",
            ));
        }
        if p.messages_per_transaction == 0 || p.messages_per_transaction > 1_000_000 {
            return Err(invalid(
                "producers.messages_per_transaction",
                "messages_per_transaction must be 1..=1000000",
            ));
        }
        if p.transaction_timeout.0 < Duration::from_secs(1)
            || p.transaction_timeout.0 > Duration::from_secs(900)
        {
            return Err(invalid(
                "producers.transaction_timeout",
                "transaction_timeout must be 1s..=15m (Kafka's transaction.max.timeout.ms is 15m)",
            ));
        }
        if p.time_limit.0.is_zero() {
            return Err(invalid(
                "producers.time_limit",
                "time_limit must be longer than 0s",
            ));
        }
        if let Stop::Duration(d) = p.stop() {
            if d + p.warmup.0 > p.time_limit.0 {
                return Err(invalid(
                    "producers.time_limit",
                    "time_limit must exceed duration + warmup",
                ));
            }
        }
        let k = &self.consumers;
        if k.groups > 64 {
            return Err(invalid("consumers.groups", "groups must be at most 64"));
        }
        if k.groups > 0 && (k.members == 0 || k.members > 1024) {
            return Err(invalid("consumers.members", "members must be 1..=1024"));
        }
        if k.groups == 0 && self.verify.delivery != Delivery::None {
            return Err(invalid("verify.delivery", format!(
                "delivery = \"{}\" needs consumers; set consumers.groups ≥ 1 or delivery = \"none\"",
                self.verify.delivery.as_str()
            )));
        }
        if k.begin == Begin::AfterProduce {
            if k.groups == 0 {
                return Err(invalid(
                    "consumers.begin",
                    "begin = \"after-produce\" needs consumers; set consumers.groups ≥ 1",
                ));
            }
            if k.start == Start::Latest {
                return Err(invalid(
                    "consumers.start",
                    "start = \"latest\" with begin = \"after-produce\" would skip the whole backlog; use start = \"earliest\"",
                ));
            }
            if self.pipeline.is_some() || !self.faults.is_empty() {
                return Err(invalid(
                    "consumers.begin",
                    "begin = \"after-produce\" cannot be combined with [pipeline] or [[faults]]",
                ));
            }
        } else if k.drop_page_cache {
            return Err(invalid(
                "consumers.drop_page_cache",
                "drop_page_cache needs begin = \"after-produce\" (the cache is dropped between producing and consuming)",
            ));
        }
        if let Some(m) = &self.max_rate {
            m.validate(self)?;
        }
        if self.verify.require_rate && p.rate_each().is_none() {
            return Err(invalid(
                "verify.require_rate",
                "require_rate needs producers.rate or producers.total_rate",
            ));
        }
        if let Some(pl) = &self.pipeline {
            pl.validate(self)?;
        }
        for (i, f) in self.faults.iter().enumerate() {
            f.validate(
                &format!("faults[{i}]"),
                self,
                self.cluster.bootstrap.is_some(),
                host,
            )?;
        }
        if self.sampling.interval.0 < Duration::from_millis(100) {
            return Err(invalid(
                "sampling.interval",
                "interval must be at least 100ms",
            ));
        }
        Ok(())
    }

    /// The run's fully resolved configuration, for `summary.json`.
    /// The scenario as JSON (for `summary.json`), with secret client settings
    /// (`sasl.password`, ...) masked.
    pub fn resolved(&self) -> serde_json::Value {
        let mut json = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        for section in ["cluster", "producers", "consumers"] {
            if let Some(serde_json::Value::Object(configs)) = json
                .get_mut(section)
                .and_then(|s| s.get_mut("client_configs"))
            {
                for (k, v) in configs.iter_mut() {
                    if is_secret(k) {
                        *v = serde_json::Value::String("****".to_owned());
                    }
                }
            }
        }
        json
    }
}
