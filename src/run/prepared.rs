//! One run from a prepared output folder to its summary, as a straight line of phases, each a
//! file of this module and each step in it bounded in time:
//!
//! 1. [`setup`](super::setup): the target up, the topic, the consumers subscribed and
//!    assigned, a pipeline's workers initialised, the producers' clients created behind the
//!    start gate, a shard's start barrier;
//! 2. [`produce`](super::produce): the gate opened, then the produce loop (interval rows,
//!    progress, faults fired on schedule, the conditions that stop a run early);
//! 3. [`drain`](super::drain): faults' restarts carried out, a catch-up's groups started,
//!    the consumers drained to the end offsets, every task stopped;
//! 4. [`verification`](super::verification): the counts merged, delivery, offsets, on disk;
//! 5. [`reporting`](super::reporting): the brokers stopped, the summary and report written.
//!
//! [`Run`] is what every phase shares (the cluster, the topic, the tasks and their meters, the
//! events and failures so far); what one phase hands the next is a small type of its own
//! (`Ready` → `Produced` → `Drained` → `Verified`), so each phase's inputs and outputs are in
//! its signature and no phase can run before the one it needs.

use super::*;

/// Runs one scenario into the prepared folder `out`, phase by phase, and returns its summary
/// (already written with the report). An error means the run could not start or its report
/// could not be written.
pub(super) async fn run_prepared(
    s: &Scenario,
    file: &Path,
    matrix_values: &[(String, toml::Value)],
    out: &Path,
    args: &ClusterArgs<'_>,
    interrupt: &Stop,
) -> anyhow::Result<Summary> {
    let (mut run, ready) = Run::set_up(s, out, args, interrupt).await?;
    let mut produced = run.produce(ready).await?;
    let drained = run.drain(&mut produced).await?;
    let verified = run.verify(&produced, drained).await;
    run.report(produced, verified, file, matrix_values).await
}

/// One run under way: what every phase reads and adds to. Fields drop in the order they are
/// declared, so on any early return the tasks are stopped before the brokers go.
pub(super) struct Run<'a> {
    /// The scenario being run.
    pub(super) s: &'a Scenario,
    /// The run's output folder (prepared, so it exists).
    pub(super) out: &'a Path,
    /// Raised by Ctrl-C.
    pub(super) interrupt: &'a Stop,
    /// This process's share of a sharded run; `None` for a whole run.
    pub(super) shard: Option<&'a crate::shard::ShardRun>,
    /// When the run started, for `summary.json`.
    pub(super) started_at: chrono::DateTime<chrono::Utc>,
    /// The run clock's origin: every `t_s` is seconds since this instant.
    pub(super) t0: Instant,
    /// The fault supervisor, when the scenario has faults; taken when the drain ends.
    pub(super) faults: Option<fault::Supervisor>,
    /// The consume-transform-produce pipeline, when the scenario has one.
    pub(super) pipeline: Option<PipelineRun>,
    /// The producer and consumer threads and their stop flags.
    pub(super) tasks: Tasks,
    /// Every consumer member's task, group-major, kept to start members later (a catch-up's
    /// groups, members a fault restarts).
    pub(super) member_tasks: Vec<consumer::MemberTask>,
    /// The interval rows, collected from the meters.
    pub(super) collector: Collector,
    /// One meter per local producer task.
    pub(super) producer_meters: Vec<Arc<ProducerMeter>>,
    /// One list of member meters per consumer group.
    pub(super) group_meters: Vec<Vec<Arc<ConsumerMeter>>>,
    /// The consumer groups' ids, by group index.
    pub(super) group_ids: Vec<String>,
    /// When the warm-up ends (set when the producers start).
    pub(super) warmup_end: Arc<WarmupEnd>,
    /// A shard's record in the run folder (written at the start barrier, finished by the
    /// report); `None` for a whole run.
    pub(super) record: Option<crate::shard::ShardRecord>,
    /// In a sharded run, whether this shard records the replica sizes the merge's on-disk
    /// check uses (shard 1, when the scenario checks on disk).
    pub(super) sizes_by_shard_1: bool,
    /// The system sampler; taken (stopped) when the drain ends.
    pub(super) sampler: Option<Sampler>,
    /// The processes the sampler watches: (label, pid).
    pub(super) watched: Vec<(String, u32)>,
    /// The tag in every message of this run (a shard's is derived from the run id).
    pub(super) run_tag: u32,
    /// The producers' topic.
    pub(super) topic: String,
    /// Partitions of the producers' topic.
    pub(super) partitions: i32,
    /// The topic the groups read: the pipeline's output, or the producers' topic.
    pub(super) consume_topic: String,
    /// Partitions of the topic the groups read.
    pub(super) consume_partitions: i32,
    /// What the cluster held before the producers started.
    pub(super) before: Before,
    /// Clients' access to the cluster (bootstrap servers and shared settings).
    pub(super) cluster: ClusterAccess,
    /// The cluster under test.
    pub(super) target: Target,
    /// What happened, in run-clock order.
    pub(super) events: Vec<Event>,
    /// Every broken expectation so far, one line each; none means passed.
    pub(super) failures: Vec<String>,
}

