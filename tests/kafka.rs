//! kbench against a real Apache Kafka (`compat/kafka/kafka.sh`: Kafka's own jars from Maven
//! Central, KRaft combined mode): the shipped scenarios reach the same verdicts as on kbroker,
//! a leader's JVM killed with -9 loses nothing acknowledged, and a SASL/TLS cluster is refused
//! fast without credentials and benchmarked with them.
//!
//! These need Java 17+ and Maven (the machine image has both; `.ci/run` checks). Without them
//! the tests fail with kafka.sh's message, they are not skipped.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use common::{kbench, run, scenario, show, summary, write_scenario};

/// One Kafka cluster at a time: three JVMs and kbench already fill two cores, and timing
/// (fail-over, refusal within seconds) is part of what is checked.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A Kafka cluster started by `kafka.sh up`, stopped (`down`) when dropped.
struct Kafka {
    _turn: MutexGuard<'static, ()>,
    dir: tempfile::TempDir,
    bootstrap: String,
    client_config: Option<PathBuf>,
}

fn kafka_sh() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("compat/kafka/kafka.sh")
}

impl Kafka {
    fn up(brokers: u32, security: &str) -> Kafka {
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
        let dir = tempfile::tempdir().unwrap();
        let o = Command::new(kafka_sh())
            .args([
                "up",
                "--brokers",
                &brokers.to_string(),
                "--security",
                security,
            ])
            .arg("--dir")
            .arg(dir.path())
            .output()
            .expect("run compat/kafka/kafka.sh");
        assert!(o.status.success(), "kafka.sh up failed:\n{}", show(&o));
        let stdout = String::from_utf8_lossy(&o.stdout);
        let value = |key: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(str::to_owned)
        };
        Kafka {
            _turn: turn,
            bootstrap: value("BOOTSTRAP=").expect("kafka.sh printed no BOOTSTRAP= line"),
            client_config: value("CLIENT_CONFIG=").map(PathBuf::from),
            dir,
        }
    }

    /// `kafka.sh VERB --dir DIR ...` as a shell command line, for fault commands.
    fn command(&self, verb: &str, rest: &str) -> String {
        format!(
            "{} {verb} --dir {} {rest}",
            kafka_sh().display(),
            self.dir.path().display()
        )
    }

    fn run(&self, scenario: &Path, args: &[&str], out: &Path) -> std::process::Output {
        let mut all = vec!["--bootstrap", &self.bootstrap];
        all.extend_from_slice(args);
        run(scenario, &all, out)
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        let _ = Command::new(kafka_sh())
            .args(["down", "--dir"])
            .arg(self.dir.path())
            .output();
    }
}

/// Runs `name` against `kafka` with `sets` and asserts it passed; returns the summary.
fn passes(kafka: &Kafka, name: &str, sets: &[&str]) -> kbench::summary::Summary {
    let out = tempfile::tempdir().unwrap();
    let mut args = Vec::new();
    for s in sets {
        args.extend(["--set", s]);
    }
    let o = kafka.run(&scenario(name), &args, out.path());
    assert_eq!(o.status.code(), Some(0), "{name} on Kafka:\n{}", show(&o));
    let s = summary(out.path());
    assert!(s.verdict.passed, "{name}: {:?}", s.verdict);
    s
}

/// The shipped scenarios, short versions as `.ci/run` runs them on kbroker, on one Kafka node:
/// the same verdicts.
#[test]
fn shipped_scenarios_pass_against_one_kafka_node() {
    let kafka = Kafka::up(1, "plaintext");

    let s = passes(&kafka, "smoke.toml", &[]);
    assert_eq!(s.delivery.lost + s.delivery.duplicated, 0);
    assert!(s.offsets.ok, "{:?}", s.offsets);
    // DescribeLogDirs against Kafka's own segment files: the bytes on disk agree.
    assert_eq!(s.on_disk.ok, Some(true), "{:?}", s.on_disk);

    let s = passes(
        &kafka,
        "exactly-once.toml",
        &[
            "producers.count=2",
            "producers.messages_each=2000",
            "producers.abort_ratio=0.25",
        ],
    );
    assert_eq!(s.delivery.lost + s.delivery.duplicated, 0);
    assert_eq!(s.delivery.aborted_visible, 0, "aborted records were read");
    assert!(s.delivery.aborted > 0, "no transaction was aborted");

    passes(
        &kafka,
        "pipeline.toml",
        &[
            "producers.messages_each=10000",
            "producers.total_rate=5000/s",
            r#"pipeline.kills=[{ worker = 1, at = "1500ms", restart_after = "500ms" }]"#,
        ],
    );
    passes(
        &kafka,
        "consumer-failover.toml",
        &[
            "producers.duration=8s",
            // One node: RF 1. (`--set` is validated in order, so min.insync comes down first.)
            "topic.min_insync_replicas=1",
            "topic.replication_factor=1",
        ],
    );
    // A matrix: one folder per cell, so only the exit code speaks for all of them.
    let out = tempfile::tempdir().unwrap();
    let o = kafka.run(
        &scenario("producer-modes.toml"),
        &[
            "--set",
            "producers.count=2",
            "--set",
            "producers.messages_each=3000",
        ],
        out.path(),
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "producer-modes on Kafka:\n{}",
        show(&o)
    );
}

