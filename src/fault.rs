//! Fault injection: the scenario's `[[faults]]` become one [`Plan`], a flat list of scheduled
//! steps (kill broker 1 at 3 s, restart it 2 s after that step, resume a paused broker, run a
//! command, drop a consumer member, restart it), and one [`Supervisor`] executes the steps as
//! their triggers come due. A fault with a restart is two steps, not a code path of its own.
//!
//! The supervisor is polled by the run's produce loop on the main thread: that is the thread
//! that forks embedded brokers, and `PR_SET_PDEATHSIG` follows the forking thread, so a
//! restarted broker dies with kbench like the first one. Every step is bounded in time
//! (metadata look-ups 5 s, commands their `timeout`) and recorded as an [`Event`] of kind
//! `fault`. After the run, [`Supervisor::finish`] turns what happened into one
//! [`FaultSummary`] per fault, with the time to recover measured on the produce time series.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::scenario::{BrokerRef, Fault, FaultAction, FaultTrigger};
use crate::summary::{Event, FaultSummary, IntervalRow};
use crate::target::{ClusterAccess, Target};

/// Bound on a metadata look-up that resolves `leader:` or `controller`.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on the old process ending before a restart.
const RESTART_WAIT: Duration = Duration::from_secs(5);
/// Throughput back to this share of the pre-fault average counts as recovered.
pub const RECOVERED_SHARE: f64 = 0.9;

/// When a step is due.
#[derive(Debug, Clone, Copy, PartialEq)]
enum When {
    /// This long after the producers' start.
    At(Duration),
    /// When this many messages have been acknowledged.
    AfterMessages(u64),
    /// This long after step `step` was carried out.
    After { step: usize, delay: Duration },
}

/// What a step does.
#[derive(Debug, Clone, PartialEq)]
enum Op {
    /// Send a signal to a broker (kill, stop, pause).
    Signal(BrokerRef, Signal),
    /// SIGCONT to the broker the fault paused.
    Resume,
    /// Start the broker the fault took down again.
    Restart,
    /// `sh -c command`, bounded by `timeout`; `{broker}` and `{host}` in it are replaced by the
    /// id and host of the fault's `broker`, resolved at fire time.
    Command(String, Duration, Option<BrokerRef>),
    /// Drop a consumer member's client abruptly.
    KillMember(u32, u32),
    /// Start the member again (same group, same meter).
    RestartMember(u32, u32),
}

/// One scheduled step of the plan.
#[derive(Debug, Clone)]
struct Step {
    /// Index of the `[[faults]]` entry it belongs to.
    fault: usize,
    /// When it is due.
    when: When,
    /// What it does.
    op: Op,
}

/// The scenario's faults as a list of steps.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    steps: Vec<Step>,
    faults: Vec<Fault>,
}

