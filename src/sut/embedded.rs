//! An embedded cluster: `brokers` kbroker processes on free loopback ports, each with its log
//! directory and log file inside the run's output folder.
//!
//! With more than one broker (and [`Mode::Replicated`], the default) the brokers form ONE
//! replicated cluster by kbroker's cluster contract: every broker is a Raft voter
//! (`process.roles=broker,controller`, `controller.quorum.voters=1@127.0.0.1:<cport1>,...`),
//! with two listeners (PLAINTEXT for clients, CONTROLLER for the quorum). The voters list names
//! every controller port, so all ports are allocated before the first broker starts, and a
//! restarted broker keeps its ports (its overrides are kept verbatim). The overrides are built
//! by a pure function, [`broker_overrides`], so their shape is tested without starting anything.
//! [`Mode::Independent`] starts N unrelated single-node brokers (what kbench did before kbroker
//! replicated), which still has uses: comparing one node against a cluster on the same host.
//!
//! kbench re-executes its own binary (`kbench broker --override ...`, a hidden subcommand that
//! runs `kbroker::cli::main`), so the one binary `cargo run --release` builds carries both.
//! Broker processes never outlive kbench: [`EmbeddedCluster`] kills them on drop (normal end,
//! error, panic unwinding); on Linux each child also asks the kernel for `SIGKILL` when its
//! parent dies (`PR_SET_PDEATHSIG`), which covers `kill -9` of kbench and aborts; and the pids
//! are registered so a second Ctrl-C can kill them at once ([`kill_registered`]).
//!
//! With [`Network::Namespaces`] (a scenario with a partition fault) each broker runs in a
//! network namespace of its own ([`super::netns`]) at `127.77.<net>.<10 + id>`, ports 9092 and
//! 9093 like a Kafka broker on its own host; it enters the namespace between fork and exec
//! (`setns` on a descriptor opened before the fork), so it is still kbench's child, with the
//! same pid tracking and `PR_SET_PDEATHSIG`. [`EmbeddedCluster::partition`] and
//! [`EmbeddedCluster::heal`] cut and restore links between them.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::netns::{ClientSide, Cut, Netns};
use super::{wait_for_metadata, ClusterAccess, Listed, TargetError};
use crate::scenario::Scenario;

static PIDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

impl From<crate::scenario::ClusterMode> for Mode {
    fn from(m: crate::scenario::ClusterMode) -> Self {
        match m {
            crate::scenario::ClusterMode::Replicated => Mode::Replicated,
            crate::scenario::ClusterMode::Independent => Mode::Independent,
        }
    }
}

/// Sends SIGKILL to every broker process kbench started and has not yet stopped (used by the
/// second Ctrl-C, which exits at once).
pub fn kill_registered() {
    let pids = PIDS.lock().map(|p| p.clone()).unwrap_or_default();
    for pid in pids {
        if let Ok(pid) = i32::try_from(pid) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn register(pid: u32) {
    if let Ok(mut p) = PIDS.lock() {
        p.push(pid);
    }
}

/// Waits (at most `timeout`) for `child` to exit and reaps it; false if it is still running.
fn exited_within(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return true,
            Ok(None) if Instant::now() >= deadline => return false,
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn unregister(pid: u32) {
    if let Ok(mut p) = PIDS.lock() {
        p.retain(|x| *x != pid);
    }
}

/// One broker process.
#[derive(Debug)]
struct BrokerProcess {
    /// `node.id`.
    id: u32,
    /// Loopback address of its listeners (127.0.0.1, or its namespace's address).
    host: Ipv4Addr,
    /// Port of its client (PLAINTEXT) listener.
    port: u16,
    /// The process (`None` once reaped).
    child: Option<Child>,
    /// Its `log.dirs`.
    data_dir: PathBuf,
    /// Its stdout/stderr.
    log: PathBuf,
    /// How it ended, once it has.
    exited: Option<String>,
    /// Whether [`EmbeddedCluster::reap`] has handed its exit out.
    exit_reaped: bool,
    /// Its command line (`kbench broker --override ...`), to restart it the same way.
    overrides: Vec<(String, String)>,
    /// Set while a fault has taken it down on purpose: its exit is not a failure.
    faulted: bool,
}

impl BrokerProcess {
    /// Records the process's exit status once it has ended (and forgets its pid for the
    /// second Ctrl-C).
    fn check_exit(&mut self) {
        if self.exited.is_some() {
            return;
        }
        if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
            self.exited = Some(status.to_string());
            if let Some(c) = &self.child {
                unregister(c.id());
            }
        }
    }
}

/// A broker process that has ended, as [`EmbeddedCluster::reap`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerExit {
    /// `node.id`.
    pub id: u32,
    /// `host:port` of its client listener.
    pub address: String,
    /// How it ended (`signal: 9 (SIGKILL)`, `exit status: 1`).
    pub status: String,
    /// Whether kbench took it down on purpose (a fault, `kbench cluster kill`/`stop`).
    pub on_purpose: bool,
    /// Its log file (stdout and stderr).
    pub log: PathBuf,
}

/// One broker of a running cluster, as [`EmbeddedCluster::status`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BrokerStatus {
    /// `node.id`.
    pub id: u32,
    /// `host:port` of its client listener.
    pub address: String,
    /// Its `broker.rack`, if it has one.
    pub rack: Option<String>,
    /// Its pid while its process runs; `None` once it has ended.
    pub pid: Option<u32>,
}

