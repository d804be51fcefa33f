//! One scenario sharded over three kbench processes against one real cluster (`kbench cluster
//! up`), then `kbench merge`: the merged counts, verdict and histograms are what the three
//! ledgers and histograms hold; a shard killed mid-run fails the merged verdict naming it; the
//! start barrier holds when one shard starts late. Real binaries, real kbroker, librdkafka.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::{kbench, show, summary, write_scenario};
use kbench::shard::ShardRecord;

/// 3 producers × 2,000 × 512 B, one group of 3 members, exactly-once.
const SCENARIO: &str = r#"
name = "sharded"
[topic]
partitions = 3
[producers]
count = 3
messages_each = 2_000
message_size = "512B"
acks = "all"
linger = "5ms"
[consumers]
groups = 1
members = 3
drain_timeout = "20s"
[verify]
delivery = "exactly-once"
on_disk = true
[sampling]
interval = "500ms"
"#;

/// A `kbench cluster up --brokers 1` in the background, stopped when dropped.
struct Cluster {
    child: Child,
    bootstrap: String,
}

impl Cluster {
    fn up(dir: &Path) -> Cluster {
        let mut child = kbench()
            .args(["cluster", "up", "--brokers", "1", "--dir"])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) {
                if let Some(b) = line.strip_prefix("bootstrap: ") {
                    return Cluster {
                        child,
                        bootstrap: b.to_string(),
                    };
                }
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("cluster up printed no bootstrap line within 60 s");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `kbench run SCENARIO --bootstrap B --shard I/3 --run-id ID --out DIR/I` in the background.
fn shard(scenario: &Path, bootstrap: &str, i: u32, id: &str, dir: &Path, extra: &[&str]) -> Child {
    kbench()
        .arg("run")
        .arg(scenario)
        .args(["--bootstrap", bootstrap, "--run-id", id])
        .args(["--shard", &format!("{i}/3")])
        .args(extra)
        .arg("--out")
        .arg(dir.join(i.to_string()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for a shard process, bounded.
fn finish(child: Child, what: &str) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(90)) {
        Ok(o) => o.unwrap(),
        Err(_) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            panic!("{what} did not end within 90 s");
        }
    }
}

fn merge(dirs: &[PathBuf], out: &Path) -> Output {
    kbench()
        .arg("merge")
        .args(dirs)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn dirs(root: &Path) -> Vec<PathBuf> {
    (1..=3).map(|i| root.join(i.to_string())).collect()
}

#[test]
fn three_shards_merge_to_the_scenario_total_with_nothing_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let cluster = Cluster::up(&tmp.path().join("cluster"));
    let sc = write_scenario(tmp.path(), "s.toml", SCENARIO);
    let runs = tmp.path().join("runs");
    let children: Vec<Child> = (1..=3)
        .map(|i| shard(&sc, &cluster.bootstrap, i, "merge-1", &runs, &[]))
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let o = finish(c, "a shard");
        assert_eq!(o.status.code(), Some(0), "shard {}: {}", i + 1, show(&o));
    }
    let started = std::time::Instant::now();
    let o = merge(&dirs(&runs), &tmp.path().join("merged"));
    eprintln!("merge of 3 shards took {:?}", started.elapsed());
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let m = summary(&tmp.path().join("merged"));
    let shards: Vec<_> = dirs(&runs).iter().map(|d| summary(d)).collect();
    assert_eq!(m.produce.acked, 6_000, "{:?}", m.verdict);
    assert_eq!(m.delivery.lost, 0);
    assert_eq!(m.delivery.duplicated, 0);
    assert_eq!(m.consume.messages, 6_000);
    assert!(m.verdict.passed, "{:?}", m.verdict.failures);
    assert!(m.offsets.ok, "{:?}", m.offsets);
    // On disk, once for the whole topic, from shard 1's DescribeLogDirs sizes.
    assert_eq!(m.on_disk.method, "describe_log_dirs", "{:?}", m.on_disk);
    assert_eq!(m.on_disk.ok, Some(true), "{:?}", m.on_disk);
    let sum: u64 = shards.iter().map(|s| s.produce.latency_ms.count).sum();
    assert_eq!(m.produce.latency_ms.count, sum);
    assert_eq!(
        shards.iter().map(|s| s.produce.acked).collect::<Vec<_>>(),
        [2_000, 2_000, 2_000]
    );
    // Producer indexes are global: shard 3 ran producer 2.
    let rec = ShardRecord::read(&runs.join("3")).unwrap();
    assert_eq!(rec.producers, (2, 1));
    for f in [
        "report.html",
        "timeseries.csv",
        "produce_latency.hdr",
        "shards.json",
        "system-shard-1.csv",
        "system-shard-3.csv",
    ] {
        assert!(tmp.path().join("merged").join(f).exists(), "{f} missing");
    }
    // Every shard's host side by side, in summary.json and in report.html.
    assert_eq!(
        m.hosts.iter().map(|h| h.shard.as_str()).collect::<Vec<_>>(),
        ["1/3", "2/3", "3/3"]
    );
    assert!(m
        .hosts
        .iter()
        .all(|h| h.finished && h.acked == 2_000 && h.system.samples > 0));
    let html = std::fs::read_to_string(tmp.path().join("merged").join("report.html")).unwrap();
    assert!(html.contains("<h2>Hosts"), "no hosts table in report.html");

    // A shard missing from the merge, or given twice: exit 2 naming it.
    let o = merge(&dirs(&runs)[..2], &tmp.path().join("m2"));
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(show(&o).contains("shard(s) 3 of 3"), "{}", show(&o));
    let twice = [runs.join("1"), runs.join("1"), runs.join("2")];
    let o = merge(&twice, &tmp.path().join("m3"));
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(show(&o).contains("shard 1/3 given twice"), "{}", show(&o));
    // Shards of another run: exit 2 naming the folder.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let mut rec3 = ShardRecord::read(&runs.join("3")).unwrap();
    rec3.run_id = "merge-2".into();
    rec3.write(&other).unwrap();
    let o = merge(
        &[runs.join("1"), runs.join("2"), other.clone()],
        &tmp.path().join("m4"),
    );
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        show(&o).contains("of run merge-2") && show(&o).contains(&other.display().to_string()),
        "{}",
        show(&o)
    );
    // End-to-end latency: only from messages consumed by the shard that produced them.
    let local: u64 = dirs(&runs)
        .iter()
        .map(|d| ShardRecord::read(d).unwrap().e2e_local)
        .sum();
    assert_eq!(m.consume.e2e_latency_ms.count, local);
    assert!(
        m.warnings
            .iter()
            .any(|w| w.contains("consumed by the shard that produced them")),
        "{:?}",
        m.warnings
    );
    // A shard alone at the start barrier fails naming the missing one.
    let o = kbench()
        .arg("run")
        .arg(&sc)
        .args(["--bootstrap", &cluster.bootstrap, "--shard", "1/2"])
        .args(["--run-id", "alone-1", "--barrier-timeout", "3", "--out"])
        .arg(tmp.path().join("alone"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        show(&o).contains("shard(s) 2 of 2 did not arrive"),
        "{}",
        show(&o)
    );
    // Sharding an embedded cluster is refused.
    let o = kbench()
        .arg("run")
        .arg(&sc)
        .args(["--shard", "1/2", "--run-id", "x", "--out"])
        .arg(tmp.path().join("emb"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(show(&o).contains("--bootstrap"), "{}", show(&o));
}

#[test]
fn a_shard_killed_mid_run_fails_the_merged_verdict_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let cluster = Cluster::up(&tmp.path().join("cluster"));
    // Paced: 2,000 messages at 400/s each take 5 s.
    let text = SCENARIO.replace("linger = \"5ms\"", "linger = \"5ms\"\nrate = \"400/s\"");
    let sc = write_scenario(tmp.path(), "s.toml", &text);
    let runs = tmp.path().join("runs");
    let extra = ["--barrier-timeout", "15"];
    let mut children: Vec<Child> = (1..=3)
        .map(|i| shard(&sc, &cluster.bootstrap, i, "kill-1", &runs, &extra))
        .collect();
    // Kill shard 2 two seconds after the agreed start.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let started = ShardRecord::read(&runs.join("2")).is_ok_and(|r| r.start_wall_us > 0);
        if started {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "shard 2 never passed the barrier"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    children[1].kill().unwrap();
    let _ = children[1].wait();
    for c in [children.remove(2), children.remove(0)] {
        let o = finish(c, "a shard");
        assert_eq!(o.status.code(), Some(1), "{}", show(&o));
        assert!(
            show(&o).contains("shard(s) 2 of 3 did not arrive"),
            "{}",
            show(&o)
        );
    }
    let o = merge(&dirs(&runs), &tmp.path().join("merged"));
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let m = summary(&tmp.path().join("merged"));
    assert!(!m.verdict.passed);
    assert!(
        m.verdict
            .failures
            .iter()
            .any(|f| f.starts_with("shard 2/3") && f.contains("did not finish")),
        "{:?}",
        m.verdict.failures
    );
}

#[test]
fn the_start_barrier_holds_when_one_shard_starts_3_s_late() {
    let tmp = tempfile::tempdir().unwrap();
    let cluster = Cluster::up(&tmp.path().join("cluster"));
    let sc = write_scenario(tmp.path(), "s.toml", SCENARIO);
    let runs = tmp.path().join("runs");
    let mut children: Vec<Child> = (1..=2)
        .map(|i| shard(&sc, &cluster.bootstrap, i, "late-1", &runs, &[]))
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let late_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    children.push(shard(&sc, &cluster.bootstrap, 3, "late-1", &runs, &[]));
    for c in children {
        let o = finish(c, "a shard");
        assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    }
    let starts: Vec<u64> = dirs(&runs)
        .iter()
        .map(|d| ShardRecord::read(d).unwrap().start_wall_us)
        .collect();
    assert!(starts.iter().all(|s| *s == starts[0]), "{starts:?}");
    assert!(
        starts[0] > late_us,
        "started before the late shard: {starts:?} vs {late_us}"
    );
    let o = merge(&dirs(&runs), &tmp.path().join("merged"));
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
}