impl Plan {
    /// Builds the plan of a (validated) scenario's faults.
    pub fn new(faults: &[Fault]) -> Plan {
        let mut steps = Vec::new();
        for (i, f) in faults.iter().enumerate() {
            let when = match f.trigger() {
                FaultTrigger::At(d) => When::At(d),
                FaultTrigger::AfterMessages(n) => When::AfterMessages(n),
            };
            let first = steps.len();
            let op = match (&f.command, f.action, &f.broker) {
                (Some(c), _, b) => Op::Command(c.clone(), f.timeout.0, b.clone()),
                (None, Some(FaultAction::KillMember), _) => {
                    Op::KillMember(f.group.unwrap_or(0), f.member.unwrap_or(0))
                }
                (None, Some(a), Some(b)) => Op::Signal(
                    b.clone(),
                    match a {
                        FaultAction::Kill => Signal::SIGKILL,
                        FaultAction::Stop => Signal::SIGTERM,
                        _ => Signal::SIGSTOP,
                    },
                ),
                // Validation rules these out.
                _ => continue,
            };
            let follow = match (&op, f.action, f.restart_after, f.duration) {
                (Op::Command(..), _, _, _) => None,
                (Op::KillMember(g, m), _, Some(r), _) => Some((Op::RestartMember(*g, *m), r.0)),
                (_, Some(FaultAction::Pause), _, Some(d)) => Some((Op::Resume, d.0)),
                (Op::Signal(..), _, Some(r), _) => Some((Op::Restart, r.0)),
                _ => None,
            };
            steps.push(Step { fault: i, when, op });
            if let Some((op, delay)) = follow {
                steps.push(Step {
                    fault: i,
                    when: When::After { step: first, delay },
                    op,
                });
            }
        }
        Plan {
            steps,
            faults: faults.to_vec(),
        }
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// Starts and drops consumer members for `kill_member` faults (implemented by the run).
pub trait Members {
    /// Drops member `member` of group `group` abruptly.
    fn kill(&mut self, group: u32, member: u32) -> Result<(), String>;
    /// Starts it again.
    fn restart(&mut self, group: u32, member: u32) -> Result<(), String>;
}

/// What the supervisor may act on.
pub struct Hands<'a> {
    /// The cluster (embedded brokers are signalled and restarted through it).
    pub target: &'a mut Target,
    /// The run's consumer members.
    pub members: &'a mut dyn Members,
}

/// What happened to one fault.
#[derive(Debug, Clone, Default)]
struct Record {
    /// When it fired, seconds since the run's start.
    t_s: Option<f64>,
    /// What it hit (`broker 1`, `group 0 member 1`, the command).
    target: String,
    /// Broker id it hit, for the restart/resume step.
    broker: Option<u32>,
    /// When the broker or member was started again (or resumed).
    restarted_at_s: Option<f64>,
    /// Why it could not be carried out.
    failure: Option<String>,
}

/// Executes a [`Plan`].
pub struct Supervisor {
    plan: Plan,
    /// When each step was carried out (producer clock), `None` while pending.
    done: Vec<Option<Instant>>,
    records: Vec<Record>,
    /// Running commands: (fault, child, deadline).
    commands: Vec<(usize, Child, Instant)>,
    /// Cumulative producer errors by kind, snapshotted once per interval: (t_s, errors).
    snapshots: Vec<(f64, BTreeMap<String, u64>)>,
    cluster: ClusterAccess,
    topic: String,
    log: PathBuf,
    probe: Option<BaseConsumer>,
}

impl Supervisor {
    /// A supervisor for `plan` against `cluster`, where `leader:<partition>` means `topic`;
    /// command output goes to `log`.
    pub fn new(plan: Plan, cluster: &ClusterAccess, topic: &str, log: &Path) -> Supervisor {
        Supervisor {
            done: vec![None; plan.steps.len()],
            records: vec![Record::default(); plan.faults.len()],
            plan,
            commands: Vec::new(),
            snapshots: Vec::new(),
            cluster: cluster.clone(),
            topic: topic.to_string(),
            log: log.to_path_buf(),
            probe: None,
        }
    }

    /// Whether every step has been carried out and every command has ended.
    pub fn idle(&self) -> bool {
        self.done.iter().all(Option::is_some) && self.commands.is_empty()
    }

    /// Whether a follow-up (restart, resume) of a fault that fired, or a command, is pending.
    pub fn follow_ups_pending(&self) -> bool {
        !self.commands.is_empty()
            || self
                .plan
                .steps
                .iter()
                .enumerate()
                .any(|(i, s)| match s.when {
                    When::After { step, .. } => self.done[i].is_none() && self.done[step].is_some(),
                    _ => false,
                })
    }

    /// [`Supervisor::poll`] once the producers are done: only follow-ups and commands.
    pub fn poll_follow_ups(&mut self, t_s: f64, hands: &mut Hands<'_>) -> Vec<Event> {
        self.poll(Duration::ZERO, 0, t_s, hands)
    }

    /// Records the producers' cumulative errors by kind at `t_s` (once per interval).
    pub fn snapshot(&mut self, t_s: f64, errors: BTreeMap<String, u64>) {
        self.snapshots.push((t_s, errors));
    }

