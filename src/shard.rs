//! One scenario run as N shards by N kbench processes (on one host or many), so the load can
//! exceed what one client host makes; `kbench merge` ([`crate::merge`]) makes them one report.
//!
//! kbench does not start the processes (a Kubernetes Indexed Job, a CI matrix or ssh does);
//! it makes them one run:
//! - **Deterministic shares.** Shard I of N (1-based, as Playwright and Jest number shards)
//!   takes a contiguous range of the producers and of each group's members ([`share`]); the
//!   producer index written into every message stays global, so identities and
//!   `transactional.id`s are unique across shards. A total rate is split with the producers.
//! - **One run identity.** The run tag, and from it the topic and group names, come from the
//!   run id ([`run_tag`]), so every shard uses the same ones without talking to the others.
//! - **A start barrier on the cluster under test.** Each shard, once set up, writes an
//!   `arrive` record to a one-partition control topic (`<topic>-control`) and reads it until
//!   every shard's record is there; all begin producing at the latest arrival plus a margin,
//!   on the wall clock, which is also t0 of the shared time series. A second barrier (`done`)
//!   holds the drain until every shard has stopped producing, so no consumer stops short of
//!   another shard's messages. A shard missing from a barrier past its bound is named.
//! - **A run folder that merges.** Besides its normal report, each shard writes `shard.json`
//!   ([`ShardRecord`]: who it was, the shared clock, offsets) when it starts and again when it
//!   ends, and its delivery ledgers under `ledger/` in roaring's portable format.
//!
//! Verdicts that need every shard (delivery, offsets, on-disk) are not judged in a shard, only
//! by the merge, which runs the same verifier ([`crate::verify`]) on the merged ledgers.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::ledger::{write_bitmaps, AckLedger, GroupLedger};
use crate::scenario::{Begin, Delivery, Scenario};
use crate::sut::ClusterAccess;

/// File name of a shard's record in its run folder.
pub const SHARD_JSON: &str = "shard.json";
/// Folder of a shard's ledgers in its run folder.
pub const LEDGER_DIR: &str = "ledger";
/// End-to-end latency of messages other shards produced (their clocks), HdrHistogram V2.
pub const E2E_CROSS_HDR: &str = "e2e_cross_latency.hdr";
/// Default bound on waiting for the other shards at a barrier.
pub const DEFAULT_BARRIER_TIMEOUT: Duration = Duration::from_secs(120);
/// Margin between the last arrival and the agreed start, so every shard sees it in time.
const START_MARGIN_US: u64 = 1_000_000;

/// Which shard this process is, of how many, in which run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// 1..=count.
    pub index: u32,
    /// Number of shards.
    pub count: u32,
    /// The run id every shard was given.
    pub run_id: String,
    /// Bound on waiting for the other shards at a barrier.
    pub barrier_timeout: Duration,
}

/// Where the shard settings come from: flags first, then the environment.
#[derive(Debug, Clone, Default)]
pub struct ShardFlags {
    /// `--shard I/N`.
    pub shard: Option<String>,
    /// `--run-id ID`.
    pub run_id: Option<String>,
    /// `--barrier-timeout SECS`.
    pub barrier_timeout_s: Option<u64>,
}