/// RF 3, acks=all, min.insync 2 on three Kafka nodes; the leader of partition 0 is killed with
/// -9 through the fault `command` and started again 3 s later: nothing acknowledged is lost.
#[test]
fn acked_writes_survive_a_kafka_leader_kill_9() {
    let kafka = Kafka::up(3, "plaintext");
    let dir = tempfile::tempdir().unwrap();
    let kill_and_start = format!(
        "{} && sleep 3 && {}",
        kafka.command("kill", "--node {broker}"),
        kafka.command("start", "--node {broker}")
    );
    let text = format!(
        r#"
name = "kafka-leader-kill"
[topic]
partitions = 3
replication_factor = 3
min_insync_replicas = 2
[producers]
count = 2
duration = "12s"
total_rate = 2000
message_size = "512B"
acks = "all"
idempotence = true
[consumers]
groups = 1
members = 1
drain_timeout = "60s"
[verify]
delivery = "at-least-once"
[[faults]]
at = "3s"
broker = "leader:0"
command = "{kill_and_start}"
timeout = "120s"
"#
    );
    let file = write_scenario(dir.path(), "leader-kill.toml", &text);
    let out = tempfile::tempdir().unwrap();
    let o = kafka.run(&file, &[], out.path());
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let s = summary(out.path());
    assert!(s.delivery.acked > 10_000, "acked {}", s.delivery.acked);
    assert_eq!(s.delivery.lost, 0, "acknowledged messages lost");
    assert_eq!(s.delivery.faults.len(), 1, "{:?}", s.delivery.faults);
    let log = std::fs::read_to_string(out.path().join("faults.log")).unwrap_or_default();
    assert!(
        log.contains("killed"),
        "the fault command did not kill: {log}"
    );
}

/// A SASL_SSL cluster: without credentials the run stops at once (exit 2, the cause named);
/// with `--client-config` every client of the run (probe, admin, producers, consumers,
/// transactional producers) gets the security settings and the scenarios pass.
#[test]
fn a_secured_kafka_is_refused_fast_without_credentials_and_benchmarked_with_them() {
    let kafka = Kafka::up(1, "sasl_tls");
    let config = kafka
        .client_config
        .clone()
        .expect("kafka.sh printed no CLIENT_CONFIG= line for sasl_tls");

    let out = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let o = kafka.run(&scenario("smoke.toml"), &[], out.path());
    let took = started.elapsed();
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("refused the connection's security"),
        "the cause is not named:\n{err}"
    );
    assert!(took < Duration::from_secs(8), "refusal took {took:?}");

    // Wrong password: authentication fails, named as such.
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong.properties");
    let text = std::fs::read_to_string(&config).unwrap();
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("sasl.password=") {
                "sasl.password=wrong".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&wrong, text).unwrap();
    let o = kafka.run(
        &scenario("smoke.toml"),
        &["--client-config", wrong.to_str().unwrap()],
        out.path(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("uthentication"), "{err}");
    assert!(!err.contains("wrong"), "the password is printed: {err}");

    let config = config.to_str().unwrap();
    for (name, sets) in [
        ("smoke.toml", vec![]),
        (
            "exactly-once.toml",
            vec![
                "producers.count=2",
                "producers.messages_each=2000",
                "producers.abort_ratio=0.25",
            ],
        ),
    ] {
        let out = tempfile::tempdir().unwrap();
        let mut args = vec!["--client-config", config];
        for s in &sets {
            args.extend(["--set", s]);
        }
        let o = kafka.run(&scenario(name), &args, out.path());
        assert_eq!(
            o.status.code(),
            Some(0),
            "{name} over SASL_SSL:\n{}",
            show(&o)
        );
        let s = summary(out.path());
        assert_eq!(s.delivery.lost + s.delivery.duplicated, 0);
        // kbench's own DescribeLogDirs request cannot speak TLS: the check says why.
        assert_eq!(s.on_disk.ok, None, "{:?}", s.on_disk);
        let json = std::fs::read_to_string(out.path().join("summary.json")).unwrap();
        let password = std::fs::read_to_string(config)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("sasl.password=").map(str::to_owned))
            .unwrap();
        assert!(!json.contains(&password), "the password is in summary.json");
    }

    let o = kbench()
        .args(["cluster", "describe", "--bootstrap", &kafka.bootstrap])
        .args(["--client-config", config])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", show(&o));
}