    /// Carries out every step now due. `since_start` = time since the producers started,
    /// `acked` = messages acknowledged so far, `t_s` = the run clock. Returns the events.
    pub fn poll(
        &mut self,
        since_start: Duration,
        acked: u64,
        t_s: f64,
        hands: &mut Hands<'_>,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        self.poll_commands(t_s, &mut events);
        let now = Instant::now();
        for i in 0..self.plan.steps.len() {
            if self.done[i].is_some() {
                continue;
            }
            let step = self.plan.steps[i].clone();
            let due = match step.when {
                When::At(d) => since_start >= d && !since_start.is_zero(),
                When::AfterMessages(n) => acked >= n,
                When::After { step, delay } => self.done[step].is_some_and(|t| now >= t + delay),
            };
            if !due {
                continue;
            }
            self.done[i] = Some(now);
            // A follow-up of a fault that could not be carried out has nothing to act on.
            if matches!(step.when, When::After { .. }) && self.records[step.fault].failure.is_some()
            {
                continue;
            }
            let label = self.plan.faults[step.fault].label();
            let name = format!("faults[{}]", step.fault);
            match self.execute(&step, hands) {
                Ok((target, detail)) => {
                    let r = &mut self.records[step.fault];
                    if matches!(step.when, When::After { .. }) {
                        r.restarted_at_s = Some(t_s);
                    } else {
                        r.t_s = Some(t_s);
                        r.target = target;
                    }
                    eprintln!("kbench: {name}: {detail}");
                    events.push(Event {
                        t_s,
                        kind: Event::FAULT.into(),
                        detail,
                    });
                }
                Err(e) => {
                    let detail = format!("{name} ({label}) failed: {e}");
                    eprintln!("kbench: {detail}");
                    let r = &mut self.records[step.fault];
                    if r.t_s.is_none() {
                        r.t_s = Some(t_s);
                    }
                    r.failure = Some(detail.clone());
                    events.push(Event {
                        t_s,
                        kind: Event::FAULT.into(),
                        detail,
                    });
                }
            }
        }
        events
    }

    /// Carries out one step: Ok((target, event detail)).
    fn execute(&mut self, step: &Step, hands: &mut Hands<'_>) -> Result<(String, String), String> {
        match &step.op {
            Op::Signal(b, signal) => {
                let id = self.resolve(b)?;
                let Target::Embedded(c) = &mut *hands.target else {
                    return Err("signals act on embedded brokers only; use command".into());
                };
                let pid = c.signal(id, *signal)?;
                self.records[step.fault].broker = Some(id);
                let how = match signal {
                    Signal::SIGKILL => "kill (SIGKILL)",
                    Signal::SIGTERM => "stop (SIGTERM)",
                    _ => "pause (SIGSTOP)",
                };
                let via = match b {
                    BrokerRef::Id(_) => String::new(),
                    other => format!(", {other}"),
                };
                Ok((
                    format!("broker {id}"),
                    format!("{how} broker {id} (pid {pid}{via})"),
                ))
            }
            Op::Resume | Op::Restart => {
                let id = self.records[step.fault]
                    .broker
                    .ok_or("the fault hit no broker")?;
                let Target::Embedded(c) = &mut *hands.target else {
                    return Err("restarts act on embedded brokers only".into());
                };
                if step.op == Op::Resume {
                    let pid = c.signal(id, Signal::SIGCONT)?;
                    Ok((
                        String::new(),
                        format!("resume (SIGCONT) broker {id} (pid {pid})"),
                    ))
                } else {
                    let pid = c.restart(id, RESTART_WAIT)?;
                    Ok((String::new(), format!("restart broker {id} (pid {pid})")))
                }
            }
            Op::Command(template, timeout, broker) => {
                let cmd = match broker {
                    Some(b) => {
                        let id = self.resolve(b)?;
                        let host = self.host_of(id).unwrap_or_default();
                        template
                            .replace("{broker}", &id.to_string())
                            .replace("{host}", &host)
                    }
                    None => template.clone(),
                };
                let cmd = &cmd;
                let mut out = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.log)
                    .map_err(|e| format!("cannot open {}: {e}", self.log.display()))?;
                let _ = writeln!(out, "--- faults[{}]: sh -c {cmd:?}", step.fault);
                let err = out
                    .try_clone()
                    .map_err(|e| format!("cannot open {}: {e}", self.log.display()))?;
                let child = Command::new("sh")
                    .arg("-c")
                    .arg(cmd)
                    .stdin(Stdio::null())
                    .stdout(out)
                    .stderr(err)
                    .spawn()
                    .map_err(|e| format!("cannot run sh -c {cmd:?}: {e}"))?;
                self.commands
                    .push((step.fault, child, Instant::now() + *timeout));
                Ok((cmd.to_string(), format!("command `{cmd}` started")))
            }
            Op::KillMember(g, m) => {
                hands.members.kill(*g, *m)?;
                Ok((
                    format!("group {g} member {m}"),
                    format!("kill_member group {g} member {m} (client dropped without leaving)"),
                ))
            }
            Op::RestartMember(g, m) => {
                hands.members.restart(*g, *m)?;
                Ok((String::new(), format!("restart group {g} member {m}")))
            }
        }
    }

