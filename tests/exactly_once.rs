//! Exactly-once end to end through the `kbench` binary against embedded kbroker processes:
//! transactional producers with aborts under a read_committed verifier, the consume-transform-
//! produce pipeline with a worker killed mid-transaction and restarted, and the producer-modes
//! matrix with its comparison. Short versions of the shipped scenarios, via `--set`.

mod common;

use std::path::Path;
use std::process::Output;

use common::{kbench, scenario, show, summary};

fn run(file: &str, sets: &[&str], out: &Path) -> Output {
    let mut c = kbench();
    c.arg("run").arg(scenario(file)).arg("--out").arg(out);
    for s in sets {
        c.args(["--set", s]);
    }
    c.output().unwrap()
}

#[test]
fn exactly_once_scenario_passes_with_aborted_transactions_counted_and_invisible() {
    let out = tempfile::tempdir().unwrap();
    let o = run(
        "exactly-once.toml",
        &[
            "producers.count=2",
            "producers.messages_each=2000",
            "producers.abort_ratio=0.25",
        ],
        out.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let s = summary(out.path());
    assert!(s.verdict.passed, "{:?}", s.verdict);
    let t = s
        .delivery
        .transactions
        .as_ref()
        .expect("transactions reported");
    // 2 producers × 20 transactions of 100, a quarter aborted on purpose.
    assert_eq!(
        (t.committed, t.aborted, t.aborted_on_error),
        (30, 10, 0),
        "{t:?}"
    );
    assert_eq!(t.commit_latency_ms.count, 30);
    assert_eq!(s.delivery.aborted, 1000);
    assert_eq!(s.produce.messages, 4000);
    assert_eq!(s.produce.acked, 3000);
    assert_eq!(
        (
            s.delivery.acked,
            s.delivery.consumed,
            s.delivery.lost,
            s.delivery.duplicated,
            s.delivery.aborted_visible,
            s.delivery.unexpected,
        ),
        (3000, 3000, 0, 0, 0, 0)
    );
    // The log holds the aborted records and a marker per transaction and partition, and the
    // offsets check accounts for both.
    assert!(s.offsets.ok, "{:?}", s.offsets);
    let grew: i64 = s.offsets.partitions.iter().map(|p| p.end - p.start).sum();
    assert!(grew > 4000, "{grew}");
}

#[test]
fn pipeline_passes_with_a_worker_killed_mid_transaction_and_restarted() {
    let out = tempfile::tempdir().unwrap();
    let o = run(
        "pipeline.toml",
        &[
            "producers.messages_each=10000",
            "producers.total_rate=5000/s",
            "pipeline.kills=[{ worker = 1, at = \"1500ms\", restart_after = \"500ms\" }]",
        ],
        out.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let s = summary(out.path());
    assert!(s.verdict.passed, "{:?}", s.verdict);
    let p = s.delivery.pipeline.as_ref().expect("pipeline reported");
    assert_eq!(p.kills.len(), 1, "{p:?}");
    assert_eq!(p.kills[0].worker, 1);
    assert!(
        p.kills[0].open_transaction_records > 0,
        "the kill left a transaction open: {p:?}"
    );
    assert!(p.kills[0].restarted_at_s.is_some(), "{p:?}");
    assert!(p.transactions.committed > 0 && p.transactions.left_open == 1);
    assert!(p.input_committed >= 20_000);
    assert_eq!(
        (
            s.delivery.acked,
            s.delivery.consumed,
            s.delivery.lost,
            s.delivery.duplicated
        ),
        (20_000, 20_000, 0, 0)
    );
    assert!(s.events.iter().any(|e| e.kind == "worker_kill"));
    assert!(s.events.iter().any(|e| e.kind == "worker_restart"));
}

#[test]
fn producer_modes_matrix_runs_every_mode_and_writes_the_comparison() {
    let out = tempfile::tempdir().unwrap();
    let o = run(
        "producer-modes.toml",
        &["producers.count=2", "producers.messages_each=3000"],
        out.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    for label in [
        "idempotence-false",
        "idempotence-true",
        "transactional-true",
    ] {
        let s = summary(&out.path().join(label));
        assert!(s.verdict.passed, "{label}: {:?}", s.verdict);
        assert_eq!(s.delivery.acked, 6000, "{label}");
        assert_eq!(
            s.delivery.transactions.is_some(),
            label == "transactional-true",
            "{label}"
        );
        assert_eq!(
            s.config["producers"]["idempotence"],
            label == "idempotence-true",
            "{label}"
        );
    }
    let cmp = std::fs::read_to_string(out.path().join("comparison.md")).expect("comparison.md");
    assert!(cmp.contains("[producers=transactional=true]"), "{cmp}");
    assert!(out.path().join("comparison.csv").exists());
}

#[test]
fn abort_ratio_without_transactions_is_refused_naming_both_keys() {
    let o = kbench()
        .arg("validate")
        .arg(scenario("smoke.toml"))
        .args(["--set", "producers.abort_ratio=0.1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("producers.abort_ratio") && err.contains("producers.transactional"),
        "{err}"
    );
    let o = kbench()
        .arg("validate")
        .arg(scenario("exactly-once.toml"))
        .args(["--set", "producers.acks=1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("transactional = true implies idempotence"),
        "{}",
        show(&o)
    );
}
