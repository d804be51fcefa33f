//! Fault injection: the scenario's `[[faults]]` become one [`Plan`], a flat list of scheduled
//! steps (kill broker 1 at 3 s, restart it 2 s after that step, resume a paused broker, run a
//! command, drop a consumer member, restart it, cut the network between brokers, heal it), and
//! one [`Supervisor`] executes the steps as their triggers come due. A fault with a restart is
//! two steps, not a code path of its own; so is a partition and its heal.
//!
//! The supervisor is polled by the run's produce loop on the main thread: that is the thread
//! that forks embedded brokers, and `PR_SET_PDEATHSIG` follows the forking thread, so a
//! restarted broker dies with kbench like the first one. Every step is bounded in time
//! (metadata look-ups 5 s, commands their `timeout`) and recorded as an [`Event`] of kind
//! `fault`. After the run, [`Supervisor::finish`] turns what happened into one
//! [`FaultSummary`] per fault, with the time to recover measured on the produce time series
//! and the window in which writes were held up ([`unavailability`]) from the producers'
//! held-up spans.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::measure::HeldUp;
use crate::scenario::{BrokerRef, Fault, FaultAction, FaultClients, FaultTrigger};
use crate::summary::{Event, FaultSummary, IntervalRow, Unavailability};
use crate::sut::netns::{ClientSide, Cut};
use crate::sut::{controller_id, ClusterAccess, Target};

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
    /// SIGKILL a broker and delete its partition data once it has exited (restarted by the
    /// step that follows).
    Wipe(BrokerRef),
    /// `sh -c command`, bounded by `timeout`; `{broker}` and `{host}` in it are replaced by the
    /// id and host of the fault's `broker`, resolved at fire time.
    Command(String, Duration, Option<BrokerRef>),
    /// Drop a consumer member's client abruptly.
    KillMember(u32, u32),
    /// Start the member again (same group, same meter).
    RestartMember(u32, u32),
    /// Cut the network between two sides of the cluster (and the clients from one side).
    Partition(Sides, ClientSide),
    /// Restore what the fault's partition cut.
    Heal,
}

