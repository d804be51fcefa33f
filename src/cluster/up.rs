//! `kbench cluster up`: a local cluster in the foreground that outlives any one broker.
//!
//! `up` starts the brokers through `sut::embedded` (the one launcher; from the main thread,
//! so `PR_SET_PDEATHSIG` ties them to this process), prints the bootstrap string, writes
//! `DIR/cluster.env` (`BROKERS=`, `BOOTSTRAP=`, `PID=`, as `compat/kafka/kafka.sh` does) and
//! then supervises: a broker that exits is reported in one line (which, how, where its log is,
//! then the log's last lines) and the others keep serving; requests on the control socket
//! (`control`) kill, stop or start one broker by id, or take the whole cluster down. Only
//! Ctrl-C, SIGTERM or `kbench cluster down` end it, and the brokers end with it.
//!
//! Requests are served one at a time, in this task (restarting a broker forks it, and the fork
//! must happen on the main thread for `PR_SET_PDEATHSIG` to hold); each one is bounded, so a
//! slow one only delays the next.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use nix::sys::signal::Signal;

use super::control::{self, Reply, Request};
use crate::sut::embedded::{tail, BrokerExit, EmbeddedCluster, Mode, Spec};

/// Bound on starting the brokers, and on a restarted broker joining again.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on a broker's clean shutdown after SIGTERM (`stop`, `down`, Ctrl-C) before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on every broker's clean shutdown when the whole cluster stops (Ctrl-C, `down`), before
/// SIGKILL.
const DOWN_GRACE: Duration = Duration::from_secs(5);
/// Bound on a process ending after SIGKILL.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);
/// How often exits are looked for.
const TICK: Duration = Duration::from_millis(100);
/// Log lines shown under a broker's death line.
const TAIL_LINES: usize = 5;

/// `kbench cluster up`'s flags.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// `--brokers`: number of brokers.
    pub brokers: u32,
    /// `--port`: port of broker 1, or free ports.
    pub port: Option<u16>,
    /// `--dir` (alias `--data`): where the brokers' data, logs and the control socket go.
    pub dir: Option<PathBuf>,
    /// `--racks a,b,c`: `broker.rack` values handed out in turn.
    pub racks: Vec<String>,
    /// `--independent`: N unrelated single-node brokers instead of one replicated cluster.
    pub independent: bool,
}

/// Splits `--racks a,b,c` into rack names (empty names are an error naming the flag).
pub fn parse_racks(value: &str) -> anyhow::Result<Vec<String>> {
    let racks: Vec<String> = value.split(',').map(|r| r.trim().to_string()).collect();
    if racks.iter().any(String::is_empty) {
        anyhow::bail!("--racks {value:?}: rack names must be non-empty, e.g. --racks a,b,c");
    }
    Ok(racks)
}

/// `kbench cluster up`: starts the brokers (one replicated cluster unless `independent`) with
/// their data under `DIR/brokers/`, prints `bootstrap: ...` and supervises them until Ctrl-C,
/// SIGTERM or `kbench cluster down --dir DIR`.
pub async fn up(opts: &UpOptions) -> anyhow::Result<()> {
    let brokers = opts.brokers;
    if brokers == 0 || brokers > 64 {
        anyhow::bail!("--brokers {brokers} must be 1..=64");
    }
    let dir: PathBuf = match &opts.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("kbench-cluster-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| {
        format!(
            "cannot create the cluster directory {} (choose another with --dir DIR)",
            dir.display()
        )
    })?;
    // Before any broker starts: a second `up` on the same DIR fails here, in a moment.
    let listener = control::listen(&dir).await?;
    let socket = control::socket_path(&dir);
    let outcome = serve(opts, &dir, listener).await;
    let _ = std::fs::remove_file(&socket);
    outcome
}