/// What to start: the scenario's `[cluster]`, or `kbench cluster up`'s flags.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    /// Number of brokers (ids 1..=brokers).
    pub brokers: u32,
    /// `broker.rack` values handed out in turn.
    pub racks: Vec<String>,
    /// `server.properties` overrides for every broker (applied last: they win).
    pub configs: Vec<(String, String)>,
    /// Port of broker 1 (broker i gets base + i - 1; in a replicated cluster its controller
    /// listener gets base + brokers + i - 1); `None` = free ports.
    pub base_port: Option<u16>,
    /// One replicated cluster or independent brokers (only matters with more than one broker).
    pub mode: Mode,
    /// Where the brokers' listeners live.
    pub network: Network,
}

/// Where embedded brokers listen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Network {
    /// kbench's own namespace, free ports on 127.0.0.1 (the default).
    #[default]
    Loopback,
    /// A network namespace per broker, joined by veth pairs to a bridge (needs root): what
    /// partition faults cut.
    Namespaces,
}

/// How several embedded brokers relate to each other.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// One cluster: every broker a Raft voter of the same quorum (the default).
    #[default]
    Replicated,
    /// Unrelated single-node brokers, each its own cluster (no cluster keys are passed).
    Independent,
}

impl Spec {
    /// Whether the brokers are started as one replicated cluster: more than one broker and
    /// [`Mode::Replicated`]. A single broker is always started exactly as before.
    pub fn replicated(&self) -> bool {
        self.brokers > 1 && self.mode == Mode::Replicated
    }
}

/// The loopback address and ports of one broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerPorts {
    /// Address of both listeners: 127.0.0.1, or the broker's own in its namespace.
    pub host: Ipv4Addr,
    /// Client listener (`PLAINTEXT://<host>:<kafka>`).
    pub kafka: u16,
    /// Raft listener (`CONTROLLER://<host>:<controller>`); unused outside a replicated
    /// cluster.
    pub controller: u16,
}

/// Client port of a broker alone in its namespace (Kafka's default).
const NAMESPACE_KAFKA_PORT: u16 = 9092;
/// Raft port of a broker alone in its namespace.
const NAMESPACE_CONTROLLER_PORT: u16 = 9093;

/// Addresses and ports of brokers in namespaces: each has its own address, so all use the
/// same two ports.
fn namespace_ports(spec: &Spec, net: &Netns) -> Vec<BrokerPorts> {
    (1..=spec.brokers)
        .map(|id| BrokerPorts {
            host: net.broker_addr(id),
            kafka: NAMESPACE_KAFKA_PORT,
            controller: if spec.replicated() {
                NAMESPACE_CONTROLLER_PORT
            } else {
                0
            },
        })
        .collect()
}

/// The ports of every broker, broker 1 first, on 127.0.0.1: from `spec.base_port`, or free
/// loopback ports (bound, read and released, so they are known before any broker starts).
pub fn allocate_ports(spec: &Spec) -> Result<Vec<BrokerPorts>, TargetError> {
    let n = spec.brokers;
    match spec.base_port {
        Some(p) => {
            let port = |offset: u32| {
                u16::try_from(u32::from(p) + offset).map_err(|_| {
                    TargetError::Io(format!(
                        "--port {p} + {offset} is beyond 65535; choose a lower --port"
                    ))
                })
            };
            (0..n)
                .map(|i| {
                    Ok(BrokerPorts {
                        host: Ipv4Addr::LOCALHOST,
                        kafka: port(i)?,
                        controller: if spec.replicated() { port(n + i)? } else { 0 },
                    })
                })
                .collect()
        }
        None => {
            // Keep every probe socket open until all ports are chosen, so no two brokers (or
            // listeners) are handed the same port.
            let mut held = Vec::new();
            let mut grab = || -> Result<u16, TargetError> {
                let l = TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr().map(|a| (l, a.port())))
                    .map_err(|e| {
                        TargetError::Io(format!("cannot find a free loopback port: {e}"))
                    })?;
                held.push(l.0);
                Ok(l.1)
            };
            let mut out = Vec::new();
            for _ in 0..n {
                let kafka = grab()?;
                let controller = if spec.replicated() { grab()? } else { 0 };
                out.push(BrokerPorts {
                    host: Ipv4Addr::LOCALHOST,
                    kafka,
                    controller,
                });
            }
            Ok(out)
        }
    }
}

