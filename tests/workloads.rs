//! The summary.json schema (units in names, rounded figures, older versions read or refused)
//! and the catch-up and max-rate workloads, end to end: the real `kbench` binary against
//! embedded kbroker processes.

mod common;

use std::path::Path;

use common::{kbench, run, scenario, show, summary};

fn raw(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

/// Decimals of a JSON number as written (`12.345` → 3).
fn decimals(n: &serde_json::Value) -> usize {
    let t = n.to_string();
    t.split_once('.').map_or(0, |(_, d)| d.len())
}

#[test]
fn summary_names_carry_units_floats_are_rounded_and_v1_is_read_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = run(
        &scenario("smoke.toml"),
        &["--set", "producers.messages_each=2000"],
        &out,
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let j = raw(&out);
    assert_eq!(j["schema_version"], 2);
    // One key of each unit family, under its schema-2 name; the old names are gone.
    assert!(
        j["on_disk"]["growth_bytes"].as_i64().unwrap() > 0,
        "{}",
        j["on_disk"]
    );
    assert!(j["on_disk"].get("growth").is_none());
    assert!(j["produce"]["duration_s"].as_f64().unwrap() > 0.0);
    assert!(j["produce"]["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
    assert!(j["produce"]["msgs_per_s"].as_f64().unwrap() > 0.0);
    assert!(
        j["produce"].get("target_msgs_per_s").is_some()
            && j["produce"].get("target_rate").is_none()
    );
    assert!(j["produce"].get("error_ratio").is_some() && j["produce"].get("error_rate").is_none());
    let procs = j["system"]["processes"].as_array().unwrap();
    assert!(!procs.is_empty());
    for p in procs {
        assert!(
            p.get("written_bytes").is_some() && p.get("bytes_written").is_none(),
            "{p}"
        );
        // One CPU base: % of the whole machine, like the machine's own figure.
        let cpu = p["cpu_max_pct"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&cpu), "{p}");
    }
    assert!(j["system"]["cpu_max_pct"].as_f64().unwrap() <= 100.0);
    // Rounded: at most 3 decimals from 1 up.
    for n in [
        &j["produce"]["msgs_per_s"],
        &j["produce"]["mib_per_s"],
        &j["consume"]["msgs_per_s"],
        &j["produce"]["latency_ms"]["mean"],
        &j["run"]["wall_s"],
    ] {
        assert!(decimals(n) <= 3, "{n} is not rounded");
    }
    let o = run(
        &scenario("smoke.toml"),
        &["--set", "producers.messages_each=2000"],
        &dir.path().join("again"),
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));

    // The same run as version 1 wrote it: old names, process CPU in % of one core.
    let mut v1 = j.clone();
    v1["schema_version"] = 1.into();
    let od = v1["on_disk"].as_object_mut().unwrap();
    let g = od.remove("growth_bytes").unwrap();
    od.insert("growth".into(), g);
    let p = v1["produce"].as_object_mut().unwrap();
    let e = p.remove("error_ratio").unwrap();
    p.insert("error_rate".into(), e);
    let cores = v1["system"]["cores"].as_f64().unwrap();
    for proc in v1["system"]["processes"].as_array_mut().unwrap() {
        let p = proc.as_object_mut().unwrap();
        let w = p.remove("written_bytes").unwrap();
        p.insert("bytes_written".into(), w);
        let c = p["cpu_avg_pct"].as_f64().unwrap() * cores;
        p.insert("cpu_avg_pct".into(), c.into());
    }
    let old = dir.path().join("old");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(old.join("summary.json"), v1.to_string()).unwrap();
    let o = kbench()
        .arg("compare")
        .arg(&old)
        .arg(dir.path().join("again"))
        .output()
        .unwrap();
    assert_ne!(
        o.status.code(),
        Some(2),
        "version 1 must be read: {}",
        show(&o)
    );
    let back = kbench::summary::Summary::from_json(&v1.to_string()).unwrap();
    let now = summary(&out);
    assert_eq!(back.on_disk.growth_bytes, now.on_disk.growth_bytes);
    assert_eq!(
        back.system.processes[0].written_bytes,
        now.system.processes[0].written_bytes
    );
    assert!(
        (back.system.processes[0].cpu_avg_pct - now.system.processes[0].cpu_avg_pct).abs() < 0.01,
        "v1's % of one core is upgraded to % of the machine"
    );

    // A version this kbench does not know is refused, naming it and what is read.
    v1["schema_version"] = 99.into();
    std::fs::write(old.join("summary.json"), v1.to_string()).unwrap();
    let o = kbench()
        .arg("compare")
        .arg(&old)
        .arg(dir.path().join("again"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("schema_version 99") && err.contains("reads versions 1 to 2"),
        "{err}"
    );
}

#[test]
fn the_shipped_version_1_baseline_is_read_with_its_old_names() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/baselines/smoke/summary.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let old: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(old["schema_version"], 1, "the baseline is a version-1 file");
    let s = kbench::report::read_summary(&path).unwrap();
    assert_eq!(s.schema_version, 2);
    assert_eq!(
        s.on_disk.growth_bytes,
        old["on_disk"]["growth"].as_i64().unwrap()
    );
    let cores = old["system"]["cores"].as_f64().unwrap();
    for (p, o) in s
        .system
        .processes
        .iter()
        .zip(old["system"]["processes"].as_array().unwrap())
    {
        assert_eq!(p.written_bytes, o["bytes_written"].as_u64().unwrap());
        let one_core = o["cpu_avg_pct"].as_f64().unwrap();
        assert!((p.cpu_avg_pct - one_core / cores).abs() < 1e-9, "{p:?}");
    }
}

#[test]
fn catch_up_builds_the_backlog_before_the_consumers_start_and_reports_the_drain() {
    let out = tempfile::tempdir().unwrap();
    let o = run(
        &scenario("catch-up.toml"),
        &[
            "--set",
            "producers.count=2",
            "--set",
            "producers.messages_each=5000",
        ],
        out.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let s = summary(out.path());
    assert!(s.verdict.passed, "{:?}", s.verdict);
    let c = s.catch_up.clone().expect("catch_up section");
    assert_eq!(c.backlog_messages, 10_000);
    assert_eq!(c.backlog_bytes, 10_000 * 1024);
    assert!(c.complete, "{c:?}");
    assert_eq!(c.drained_messages, c.backlog_messages);
    // The first member to join may read the whole backlog before the group settles, so
    // assign_s may come after the drain; the first message never comes after the last.
    assert!(
        c.drain_s > 0.0 && c.drain_s >= c.first_message_s && c.assign_s > 0.0,
        "{c:?}"
    );
    // The consume figures of a catch-up are over the drain, not the whole run.
    assert!(
        (s.consume.duration_s - c.drain_s).abs() < 0.01,
        "{:?} {c:?}",
        s.consume
    );
    let rate = c.drained_messages as f64 / c.drain_s;
    assert!((c.drain_msgs_per_s - rate).abs() / rate < 0.01, "{c:?}");
    assert!(
        c.page_cache == "dropped" || c.page_cache.starts_with("not dropped: "),
        "{}",
        c.page_cache
    );
    // The consumers started after the last acknowledgement and read nothing before.
    let t = |kind: &str| {
        s.events
            .iter()
            .find(|e| e.kind == kind)
            .unwrap_or_else(|| panic!("no {kind} event: {:?}", s.events))
            .t_s
    };
    assert!(
        t("consumers_start") >= t("producers_done"),
        "{:?}",
        s.events
    );
    assert!(c.pause_s >= 0.0);
    let ts = std::fs::read(out.path().join("timeseries.csv")).unwrap();
    let rows = kbench::report::csv::read_timeseries(&ts).unwrap();
    let before: u64 = rows
        .iter()
        .filter(|r| r.t_s <= t("producers_done"))
        .map(|r| r.consumed_msgs)
        .sum();
    assert_eq!(before, 0, "consumed before the producers were done");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("catch-up: drained 10000 msgs in"),
        "{}",
        show(&o)
    );
}

#[test]
fn drop_page_cache_without_after_produce_is_refused_naming_the_key() {
    let out = tempfile::tempdir().unwrap();
    let o = run(
        &scenario("smoke.toml"),
        &["--set", "consumers.drop_page_cache=true"],
        &out.path().join("x"),
    );
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("consumers.drop_page_cache") && err.contains("after-produce"),
        "{err}"
    );
}