/// Starts the cluster and runs the supervision loop.
async fn serve(
    opts: &UpOptions,
    dir: &Path,
    listener: tokio::net::UnixListener,
) -> anyhow::Result<()> {
    let brokers = opts.brokers;
    let spec = Spec {
        brokers,
        base_port: opts.port,
        racks: opts.racks.clone(),
        mode: if opts.independent {
            Mode::Independent
        } else {
            Mode::Replicated
        },
        ..Default::default()
    };
    eprintln!(
        "kbench: starting {brokers} broker(s){} with data in {}",
        if spec.replicated() {
            " as one replicated cluster"
        } else if brokers > 1 {
            " (independent single-node brokers)"
        } else {
            ""
        },
        dir.join("brokers").display()
    );
    let mut cluster = EmbeddedCluster::start_spec(&spec, dir, START_TIMEOUT)
        .context("cannot start the cluster")?;
    // Watch the signals before the bootstrap line goes out: whoever reads it may stop us at
    // once, and an unwatched Ctrl-C would kill kbench without a clean stop of the brokers.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch SIGTERM")?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot watch Ctrl-C (SIGINT)")?;
    let env = format!(
        "BROKERS={brokers}\nBOOTSTRAP={}\nPID={}\n",
        cluster.bootstrap(),
        std::process::id()
    );
    std::fs::write(dir.join("cluster.env"), env)
        .with_context(|| format!("cannot write {}", dir.join("cluster.env").display()))?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "bootstrap: {}", cluster.bootstrap())?;
    stdout.flush()?;
    eprintln!(
        "kbench: cluster up; Ctrl-C or `kbench cluster down --dir {d}` stops it; \
         `kbench cluster kill|stop|start --dir {d} --node ID` acts on one broker",
        d = dir.display()
    );
    loop {
        tokio::select! {
            _ = int.recv() => break,
            _ = term.recv() => break,
            conn = listener.accept() => {
                let Ok((mut stream, _)) = conn else { continue };
                report_exits(&mut cluster);
                let request = match control::read_request(&mut stream).await {
                    Ok(r) => r,
                    Err(e) => {
                        control::answer(&mut stream, &Reply::refused(format!("{e:#}"))).await;
                        continue;
                    }
                };
                if request == Request::Down {
                    eprintln!("kbench: `kbench cluster down` asked to stop the cluster");
                    stop_all(&mut cluster);
                    control::answer(&mut stream, &Reply::done("cluster stopped")).await;
                    return Ok(());
                }
                let reply = handle(&mut cluster, request).await;
                control::answer(&mut stream, &reply).await;
            }
            _ = tokio::time::sleep(TICK) => report_exits(&mut cluster),
        }
    }
    stop_all(&mut cluster);
    Ok(())
}

/// Stops every broker (SIGTERM, then SIGKILL after [`DOWN_GRACE`]), saying so.
fn stop_all(cluster: &mut EmbeddedCluster) {
    eprintln!("kbench: stopping the cluster");
    cluster.stop(DOWN_GRACE);
}

/// Prints one line per broker that has exited since the last look: a death (with its log's
/// last lines below) or a stop that was asked for.
fn report_exits(cluster: &mut EmbeddedCluster) {
    let exits = cluster.reap();
    if exits.is_empty() {
        return;
    }
    let serving: Vec<String> = cluster
        .status()
        .iter()
        .filter(|b| b.pid.is_some())
        .map(|b| b.id.to_string())
        .collect();
    for e in exits {
        eprintln!("{}", exit_line(&e, &serving));
        if !e.on_purpose {
            eprintln!("{}", tail(&e.log, TAIL_LINES));
        }
    }
}

/// The one line that says which broker ended, how, and who still serves.
fn exit_line(e: &BrokerExit, serving: &[String]) -> String {
    let left = if serving.is_empty() {
        "no broker is serving".to_string()
    } else {
        format!("still serving: broker(s) {}", serving.join(","))
    };
    if e.on_purpose {
        format!(
            "kbench: broker {} ({}) is down as asked ({}); {left}",
            e.id, e.address, e.status
        )
    } else {
        format!(
            "kbench: broker {} ({}) died ({}); {left}; last lines of {}:",
            e.id,
            e.address,
            e.status,
            e.log.display()
        )
    }
}