/// What the cluster held before the producers started: the "before" of the offsets and
/// on-disk checks.
pub(super) struct Before {
    /// The producers' topic's watermarks, by partition: (low, high).
    pub(super) marks: BTreeMap<i32, (i64, i64)>,
    /// The watermarks of the topic the groups read (the producers' topic's without a
    /// pipeline).
    pub(super) consume_marks: BTreeMap<i32, (i64, i64)>,
    /// Bytes under the embedded brokers' log directories; `None` for an external cluster.
    pub(super) disk: Option<u64>,
    /// Without log dirs to walk (an external cluster), the replica sizes the brokers report.
    pub(super) reported: Option<anyhow::Result<BTreeMap<(i32, i32), u64>>>,
}

/// A run's consume-transform-produce pipeline ([`pipeline`]).
pub(super) struct PipelineRun {
    /// The output topic.
    pub(super) output: String,
    /// Partitions of the output topic.
    pub(super) output_partitions: i32,
    /// The workers' shared state.
    pub(super) meter: Arc<PipelineMeter>,
    /// Events the pipeline records (kills, restarts), merged into the run's at the end.
    pub(super) events: Arc<std::sync::Mutex<Vec<Event>>>,
    /// The supervisor thread, once started; it returns the pipeline's outcome.
    pub(super) supervisor: Option<JoinHandle<pipeline::PipelineOutcome>>,
    /// When the producers started, for the pipeline's `at` kills.
    pub(super) produce_start: Arc<std::sync::OnceLock<Instant>>,
    /// Raised once the drain is over.
    pub(super) stop: Stop,
}

impl Run<'_> {
    /// The run clock: seconds since the run started.
    pub(super) fn t_s(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    /// Records a phase boundary now.
    pub(super) fn mark(&mut self, kind: &str, detail: &str) {
        let t_s = self.t_s();
        phase(&mut self.events, t_s, kind, detail);
    }

    /// Whether the groups start only once the producers are done (a catch-up: the backlog
    /// is built first).
    pub(super) fn catch_up(&self) -> bool {
        self.s.consumers.begin == scenario::Begin::AfterProduce
    }

    /// Waits until every group is settled ([`Groups::await_assignment`]).
    pub(super) async fn await_assignment(&mut self) -> anyhow::Result<()> {
        let groups = Groups {
            s: self.s,
            meters: &self.group_meters,
            ids: &self.group_ids,
            topic: &self.consume_topic,
            partitions: self.consume_partitions,
            shard: self.shard,
        };
        groups
            .await_assignment(&mut self.target, self.interrupt)
            .await
    }

    /// Lets the fault supervisor act, when there is one: with `due` = (time since the
    /// producers started, messages acknowledged) it carries out every step due; with `None`
    /// only the follow-ups (restarts, resumes) of faults that fired. A broker it restarts is
    /// then watched by the sampler.
    pub(super) fn poll_faults(&mut self, due: Option<(Duration, u64)>) {
        let t_s = self.t_s();
        let Some(sup) = self.faults.as_mut() else {
            return;
        };
        let mut members = RunMembers {
            templates: &mut self.member_tasks,
            handles: &mut self.tasks.consumers,
            per_group: self.s.consumers.members,
        };
        let mut hands = fault::Hands {
            target: &mut self.target,
            members: &mut members,
        };
        let events = match due {
            Some((since_start, acked)) => sup.poll(since_start, acked, t_s, &mut hands),
            None => sup.poll_follow_ups(t_s, &mut hands),
        };
        self.events.extend(events);
        self.watch_new_processes();
    }

    /// Has the sampler watch every process the target runs that it does not watch yet: a
    /// broker restarted by a fault is a new process (a new pid under the same label), and
    /// without this its CPU and memory would read 0 from the restart on.
    fn watch_new_processes(&mut self) {
        let Some(sampler) = &self.sampler else {
            return;
        };
        for p in self.target.processes() {
            if !self.watched.contains(&p) {
                sampler.watch(p.0.clone(), p.1);
                self.watched.push(p);
            }
        }
    }
}
