//! Replicated embedded clusters, end to end: the real `kbench` binary starting several kbroker
//! processes as one cluster (kbroker's cluster contract: `process.roles`, two listeners,
//! `controller.quorum.voters`, racks, replication defaults).
//!
//! The first test checks what kbench hands each broker and runs against any kbroker. The
//! others need the replicated kbroker (Raft metadata, replication) and are ignored until it is
//! merged: `cargo test --test cluster -- --include-ignored` runs them.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use common::{kbench, run, scenario, show, summary, write_scenario};

fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

/// Starts `kbench cluster up` with `args`; its stdout lines arrive on the receiver.
fn cluster_up(data: &Path, args: &[&str]) -> (Child, Receiver<String>) {
    let mut up = kbench()
        .args(["cluster", "up", "--data"])
        .arg(data)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = up.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (up, rx)
}

/// Sends `signal` to `up` and waits (bounded) for it to end.
fn stop(up: &mut Child, signal: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(up.id() as i32), signal);
    let deadline = Instant::now() + Duration::from_secs(15);
    while up.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = up.kill();
            let _ = up.wait();
            panic!("cluster up did not stop within 15 s of {signal}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (bounded) for `<data>/brokers/<id>/pid` of brokers 1..=n.
fn broker_pids(data: &Path, n: u32) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(20);
    (1..=n)
        .map(|id| {
            let file = data.join(format!("brokers/{id}/pid"));
            loop {
                if let Some(pid) = std::fs::read_to_string(&file)
                    .ok()
                    .and_then(|t| t.trim().parse().ok())
                {
                    break pid;
                }
                assert!(
                    Instant::now() < deadline,
                    "{} never written",
                    file.display()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        })
        .collect()
}

/// The `--override key=value` pairs of a running broker, read from `/proc/<pid>/cmdline`.
fn overrides_of(pid: i32) -> BTreeMap<String, String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let mut out = BTreeMap::new();
    for pair in args.windows(2) {
        if pair[0] == "--override" {
            let (k, v) = pair[1].split_once('=').unwrap();
            assert!(
                out.insert(k.to_string(), v.to_string()).is_none(),
                "{k} passed twice to broker {pid}"
            );
        }
    }
    out
}

#[test]
fn three_embedded_brokers_are_started_as_one_cluster_of_voters() {
    let data = tempfile::tempdir().unwrap();
    let (mut up, _lines) = cluster_up(data.path(), &["--brokers", "3", "--racks", "east,west"]);
    let pids = broker_pids(data.path(), 3);
    let all: Vec<BTreeMap<String, String>> = pids.iter().map(|p| overrides_of(*p)).collect();

    // Every broker names the same three voters, one per broker, on distinct controller ports.
    let voters = all[0]["controller.quorum.voters"].clone();
    let entries: Vec<(u32, u16)> = voters
        .split(',')
        .map(|v| {
            let (id, addr) = v.split_once('@').unwrap();
            let port = addr.strip_prefix("127.0.0.1:").unwrap();
            (id.parse().unwrap(), port.parse().unwrap())
        })
        .collect();
    assert_eq!(
        entries.iter().map(|e| e.0).collect::<Vec<_>>(),
        vec![1, 2, 3],
        "{voters}"
    );
    let mut kafka_ports = Vec::new();
    for (i, o) in all.iter().enumerate() {
        let id = i as u32 + 1;
        assert_eq!(o["node.id"], id.to_string());
        assert_eq!(o["process.roles"], "broker,controller");
        assert_eq!(o["controller.listener.names"], "CONTROLLER");
        assert_eq!(o["controller.quorum.voters"], voters, "broker {id}");
        let controller = entries[i].1;
        let listeners = &o["listeners"];
        let (plain, ctrl) = listeners.split_once(',').unwrap();
        assert_eq!(ctrl, format!("CONTROLLER://127.0.0.1:{controller}"));
        let kafka: u16 = plain
            .strip_prefix("PLAINTEXT://127.0.0.1:")
            .unwrap()
            .parse()
            .unwrap();
        assert_ne!(kafka, controller);
        assert_eq!(
            o["advertised.listeners"],
            format!("PLAINTEXT://127.0.0.1:{kafka}")
        );
        kafka_ports.push(kafka);
        for key in [
            "default.replication.factor",
            "offsets.topic.replication.factor",
            "transaction.state.log.replication.factor",
        ] {
            assert_eq!(o[key], "3", "broker {id} {key}");
        }
        assert_eq!(o["unclean.leader.election.enable"], "false");
        assert_eq!(o["broker.rack"], ["east", "west", "east"][i]);
        assert!(o["log.dirs"].ends_with(&format!("brokers/{id}/data")));
    }
    kafka_ports.sort_unstable();
    kafka_ports.dedup();
    assert_eq!(kafka_ports.len(), 3);

    // However far start-up got (the cluster formed, or kbroker does not replicate yet and
    // kbench is still waiting for Metadata to list three brokers), SIGTERM ends it and no
    // broker outlives it.
    stop(&mut up, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| alive(*p)) {
        assert!(
            Instant::now() < deadline,
            "a broker outlived cluster up: {pids:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn independent_brokers_get_no_cluster_keys() {
    let data = tempfile::tempdir().unwrap();
    let (mut up, lines) = cluster_up(data.path(), &["--brokers", "2", "--independent"]);
    let line = lines
        .recv_timeout(Duration::from_secs(30))
        .expect("cluster up prints the bootstrap line");
    let bootstrap = line.strip_prefix("bootstrap: ").unwrap().to_string();
    assert_eq!(bootstrap.split(',').count(), 2, "{bootstrap}");
    let pids = broker_pids(data.path(), 2);
    for pid in &pids {
        let o = overrides_of(*pid);
        assert!(!o.contains_key("controller.quorum.voters"), "{o:?}");
        assert!(!o.contains_key("process.roles"), "{o:?}");
        assert!(!o["listeners"].contains(','), "{o:?}");
    }
    stop(&mut up, nix::sys::signal::Signal::SIGINT);
    assert_eq!(up.wait().unwrap().code(), Some(0));
    assert!(
        pids.iter().all(|p| !alive(*p)),
        "a broker outlived cluster up"
    );
}

#[test]
fn bad_racks_flag_is_named() {
    let o = kbench()
        .args(["cluster", "up", "--brokers", "3", "--racks", "a,,c"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--racks \"a,,c\""), "{err}");
}

#[test]
fn replicated_cluster_forms_and_describe_shows_replicas_and_isr() {
    let data = tempfile::tempdir().unwrap();
    let (mut up, lines) = cluster_up(data.path(), &["--brokers", "3", "--racks", "a,b,c"]);
    let line = lines
        .recv_timeout(Duration::from_secs(60))
        .expect("cluster up prints the bootstrap line once Metadata lists 3 brokers");
    let bootstrap = line.strip_prefix("bootstrap: ").unwrap().to_string();

    // An RF 3 topic with min.insync 2, written by a short acks=all run.
    let file = write_scenario(data.path(), "t.toml", "name = \"t\"\n[topic]\nname = \"replicated\"\npartitions = 3\nreplication_factor = 3\nmin_insync_replicas = 2\n[producers]\nmessages_each = 200\nacks = \"all\"\n[consumers]\ngroups = 1\n[verify]\ndelivery = \"exactly-once\"\n");
    let o = run(
        &file,
        &["--bootstrap", &bootstrap],
        &data.path().join("run"),
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let s = summary(&data.path().join("run"));
    assert_eq!(s.target.brokers, 3);
    assert_eq!(s.durability.replication_factor, 3);
    assert_eq!(s.durability.acknowledged_lost, 0);

    let o = kbench()
        .args(["cluster", "describe", "--bootstrap", &bootstrap])
        .args(["--topic", "replicated"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.starts_with("Brokers: 3\n")
            && text.matches("Alive: yes").count() == 3
            && text.matches("Controller: yes").count() == 1
            && ["a", "b", "c"]
                .iter()
                .all(|r| text.contains(&format!("Rack: {r}\t"))),
        "the brokers come first: {text}"
    );
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("Brokers: ") && !l.starts_with("\tBroker: "))
        .collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with("Topic: replicated\tPartitionCount: 3\tReplicationFactor: 3\t")
            && lines[0].contains("min.insync.replicas=2"),
        "{text}"
    );
    let mut leaders = Vec::new();
    for line in &lines[1..] {
        let field = |name: &str| -> Vec<i32> {
            let v = line
                .split('\t')
                .find_map(|f| f.strip_prefix(&format!("{name}: ")))
                .unwrap_or_else(|| panic!("no {name} in {line:?}"));
            v.split(',').map(|x| x.parse().unwrap()).collect()
        };
        let mut replicas = field("Replicas");
        let mut isr = field("Isr");
        leaders.push(field("Leader")[0]);
        replicas.sort_unstable();
        isr.sort_unstable();
        assert_eq!(replicas, vec![1, 2, 3], "{line}");
        assert_eq!(isr, vec![1, 2, 3], "{line}");
        assert!(!line.contains("Offline"), "{line}");
    }
    leaders.sort_unstable();
    leaders.dedup();
    assert_eq!(leaders.len(), 3, "leaders balanced across brokers: {text}");
    stop(&mut up, nix::sys::signal::Signal::SIGINT);
}

#[test]
fn acked_writes_survive_repeated_leader_kills() {
    let out = tempfile::tempdir().unwrap();
    let o = run(
        &scenario("failover.toml"),
        &[
            "--set",
            "producers.duration=10s",
            "--set",
            r#"faults=[{ at = "2s", action = "kill", broker = "leader:0", restart_after = "2s" }, { at = "6s", action = "kill", broker = "leader:0", restart_after = "2s" }]"#,
        ],
        out.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let s = summary(out.path());
    assert!(s.verdict.passed, "{:?}", s.verdict);
    assert_eq!(s.target.brokers, 3);
    let d = &s.durability;
    assert_eq!((d.acks.as_str(), d.replication_factor), ("all", 3));
    assert_eq!(d.min_insync_replicas, Some(2));
    assert!(d.acknowledged > 0 && d.verified);
    assert_eq!(d.acknowledged_lost, 0, "acknowledged writes lost");
    assert_eq!(d.faults, 2);
    assert!(
        d.recovery_s.iter().all(Option::is_some),
        "producers never recovered: {d:?}"
    );
    assert!(s.offsets.ok, "the log holds a duplicate or lost a message");
    // Two different brokers led partition 0 at the two kills (leadership moved).
    let targets: Vec<&str> = s
        .delivery
        .faults
        .iter()
        .map(|f| f.target.as_str())
        .collect();
    assert_eq!(targets.len(), 2);
}

#[test]
fn replication_matrix_compares_every_cell() {
    let out = tempfile::tempdir().unwrap();
    let o = run(
        &scenario("replication.toml"),
        &[
            "--set",
            "producers.duration=6s",
            "--set",
            r#"faults=[{ at = "2s", action = "kill", broker = "leader:0", restart_after = "2s" }]"#,
        ],
        out.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let csv = std::fs::read_to_string(out.path().join("comparison.csv")).unwrap();
    assert_eq!(csv.lines().count(), 7, "header + 6 cells:\n{csv}");
    for f in ["report.html", "comparison.png", "comparison.svg"] {
        assert!(out.path().join(f).exists(), "{f} missing");
    }
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("acked lost"), "{stdout}");
}

#[test]
fn a_killed_group_member_fails_over_on_three_brokers() {
    let out = tempfile::tempdir().unwrap();
    let o = kbench()
        .args(["run", scenario("consumer-failover.toml").to_str().unwrap()])
        .args(["--set", "producers.duration=8s", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let s = summary(out.path());
    assert!(s.verdict.passed, "{:?}", s.verdict);
    assert_eq!(s.target.brokers, 3);
    assert_eq!(s.durability.replication_factor, 3);
    assert_eq!(s.durability.acknowledged_lost, 0);
    assert_eq!(s.delivery.faults[0].action, "kill_member");
}