/// Replication factor kbench gives the internal topics and the broker default for a cluster
/// of `brokers`: `min(3, brokers)`, as a production cluster of that size would use.
pub fn cluster_replication_factor(brokers: u32) -> u32 {
    brokers.clamp(1, 3)
}

/// The `--override` list of broker `id` (1-based): node id, listeners, log dir and, in a
/// replicated cluster, kbroker's cluster contract (roles, controller listener, the voters of
/// every broker, replication defaults); then its rack (handed out in turn) and `spec.configs`,
/// which come last so a scenario can change any of them.
pub fn broker_overrides(
    spec: &Spec,
    id: u32,
    ports: &[BrokerPorts],
    data_dir: &Path,
) -> Vec<(String, String)> {
    let i = (id as usize).saturating_sub(1);
    let own = ports.get(i).copied().unwrap_or(BrokerPorts {
        host: Ipv4Addr::LOCALHOST,
        kafka: 0,
        controller: 0,
    });
    let host = own.host;
    let mut o: Vec<(String, String)> = vec![("node.id".into(), id.to_string())];
    if spec.replicated() {
        let voters = ports
            .iter()
            .enumerate()
            .map(|(j, p)| format!("{}@{}:{}", j + 1, p.host, p.controller))
            .collect::<Vec<_>>()
            .join(",");
        let rf = cluster_replication_factor(spec.brokers).to_string();
        o.extend([
            ("process.roles".into(), "broker,controller".into()),
            (
                "listeners".into(),
                format!(
                    "PLAINTEXT://{host}:{},CONTROLLER://{host}:{}",
                    own.kafka, own.controller
                ),
            ),
            (
                "advertised.listeners".into(),
                format!("PLAINTEXT://{host}:{}", own.kafka),
            ),
            ("controller.listener.names".into(), "CONTROLLER".into()),
            ("controller.quorum.voters".into(), voters),
            ("default.replication.factor".into(), rf.clone()),
            ("offsets.topic.replication.factor".into(), rf.clone()),
            ("transaction.state.log.replication.factor".into(), rf),
            // Kafka's own default, said out loud: a leader is only ever elected from the ISR.
            ("unclean.leader.election.enable".into(), "false".into()),
        ]);
    } else {
        o.extend([
            (
                "listeners".into(),
                format!("PLAINTEXT://{host}:{}", own.kafka),
            ),
            (
                "advertised.listeners".into(),
                format!("PLAINTEXT://{host}:{}", own.kafka),
            ),
        ]);
    }
    o.extend([
        ("log.dirs".into(), data_dir.display().to_string()),
        // Not Kafka's 3 s wait for more members before the first rebalance of a new group,
        // nor the 0 of the server.properties Kafka ships: with 0 the first member to join
        // forms the group alone, the others' joins a few ms later start a second rebalance, and
        // the first member only hears of it at its next heartbeat (librdkafka's
        // heartbeat.interval.ms, 3 s) when their joins straddle that rebalance. 100 ms (each
        // join within it extends it by as much) gathers members that start together, whose
        // joins arrive within milliseconds, into one rebalance (a scenario's cluster.configs
        // may set it).
        ("group.initial.rebalance.delay.ms".into(), "100".into()),
    ]);
    if !spec.racks.is_empty() {
        o.push((
            "broker.rack".into(),
            spec.racks[i % spec.racks.len()].clone(),
        ));
    }
    // Scenario configs win: replace a key kbench set rather than passing it twice.
    for (k, v) in &spec.configs {
        match o.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v.clone(),
            None => o.push((k.clone(), v.clone())),
        }
    }
    o
}

/// Broker processes started by kbench; dropping this stops them.
#[derive(Debug)]
pub struct EmbeddedCluster {
    brokers: Vec<BrokerProcess>,
    /// kbench's own binary, which brokers run as.
    exe: PathBuf,
    /// The brokers' namespaces ([`Network::Namespaces`]); removed after the brokers stop
    /// (fields drop after [`Drop::drop`] has stopped them).
    network: Option<Netns>,
}