fn max_rate(out: &Path, bound: &str, steps: &str) -> std::process::Output {
    run(
        &scenario("max-rate.toml"),
        &[
            "--set",
            "consumers.groups=0",
            "--set",
            "verify.delivery=none",
            "--set",
            "max_rate.start_rate=1000",
            "--set",
            "max_rate.ceiling=4000",
            "--set",
            &format!("max_rate.max_steps={steps}"),
            "--set",
            "max_rate.step_duration=2s",
            "--set",
            &format!("max_rate.p99_bound={bound}"),
        ],
        out,
    )
}

#[test]
fn max_rate_walks_the_curve_and_reports_the_rate_found() {
    // On a quiet machine every step is sustained (1000, 2000, 4000: the ceiling); on a busy
    // one a step may not be. Either way the walk must follow the search from the verdicts it
    // got, each verdict must follow from the step's own figures, and the rate found must be
    // the highest sustained step.
    let out = tempfile::tempdir().unwrap();
    let o = max_rate(out.path(), "2s", "3");
    let s = summary(out.path());
    let m = s.max_rate.clone().expect("max_rate section");
    let mut search = kbench::max_rate::Search::new(1000.0, 4000.0, 3, 0.1);
    for step in &m.steps {
        assert_eq!(search.next_rate(), Some(step.target_msgs_per_s), "{m:?}");
        let keeps_up = step.achieved_msgs_per_s >= 0.95 * step.target_msgs_per_s;
        assert_eq!(
            step.sustained,
            keeps_up && step.p99_ms <= 2000.0,
            "{step:?}"
        );
        assert!(step.p99_ms > 0.0 && step.p50_ms <= step.p99_ms, "{step:?}");
        assert!(out.path().join(&step.dir).join("summary.json").is_file());
        search.record(step.target_msgs_per_s, step.sustained);
    }
    assert_eq!(
        search.next_rate(),
        None,
        "the search ended where it should: {m:?}"
    );
    assert_eq!(m.stopped, search.stopped());
    assert_eq!(m.found_msgs_per_s, search.found());
    let stdout = String::from_utf8_lossy(&o.stdout);
    match m.found_msgs_per_s {
        Some(found) => {
            assert_eq!(o.status.code(), Some(0), "{}", show(&o));
            assert_eq!(
                s.produce.target_msgs_per_s,
                Some(found),
                "the summary is the found step's"
            );
            assert!(
                stdout.contains(&format!("max sustainable rate: {found:.0} msgs/s")),
                "{}",
                show(&o)
            );
        }
        None => assert_eq!(o.status.code(), Some(1), "{}", show(&o)),
    }
}

#[test]
fn max_rate_whose_first_step_fails_reports_no_rate_and_exits_1() {
    let out = tempfile::tempdir().unwrap();
    let o = max_rate(out.path(), "0.01ms", "3");
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let s = summary(out.path());
    let m = s.max_rate.expect("max_rate section");
    assert_eq!(m.steps.len(), 1, "{m:?}");
    assert!(
        m.steps[0].verdict.starts_with("not sustained: ") && m.steps[0].verdict.contains("p99 "),
        "{m:?}"
    );
    assert_eq!(m.found_msgs_per_s, None);
    assert!(
        s.verdict.failures[0].contains("no sustainable rate"),
        "{:?}",
        s.verdict
    );
    let j = raw(out.path());
    assert!(j["max_rate"]["found_msgs_per_s"].is_null());
}