impl Shard {
    /// The shard of this process, if any: `--shard I/N`, else `KBENCH_SHARD=I/N`, else a
    /// Kubernetes Indexed Job's `JOB_COMPLETION_INDEX` (0-based) with `KBENCH_SHARDS=N`; the
    /// run id from `--run-id` or `KBENCH_RUN_ID`.
    pub fn resolve(
        flags: &ShardFlags,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Option<Shard>> {
        let (spec, from) = if let Some(s) = &flags.shard {
            (s.clone(), "--shard".to_string())
        } else if let Some(s) = env("KBENCH_SHARD") {
            (s, "KBENCH_SHARD".to_string())
        } else if let Some(i) = env("JOB_COMPLETION_INDEX") {
            let Some(n) = env("KBENCH_SHARDS") else {
                bail!("JOB_COMPLETION_INDEX={i} is set but KBENCH_SHARDS (the number of shards, the Job's completions) is not");
            };
            let i: u32 = i.trim().parse().with_context(|| {
                format!("JOB_COMPLETION_INDEX={i} is not a number (0-based shard index)")
            })?;
            (
                format!("{}/{}", i + 1, n.trim()),
                "JOB_COMPLETION_INDEX+1 / KBENCH_SHARDS".to_string(),
            )
        } else {
            if flags.run_id.is_some() || flags.barrier_timeout_s.is_some() {
                bail!("--run-id and --barrier-timeout are only for a sharded run: give --shard I/N too");
            }
            return Ok(None);
        };
        let (index, count) = parse_spec(&spec).with_context(|| format!("{from}: {spec:?}"))?;
        let run_id = flags
            .run_id
            .clone()
            .or_else(|| env("KBENCH_RUN_ID"))
            .with_context(|| {
                format!("{from} {spec}: a sharded run needs --run-id ID (or KBENCH_RUN_ID), the same for every shard")
            })?;
        check_run_id(&run_id)?;
        let barrier_timeout = flags
            .barrier_timeout_s
            .map_or(DEFAULT_BARRIER_TIMEOUT, Duration::from_secs);
        Ok(Some(Shard {
            index,
            count,
            run_id,
            barrier_timeout,
        }))
    }

    /// `3/4`.
    pub fn label(&self) -> String {
        format!("{}/{}", self.index, self.count)
    }

    /// The share of `total` items (producers, members of a group) this shard takes: the first
    /// index and how many.
    pub fn share(&self, total: u32) -> (u32, u32) {
        share(total, self.count, self.index)
    }
}

/// `I/N` → (I, N), with 1 ≤ I ≤ N.
fn parse_spec(spec: &str) -> anyhow::Result<(u32, u32)> {
    let (i, n) = spec
        .split_once('/')
        .context("expected I/N, e.g. 2/3 (shard 2 of 3, numbered from 1)")?;
    let i: u32 = i.trim().parse().context("I in I/N is not a number")?;
    let n: u32 = n.trim().parse().context("N in I/N is not a number")?;
    if n == 0 || i == 0 || i > n {
        bail!("shard {i} of {n}: shards are numbered 1..=N with N ≥ 1");
    }
    Ok((i, n))
}

/// A run id names topics and groups: letters, digits, `.`, `_`, `-`, at most 64.
fn check_run_id(id: &str) -> anyhow::Result<()> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        bail!("run id {id:?}: use 1 to 64 letters, digits, '.', '_' or '-' (it names the run's topics and groups)");
    }
    Ok(())
}

/// Shard `index` (1-based) of `shards` gets items `first..first + n` of `total`: the first
/// `total % shards` shards one more than the others.
pub fn share(total: u32, shards: u32, index: u32) -> (u32, u32) {
    let base = total / shards;
    let extra = total % shards;
    let k = index - 1;
    let n = base + u32::from(k < extra);
    let first = k * base + k.min(extra);
    (first, n)
}

/// The run tag (written into every message, naming the topic and groups) of a run id: the
/// same for every shard, odd like the random tags of unsharded runs.
pub fn run_tag(run_id: &str) -> u32 {
    crc32c::crc32c(format!("kbench-run:{run_id}").as_bytes()) | 1
}

/// What a shard runs: its scenario (its share), and what it must know of the whole.
#[derive(Debug, Clone)]
pub struct ShardRun {
    /// Which shard.
    pub shard: Shard,
    /// The scenario as given, before sharding (what the merge verifies against).
    pub whole: Scenario,
    /// Global index of this shard's first producer.
    pub first_producer: u32,
    /// Members per group across all shards.
    pub members_total: u32,
}

impl ShardRun {
    /// This shard's part of `whole`, and the scenario this process runs: its producers, its
    /// members of each group, its part of a total rate; the verdicts that need every shard
    /// (delivery, offsets, on-disk, final read) left to the merge.
    pub fn plan(shard: Shard, whole: &Scenario) -> anyhow::Result<(ShardRun, Scenario)> {
        if !whole.faults.is_empty() {
            bail!("scenario {}: faults are not supported in a sharded run (every shard would fire them)", whole.name);
        }
        if whole.pipeline.is_some() {
            bail!(
                "scenario {}: a pipeline is not supported in a sharded run",
                whole.name
            );
        }
        if whole.max_rate.is_some() {
            bail!("scenario {}: a [max_rate] search is not supported in a sharded run (each step is its own run; search on one host, or shard a run at a fixed producers.total_rate)", whole.name);
        }
        if whole.consumers.begin == Begin::AfterProduce {
            bail!("scenario {}: consumers.begin = \"after-produce\" (catch-up) is not supported in a sharded run (a shard's consumers would start while other shards still produce)", whole.name);
        }
        let (first_producer, producers) = shard.share(whole.producers.count);
        let (_, members) = shard.share(whole.consumers.members);
        let mut s = whole.clone();
        s.producers.count = producers;
        s.consumers.members = members;
        if let (None, Some(total)) = (s.producers.rate, s.producers.total_rate.as_mut()) {
            total.0 = total.0 * f64::from(producers) / f64::from(whole.producers.count.max(1));
        }
        s.verify.delivery = Delivery::None;
        s.verify.offsets = false;
        s.verify.on_disk = false;
        s.verify.final_read = false;
        let run = ShardRun {
            shard,
            whole: whole.clone(),
            first_producer,
            members_total: whole.consumers.members,
        };
        Ok((run, s))
    }