impl EmbeddedCluster {
    /// Starts the scenario's brokers under `<out>/brokers/<id>/` and waits (at most `timeout`)
    /// until every one answers Metadata.
    pub fn start(
        s: &Scenario,
        out: &Path,
        timeout: Duration,
    ) -> Result<EmbeddedCluster, TargetError> {
        let spec = Spec {
            brokers: s.cluster.brokers,
            racks: s.cluster.racks.clone(),
            configs: s
                .cluster
                .configs
                .iter()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect(),
            base_port: None,
            mode: s.cluster.mode.into(),
            network: if s.needs_namespaces() {
                Network::Namespaces
            } else {
                Network::Loopback
            },
        };
        Self::start_spec(&spec, out, timeout)
    }

    /// Starts `spec.brokers` brokers under `<out>/brokers/<id>/` and waits (at most `timeout`)
    /// until every one answers Metadata.
    pub fn start_spec(
        spec: &Spec,
        out: &Path,
        timeout: Duration,
    ) -> Result<EmbeddedCluster, TargetError> {
        let exe = std::env::current_exe().map_err(|e| {
            TargetError::Io(format!(
                "cannot find kbench's own binary to start brokers: {e}"
            ))
        })?;
        let mut cluster = EmbeddedCluster {
            brokers: Vec::new(),
            exe: exe.clone(),
            network: None,
        };
        let ports = match spec.network {
            Network::Loopback => allocate_ports(spec)?,
            Network::Namespaces => {
                let dir = out.join("brokers");
                std::fs::create_dir_all(&dir).map_err(|e| {
                    TargetError::Io(format!("cannot create {}: {e}", dir.display()))
                })?;
                let net = Netns::create(spec.brokers, &dir.join("network.log"))?;
                let ports = namespace_ports(spec, &net);
                cluster.network = Some(net);
                ports
            }
        };
        for (i, port) in ports.iter().enumerate() {
            let id = i as u32 + 1;
            let dir = out.join("brokers").join(id.to_string());
            let data_dir = dir.join("data");
            std::fs::create_dir_all(&data_dir).map_err(|e| {
                TargetError::Io(format!("cannot create {}: {e}", data_dir.display()))
            })?;
            let log = dir.join("broker.log");
            File::create(&log)
                .map_err(|e| TargetError::Io(format!("cannot create {}: {e}", log.display())))?;
            let overrides = broker_overrides(spec, id, &ports, &data_dir);
            let netns = cluster.open_netns(id)?;
            let child = spawn(&exe, id, &overrides, &log, netns)?;
            // For people (and tests) who want to find or signal one broker.
            let _ = std::fs::write(dir.join("pid"), format!("{}\n", child.id()));
            cluster.brokers.push(BrokerProcess {
                id,
                host: port.host,
                port: port.kafka,
                child: Some(child),
                data_dir,
                log,
                exited: None,
                exit_reaped: false,
                overrides,
                faulted: false,
            });
        }
        for i in 0..cluster.brokers.len() {
            let b = &cluster.brokers[i];
            let (id, bootstrap) = (b.id, format!("{}:{}", b.host, b.port));
            let what = format!("embedded broker {id}");
            let access = ClusterAccess::plaintext(&bootstrap);
            wait_for_metadata(&access, timeout, &what, Listed::AtLeast(1), || {
                cluster.start_failure(i)
            })?;
        }
        if spec.replicated() {
            // Each broker answers once it has joined; the cluster is ready for topics when
            // Metadata lists every broker.
            let bootstrap = cluster.bootstrap();
            let what = format!("the embedded cluster of {} brokers", spec.brokers);
            let access = ClusterAccess::plaintext(&bootstrap);
            wait_for_metadata(
                &access,
                timeout,
                &what,
                Listed::AtLeast(spec.brokers),
                || (0..cluster.brokers.len()).find_map(|i| cluster.start_failure(i)),
            )?;
        }
        Ok(cluster)
    }

    /// Number of brokers.
    pub fn len(&self) -> usize {
        self.brokers.len()
    }

    /// Whether the cluster has no brokers.
    pub fn is_empty(&self) -> bool {
        self.brokers.is_empty()
    }

