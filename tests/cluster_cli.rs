//! `kbench cluster up --dir DIR` and the verbs that act on it from other shells (`kill`,
//! `stop`, `start`, `down`, `describe --dir`), end to end: the real `kbench` binary, real
//! kbroker processes, a real run through librdkafka whose fault `command` is those verbs.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use common::{kbench, run, show, summary, write_scenario};

/// A `kbench cluster up --dir DIR` in the background; its stdout and stderr lines arrive on
/// one receiver.
struct Up {
    child: Child,
    lines: Receiver<String>,
    /// Every line received so far.
    seen: Vec<String>,
}

impl Up {
    fn start(dir: &Path, brokers: u32) -> (Up, String) {
        let mut child = kbench()
            .args(["cluster", "up", "--brokers", &brokers.to_string(), "--dir"])
            .arg(dir)
            .args(["--racks", "a,b,c"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let mut up = Up {
            child,
            lines,
            seen: Vec::new(),
        };
        let line = up.wait_for("bootstrap: ", Duration::from_secs(60));
        let bootstrap = line.strip_prefix("bootstrap: ").unwrap().to_string();
        (up, bootstrap)
    }

    /// The first line (seen before or arriving within `timeout`) containing `text`.
    fn wait_for(&mut self, text: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.seen.iter().find(|l| l.contains(text)) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => {
                    self.stop();
                    panic!(
                        "cluster up printed no line with {text:?} within {timeout:?}:\n{}",
                        self.seen.join("\n")
                    )
                }
            }
        }
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits (bounded) for `up` to end and returns its exit code.
    fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() >= deadline {
                self.stop();
                panic!("cluster up did not end within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        self.stop();
    }
}

fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

fn pid_of(dir: &Path, id: u32) -> i32 {
    let file = dir.join(format!("brokers/{id}/pid"));
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .trim()
        .parse()
        .unwrap()
}

/// `kbench cluster ARGS...`, to completion (each verb is bounded by itself).
fn cluster(args: &[&str]) -> Output {
    kbench().arg("cluster").args(args).output().unwrap()
}

/// `(id, alive)` of every broker `kbench cluster describe --dir DIR` lists.
fn described(dir: &str) -> (Vec<(u32, bool)>, String) {
    let o = cluster(&["describe", "--dir", dir]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let brokers = text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("Broker: "))
        .map(|l| {
            let id = l.split('\t').next().unwrap().parse().unwrap();
            (id, l.contains("Alive: yes"))
        })
        .collect();
    (brokers, text)
}

/// Waits (bounded) until `describe --dir` shows exactly `want` as (id, alive).
fn await_described(dir: &str, want: &[(u32, bool)]) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (brokers, text) = described(dir);
        if brokers == want {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "describe --dir never showed {want:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn leader_killed_and_started_again_through_cluster_verbs_loses_no_acknowledged_write() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let d = dir.to_str().unwrap();
    let (mut up, bootstrap) = Up::start(&dir, 3);
    let exe = env!("CARGO_BIN_EXE_kbench");
    // The fault is a shell command, as against any external cluster: kill the leader of
    // partition 0 through the cluster's own verbs, and start it again 2 s later.
    let text = format!(
        r#"name = "verbs"
[topic]
partitions = 3
replication_factor = 3
min_insync_replicas = 2
[producers]
count = 2
duration = "8s"
total_rate = "2000/s"
message_size = "512B"
acks = "all"
idempotence = true
[consumers]
groups = 1
members = 1
drain_timeout = "30s"
[verify]
delivery = "at-least-once"
offsets = true
[[faults]]
at = "2s"
broker = "leader:0"
timeout = "50s"
command = "{exe} cluster kill --dir {d} --node {{broker}} && sleep 2 && {exe} cluster start --dir {d} --node {{broker}}"
"#
    );
    let file = write_scenario(tmp.path(), "verbs.toml", &text);
    let out = tmp.path().join("run");
    let o = run(&file, &["--bootstrap", &bootstrap], &out);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let s = summary(&out);
    assert!(s.verdict.passed, "{:?}", s.verdict);
    let dur = &s.durability;
    assert_eq!((dur.acks.as_str(), dur.replication_factor), ("all", 3));
    assert_eq!(dur.min_insync_replicas, Some(2));
    assert!(dur.acknowledged > 1000, "{dur:?}");
    assert_eq!(dur.acknowledged_lost, 0, "acknowledged writes lost");
    assert!(s.offsets.ok, "the log holds a duplicate or lost a message");
    let log = std::fs::read_to_string(out.join("faults.log")).unwrap();
    eprintln!(
        "acknowledged {}, lost {}, duplicated {}; faults.log:\n{log}",
        dur.acknowledged, dur.acknowledged_lost, dur.duplicated
    );
    assert!(
        s.events
            .iter()
            .any(|e| e.kind == "fault" && e.detail.contains("command finished (status 0)")),
        "{:?}\n{log}",
        s.events
    );
    assert!(
        log.contains("killed (SIGKILL)") && log.contains("started"),
        "{log}"
    );

    // `up` saw the kill as asked for, and is still running with all three brokers serving.
    let killed = up.wait_for("is down as asked (signal: 9", Duration::from_secs(1));
    assert!(up.running(), "cluster up ended: {:?}", up.seen);
    let text = await_described(d, &[(1, true), (2, true), (3, true)]);
    assert_eq!(text.matches("Controller: yes").count(), 1, "{text}");
    assert!(
        text.contains("Rack: a") && text.contains("ReplicationFactor: 3"),
        "{text}"
    );
    assert!(killed.contains("still serving: broker(s)"), "{killed}");

    // `down` stops the brokers and `up`; a second `down` finds nothing to stop.
    let pids: Vec<i32> = (1..=3).map(|id| pid_of(&dir, id)).collect();
    let o = cluster(&["down", "--dir", d]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(up.wait(Duration::from_secs(15)), Some(0));
    assert!(pids.iter().all(|p| !alive(*p)), "a broker outlived down");
    let o = cluster(&["down", "--dir", d]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("nothing to stop"));
}

#[test]
fn a_broker_killed_from_outside_leaves_the_others_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let d = dir.to_str().unwrap();
    let (mut up, bootstrap) = Up::start(&dir, 3);

    // kill -9 from outside kbench: `up` says which broker died and how, and keeps running.
    let victim = pid_of(&dir, 2);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let line = up.wait_for("kbench: broker 2 (", Duration::from_secs(5));
    assert!(
        line.contains("died (signal: 9 (SIGKILL))")
            && line.contains("still serving: broker(s) 1,3")
            && line.contains("broker.log"),
        "{line}"
    );
    assert!(
        up.running(),
        "cluster up ended with its broker: {:?}",
        up.seen
    );
    await_described(d, &[(1, true), (2, false), (3, true)]);

    // The other two still take acks=all writes (min.insync 2) and serve them back (a new
    // topic gets RF 2: Kafka, too, refuses RF 3 with a broker down).
    let file = write_scenario(tmp.path(), "t.toml", "name = \"t\"\n[topic]\npartitions = 2\nreplication_factor = 2\nmin_insync_replicas = 2\n[producers]\nmessages_each = 300\nacks = \"all\"\n[consumers]\ngroups = 1\n[verify]\ndelivery = \"at-least-once\"\n");
    let out = tmp.path().join("run");
    let o = run(&file, &["--bootstrap", &bootstrap], &out);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(summary(&out).durability.acknowledged_lost, 0);

    // Each wrong request is one line naming DIR and the node, with a nonzero exit.
    let refused = |args: &[&str], why: &str| {
        let o = cluster(args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", show(&o));
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(why), "{args:?}: {err}");
    };
    refused(
        &["kill", "--dir", d, "--node", "2"],
        &format!("cluster at {d}: node 2 is already stopped"),
    );
    refused(
        &["stop", "--dir", d, "--node", "4"],
        &format!("cluster at {d}: no node 4 (nodes are 1..=3)"),
    );
    refused(
        &["start", "--dir", d, "--node", "1"],
        &format!("cluster at {d}: node 1 is already running (pid "),
    );
    let nowhere = tmp.path().join("nowhere");
    refused(
        &["kill", "--dir", nowhere.to_str().unwrap(), "--node", "1"],
        &format!("no cluster at {}", nowhere.display()),
    );

    // The dead broker starts again with its ports and data; `stop` takes one down cleanly.
    let o = cluster(&["start", "--dir", d, "--node", "2"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    await_described(d, &[(1, true), (2, true), (3, true)]);
    let o = cluster(&["stop", "--dir", d, "--node", "3"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("node 3 stopped (SIGTERM)"));
    up.wait_for("broker 3 (", Duration::from_secs(1));

    // `up` killed outright: no broker outlives it, and the verbs say it has ended.
    let pids: Vec<i32> = [1, 2].iter().map(|id| pid_of(&dir, *id)).collect();
    up.stop();
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| alive(*p)) {
        assert!(Instant::now() < deadline, "a broker outlived cluster up");
        std::thread::sleep(Duration::from_millis(50));
    }
    refused(
        &["start", "--dir", d, "--node", "3"],
        &format!("no cluster running at {d}: its `kbench cluster up` has ended"),
    );
}

#[test]
fn records_carry_their_send_time_as_create_time() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, Message, Offset, Timestamp, TopicPartitionList};

    let tmp = tempfile::tempdir().unwrap();
    let (mut up, bootstrap) = Up::start(&tmp.path().join("c"), 1);
    // Enough messages that librdkafka's own clock (what a record gets without a timestamp) would
    // cross a millisecond after kbench's for some of them.
    let messages = 20_000;
    let text = format!(
        r#"name = "stamps"
[topic]
name = "stamps"
partitions = 1
[producers]
count = 1
messages_each = {messages}
message_size = "128B"
[consumers]
groups = 0
[verify]
delivery = "none"
final_read = false
"#
    );
    let file = write_scenario(tmp.path(), "stamps.toml", &text);
    let o = run(&file, &["--bootstrap", &bootstrap], &tmp.path().join("run"));
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "stamps-check")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("stamps", 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut read = 0;
    while read < messages && Instant::now() < deadline {
        let Some(m) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let m = m.unwrap();
        let payload = m.payload().unwrap();
        let tag = u32::from_le_bytes(payload[..4].try_into().unwrap());
        let id = kbench::workload::payload::read_header(payload, tag).expect("a kbench message");
        assert_eq!(
            m.timestamp(),
            Timestamp::CreateTime((id.sent_us / 1000) as i64),
            "message {} of producer {}",
            id.seq,
            id.producer
        );
        read += 1;
    }
    assert_eq!(read, messages, "read back in time");
    up.stop();
}