    /// Whether a group is settled as far as this shard can see: every local member holds a
    /// partition when there are enough partitions for every member of every shard.
    pub fn members_settled(&self, local_with_partitions: usize, partitions: i32) -> bool {
        let local = self.shard.share(self.members_total).1 as usize;
        local_with_partitions >= local || self.members_total as i64 > i64::from(partitions)
    }
}

/// Replica sizes of a topic, `((partition, broker id), bytes)`, as DescribeLogDirs gives them.
pub type ReplicaSizes = Vec<((i32, i32), u64)>;

/// A shard's record in its run folder (`shard.json`): written when it starts (`finished`
/// false) and again at the end with the offsets and counters the merge needs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ShardRecord {
    /// The run id.
    pub run_id: String,
    /// 1..=count.
    pub index: u32,
    /// Number of shards.
    pub count: u32,
    /// Host name of the shard's machine.
    pub host: String,
    /// The scenario before sharding (identical in every shard of one run).
    pub scenario: serde_json::Value,
    /// Whether the shard got to the end and wrote its ledgers.
    pub finished: bool,
    /// Global index of the first producer and number of producers of this shard.
    pub producers: (u32, u32),
    /// Members of each group in this shard.
    pub members: u32,
    /// The producers' topic.
    pub topic: String,
    /// The agreed start, µs since the Unix epoch (shared t0 of the time series).
    pub start_wall_us: u64,
    /// The agreed start in this process's run clock, seconds (`t_s` of its time series).
    pub start_t_s: f64,
    /// Partition → (low, high) watermark before producing.
    pub marks_before: BTreeMap<i32, (i64, i64)>,
    /// Partition → (low, high) watermark after every shard produced; empty if unread.
    pub marks_after: BTreeMap<i32, (i64, i64)>,
    /// Messages acknowledged per partition (index = partition).
    pub per_partition: Vec<u64>,
    /// Records of other producers counted per partition (transaction markers, ...).
    pub per_partition_other: Vec<u64>,
    /// Group ids and their ledgers' counters: consumed, duplicated, reordered, foreign,
    /// corrupted.
    pub groups: Vec<(String, [u64; 5])>,
    /// Acknowledged payload bytes per partition (index = partition).
    pub per_partition_bytes: Vec<u64>,
    /// Shard 1 only, with `verify.on_disk`: the brokers' replica sizes of the topic
    /// (DescribeLogDirs) before producing, `((partition, broker), bytes)`, or why not.
    pub log_dirs_before: Option<Result<ReplicaSizes, String>>,
    /// Shard 1 only: the same once every shard has produced and drained.
    pub log_dirs_after: Option<Result<ReplicaSizes, String>>,
    /// Shard 1 only: (partition, leader, replicas, in-sync replicas) after the run.
    pub roles: Vec<(i32, i32, Vec<i32>, Vec<i32>)>,
    /// End-to-end latencies recorded from messages this shard produced itself.
    pub e2e_local: u64,
    /// End-to-end latencies of messages another shard produced (other clock).
    pub e2e_cross: u64,
}

impl ShardRecord {
    /// Writes `shard.json` into `dir`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        let path = dir.join(SHARD_JSON);
        let json = serde_json::to_string_pretty(self)? + "\n";
        std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))
    }

    /// Reads `dir/shard.json`.
    pub fn read(dir: &Path) -> anyhow::Result<ShardRecord> {
        let path = dir.join(SHARD_JSON);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{} is not a shard's run folder (no {SHARD_JSON}: was it run with --shard I/N, and did it get through its set-up: topic, groups, producer clients?)",
                dir.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| format!("{} is not valid", path.display()))
    }
}

/// Writes the ledgers a merge needs into `dir/ledger/`: `acked.roaring`, `aborted.roaring`
/// and `group-<g>.roaring` ([`write_bitmaps`]).
pub fn write_ledgers(
    dir: &Path,
    acks: &AckLedger,
    groups: &[(String, GroupLedger)],
) -> anyhow::Result<()> {
    let d = dir.join(LEDGER_DIR);
    std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    let put = |name: String, bits: &BTreeMap<u32, roaring::RoaringBitmap>| {
        let path = d.join(name);
        let mut bytes = Vec::new();
        write_bitmaps(bits, &mut bytes)?;
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
    };
    put("acked.roaring".into(), &acks.acked)?;
    put("aborted.roaring".into(), &acks.aborted)?;
    for (g, (_, ledger)) in groups.iter().enumerate() {
        put(format!("group-{g}.roaring"), &ledger.received)?;
    }
    Ok(())
}