    /// `host:port,...` (`127.0.0.1:port`, or each broker's address in its namespace).
    pub fn bootstrap(&self) -> String {
        self.brokers
            .iter()
            .map(|b| format!("{}:{}", b.host, b.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// (label, pid) of each running broker.
    pub fn processes(&self) -> Vec<(String, u32)> {
        self.brokers
            .iter()
            .filter_map(|b| {
                b.child
                    .as_ref()
                    .map(|c| (format!("broker-{}", b.id), c.id()))
            })
            .collect()
    }

    /// Each broker's `log.dirs`.
    pub fn log_dirs(&self) -> Vec<PathBuf> {
        self.brokers.iter().map(|b| b.data_dir.clone()).collect()
    }

    /// Broker `id`'s network namespace, opened for its (re)start; `None` on loopback.
    fn open_netns(&self, id: u32) -> Result<Option<File>, TargetError> {
        self.network
            .as_ref()
            .map(|n| {
                n.open(id).map_err(|e| {
                    TargetError::Io(format!(
                        "cannot open the network namespace {} of broker {id}: {e}",
                        n.name(id)
                    ))
                })
            })
            .transpose()
    }

    /// Every broker id, in order.
    pub fn ids(&self) -> Vec<u32> {
        self.brokers.iter().map(|b| b.id).collect()
    }

    /// Cuts the links between `sides` (broker ids), and between the clients and the side they
    /// are not on (`clients`); `fault` numbers the rules (see [`Netns::cut`]). Only with
    /// [`Network::Namespaces`].
    pub fn partition(
        &mut self,
        sides: &[Vec<u32>; 2],
        clients: ClientSide,
        fault: usize,
    ) -> Result<Cut, String> {
        let net = self.network.as_ref().ok_or(
            "the brokers are not in network namespaces (they are when the scenario has a partition fault)",
        )?;
        net.cut(sides, clients, fault)
    }

    /// Restores what [`EmbeddedCluster::partition`] cut.
    pub fn heal(&mut self, cut: &Cut) -> Result<(), String> {
        match &self.network {
            Some(net) => net.heal(cut),
            None => Err("the brokers are not in network namespaces".into()),
        }
    }

    fn start_failure(&mut self, i: usize) -> Option<TargetError> {
        let b = &mut self.brokers[i];
        let status = b.child.as_mut()?.try_wait().ok()??;
        Some(TargetError::Exited {
            id: b.id,
            status: status.to_string(),
            log: b.log.display().to_string(),
            tail: tail(&b.log, 20),
        })
    }

    /// Broker `id`, or an error naming it.
    fn broker_mut(&mut self, id: u32) -> Result<&mut BrokerProcess, String> {
        self.brokers
            .iter_mut()
            .find(|b| b.id == id)
            .ok_or_else(|| format!("there is no embedded broker {id}"))
    }

    /// Sends `signal` to broker `id` (a fault); for SIGKILL and SIGTERM the broker is marked
    /// as down on purpose, so its exit is not reported as a failure. Returns its pid.
    pub fn signal(&mut self, id: u32, signal: nix::sys::signal::Signal) -> Result<u32, String> {
        use nix::sys::signal::Signal;
        let b = self.broker_mut(id)?;
        let Some(child) = b.child.as_mut() else {
            return Err(format!("embedded broker {id} is not running"));
        };
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "embedded broker {id} has already exited ({status})"
            ));
        }
        let pid = child.id();
        if matches!(signal, Signal::SIGKILL | Signal::SIGTERM) {
            b.faulted = true;
        }
        let raw = i32::try_from(pid).map_err(|_| format!("pid {pid} out of range"))?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), signal).map_err(|e| {
            format!("cannot send {signal} to embedded broker {id} (pid {pid}): {e}")
        })?;
        Ok(pid)
    }

    /// Wipes broker `id` (the `wipe` fault): SIGKILL, wait (at most `timeout`) until it has
    /// exited, then delete every partition directory (`<topic>-<n>`) under its log dir. Its
    /// `meta.properties` and the cluster metadata (`__cluster_metadata-0`) stay, so it comes
    /// back knowing the topics but holding none of their data. Returns the pid and how many
    /// directories were deleted; [`EmbeddedCluster::restart`] starts it again.
    pub fn wipe(&mut self, id: u32, timeout: Duration) -> Result<(u32, usize), String> {
        let pid = self.signal(id, nix::sys::signal::Signal::SIGKILL)?;
        let b = self.broker_mut(id)?;
        if let Some(mut old) = b.child.take() {
            if !exited_within(&mut old, timeout) {
                b.child = Some(old);
                return Err(format!(
                    "embedded broker {id} (pid {pid}) did not exit within {timeout:?} of SIGKILL; its data was not deleted"
                ));
            }
            unregister(old.id());
        }
        let entries = std::fs::read_dir(&b.data_dir)
            .map_err(|e| format!("cannot list {}: {e}", b.data_dir.display()))?;
        let mut removed = 0;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let partition = name
                .rsplit_once('-')
                .is_some_and(|(t, n)| !t.is_empty() && n.parse::<u32>().is_ok());
            if !partition || name == "__cluster_metadata-0" || !e.path().is_dir() {
                continue;
            }
            std::fs::remove_dir_all(e.path())
                .map_err(|err| format!("cannot delete {}: {err}", e.path().display()))?;
            removed += 1;
        }
        Ok((pid, removed))
    }

    /// Restarts broker `id` after a fault with the same config, port and log directory: waits
    /// (at most `timeout`) for the old process to end, starts the new one and returns its pid
    /// without waiting for it to answer (clients reconnect on their own).
    pub fn restart(&mut self, id: u32, timeout: Duration) -> Result<u32, String> {
        let exe = self.exe.clone();
        let netns = self.open_netns(id).map_err(|e| e.to_string())?;
        let b = self.broker_mut(id)?;
        if let Some(mut old) = b.child.take() {
            if !exited_within(&mut old, timeout) {
                let _ = old.kill();
                let _ = old.wait();
            }
            unregister(old.id());
        }
        let child = spawn(&exe, id, &b.overrides, &b.log, netns).map_err(|e| e.to_string())?;
        let pid = child.id();
        if let Some(dir) = b.log.parent() {
            let _ = std::fs::write(dir.join("pid"), format!("{pid}\n"));
        }
        b.child = Some(child);
        b.exited = None;
        b.exit_reaped = false;
        b.faulted = false;
        Ok(pid)
    }

    /// Ids of brokers a fault took down that have not been restarted.
    pub fn down_on_purpose(&self) -> Vec<u32> {
        self.brokers
            .iter()
            .filter(|b| b.faulted)
            .map(|b| b.id)
            .collect()
    }

    /// Describes the first broker that has exited on its own, with its log tail.
    pub fn dead_broker(&mut self) -> Option<String> {
        for b in &mut self.brokers {
            if b.faulted {
                continue;
            }
            b.check_exit();
            if let Some(status) = &b.exited {
                return Some(format!(
                    "embedded broker {} ({}:{}) exited during the run ({status}); last lines of {}:\n{}",
                    b.id,
                    b.host,
                    b.port,
                    b.log.display(),
                    tail(&b.log, 10)
                ));
            }
        }
        None
    }

    /// Brokers whose process has ended since the last call, each handed out once, whether a
    /// fault (or `kbench cluster kill`/`stop`) took it down or it died on its own: what
    /// `kbench cluster up` reports while it keeps the others serving.
    pub fn reap(&mut self) -> Vec<BrokerExit> {
        let mut out = Vec::new();
        for b in &mut self.brokers {
            b.check_exit();
            if b.exit_reaped {
                continue;
            }
            if let Some(status) = &b.exited {
                b.exit_reaped = true;
                out.push(BrokerExit {
                    id: b.id,
                    address: format!("{}:{}", b.host, b.port),
                    status: status.clone(),
                    on_purpose: b.faulted,
                    log: b.log.clone(),
                });
            }
        }
        out
    }

    /// Every broker as it stands: id, address, rack and pid while it runs. A process that
    /// has ended counts as running until [`EmbeddedCluster::reap`] (or
    /// [`EmbeddedCluster::dead_broker`]) has seen it, so callers reap first.
    pub fn status(&self) -> Vec<BrokerStatus> {
        self.brokers
            .iter()
            .map(|b| BrokerStatus {
                id: b.id,
                address: format!("{}:{}", b.host, b.port),
                rack: b
                    .overrides
                    .iter()
                    .find(|(k, _)| k == "broker.rack")
                    .map(|(_, v)| v.clone()),
                pid: match (&b.child, &b.exited) {
                    (Some(c), None) => Some(c.id()),
                    _ => None,
                },
            })
            .collect()
    }

    /// Waits (at most `timeout`) until broker `id`, (re)started, serves: Metadata asked of it
    /// lists it among the cluster's brokers. Fails at once, with its log tail, if it exits.
    pub fn await_serving(&mut self, id: u32, timeout: Duration) -> Result<(), TargetError> {
        let i = self
            .brokers
            .iter()
            .position(|b| b.id == id)
            .ok_or_else(|| TargetError::Io(format!("there is no embedded broker {id}")))?;
        let b = &self.brokers[i];
        let access = ClusterAccess::plaintext(&format!("{}:{}", b.host, b.port));
        let what = format!("embedded broker {id}");
        wait_for_metadata(&access, timeout, &what, Listed::Broker(id), || {
            self.start_failure(i)
        })
        .map(|_| ())
    }

    /// Stops every broker, one after the other: SIGTERM, up to `grace` to exit, then SIGKILL.
    ///
    /// One at a time, because the brokers are also the controller quorum: stopped together,
    /// the last ones to ask the controller to move their leaderships found its quorum gone
    /// with the others and waited out their whole controlled-shutdown timeout (5 s of every
    /// run). Stopped in turn, each broker's request is answered while a quorum remains, and
    /// the last one, seeing every other broker fenced, has nothing to hand over.
    pub fn stop(&mut self, grace: Duration) {
        for b in &mut self.brokers {
            let Some(mut c) = b.child.take() else {
                continue;
            };
            if let Ok(pid) = i32::try_from(c.id()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            let deadline = Instant::now() + grace;
            loop {
                match c.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            unregister(c.id());
        }
    }
}

impl Drop for EmbeddedCluster {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// Starts one broker process (`exe broker --override k=v ...`), output appended to `log`, in
/// network namespace `netns` if given, registered for the second Ctrl-C and tied to kbench's
/// life.
fn spawn(
    exe: &Path,
    id: u32,
    overrides: &[(String, String)],
    log: &Path,
    netns: Option<File>,
) -> Result<Child, TargetError> {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| TargetError::Io(format!("cannot open {}: {e}", log.display())))?;
    let err_file = log_file
        .try_clone()
        .map_err(|e| TargetError::Io(format!("cannot open {}: {e}", log.display())))?;
    let mut cmd = Command::new(exe);
    cmd.arg("broker");
    for (k, v) in overrides {
        cmd.arg("--override").arg(format!("{k}={v}"));
    }
    cmd.stdin(Stdio::null()).stdout(log_file).stderr(err_file);
    prepare_child(&mut cmd, netns);
    let command = format!(
        "{} broker {}",
        exe.display(),
        overrides
            .iter()
            .map(|(k, v)| format!("--override {k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let child = cmd.spawn().map_err(|source| TargetError::Spawn {
        id,
        command,
        source,
    })?;
    register(child.id());
    Ok(child)
}

/// The last `lines` lines of a file (at most 64 KiB read).
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 << 10)));
        let mut bytes = Vec::new();
        let _ = f.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    let out = all[start..]
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n");
    if out.is_empty() {
        "    (empty)".to_string()
    } else {
        out
    }
}

