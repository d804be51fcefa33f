//! Faults and the local cluster, end to end: the real `kbench` binary against real embedded
//! kbroker processes that it kills, pauses, restarts and cuts off from each other.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{kbench, run, scenario, show, summary, write_scenario};

fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

#[test]
fn acked_writes_survive_a_broker_kill_9_and_restart() {
    let out = tempfile::tempdir().unwrap();
    let o = kbench()
        .args(["run", scenario("broker-restart.toml").to_str().unwrap()])
        .args(["--set", "producers.duration=9s", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let s = summary(out.path());
    assert!(s.verdict.passed, "{:?}", s.verdict);
    assert!(s.delivery.acked > 0);
    assert_eq!(s.delivery.lost, 0, "acknowledged messages lost");
    assert!(s.offsets.ok, "the log holds a duplicate or lost a message");
    assert_eq!(s.delivery.faults.len(), 1, "{:?}", s.delivery.faults);
    let f = &s.delivery.faults[0];
    assert_eq!((f.action.as_str(), f.target.as_str()), ("kill", "broker 1"));
    let restarted = f.restarted_at_s.expect("the broker was restarted");
    assert!(
        restarted - f.t_s >= 1.9,
        "restarted {restarted} s, fault {} s",
        f.t_s
    );
    assert!(f.recovery_s.is_some(), "no recovery time: {f:?}");
    let faults: Vec<_> = s.events.iter().filter(|e| e.kind == "fault").collect();
    assert!(
        faults.iter().any(|e| e.detail.contains("SIGKILL")),
        "{faults:?}"
    );
    assert!(
        faults.iter().any(|e| e.detail.contains("restart broker 1")),
        "{faults:?}"
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("fault: kill broker 1 at"), "{stdout}");
    // The restarted broker is a new process, and the sampler watches it too: the system
    // figures do not read 0 for the brokers from the restart on.
    let brokers: Vec<_> = s
        .system
        .processes
        .iter()
        .filter(|p| p.label == "broker-1")
        .collect();
    assert_eq!(
        brokers.len(),
        2,
        "the broker before and after its restart: {brokers:?}"
    );
    assert_ne!(brokers[0].pid, brokers[1].pid);
    assert!(brokers[1].rss_max_bytes > 0, "{:?}", brokers[1]);
}

/// The group's fail-over on one broker: what the member kill proves does not depend on the
/// cluster. The shipped scenario (3 brokers, RF 3) runs as is in `tests/cluster.rs`.
#[test]
fn a_killed_group_member_fails_over_at_least_once() {
    let out = tempfile::tempdir().unwrap();
    let o = kbench()
        .args(["run", scenario("consumer-failover.toml").to_str().unwrap()])
        // In this order: each --set is checked as it is applied.
        .args(["--set", "topic.min_insync_replicas=1"])
        .args(["--set", "topic.replication_factor=1"])
        .args(["--set", "cluster.brokers=1"])
        .args(["--set", "producers.duration=8s", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let s = summary(out.path());
    assert!(s.verdict.passed, "{:?}", s.verdict);
    assert_eq!(s.delivery.lost, 0);
    assert!(s.delivery.consumed >= s.delivery.acked);
    assert_eq!(s.delivery.faults.len(), 1);
    assert_eq!(s.delivery.faults[0].action, "kill_member");
    assert_eq!(s.delivery.faults[0].target, "group 0 member 1");
    assert!(s
        .events
        .iter()
        .any(|e| e.kind == "fault" && e.detail.contains("restart group 0 member 1")));
}

#[test]
fn a_paused_leader_and_a_stopped_controller_come_back_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pause-stop.toml");
    std::fs::write(
        &file,
        r#"name = "pause-stop"
[topic]
partitions = 2
[producers]
duration = "7s"
rate = 2000
[consumers]
commit = "manual-sync"
[verify]
delivery = "at-least-once"
[sampling]
interval = "500ms"
[[faults]]
at = "1s"
action = "pause"
broker = "leader:0"
duration = "1s"
[[faults]]
after_messages = 7000
action = "stop"
broker = "controller"
restart_after = "1s"
"#,
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = kbench()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let s = summary(&out);
    assert_eq!(s.delivery.lost, 0);
    let f = &s.delivery.faults;
    assert_eq!(f.len(), 2, "{f:?}");
    assert_eq!(
        (f[0].action.as_str(), f[0].target.as_str()),
        ("pause", "broker 1")
    );
    assert_eq!(
        (f[1].action.as_str(), f[1].target.as_str()),
        ("stop", "broker 1")
    );
    assert!(f.iter().all(|f| f.restarted_at_s.is_some()), "{f:?}");
    let details: Vec<&str> = s
        .events
        .iter()
        .filter(|e| e.kind == "fault")
        .map(|e| e.detail.as_str())
        .collect();
    for want in [
        "SIGSTOP",
        "leader:0",
        "SIGCONT",
        "SIGTERM",
        "controller",
        "restart broker 1",
    ] {
        assert!(
            details.iter().any(|d| d.contains(want)),
            "{want}: {details:?}"
        );
    }
}

/// The leader of partition 0 is cut off from the other brokers for 8 s (clients still reach
/// it): it cannot acknowledge acks=all writes, the majority fences it after the session timeout
/// (3 s here) and elects new leaders from the ISR while the partition holds, and once the
/// network heals no acknowledged message is missing and none is in the log twice. Needs root
/// (network namespaces); without it the run is refused with the reason, and that is what is
/// checked.
#[test]
fn a_partitioned_leader_loses_no_acknowledged_write() {
    let out = tempfile::tempdir().unwrap();
    let o = kbench()
        .args(["run", scenario("partition.toml").to_str().unwrap()])
        .args(["--set", "producers.duration=14s", "--set"])
        .arg(r#"cluster.configs={ "broker.session.timeout.ms" = 3000 }"#)
        .arg("--set")
        .arg(
            r#"faults=[{ at = "3s", action = "partition", broker = "leader:0", duration = "8s" }]"#,
        )
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    if !nix::unistd::geteuid().is_root() {
        assert_eq!(o.status.code(), Some(2), "{}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("faults[0].action") && err.contains("needs root"),
            "{err}"
        );
        eprintln!("not root: checked that the partition is refused; CI runs it as root");
        return;
    }
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let s = summary(out.path());
    assert!(s.verdict.passed, "{:?}", s.verdict);
    assert!(s.delivery.acked > 0);
    assert_eq!(s.delivery.lost, 0, "acknowledged messages lost");
    assert!(s.offsets.ok, "the log holds a duplicate or lost a message");
    // The brokers listened in their namespaces, on loopback addresses.
    assert!(
        s.target.bootstrap.starts_with("127.77."),
        "{}",
        s.target.bootstrap
    );

    assert_eq!(s.delivery.faults.len(), 1, "{:?}", s.delivery.faults);
    let f = &s.delivery.faults[0];
    assert_eq!(f.action, "partition");
    assert!(f.target.starts_with("broker "), "{f:?}");
    let healed = f.restarted_at_s.expect("the partition healed");
    assert!(
        healed - f.t_s >= 7.9,
        "healed {healed} s, fault {} s",
        f.t_s
    );
    // The majority failed over while the partition held.
    let recovery = f.recovery_s.expect("a recovery time");
    assert!(
        f.t_s + recovery < healed,
        "recovered {recovery} s after the fault: {f:?}"
    );
    // acks=all writes were held up while the leader was cut off.
    let u = f.unavailable.as_ref().expect("writes were held up");
    assert!(u.duration_s >= 1.0 && u.messages > 0, "{u:?}");
    assert!(u.to_s > f.t_s && u.from_s < healed, "{u:?} for {f:?}");

    let details: Vec<&str> = s
        .events
        .iter()
        .filter(|e| e.kind == "fault")
        .map(|e| e.detail.as_str())
        .collect();
    for want in ["(leader:0) cut off from brokers", "heal partition broker"] {
        assert!(
            details.iter().any(|d| d.contains(want)),
            "{want}: {details:?}"
        );
    }
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("fault: partition broker"), "{stdout}");
    assert!(stdout.contains("writes held up"), "{stdout}");

    // Nothing of the network is left: the bridge named in the log, its veths, its namespaces.
    let log = std::fs::read_to_string(out.path().join("brokers/network.log")).unwrap();
    let bridge = log
        .lines()
        .find_map(|l| l.strip_prefix("ip link add ")?.strip_suffix(" type bridge"))
        .unwrap_or_else(|| panic!("no bridge in the log:\n{log}"))
        .to_string();
    assert!(log.contains(&format!("ip netns del {bridge}b1")), "{log}");
    let links = std::process::Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(!links.contains(&bridge), "{bridge} left behind:\n{links}");
    let namespaces = std::fs::read_dir("/var/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_else(|_| Vec::new());
    assert!(
        !namespaces.iter().any(|n| n.starts_with(&bridge)),
        "{namespaces:?}"
    );
}

#[test]
fn a_fault_on_a_broker_that_does_not_exist_is_a_validation_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_scenario(dir.path(), "bad.toml", "name = \"bad\"\n[cluster]\nbrokers = 1\n\n[[faults]]\nat = \"1s\"\naction = \"kill\"\nbroker = 3\n");
    let o = kbench().arg("validate").arg(&file).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.toml:8:"), "{err}");
    assert!(
        err.contains("bad.toml:8:1: faults[0].broker = 3: does not exist"),
        "{err}"
    );

    // On an external cluster, a signal needs a process kbench owns: the fault must be a command.
    let file = write_scenario(
        dir.path(),
        "external.toml",
        "name = \"ext\"\n\n[[faults]]\nat = \"1s\"\naction = \"kill\"\nbroker = 1\n",
    );
    let o = kbench()
        .arg("run")
        .arg(&file)
        .args(["--bootstrap", "127.0.0.1:1", "--out"])
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("external.toml:5:") && err.contains("faults[0].action"),
        "{err}"
    );
}

#[test]
fn cluster_up_serves_describe_and_leaves_no_broker_behind() {
    let data = tempfile::tempdir().unwrap();
    let mut up = kbench()
        .args(["cluster", "up", "--brokers", "1", "--data"])
        .arg(data.path())
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
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("cluster up prints the bootstrap line");
    let bootstrap = line
        .strip_prefix("bootstrap: ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    let broker: i32 = std::fs::read_to_string(data.path().join("brokers/1/pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    // A topic of 3 partitions, made by a short run against the cluster.
    let file = write_scenario(data.path(), "t.toml", "name = \"t\"\n[topic]\nname = \"described\"\npartitions = 3\n[producers]\nmessages_each = 10\n[consumers]\ngroups = 0\n[verify]\ndelivery = \"none\"\non_disk = true\n");
    let o = run(
        &file,
        &["--bootstrap", &bootstrap],
        &data.path().join("run"),
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    // On an external cluster the on-disk check asks the brokers (DescribeLogDirs).
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.path().join("run/summary.json")).unwrap())
            .unwrap();
    assert_eq!(
        summary["on_disk"]["method"], "describe_log_dirs",
        "{summary:#}"
    );
    assert_eq!(summary["on_disk"]["ok"], true, "{summary:#}");
    assert!(
        summary["on_disk"]["growth_bytes"].as_i64().unwrap() > 0,
        "{summary:#}"
    );

    let o = kbench()
        .args(["cluster", "describe", "--bootstrap", &bootstrap])
        .args(["--topic", "described"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.starts_with("Brokers: 1\n\tBroker: 1\tAddress: 127.0.0.1:"),
        "the brokers come first: {text}"
    );
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("Brokers: ") && !l.starts_with("\tBroker: "))
        .collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with("Topic: described\tPartitionCount: 3\tReplicationFactor: 1\tConfigs:"),
        "{text}"
    );
    for (p, line) in lines[1..].iter().enumerate() {
        assert_eq!(
            *line,
            format!("\tTopic: described\tPartition: {p}\tLeader: 1\tReplicas: 1\tIsr: 1"),
            "{text}"
        );
    }

    // Ctrl-C stops the cluster; no broker outlives it.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(up.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while up.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "cluster up ignored Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(up.wait().unwrap().code(), Some(0));
    assert!(!alive(broker), "broker {broker} outlived cluster up");
}
