//! The verdicts that guard against loss and corruption, each shown failing when it must: the
//! real `kbench` binary against real embedded kbroker processes, with the damage done for real
//! (a broker's data directory wiped, bytes of a segment file overwritten while the run goes on).

mod common;

use common::{run, scenario, show, summary, write_scenario};

/// RF 1: the broker holding partition 0 is wiped mid-run. The group read those messages before
/// the wipe; the final read finds them gone: lost, partition 0 named, exit 1.
#[test]
fn a_wiped_rf1_partition_loses_acknowledged_messages_and_the_run_fails() {
    let out = tempfile::tempdir().unwrap();
    let o = run(
        &scenario("wipe-rf1.toml"),
        &["--set", "producers.duration=5s"],
        out.path(),
    );
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let s = summary(out.path());
    let f = s.delivery.final_read.as_ref().expect("a final read");
    assert!(f.error.is_none(), "{f:?}");
    assert!(f.lost > 0, "nothing lost in the final read: {f:?}");
    assert!(
        f.partitions
            .iter()
            .any(|l| l.partition == 0 && l.missing > 0),
        "partition 0 not named: {f:?}"
    );
    assert!(s.delivery.lost >= f.lost, "{:?}", s.delivery);
    assert!(
        s.durability.acknowledged_lost >= f.lost,
        "{:?}",
        s.durability
    );
    let failures = s.verdict.failures.join("\n");
    assert!(
        failures.contains("final read:")
            && failures.contains("acknowledged messages are no longer in the log")
            && failures.contains("-0 holds"),
        "{failures}"
    );
    let wipe = s
        .events
        .iter()
        .find(|e| e.kind == "fault" && e.detail.contains("wipe broker"))
        .expect("a wipe event");
    assert!(wipe.detail.contains("deleted"), "{wipe:?}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("final read:"), "{stdout}");
}

/// RF 3, acks=all, min.insync 2: the leader of partition 0 wiped mid-run loses nothing, and
/// once it is back in the ISR its replicas hold exactly what the leaders hold.
#[test]
fn a_wiped_broker_of_a_durable_topic_loses_nothing() {
    let out = tempfile::tempdir().unwrap();
    let o = run(
        &scenario("wipe-rf3.toml"),
        &["--set", "producers.duration=6s"],
        out.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let s = summary(out.path());
    assert!(s.verdict.passed, "{:?}", s.verdict);
    let f = s.delivery.final_read.as_ref().expect("a final read");
    assert_eq!((f.lost, f.corrupted), (0, 0), "{f:?}");
    assert!(f.read >= s.delivery.acked, "{f:?}");
    assert_eq!(s.delivery.lost, 0);
    assert_eq!(s.on_disk.ok, Some(true), "{:?}", s.on_disk);
    assert_eq!(s.on_disk.method, "walk");
    assert!(s.on_disk.replicas.len() >= 3, "{:?}", s.on_disk.replicas);
    assert!(s
        .events
        .iter()
        .any(|e| e.kind == "fault" && e.detail.contains("wipe broker")));
}

/// A run whose topic's log is damaged while it runs: two bytes of the first record's body in
/// partition 0's segment overwritten on the broker's disk (librdkafka does not check batch
/// CRCs by default, so consumers are handed the damaged value). The final read counts it as
/// corrupted, not delivered, and the run fails.
#[test]
fn a_payload_corrupted_on_disk_is_counted_and_fails_the_run() {
    let out = tempfile::tempdir().unwrap();
    let seg = out
        .path()
        .join("run/brokers/1/data/integrity-0/00000000000000000000.log");
    let text = format!(
        r#"name = "integrity"
[topic]
name = "integrity"
partitions = 1
[producers]
messages_each = 3000
total_rate = "3000/s"
message_size = "1KiB"
[consumers]
groups = 1
[verify]
delivery = "at-least-once"
[[faults]]
after_messages = 1000
command = '''printf '\000\377' | dd of={} bs=1 seek=600 conv=notrunc'''
"#,
        seg.display()
    );
    let file = write_scenario(out.path(), "integrity.toml", &text);
    let o = run(&file, &[], &out.path().join("run"));
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let s = summary(&out.path().join("run"));
    let f = s.delivery.final_read.as_ref().expect("a final read");
    assert!(f.corrupted >= 1, "{f:?}");
    assert!(s.delivery.corrupted >= 1, "{:?}", s.delivery);
    assert!(
        s.verdict.failures.iter().any(|f| f.contains("corrupted")),
        "{:?}",
        s.verdict.failures
    );
}

/// Followers whose first batch of partition 0 is altered on disk (its CRC field overwritten)
/// after they wrote it: the on-disk check names the partition and each such replica.
#[test]
fn a_follower_that_does_not_hold_its_leaders_bytes_is_named() {
    let out = tempfile::tempdir().unwrap();
    let run_dir = out.path().join("run");
    let brokers = run_dir.join("brokers");
    let text = format!(
        r#"name = "replicas"
[cluster]
brokers = 3
[topic]
name = "replicas"
partitions = 1
replication_factor = 3
min_insync_replicas = 2
[producers]
messages_each = 3000
total_rate = "3000/s"
message_size = "1KiB"
acks = "all"
[consumers]
groups = 1
[verify]
delivery = "at-least-once"
[[faults]]
after_messages = 1500
broker = "leader:0"
command = '''for b in 1 2 3; do [ $b = {{broker}} ] || printf '\377\377\377\377' | dd of={}/$b/data/replicas-0/00000000000000000000.log bs=1 seek=17 conv=notrunc; done'''
"#,
        brokers.display()
    );
    let file = write_scenario(out.path(), "replicas.toml", &text);
    let o = run(&file, &[], &run_dir);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let s = summary(&run_dir);
    assert_eq!(s.on_disk.ok, Some(false), "{:?}", s.on_disk);
    let named: Vec<&String> = s
        .verdict
        .failures
        .iter()
        .filter(|f| {
            f.contains("on disk: replicas-0 replica on broker") && f.contains("the batches differ")
        })
        .collect();
    assert_eq!(named.len(), 2, "{:?}", s.verdict.failures);
    let bad: Vec<_> = s.on_disk.replicas.iter().filter(|r| !r.ok).collect();
    assert_eq!(bad.len(), 2, "{:?}", s.on_disk.replicas);
    // The messages themselves were delivered: only the replicas' copies differ.
    assert_eq!(s.delivery.lost, 0);
}

/// A run cut short by `producers.time_limit` says so first, with the messages never sent; the
/// set-up before the first send is reported apart from the measured window.
#[test]
fn a_run_stopped_by_the_time_limit_says_so_first() {
    let out = tempfile::tempdir().unwrap();
    let file = write_scenario(
        out.path(),
        "limited.toml",
        "name = \"limited\"\n[producers]\ncount = 2\nmessages_each = 5000\ntotal_rate = \"1000/s\"\ntime_limit = \"2s\"\n[consumers]\ngroups = 1\n",
    );
    let o = run(&file, &[], &out.path().join("run"));
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let s = summary(&out.path().join("run"));
    let first = &s.verdict.failures[0];
    assert!(
        first.starts_with("time limit: the run was stopped by producers.time_limit = 2s")
            && first.contains("messages were never sent"),
        "{:?}",
        s.verdict.failures
    );
    assert!(s.produce.time_limited);
    let never = s.produce.never_sent.expect("never_sent");
    assert!(
        never >= 6000,
        "{never} of 10000 never sent at 1000/s for 2 s"
    );
    assert_eq!(never + s.produce.messages, 10_000);
    assert!(
        s.produce.setup_s > 0.0 && s.produce.clients_s > 0.0,
        "{:?}",
        s.produce
    );
    assert!(s.produce.clients_s < s.produce.setup_s);
    assert!(s.events.iter().any(|e| e.kind == "time_limit"));
}

/// With `acks=0` nothing is acknowledged: the latency is the time to send, and says so.
#[test]
fn acks_0_latency_is_labelled_time_to_send() {
    let out = tempfile::tempdir().unwrap();
    let file = write_scenario(
        out.path(),
        "acks0.toml",
        "name = \"acks0\"\n[producers]\ncount = 1\nmessages_each = 2000\nacks = \"0\"\n[consumers]\ngroups = 1\n[verify]\ndelivery = \"at-most-once\"\n",
    );
    let o = run(&file, &[], &out.path().join("run"));
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let s = summary(&out.path().join("run"));
    assert!(
        s.produce.latency_means.starts_with("time to send"),
        "{:?}",
        s.produce.latency_means
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("time to send"), "{stdout}");
}