/// The counters of a group ledger as [`ShardRecord::groups`] keeps them.
pub fn counters(g: &GroupLedger) -> [u64; 5] {
    [
        g.consumed,
        g.duplicated,
        g.reordered,
        g.foreign,
        g.corrupted,
    ]
}

/// The barrier's control topic of a run's topic.
pub fn control_topic(topic: &str) -> String {
    format!("{topic}-control")
}

/// One record on the control topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Arrival {
    kind: String,
    run_id: String,
    index: u32,
    count: u32,
    wall_us: u64,
    host: String,
}

/// Writes this shard's `kind` record (`arrive`, `done`) on the control topic and waits until
/// every shard's is there. Returns the latest arrival, µs since the epoch. Records older than
/// the bound before this call are ignored (a run id used again). A shard missing after the
/// bound, or one that counts the shards differently, is an error naming it.
pub fn barrier(
    cluster: &ClusterAccess,
    control: &str,
    shard: &Shard,
    kind: &str,
) -> anyhow::Result<u64> {
    let bound = shard.barrier_timeout;
    let now = crate::measure::now_us();
    let since = now.saturating_sub(bound.as_micros() as u64 + 60_000_000);
    let me = Arrival {
        kind: kind.into(),
        run_id: shard.run_id.clone(),
        index: shard.index,
        count: shard.count,
        wall_us: now,
        host: sysinfo::System::host_name().unwrap_or_default(),
    };
    let producer: BaseProducer = cluster
        .client(&format!("kbench-shard-{}", shard.index))
        .set("acks", "all")
        .create()
        .context("shard barrier: cannot create the control producer")?;
    let body = serde_json::to_vec(&me)?;
    producer
        .send(BaseRecord::<(), _>::to(control).payload(&body))
        .map_err(|(e, _)| anyhow::anyhow!("shard barrier: cannot write to {control}: {e}"))?;
    producer.flush(Duration::from_secs(10)).with_context(|| {
        format!(
            "shard barrier: {control} did not acknowledge the {kind} record of shard {}",
            shard.label()
        )
    })?;
    let consumer: BaseConsumer = cluster
        .client(&format!("kbench-shard-{}-barrier", shard.index))
        .set("group.id", format!("kbench-barrier-{}", shard.run_id))
        .set("enable.auto.commit", "false")
        .create()
        .context("shard barrier: cannot create the control consumer")?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(control, 0, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + bound;
    let mut seen: BTreeMap<u32, Arrival> = BTreeMap::new();
    while Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let Ok(a) = serde_json::from_slice::<Arrival>(m.payload().unwrap_or_default()) else {
                continue;
            };
            if a.kind != kind || a.run_id != shard.run_id || a.wall_us < since {
                continue;
            }
            if a.count != shard.count {
                bail!(
                    "shard barrier of run {}: shard {}/{} (host {}) counts {} shards, this one (shard {}) {}: give every shard the same N",
                    shard.run_id, a.index, a.count, a.host, a.count, shard.index, shard.count
                );
            }
            seen.insert(a.index, a);
            if seen.len() as u32 == shard.count {
                return Ok(seen.values().map(|a| a.wall_us).max().unwrap_or(now));
            }
        }
    }
    let missing: Vec<String> = (1..=shard.count)
        .filter(|i| !seen.contains_key(i))
        .map(|i| i.to_string())
        .collect();
    bail!(
        "shard barrier ({kind}) of run {}: shard(s) {} of {} did not arrive within {bound:?} (--barrier-timeout)",
        shard.run_id,
        missing.join(", "),
        shard.count
    )
}

