//! End-to-end tests of the `kbench` binary against real embedded kbroker processes.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{kbench, run, scenario, show, spawn_run, summary, write_scenario};

#[test]
fn smoke_scenario_passes_with_correct_counts_and_a_full_report() {
    let out = tempfile::tempdir().unwrap();
    let o = run(&scenario("smoke.toml"), &[], out.path());
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let s = summary(out.path());
    assert!(s.verdict.passed, "{:?}", s.verdict);
    assert_eq!(s.produce.messages, 10_000);
    assert_eq!(s.produce.acked, 10_000);
    assert_eq!(s.produce.failed, 0);
    assert_eq!(s.delivery.acked, 10_000);
    assert_eq!(s.delivery.consumed, 10_000);
    assert_eq!(
        (
            s.delivery.lost,
            s.delivery.duplicated,
            s.delivery.unexpected
        ),
        (0, 0, 0)
    );
    assert!(s.offsets.ok);
    assert_eq!(s.offsets.partitions.len(), 4);
    assert_eq!(
        s.offsets.partitions.iter().map(|p| p.acked).sum::<u64>(),
        10_000
    );
    assert_eq!(s.on_disk.ok, Some(true), "{:?}", s.on_disk);
    assert!(s.on_disk.growth_bytes as u64 >= 10_000 * 1024);
    assert_eq!(s.config["producers"]["message_size"], "1KiB");
    assert!(s.produce.latency_ms.count > 0 && s.consume.e2e_latency_ms.count > 0);
    // Report files exist and parse.
    for f in [
        "timeseries.csv",
        "system.csv",
        "produce_latency.hgrm",
        "e2e_latency.hgrm",
        "report.html",
    ] {
        let p = out.path().join(f);
        assert!(
            p.metadata().map(|m| m.len() > 0).unwrap_or(false),
            "{f} missing or empty"
        );
    }
    let ts = std::fs::read(out.path().join("timeseries.csv")).unwrap();
    let rows = kbench::report::csv::read_timeseries(&ts).unwrap();
    assert!(!rows.is_empty());
    assert_eq!(rows.iter().map(|r| r.acked_msgs).sum::<u64>(), 10_000);
    assert_eq!(rows.iter().map(|r| r.consumed_msgs).sum::<u64>(), 10_000);
    let hgrm = std::fs::read_to_string(out.path().join("produce_latency.hgrm")).unwrap();
    assert!(!kbench::report::hgrm::parse_percentile_distribution(&hgrm)
        .unwrap()
        .is_empty());
    // The terminal table was printed; the broker was stopped and left its log.
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("PASSED"),
        "{}",
        show(&o)
    );
    assert!(out.path().join("brokers/1/broker.log").exists());
    // A run that passed leaves no log data behind (cluster.keep_data is off).
    assert!(
        !out.path().join("brokers/1/data").exists(),
        "broker data left after a passing run"
    );
    // `kbench report` redraws from the files.
    let r = kbench().arg("report").arg(out.path()).output().unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", show(&r));
}