#[cfg(target_os = "linux")]
fn prepare_child(cmd: &mut Command, netns: Option<File>) {
    use std::os::fd::AsFd;
    use std::os::unix::process::CommandExt;
    // SAFETY: `pre_exec` runs in the child between fork and exec, where only async-signal-safe
    // calls are allowed. `setns` on a descriptor opened before the fork and
    // `prctl(PR_SET_PDEATHSIG)` are single system calls with no allocation or locking, so they
    // qualify (errors become `io::Error`s from the errno, without allocating). `setns` moves
    // the broker into its network namespace while it stays kbench's child. `PR_SET_PDEATHSIG`
    // makes the kernel SIGKILL the broker when kbench dies by any means (including SIGKILL and
    // abort, which run no destructors) — the one guarantee kill-on-drop cannot give. Note the
    // signal follows the *thread* that forked, so brokers are started from the main thread
    // (see run.rs).
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || {
            if let Some(ns) = &netns {
                nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(std::io::Error::from)?;
            }
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn prepare_child(_cmd: &mut Command, _netns: Option<File>) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports(n: u16) -> Vec<BrokerPorts> {
        (0..n)
            .map(|i| BrokerPorts {
                host: Ipv4Addr::LOCALHOST,
                kafka: 40_000 + i,
                controller: 41_000 + i,
            })
            .collect()
    }

    fn get<'a>(o: &'a [(String, String)], key: &str) -> Option<&'a str> {
        o.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    #[test]
    fn replicated_brokers_get_the_cluster_contract() {
        let spec = Spec {
            brokers: 3,
            racks: vec!["a".into(), "b".into()],
            ..Default::default()
        };
        assert!(spec.replicated());
        let p = ports(3);
        let o = broker_overrides(&spec, 2, &p, Path::new("/data/2"));
        assert_eq!(get(&o, "node.id"), Some("2"));
        assert_eq!(get(&o, "process.roles"), Some("broker,controller"));
        assert_eq!(
            get(&o, "listeners"),
            Some("PLAINTEXT://127.0.0.1:40001,CONTROLLER://127.0.0.1:41001")
        );
        assert_eq!(
            get(&o, "advertised.listeners"),
            Some("PLAINTEXT://127.0.0.1:40001")
        );
        assert_eq!(get(&o, "controller.listener.names"), Some("CONTROLLER"));
        assert_eq!(
            get(&o, "controller.quorum.voters"),
            Some("1@127.0.0.1:41000,2@127.0.0.1:41001,3@127.0.0.1:41002")
        );
        for key in [
            "default.replication.factor",
            "offsets.topic.replication.factor",
            "transaction.state.log.replication.factor",
        ] {
            assert_eq!(get(&o, key), Some("3"), "{key}");
        }
        assert_eq!(get(&o, "unclean.leader.election.enable"), Some("false"));
        assert_eq!(get(&o, "log.dirs"), Some("/data/2"));
        // Racks are handed out in turn: broker 3 gets the first again.
        assert_eq!(get(&o, "broker.rack"), Some("b"));
        let o3 = broker_overrides(&spec, 3, &p, Path::new("/data/3"));
        assert_eq!(get(&o3, "broker.rack"), Some("a"));
        // Every key once.
        let mut keys: Vec<&str> = o.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        let n = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), n, "a key is passed twice: {o:?}");
    }

    #[test]
    fn internal_topic_replication_is_capped_at_three() {
        assert_eq!(cluster_replication_factor(1), 1);
        assert_eq!(cluster_replication_factor(2), 2);
        assert_eq!(cluster_replication_factor(3), 3);
        assert_eq!(cluster_replication_factor(5), 3);
        let spec = Spec {
            brokers: 2,
            ..Default::default()
        };
        let o = broker_overrides(&spec, 1, &ports(2), Path::new("/d"));
        assert_eq!(get(&o, "offsets.topic.replication.factor"), Some("2"));
    }

    #[test]
    fn a_single_broker_and_independent_brokers_get_no_cluster_keys() {
        for (brokers, mode) in [(1, Mode::Replicated), (3, Mode::Independent)] {
            let spec = Spec {
                brokers,
                mode,
                ..Default::default()
            };
            assert!(!spec.replicated());
            let o = broker_overrides(&spec, 1, &ports(brokers as u16), Path::new("/d"));
            assert_eq!(get(&o, "listeners"), Some("PLAINTEXT://127.0.0.1:40000"));
            for key in [
                "process.roles",
                "controller.quorum.voters",
                "controller.listener.names",
                "default.replication.factor",
            ] {
                assert_eq!(
                    get(&o, key),
                    None,
                    "{key} set for {brokers} broker(s) {mode:?}"
                );
            }
            assert_eq!(get(&o, "broker.rack"), None);
        }
    }

    #[test]
    fn scenario_configs_replace_what_kbench_sets() {
        let spec = Spec {
            brokers: 3,
            configs: vec![
                ("unclean.leader.election.enable".into(), "true".into()),
                ("replica.lag.time.max.ms".into(), "2000".into()),
            ],
            ..Default::default()
        };
        let o = broker_overrides(&spec, 1, &ports(3), Path::new("/d"));
        assert_eq!(get(&o, "unclean.leader.election.enable"), Some("true"));
        assert_eq!(get(&o, "replica.lag.time.max.ms"), Some("2000"));
        assert_eq!(
            o.iter()
                .filter(|(k, _)| k == "unclean.leader.election.enable")
                .count(),
            1
        );
    }

    #[test]
    fn ports_are_distinct_and_fixed_ports_follow_the_base() {
        let spec = Spec {
            brokers: 3,
            ..Default::default()
        };
        let p = allocate_ports(&spec).unwrap();
        let mut all: Vec<u16> = p.iter().flat_map(|b| [b.kafka, b.controller]).collect();
        assert!(all.iter().all(|&x| x != 0));
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 6, "{p:?}");

        let fixed = Spec {
            brokers: 3,
            base_port: Some(43_100),
            ..Default::default()
        };
        let p = allocate_ports(&fixed).unwrap();
        assert_eq!(
            p,
            vec![
                BrokerPorts {
                    host: Ipv4Addr::LOCALHOST,
                    kafka: 43_100,
                    controller: 43_103
                },
                BrokerPorts {
                    host: Ipv4Addr::LOCALHOST,
                    kafka: 43_101,
                    controller: 43_104
                },
                BrokerPorts {
                    host: Ipv4Addr::LOCALHOST,
                    kafka: 43_102,
                    controller: 43_105
                },
            ]
        );
        let too_high = Spec {
            brokers: 3,
            base_port: Some(65_534),
            ..Default::default()
        };
        let err = allocate_ports(&too_high).unwrap_err().to_string();
        assert!(err.contains("beyond 65535"), "{err}");
    }
}