/// Carries out one request for one broker (or `status`), bounded.
async fn handle(cluster: &mut EmbeddedCluster, request: Request) -> Reply {
    let status = cluster.status();
    let node = match request {
        Request::Kill { node } | Request::Stop { node } | Request::Start { node } => node,
        Request::Status => {
            return Reply {
                brokers: status,
                ..Reply::done(format!("{} broker(s)", cluster.len()))
            }
        }
        Request::Down => return Reply::refused("down is handled by the loop"),
    };
    let Some(broker) = status.iter().find(|b| b.id == node) else {
        return Reply::refused(format!("no node {node} (nodes are 1..={})", cluster.len()));
    };
    match (request, broker.pid) {
        (Request::Kill { .. } | Request::Stop { .. }, None) => {
            Reply::refused(format!("node {node} is already stopped"))
        }
        (Request::Start { .. }, Some(pid)) => {
            Reply::refused(format!("node {node} is already running (pid {pid})"))
        }
        (Request::Kill { .. }, Some(_)) => take_down(cluster, node, Signal::SIGKILL).await,
        (Request::Stop { .. }, Some(_)) => take_down(cluster, node, Signal::SIGTERM).await,
        (_, None) => start(cluster, node),
        (Request::Status | Request::Down, Some(_)) => Reply::refused("not a node request"),
    }
}

/// Sends `signal` (SIGKILL or SIGTERM) to `node` and waits until its process has ended; after
/// SIGTERM, [`STOP_TIMEOUT`] before SIGKILL, as `kafka.sh stop` does.
async fn take_down(cluster: &mut EmbeddedCluster, node: u32, signal: Signal) -> Reply {
    if let Err(e) = cluster.signal(node, signal) {
        return Reply::refused(e);
    }
    let how = if signal == Signal::SIGKILL {
        "killed (SIGKILL)"
    } else {
        "stopped (SIGTERM)"
    };
    eprintln!("kbench: node {node} {how} by request");
    let first = if signal == Signal::SIGKILL {
        KILL_TIMEOUT
    } else {
        STOP_TIMEOUT
    };
    if ended(cluster, node, first).await {
        return Reply::done(format!("node {node} {how}"));
    }
    if signal == Signal::SIGKILL {
        return Reply::refused(format!(
            "node {node} was sent SIGKILL but has not exited within {KILL_TIMEOUT:?}"
        ));
    }
    let _ = cluster.signal(node, Signal::SIGKILL);
    if ended(cluster, node, KILL_TIMEOUT).await {
        Reply::done(format!(
            "node {node} did not exit within {STOP_TIMEOUT:?} of SIGTERM and was killed (SIGKILL)"
        ))
    } else {
        Reply::refused(format!(
            "node {node} survived SIGTERM and SIGKILL for {:?}",
            STOP_TIMEOUT + KILL_TIMEOUT
        ))
    }
}

/// Whether `node`'s process ends within `timeout` (exits are reported as they are seen).
async fn ended(cluster: &mut EmbeddedCluster, node: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        report_exits(cluster);
        if cluster
            .status()
            .iter()
            .any(|b| b.id == node && b.pid.is_none())
        {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts `node` again with its config, ports and data, and waits until it has joined.
fn start(cluster: &mut EmbeddedCluster, node: u32) -> Reply {
    let pid = match cluster.restart(node, KILL_TIMEOUT) {
        Ok(pid) => pid,
        Err(e) => return Reply::refused(format!("node {node} cannot start: {e}")),
    };
    eprintln!("kbench: node {node} started by request (pid {pid}); waiting until it serves");
    match cluster.await_serving(node, START_TIMEOUT) {
        Ok(()) => {
            eprintln!("kbench: node {node} serves again");
            Reply::done(format!("node {node} started (pid {pid}) and serves"))
        }
        Err(e) => Reply::refused(format!("node {node} was started (pid {pid}) but: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_death_names_the_broker_how_and_who_is_left() {
        let e = BrokerExit {
            id: 2,
            address: "127.0.0.1:9093".into(),
            status: "signal: 9 (SIGKILL)".into(),
            on_purpose: false,
            log: PathBuf::from("/c/brokers/2/broker.log"),
        };
        assert_eq!(
            exit_line(&e, &["1".into(), "3".into()]),
            "kbench: broker 2 (127.0.0.1:9093) died (signal: 9 (SIGKILL)); still serving: broker(s) 1,3; last lines of /c/brokers/2/broker.log:"
        );
        let asked = BrokerExit {
            on_purpose: true,
            ..e
        };
        assert_eq!(
            exit_line(&asked, &[]),
            "kbench: broker 2 (127.0.0.1:9093) is down as asked (signal: 9 (SIGKILL)); no broker is serving"
        );
    }
}