    /// Broker id of a target, via Metadata for `leader:` and `controller`.
    fn resolve(&mut self, b: &BrokerRef) -> Result<u32, String> {
        if self.probe.is_none() {
            let c: BaseConsumer = self
                .cluster
                .client("kbench-faults")
                .set("log_level", "3")
                .create()
                .map_err(|e| format!("cannot create a metadata client: {e}"))?;
            self.probe = Some(c);
        }
        let probe = self.probe.as_ref().ok_or("no metadata client")?;
        match b {
            BrokerRef::Id(id) => Ok(*id),
            BrokerRef::Leader { topic, partition } => {
                let topic = topic.as_deref().unwrap_or(&self.topic);
                let md = probe
                    .fetch_metadata(Some(topic), RESOLVE_TIMEOUT)
                    .map_err(|e| format!("Metadata for {topic}: {e}"))?;
                let leader = md
                    .topics()
                    .iter()
                    .find(|t| t.name() == topic)
                    .and_then(|t| t.partitions().iter().find(|p| p.id() == *partition))
                    .map(|p| p.leader())
                    .ok_or_else(|| format!("Metadata has no partition {topic}-{partition}"))?;
                u32::try_from(leader)
                    .map_err(|_| format!("{topic}-{partition} has no leader (leader {leader})"))
            }
            BrokerRef::Controller => {
                let id = controller_id(probe, RESOLVE_TIMEOUT);
                u32::try_from(id)
                    .map_err(|_| format!("Metadata named no controller within {RESOLVE_TIMEOUT:?}"))
            }
        }
    }

    /// Host of broker `id` as Metadata lists it.
    fn host_of(&self, id: u32) -> Option<String> {
        let md = self
            .probe
            .as_ref()?
            .fetch_metadata(None, RESOLVE_TIMEOUT)
            .ok()?;
        md.brokers()
            .iter()
            .find(|b| i64::from(b.id()) == i64::from(id))
            .map(|b| b.host().to_string())
    }

    fn poll_commands(&mut self, t_s: f64, events: &mut Vec<Event>) {
        let now = Instant::now();
        let mut failed = Vec::new();
        self.commands.retain_mut(|(fault, child, deadline)| {
            let ended = match child.try_wait() {
                Ok(Some(status)) if status.success() => None,
                Ok(Some(status)) => Some(format!("exited with {status}")),
                Ok(None) if now >= *deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    Some("timed out (faults.timeout) and was killed".to_string())
                }
                Ok(None) => return true,
                Err(e) => Some(e.to_string()),
            };
            let detail = match &ended {
                None => format!("faults[{fault}]: command finished (status 0)"),
                Some(why) => format!("faults[{fault}]: command {why}"),
            };
            if ended.is_some() {
                failed.push((*fault, format!("{detail} (output in faults.log)")));
            }
            events.push(Event {
                t_s,
                kind: Event::FAULT.into(),
                detail,
            });
            false
        });
        for (fault, why) in failed {
            self.records[fault].failure = Some(why);
        }
    }

    /// Ends the supervision: commands still running are killed, paused brokers resumed, and
    /// each fault is summarised against the time series `rows` (produce throughput from
    /// `window_start_s`, the end of the warm-up, until `producers_done_s`). Returns the
    /// summaries and the failures (faults that could not be carried out or never fired).
    pub fn finish(
        mut self,
        target: &mut Target,
        rows: &[IntervalRow],
        window_start_s: f64,
        producers_done_s: f64,
        t_s: f64,
    ) -> (Vec<FaultSummary>, Vec<String>, Vec<Event>) {
        let mut events = Vec::new();
        for (fault, mut child, _) in self.commands.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
            events.push(Event {
                t_s,
                kind: Event::FAULT.into(),
                detail: format!("faults[{fault}]: command still running at the end, killed"),
            });
        }
        // A broker still paused would make the shutdown wait for its grace period.
        for (i, s) in self.plan.steps.iter().enumerate() {
            if s.op == Op::Resume && self.done[i].is_none() {
                if let (Some(id), Target::Embedded(c)) =
                    (self.records[s.fault].broker, &mut *target)
                {
                    let _ = c.signal(id, Signal::SIGCONT);
                }
            }
        }
        let mut failures = Vec::new();
        let mut out = Vec::new();
        for (i, f) in self.plan.faults.iter().enumerate() {
            let r = &self.records[i];
            if let Some(why) = &r.failure {
                failures.push(why.clone());
            }
            let Some(at) = r.t_s else {
                failures.push(format!(
                    "faults[{i}] ({}) never fired: the producers finished first",
                    f.label()
                ));
                continue;
            };
            // A consumer fault is measured on what the groups consume, a broker fault on what
            // the producers get acknowledged.
            let rate_of: fn(&IntervalRow) -> u64 = if f.action == Some(FaultAction::KillMember) {
                |r| r.consumed_msgs
            } else {
                |r| r.acked_msgs
            };
            let recovery_s = recovery(rows, at, window_start_s, producers_done_s, rate_of);
            let end = recovery_s.map_or(producers_done_s, |r| at + r);
            out.push(FaultSummary {
                t_s: at,
                action: f.label().to_string(),
                target: r.target.clone(),
                restarted_at_s: r.restarted_at_s,
                recovery_s,
                errors: errors_between(&self.snapshots, at, end),
            });
        }
        (out, failures, events)
    }
}