/// The agreed start after the `arrive` barrier: the latest arrival plus a margin.
pub fn start_after(latest_arrival_us: u64) -> u64 {
    latest_arrival_us + START_MARGIN_US
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn shares_cover_everything_once() {
        for total in 0..20 {
            for shards in 1..7 {
                let mut next = 0;
                for i in 1..=shards {
                    let (first, n) = share(total, shards, i);
                    assert_eq!(first, next, "total {total} shards {shards} i {i}");
                    next += n;
                }
                assert_eq!(next, total);
            }
        }
        assert_eq!(share(4, 3, 1), (0, 2));
        assert_eq!(share(4, 3, 3), (3, 1));
        assert_eq!(share(1, 3, 2), (1, 0));
    }

    #[test]
    fn shard_from_flags_and_environment() {
        let flags = ShardFlags {
            shard: Some("2/3".into()),
            run_id: Some("r1".into()),
            barrier_timeout_s: None,
        };
        let s = Shard::resolve(&flags, env(&[])).unwrap().unwrap();
        assert_eq!((s.index, s.count, s.run_id.as_str()), (2, 3, "r1"));
        let k8s = [
            ("JOB_COMPLETION_INDEX", "0"),
            ("KBENCH_SHARDS", "4"),
            ("KBENCH_RUN_ID", "job-7"),
        ];
        let s = Shard::resolve(&ShardFlags::default(), env(&k8s))
            .unwrap()
            .unwrap();
        assert_eq!((s.index, s.count, s.run_id.as_str()), (1, 4, "job-7"));
        assert!(Shard::resolve(&ShardFlags::default(), env(&[]))
            .unwrap()
            .is_none());
        let s = Shard::resolve(
            &ShardFlags::default(),
            env(&[("KBENCH_SHARD", "3/3"), ("KBENCH_RUN_ID", "e")]),
        )
        .unwrap()
        .unwrap();
        assert_eq!((s.index, s.count), (3, 3));
    }

    #[test]
    fn bad_shard_settings_are_named() {
        let bad = |shard: &str, run_id: Option<&str>| {
            let flags = ShardFlags {
                shard: Some(shard.into()),
                run_id: run_id.map(Into::into),
                barrier_timeout_s: None,
            };
            format!("{:#}", Shard::resolve(&flags, env(&[])).unwrap_err())
        };
        assert!(bad("4/3", Some("r")).contains("numbered 1..=N"));
        assert!(bad("0/3", Some("r")).contains("numbered 1..=N"));
        assert!(bad("x", Some("r")).contains("expected I/N"));
        assert!(bad("1/3", None).contains("--run-id"));
        assert!(bad("1/3", Some("a b")).contains("run id"));
        let e = Shard::resolve(
            &ShardFlags::default(),
            env(&[("JOB_COMPLETION_INDEX", "1")]),
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("KBENCH_SHARDS"), "{e:#}");
    }

    fn scenario(text: &str) -> Scenario {
        let loaded = crate::scenario::load_str(text, Path::new("t.toml"), &[]).expect("scenario");
        loaded.variants[0].scenario.clone()
    }

    fn shard(index: u32, count: u32) -> Shard {
        Shard {
            index,
            count,
            run_id: "r".into(),
            barrier_timeout: DEFAULT_BARRIER_TIMEOUT,
        }
    }

    #[test]
    fn a_plan_splits_producers_members_and_a_total_rate_and_leaves_verdicts_to_the_merge() {
        let whole = scenario(
            "name = \"t\"\n[producers]\ncount = 5\nmessages_each = 10\ntotal_rate = \"1000/s\"\n\
             [consumers]\ngroups = 2\nmembers = 2\n[verify]\ndelivery = \"exactly-once\"\n",
        );
        let (run, s) = ShardRun::plan(shard(2, 3), &whole).unwrap();
        assert_eq!((run.first_producer, s.producers.count), (2, 2));
        assert_eq!(s.consumers.members, 1);
        assert_eq!(s.producers.rate_each(), whole.producers.rate_each());
        assert_eq!(s.verify.delivery, Delivery::None);
        assert!(!s.verify.offsets && !s.verify.on_disk && !s.verify.final_read);
        // Shard 3 of 3 has no member: it still runs (and joins the barriers).
        let (_, s3) = ShardRun::plan(shard(3, 3), &whole).unwrap();
        assert_eq!((s3.producers.count, s3.consumers.members), (1, 0));
    }

    #[test]
    fn workloads_a_shard_cannot_run_alone_are_refused_by_name() {
        let refused = |toml: &str| {
            let e = ShardRun::plan(shard(1, 2), &scenario(toml)).unwrap_err();
            format!("{e:#}")
        };
        let e = refused(
            "name = \"t\"\n[max_rate]\np99_bound = \"50ms\"\nstart_rate = 100\nceiling = 1000\n",
        );
        assert!(e.contains("[max_rate]"), "{e}");
        let e = refused("name = \"t\"\n[consumers]\nbegin = \"after-produce\"\n");
        assert!(e.contains("after-produce"), "{e}");
    }

    #[test]
    fn the_run_tag_depends_on_the_run_id_only() {
        assert_eq!(run_tag("abc"), run_tag("abc"));
        assert_ne!(run_tag("abc"), run_tag("abd"));
        assert_eq!(run_tag("abc") & 1, 1);
    }
}
