//! kbench against a broker whose disk fills up: a kbroker (`kbench broker`) with its log dir on
//! a small tmpfs that the test mounts and fills itself. The run must count the refusals as
//! `storage` errors, stop producing, keep every acknowledged message, and end with exit 1 and a
//! failure naming the storage errors, within a bounded time rather than hanging.
//!
//! Mounting needs root (CAP_SYS_ADMIN); without it the test fails, saying so.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{kbench, show, summary, write_scenario};

#[allow(dead_code, unreachable_pub)]
#[path = "../broker/tests/common/tmpfs.rs"]
mod tmpfs;
use tmpfs::Tmpfs;

/// A kbroker process (kbench re-executed as one), killed on drop.
struct Broker {
    child: Child,
    bootstrap: String,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Broker {
    fn start(log_dir: &std::path::Path) -> Broker {
        let mut child = kbench()
            .arg("broker")
            .args(["--override", "listeners=PLAINTEXT://127.0.0.1:0"])
            .arg("--override")
            .arg(format!("log.dirs={}", log_dir.display()))
            .args(["--override", "group.initial.rebalance.delay.ms=0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kbench broker");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let addr = rest.split([',', ' ']).next().unwrap_or_default().to_owned();
                    let _ = tx.send(addr);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let mut broker = Broker {
            child,
            bootstrap: String::new(),
            log,
        };
        broker.bootstrap = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("broker not ready in 30 s:\n{}", broker.log()));
        broker
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_full_broker_disk_fails_the_run_naming_storage_errors_without_losing_acked_messages() {
    let fs = Tmpfs::mount("16m");
    let log_dir = fs.mount_point.join("data");
    let broker = Broker::start(&log_dir);
    fs.fill_leaving(1 << 20);

    let dir = tempfile::tempdir().expect("temp dir");
    // 20 MiB for about 1 MiB of free space. Two retries instead of kbench's 20, so that the
    // storage error surfaces in under a second. Batches of at most 16 KiB, so that many fit in
    // that space whatever the timing (with librdkafka's 1 MB batches one early batch could take
    // it all: a CI run acknowledged only 73 messages).
    let scenario = write_scenario(
        dir.path(),
        "disk-full.toml",
        r#"
name = "disk-full"
description = "one producer against a broker with 1 MiB of disk left"

[topic]
partitions = 1

[producers]
count = 1
messages_each = 20_000
message_size = "1KiB"
acks = "all"
linger = "5ms"
time_limit = "2m"
client_configs = { retries = 2, "batch.size" = 16384 }

[consumers]
groups = 1
members = 1
drain_timeout = "10s"

[verify]
delivery = "at-least-once"
on_disk = false
"#,
    );
    let out = dir.path().join("out");
    let mut run = kbench()
        .arg("run")
        .arg(&scenario)
        .args(["--bootstrap", &broker.bootstrap])
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kbench run");
    let started = Instant::now();
    while run.try_wait().expect("wait").is_none() {
        if started.elapsed() > Duration::from_secs(150) {
            let _ = run.kill();
            let o = run.wait_with_output().expect("output");
            panic!(
                "kbench hung on a full disk (killed after 150 s):\n{}",
                show(&o)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let o = run.wait_with_output().expect("output");
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let verdict = String::from_utf8_lossy(&o.stdout);
    assert!(
        verdict.contains("✗ storage: the cluster refused")
            && verdict.contains("KAFKA_STORAGE_ERROR"),
        "the failure does not name the storage errors:\n{}",
        show(&o)
    );

    let s = summary(&out);
    assert!(!s.verdict.passed);
    assert!(
        s.verdict
            .failures
            .iter()
            .any(|f| f.starts_with("storage:") && f.contains("KAFKA_STORAGE_ERROR")),
        "{:?}",
        s.verdict.failures
    );
    let storage = s.errors.get("produce:storage").copied().unwrap_or(0);
    assert!(storage > 0, "no storage errors counted: {:?}", s.errors);
    assert_eq!(s.durability.produce_errors.get("storage"), Some(&storage));
    assert!(
        !s.errors.keys().any(|k| k.contains("TimedOut")),
        "timeouts instead of storage errors: {:?}",
        s.errors
    );
    assert!(s.events.iter().any(|e| e.kind == "storage_error"));
    assert!(
        s.produce.acked > 100 && s.produce.acked < 20_000,
        "acknowledged {} of 20000 with 1 MiB of disk",
        s.produce.acked
    );
    // The run stopped at the first storage errors: what was still queued was purged, not
    // sent into the same error.
    assert!(
        s.errors.get("produce:PurgeQueue").copied().unwrap_or(0) > 0 || s.produce.messages < 20_000,
        "the run went on producing after the storage errors: {:?}",
        s.errors
    );
    // Every acknowledged message is in the log and was read back.
    assert_eq!(s.delivery.lost, 0, "{:?}", s.delivery);
    assert_eq!(s.delivery.consumed, s.produce.acked, "{:?}", s.delivery);
    assert!(
        broker
            .log()
            .contains(&format!("log directory {} is full", log_dir.display())),
        "{}",
        broker.log()
    );
    drop(broker);
}