/// Seconds from the fault at `fault_s` to the end of the first whole interval after it whose
/// message rate (`count` of a row: acknowledged, or consumed for consumer faults) is back to [`RECOVERED_SHARE`] of the average rate between
/// `window_start_s` and the fault; `None` = not recovered before `producers_done_s` (or no
/// pre-fault interval to compare with).
pub fn recovery(
    rows: &[IntervalRow],
    fault_s: f64,
    window_start_s: f64,
    producers_done_s: f64,
    count: fn(&IntervalRow) -> u64,
) -> Option<f64> {
    const EPS: f64 = 1e-6;
    let (mut msgs, mut secs) = (0u64, 0.0);
    for r in rows {
        // An interval that began before the window (the producers' start or the warm-up's
        // end) counts for the part inside it: nothing measured was acknowledged before.
        let start = (r.t_s - r.interval_s).max(window_start_s);
        if r.t_s > window_start_s + EPS && r.t_s <= fault_s + EPS {
            msgs += count(r);
            secs += r.t_s - start;
        }
    }
    if secs <= 0.0 || msgs == 0 {
        return None;
    }
    let before = msgs as f64 / secs;
    rows.iter()
        .filter(|r| r.t_s - r.interval_s >= fault_s - EPS && r.t_s <= producers_done_s + EPS)
        .filter(|r| r.interval_s > 0.0)
        .find(|r| count(r) as f64 / r.interval_s >= RECOVERED_SHARE * before)
        .map(|r| r.t_s - fault_s)
}