#[test]
fn keep_data_keeps_the_brokers_log_data_after_a_passing_run() {
    let out = tempfile::tempdir().unwrap();
    let o = run(
        &scenario("smoke.toml"),
        &["--set", "cluster.keep_data=true"],
        out.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let data = out.path().join("brokers/1/data");
    let partitions = std::fs::read_dir(&data)
        .unwrap_or_else(|e| panic!("{}: {e}", data.display()))
        .count();
    assert!(
        partitions > 0,
        "no partition directories in {}",
        data.display()
    );
}

#[test]
fn set_overrides_reach_the_run() {
    let out = tempfile::tempdir().unwrap();
    let o = kbench()
        .args(["run", scenario("smoke.toml").to_str().unwrap()])
        .args([
            "--set",
            "producers.count=1",
            "--set",
            "producers.messages_each=300",
        ])
        .args([
            "--set",
            "producers.message_size=2KiB",
            "--set",
            "topic.partitions=2",
        ])
        .args(["--set", "consumers.members=1", "--set", "producers.acks=1"])
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let s = summary(out.path());
    assert_eq!(s.produce.acked, 300);
    assert_eq!(s.produce.bytes, 300 * 2048);
    assert_eq!(s.offsets.partitions.len(), 2);
    assert_eq!(s.config["producers"]["acks"], "1");
    assert_eq!(s.config["producers"]["count"], 1);
}

#[test]
fn scenario_with_a_typo_exits_2_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_scenario(
        dir.path(),
        "typo.toml",
        "name = \"typo\"\n\n[producers]\ncount = 1\nmessages_eahc = 10\n",
    );
    for cmd in ["run", "validate"] {
        let o = kbench()
            .arg(cmd)
            .arg(&file)
            .arg("--out")
            .arg(dir.path().join("out"))
            .output()
            .unwrap();
        let o = if cmd == "validate" {
            kbench().arg(cmd).arg(&file).output().unwrap()
        } else {
            o
        };
        assert_eq!(o.status.code(), Some(2), "{}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("typo.toml:5:1"), "{err}");
        assert!(
            err.contains("unknown key \"messages_eahc\" in [producers]"),
            "{err}"
        );
        assert!(err.contains("did you mean \"messages_each\""), "{err}");
    }
    // A bad --set is named too.
    let o = kbench()
        .args([
            "validate",
            scenario("smoke.toml").to_str().unwrap(),
            "--set",
            "producers.acks=2",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--set producers.acks=2"),
        "{}",
        show(&o)
    );
}

#[test]
fn unreachable_bootstrap_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on: bind, note, release.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let o = kbench()
        .args([
            "run",
            scenario("smoke.toml").to_str().unwrap(),
            "--bootstrap",
            &format!("127.0.0.1:{port}"),
            "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cannot reach the cluster"),
        "{}",
        show(&o)
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn a_broker_killed_mid_run_fails_the_run_clearly_without_hanging() {
    let out = tempfile::tempdir().unwrap();
    let file = write_scenario(out.path(), "long.toml", "name = \"long\"\n[topic]\npartitions = 2\n[producers]\ncount = 2\nduration = \"60s\"\ntotal_rate = \"2000/s\"\n[verify]\ndelivery = \"exactly-once\"\n");
    let mut child = spawn_run(&file, out.path());
    let pid_file = out.path().join("brokers/1/pid");
    let started = Instant::now();
    // Wait until messages flow (time series rows with acknowledgements), then kill the broker.
    let pid = loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the run never started"
        );
        if child.try_wait().unwrap().is_some() {
            panic!(
                "kbench ended before the broker was killed: {}",
                show(&child.wait_with_output().unwrap())
            );
        }
        if let Ok(text) = std::fs::read_to_string(&pid_file) {
            if let Ok(pid) = text.trim().parse::<i32>() {
                let log = std::fs::read_to_string(out.path().join("brokers/1/broker.log"))
                    .unwrap_or_default();
                if log.contains("joined")
                    || log.contains("group")
                    || started.elapsed() > Duration::from_secs(5)
                {
                    break pid;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_secs(2));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let killed = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if killed.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("kbench still running 60 s after the broker was killed");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let o = child.wait_with_output().unwrap();
    assert_eq!(status.code(), Some(1), "{}", show(&o));
    let s = summary(out.path());
    assert!(!s.verdict.passed);
    assert!(
        s.verdict
            .failures
            .iter()
            .any(|f| f.contains("embedded broker 1") && f.contains("exited during the run")),
        "{:?}",
        s.verdict.failures
    );
    assert!(
        killed.elapsed() < Duration::from_secs(30),
        "took {:?} to notice",
        killed.elapsed()
    );
}

#[test]
fn every_shipped_scenario_validates_through_the_binary() {
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")).unwrap()
    {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let o = kbench().arg("validate").arg(&path).output().unwrap();
            assert_eq!(o.status.code(), Some(0), "{}: {}", path.display(), show(&o));
        }
    }
}

#[test]
fn ctrl_c_stops_the_run_writes_the_report_and_stops_the_broker() {
    let out = tempfile::tempdir().unwrap();
    let file = write_scenario(out.path(), "long.toml", "name = \"long\"\n[topic]\npartitions = 2\n[producers]\ncount = 1\nduration = \"60s\"\nrate = \"1000/s\"\n");
    let mut child = spawn_run(&file, out.path());
    let pid_file = out.path().join("brokers/1/pid");
    let started = Instant::now();
    while !pid_file.exists() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let broker: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let me = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(me, nix::sys::signal::Signal::SIGINT).unwrap();
    let signalled = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            signalled.elapsed() < Duration::from_secs(30),
            "kbench ignored Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let s = summary(out.path());
    assert!(
        s.verdict.failures.iter().any(|f| f.contains("interrupted")),
        "{:?}",
        s.verdict
    );
    assert_eq!(
        s.delivery.lost, 0,
        "consumers drain what was written before stopping"
    );
    // The broker was stopped and reaped by kbench.
    let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(broker), None).is_ok();
    assert!(!alive, "broker {broker} outlived kbench");
}

#[test]
fn compare_exits_1_on_a_regression() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = kbench::summary::Summary::default();
    s.scenario.name = "x".into();
    s.verdict.passed = true;
    s.produce.msgs_per_s = 100_000.0;
    s.produce.mib_per_s = 100.0;
    s.produce.latency_ms.p99 = 10.0;
    let base = dir.path().join("base.json");
    std::fs::write(&base, serde_json::to_string(&s).unwrap()).unwrap();
    s.produce.msgs_per_s = 50_000.0;
    s.produce.mib_per_s = 50.0;
    let worse = dir.path().join("worse.json");
    std::fs::write(&worse, serde_json::to_string(&s).unwrap()).unwrap();
    let o = kbench()
        .arg("compare")
        .arg(&base)
        .arg(&worse)
        .args(["--max-throughput-drop", "10"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let o = kbench()
        .arg("compare")
        .arg(&base)
        .arg(&base)
        .args(["--max-throughput-drop", "10"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
}