/// The two sides of a partition as the scenario gives them.
#[derive(Debug, Clone, PartialEq)]
enum Sides {
    /// This broker (resolved at fire time) against all the others.
    Isolate(BrokerRef),
    /// These broker ids against those.
    Split([Vec<u32>; 2]),
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
                (None, Some(FaultAction::Partition), b) => {
                    let sides = match (b, &f.groups) {
                        (Some(b), _) => Sides::Isolate(b.clone()),
                        (None, Some(g)) if g.len() == 2 => {
                            Sides::Split([g[0].clone(), g[1].clone()])
                        }
                        // Validation rules these out.
                        _ => continue,
                    };
                    let clients = match f.clients {
                        None | Some(FaultClients::All) => ClientSide::All,
                        Some(FaultClients::Side(i)) => ClientSide::Side(i as usize),
                    };
                    Op::Partition(sides, clients)
                }
                (None, Some(FaultAction::Wipe), Some(b)) => Op::Wipe(b.clone()),
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
                (Op::Partition(..), _, _, Some(d)) => Some((Op::Heal, d.0)),
                (_, Some(FaultAction::Pause), _, Some(d)) => Some((Op::Resume, d.0)),
                (Op::Signal(..), _, Some(r), _) => Some((Op::Restart, r.0)),
                // A wiped broker always comes back: that is the story it tells.
                (Op::Wipe(_), _, r, _) => Some((Op::Restart, r.map_or(Duration::ZERO, |r| r.0))),
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
    /// When the broker or member was started again (or resumed, or the partition healed).
    restarted_at_s: Option<f64>,
    /// Why it could not be carried out.
    failure: Option<String>,
    /// What a partition cut and its heal restores.
    cut: Option<Cut>,
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
            Op::Wipe(b) => {
                let id = self.resolve(b)?;
                let Target::Embedded(c) = &mut *hands.target else {
                    return Err("wipe acts on embedded brokers only; use command".into());
                };
                let (pid, removed) = c.wipe(id, RESTART_WAIT)?;
                self.records[step.fault].broker = Some(id);
                let via = match b {
                    BrokerRef::Id(_) => String::new(),
                    other => format!(", {other}"),
                };
                Ok((
                    format!("broker {id}"),
                    format!(
                        "wipe broker {id} (SIGKILL pid {pid}{via}; {removed} partition director{} deleted)",
                        if removed == 1 { "y" } else { "ies" }
                    ),
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
            Op::Partition(sides, clients) => self.partition(step.fault, sides, *clients, hands),
            Op::Heal => {
                let r = &mut self.records[step.fault];
                let cut = r.cut.take().ok_or("the partition cut nothing")?;
                let Target::Embedded(c) = &mut *hands.target else {
                    return Err("partitions act on embedded brokers only".into());
                };
                c.heal(&cut)?;
                Ok((String::new(), format!("heal partition {}", r.target)))
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

    /// Cuts the network between the two sides (resolving an isolated broker first).
    fn partition(
        &mut self,
        fault: usize,
        sides_given: &Sides,
        clients: ClientSide,
        hands: &mut Hands<'_>,
    ) -> Result<(String, String), String> {
        let (sides, target) = match sides_given {
            Sides::Isolate(b) => {
                let id = self.resolve(b)?;
                let Target::Embedded(c) = &*hands.target else {
                    return Err("partitions act on embedded brokers only".into());
                };
                let others = c.ids().into_iter().filter(|x| *x != id).collect();
                ([vec![id], others], format!("broker {id}"))
            }
            Sides::Split(g) => {
                let target = format!("brokers {} | {}", ids(&g[0]), ids(&g[1]));
                (g.clone(), target)
            }
        };
        let via = match sides_given {
            Sides::Isolate(BrokerRef::Id(_)) | Sides::Split(_) => String::new(),
            Sides::Isolate(other) => format!(" ({other})"),
        };
        let Target::Embedded(c) = &mut *hands.target else {
            return Err("partitions act on embedded brokers only".into());
        };
        let cut = c.partition(&sides, clients, fault)?;
        self.records[fault].cut = Some(cut);
        let isolated = match sides_given {
            Sides::Isolate(_) => format!(" cut off from {}", brokers_label(&sides[1])),
            Sides::Split(_) => ": no traffic between the two sides".to_string(),
        };
        let clients = match clients {
            ClientSide::All => "clients reach every broker".to_string(),
            ClientSide::Side(i) => format!(
                "clients with {} only",
                brokers_label(sides.get(i).map_or(&[][..], Vec::as_slice))
            ),
        };
        Ok((
            target.clone(),
            format!("partition {target}{via}{isolated}; {clients}"),
        ))
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

    /// Ends the supervision: commands still running are killed, paused brokers resumed,
    /// partitions healed, and each fault is summarised against the time series `rows` (produce
    /// throughput from `window_start_s`, the end of the warm-up, until `producers_done_s`) and
    /// the producers' merged held-up spans `held_up` (run clock). Returns the summaries and the
    /// failures (faults that could not be carried out or never fired).
    pub fn finish(
        mut self,
        target: &mut Target,
        rows: &[IntervalRow],
        held_up: &[Span],
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
        // A partition still cut would leave the drain without a whole cluster.
        for (i, r) in self.records.iter_mut().enumerate() {
            if let (Some(cut), Target::Embedded(c)) = (r.cut.take(), &mut *target) {
                let detail = match c.heal(&cut) {
                    Ok(()) => format!("faults[{i}]: partition healed at the end"),
                    Err(e) => format!("faults[{i}]: partition could not be healed: {e}"),
                };
                events.push(Event {
                    t_s,
                    kind: Event::FAULT.into(),
                    detail,
                });
            }
        }
        let fired: Vec<Option<f64>> = self.records.iter().map(|r| r.t_s).collect();
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
            let next = fired
                .iter()
                .flatten()
                .copied()
                .filter(|t| *t > at)
                .reduce(f64::min);
            out.push(FaultSummary {
                t_s: at,
                action: f.label().to_string(),
                target: r.target.clone(),
                restarted_at_s: r.restarted_at_s,
                recovery_s,
                errors: errors_between(&self.snapshots, at, end),
                unavailable: unavailability(held_up, at, next),
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

/// A span of held-up writes on the run clock: [`HeldUp`] with times in seconds since the
/// start of the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span {
    /// Start, seconds since the start of the run.
    pub from_s: f64,
    /// End, seconds since the start of the run.
    pub to_s: f64,
    /// Writes held up.
    pub messages: u64,
    /// Of which failed.
    pub failed: u64,
}

impl Span {
    /// The producers' spans merged and put on the run clock: `t0_us` (µs since the epoch) is
    /// `t0_s` on the run clock.
    pub fn from_held_up(
        spans: impl IntoIterator<Item = HeldUp>,
        t0_us: u64,
        t0_s: f64,
    ) -> Vec<Span> {
        let at = |us: u64| t0_s + (us as f64 - t0_us as f64) / 1e6;
        HeldUp::merge(spans)
            .into_iter()
            .map(|h| Span {
                from_s: at(h.from_us),
                to_s: at(h.to_us),
                messages: h.messages,
                failed: h.failed,
            })
            .collect()
    }
}

/// The window of held-up writes of the fault that fired at `fault_s`: the spans that end after
/// it and begin before the next fault fired (`next_s`), from the first one's start to the last
/// one's end; `None` when no write was held up.
pub fn unavailability(spans: &[Span], fault_s: f64, next_s: Option<f64>) -> Option<Unavailability> {
    let mine: Vec<&Span> = spans
        .iter()
        .filter(|s| s.to_s > fault_s && next_s.is_none_or(|n| s.from_s < n))
        .collect();
    let from_s = mine.iter().map(|s| s.from_s).reduce(f64::min)?;
    let to_s = mine.iter().map(|s| s.to_s).reduce(f64::max)?;
    Some(Unavailability {
        from_s,
        to_s,
        duration_s: to_s - from_s,
        messages: mine.iter().map(|s| s.messages).sum(),
        failed: mine.iter().map(|s| s.failed).sum(),
    })
}

/// `broker 2` or `brokers 1,3`.
fn brokers_label(side: &[u32]) -> String {
    match side {
        [one] => format!("broker {one}"),
        many => format!("brokers {}", ids(many)),
    }
}

fn ids(side: &[u32]) -> String {
    side.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
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

/// One line per fault for the terminal: what, when, restart, recovery, errors.
pub fn terminal_lines(faults: &[FaultSummary]) -> String {
    let mut out = String::new();
    for f in faults {
        let again = if f.action == "partition" {
            "healed"
        } else {
            "restarted"
        };
        let restarted = f
            .restarted_at_s
            .map_or(String::new(), |r| format!(", {again} at {r:.1} s"));
        let unavailable =
            f.unavailable
                .as_ref()
                .map_or("no write held up over 1 s".to_string(), |u| {
                    format!(
                        "writes held up {:.1}–{:.1} s ({:.1} s, {} writes{})",
                        u.from_s,
                        u.to_s,
                        u.duration_s,
                        u.messages,
                        if u.failed > 0 {
                            format!(", {} failed", u.failed)
                        } else {
                            String::new()
                        }
                    )
                });
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
            "fault: {} {} at {:.1} s{restarted}: {unavailable}; {recovery} ({errors})\n",
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
                .contains("faults[0].member = 2: groups have 2 member(s)")
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

    const ROOT: crate::scenario::Host = crate::scenario::Host { uid: 0 };

    fn error_on(faults: &str, host: &crate::scenario::Host) -> String {
        let src = format!("name = \"t\"\n[cluster]\nbrokers = 3\n\n[[faults]]\n{faults}");
        match crate::scenario::load_str_on(&src, Path::new("p.toml"), &[], host) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_partition_and_its_heal_are_two_steps() {
        let s = crate::scenario::load_str_on(
            "name = \"t\"\n[cluster]\nbrokers = 3\n[[faults]]\nat = \"1s\"\naction = \"partition\"\nbroker = \"leader:0\"\nduration = \"4s\"\n[[faults]]\nafter_messages = 10\naction = \"partition\"\ngroups = [[1], [2, 3]]\nclients = 1\nduration = \"2s\"\n",
            Path::new("t.toml"),
            &[],
            &ROOT,
        )
        .unwrap();
        assert!(s.base.needs_namespaces());
        let plan = Plan::new(&s.base.faults);
        assert_eq!(plan.steps.len(), 4);
        assert_eq!(
            plan.steps[0].op,
            Op::Partition(
                Sides::Isolate(BrokerRef::Leader {
                    topic: None,
                    partition: 0
                }),
                ClientSide::All
            )
        );
        assert_eq!(plan.steps[1].op, Op::Heal);
        assert_eq!(
            plan.steps[1].when,
            When::After {
                step: 0,
                delay: Duration::from_secs(4)
            }
        );
        assert_eq!(
            plan.steps[2].op,
            Op::Partition(Sides::Split([vec![1], vec![2, 3]]), ClientSide::Side(1))
        );
        assert_eq!(plan.steps[2].when, When::AfterMessages(10));
        assert_eq!(plan.steps[3].op, Op::Heal);
        // Without a partition nothing changes: the brokers stay on 127.0.0.1.
        let plain = crate::scenario::load_str_on("name = \"t\"\n", Path::new("t.toml"), &[], &ROOT)
            .unwrap();
        assert!(!plain.base.needs_namespaces());
    }

    #[test]
    fn a_partition_is_refused_without_root_with_the_reason() {
        let fault = "at = \"1s\"\naction = \"partition\"\nbroker = 2\nduration = \"3s\"\n";
        assert_eq!(error_on(fault, &ROOT), "");
        let e = error_on(fault, &crate::scenario::Host { uid: 1000 });
        assert!(e.starts_with("p.toml:7:"), "{e}");
        assert!(e.contains("faults[0].action"), "{e}");
        assert!(e.contains("needs root") && e.contains("uid 1000"), "{e}");
    }

    #[test]
    fn partitions_are_validated_with_the_key_at_fault() {
        let on = |f: &str| error_on(f, &ROOT);
        let head = "at = \"1s\"\naction = \"partition\"\n";
        assert!(on(&format!("{head}broker = 2\n")).contains("faults[0].duration"));
        assert!(on(&format!("{head}duration = \"1s\"\n")).contains("either broker"));
        assert!(on(&format!(
            "{head}duration = \"1s\"\nbroker = 1\ngroups = [[1], [2, 3]]\n"
        ))
        .contains("not both"));
        assert!(on(&format!("{head}duration = \"1s\"\nbroker = 4\n"))
            .contains("faults[0].broker = 4: does not exist"));
        assert!(
            on(&format!("{head}duration = \"1s\"\ngroups = [[1], [2]]\n"))
                .contains("every broker id 1..=3 exactly once")
        );
        assert!(
            on(&format!("{head}duration = \"1s\"\ngroups = [[1, 2, 3]]\n"))
                .contains("two non-empty lists")
        );
        assert!(on(&format!(
            "{head}duration = \"1s\"\nbroker = 1\nrestart_after = \"1s\"\n"
        ))
        .contains("not restart_after"));
        assert!(on(&format!(
            "{head}duration = \"1s\"\nbroker = 1\nclients = 2\n"
        ))
        .contains("clients = 2 is not valid"));
        // groups and clients belong to partitions only.
        assert!(
            on("at = \"1s\"\naction = \"kill\"\nbroker = 1\nclients = 0\n")
                .contains("faults[0].clients")
        );
        // One broker has nobody to be cut off from.
        let load =
            |src: &str| match crate::scenario::load_str_on(src, Path::new("p.toml"), &[], &ROOT) {
                Ok(_) => String::new(),
                Err(e) => e.to_string(),
            };
        let fault =
            "[[faults]]\nat = \"1s\"\naction = \"partition\"\nbroker = 1\nduration = \"1s\"\n";
        let e = load(&format!("name = \"t\"\n{fault}"));
        assert!(e.contains("at least 2 embedded brokers"), "{e}");
        // Against an external cluster a partition is refused, whoever runs kbench.
        let e = load(&format!(
            "name = \"t\"\n[cluster]\nbootstrap = \"h:9092\"\n{fault}"
        ));
        assert!(
            e.starts_with("p.toml:6:")
                && e.contains("faults[0].action")
                && e.contains("external cluster"),
            "{e}"
        );
    }

    #[test]
    fn unavailability_spans_belong_to_the_fault_they_follow() {
        let span = |from_s, to_s, messages| Span {
            from_s,
            to_s,
            messages,
            failed: 0,
        };
        let spans = [span(4.9, 9.0, 100), span(9.5, 10.0, 5), span(20.0, 22.0, 7)];
        // Fault at 5 s, the next at 15 s: the first two spans (the first began with a write in
        // flight when the fault fired).
        let u = unavailability(&spans, 5.0, Some(15.0)).unwrap();
        assert_eq!((u.from_s, u.to_s, u.messages), (4.9, 10.0, 105));
        assert!((u.duration_s - 5.1).abs() < 1e-9);
        let u = unavailability(&spans, 15.0, None).unwrap();
        assert_eq!((u.from_s, u.to_s, u.messages), (20.0, 22.0, 7));
        // Nothing held up after a fault at 23 s.
        assert_eq!(unavailability(&spans, 23.0, None), None);
        // Producer spans in µs become run-clock spans, merged.
        let t0_us = 1_000_000_000;
        let held = [
            HeldUp {
                from_us: t0_us + 2_000_000,
                to_us: t0_us + 4_000_000,
                messages: 3,
                failed: 1,
            },
            HeldUp {
                from_us: t0_us + 3_000_000,
                to_us: t0_us + 6_000_000,
                messages: 2,
                failed: 0,
            },
        ];
        let s = Span::from_held_up(held, t0_us, 10.0);
        assert_eq!(
            s,
            [Span {
                from_s: 12.0,
                to_s: 16.0,
                messages: 5,
                failed: 1
            }]
        );
    }

    #[test]
    fn the_terminal_line_shows_the_heal_and_the_window() {
        let f = FaultSummary {
            t_s: 5.0,
            action: "partition".into(),
            target: "broker 2".into(),
            restarted_at_s: Some(17.0),
            recovery_s: Some(11.0),
            unavailable: Some(Unavailability {
                from_s: 5.0,
                to_s: 15.5,
                duration_s: 10.5,
                messages: 4200,
                failed: 0,
            }),
            ..Default::default()
        };
        assert_eq!(
            terminal_lines(&[f]),
            "fault: partition broker 2 at 5.0 s, healed at 17.0 s: writes held up 5.0–15.5 s (10.5 s, 4200 writes); recovered in 11.0 s (no produce errors)\n"
        );
    }
}