/// Errors by kind that happened between two times, from cumulative snapshots (the last
/// snapshot at or before `from` against the first at or after `to`, or the last one).
fn errors_between(
    snapshots: &[(f64, BTreeMap<String, u64>)],
    from: f64,
    to: f64,
) -> BTreeMap<String, u64> {
    let empty = BTreeMap::new();
    let before = snapshots
        .iter()
        .rev()
        .find(|(t, _)| *t <= from)
        .map_or(&empty, |(_, e)| e);
    let after = snapshots
        .iter()
        .find(|(t, _)| *t >= to)
        .or(snapshots.last())
        .map_or(&empty, |(_, e)| e);
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v.saturating_sub(before.get(k).copied().unwrap_or(0));
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

/// The controller's broker id as Metadata names it (-1 when unknown within `timeout`).
pub fn controller_id(client: &BaseConsumer, timeout: Duration) -> i32 {
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: `rd_kafka_controllerid` reads the client's cached metadata (refreshing it within
    // `timeout_ms`); the pointer is the live handle owned by `client`, which outlives the call.
    // rdkafka has no safe wrapper for it and Metadata's safe view omits the controller id.
    #[allow(unsafe_code)]
    unsafe {
        rdkafka::bindings::rd_kafka_controllerid(client.client().native_ptr(), ms)
    }
}

/// One line per fault for the terminal: what, when, restart, recovery, errors.
pub fn terminal_lines(faults: &[FaultSummary]) -> String {
    let mut out = String::new();
    for f in faults {
        let restarted = f
            .restarted_at_s
            .map_or(String::new(), |r| format!(", restarted at {r:.1} s"));
        let recovery = f.recovery_s.map_or("not recovered".to_string(), |r| {
            format!("recovered in {r:.1} s")
        });
        let errors = if f.errors.is_empty() {
            "no produce errors".to_string()
        } else {
            f.errors
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push_str(&format!(
            "fault: {} {} at {:.1} s{restarted}: {recovery} ({errors})\n",
            f.action, f.target, f.t_s
        ));
    }
    out
}

/// A file to log command output to; created at the start so a bad path fails early.
pub fn create_log(path: &Path) -> std::io::Result<()> {
    File::create(path).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(t_s: f64, acked: u64) -> IntervalRow {
        IntervalRow {
            t_s,
            interval_s: 1.0,
            acked_msgs: acked,
            ..Default::default()
        }
    }

    #[test]
    fn recovery_is_the_first_interval_back_at_ninety_percent() {
        let rows = [
            row(1.0, 0),
            row(2.0, 1000),
            row(3.0, 1000),
            row(4.0, 100),
            row(5.0, 0),
            row(6.0, 850),
            row(7.0, 950),
            row(8.0, 1000),
        ];
        // Fault at 3.0: the average before is 1000/s (from 1.0); 7.0 is the first ≥ 900.
        let acked: fn(&IntervalRow) -> u64 = |r| r.acked_msgs;
        assert_eq!(recovery(&rows, 3.0, 1.0, 10.0, acked), Some(4.0));
        // Producers done before it came back: not recovered.
        assert_eq!(recovery(&rows, 3.0, 1.0, 6.5, acked), None);
        // Nothing before the fault to compare with.
        assert_eq!(recovery(&rows, 1.0, 1.0, 10.0, acked), None);
        // The producers started 0.5 s into the first whole interval: its rate counts over 0.5 s.
        let rows = [row(1.0, 500), row(2.0, 0), row(3.0, 1000)];
        assert_eq!(recovery(&rows, 1.0, 0.5, 10.0, acked), Some(2.0));
    }

    #[test]
    fn errors_between_subtracts_snapshots() {
        let s = vec![
            (1.0, BTreeMap::from([("produce:A".to_string(), 1)])),
            (
                2.0,
                BTreeMap::from([("produce:A".to_string(), 4), ("produce:B".to_string(), 2)]),
            ),
            (3.0, BTreeMap::from([("produce:A".to_string(), 9)])),
        ];
        let e = errors_between(&s, 1.5, 2.0);
        assert_eq!(e.get("produce:A"), Some(&3));
        assert_eq!(e.get("produce:B"), Some(&2));
    }

    #[test]
    fn a_kill_with_restart_is_two_steps() {
        let s = crate::scenario::load_str(
            "name = \"t\"\n[[faults]]\nat = \"1s\"\naction = \"kill\"\nbroker = 1\nrestart_after = \"2s\"\n[[faults]]\nafter_messages = 10\naction = \"pause\"\nbroker = \"leader:0\"\nduration = \"1s\"\n",
            Path::new("t.toml"),
            &[],
        )
        .unwrap();
        let plan = Plan::new(&s.base.faults);
        assert_eq!(plan.steps.len(), 4);
        assert_eq!(plan.steps[1].op, Op::Restart);
        assert_eq!(
            plan.steps[1].when,
            When::After {
                step: 0,
                delay: Duration::from_secs(2)
            }
        );
        assert_eq!(plan.steps[3].op, Op::Resume);
    }

    fn error_of(faults: &str) -> String {
        let src =
            format!("name = \"t\"\n[consumers]\ngroups = 1\nmembers = 2\n\n[[faults]]\n{faults}");
        match crate::scenario::load_str(&src, Path::new("t.toml"), &[]) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn faults_are_validated_with_the_key_at_fault() {
        assert!(error_of("action = \"kill\"\nbroker = 1\n").contains("exactly one of at"));
        assert!(error_of("at = \"1s\"\nbroker = 1\n").contains("needs action"));
        assert!(error_of("at = \"1s\"\naction = \"pause\"\nbroker = 1\n")
            .contains("faults[0].duration"));
        assert!(
            error_of("at = \"1s\"\naction = \"kill_member\"\ngroup = 0\nmember = 2\n")
                .contains("faults[0].member: member = 2 but groups have 2 member(s)")
        );
        assert!(
            error_of("at = \"1s\"\naction = \"kill\"\nbroker = \"leader:x\"\n")
                .contains("broker = \"leader:x\" is not valid")
        );
        assert!(error_of("at = \"1s\"\naction = \"kill\"\nbroker = 2\n").contains("t.toml:9:"));
        // A command needs no broker, and is what external clusters accept.
        assert_eq!(
            error_of("at = \"1s\"\ncommand = \"true\"\n[cluster]\nbootstrap = \"h:9092\"\n"),
            ""
        );
        assert!(error_of(
            "at = \"1s\"\naction = \"kill\"\nbroker = 1\n[cluster]\nbootstrap = \"h:9092\"\n"
        )
        .contains("external cluster"));
    }
}
