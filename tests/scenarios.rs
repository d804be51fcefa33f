//! Every scenario shipped in `scenarios/` loads and checks through the library.

use std::path::Path;

use kbench::scenario::Host;

const ROOT: Host = Host { uid: 0 };

#[test]
fn every_shipped_scenario_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            // As on the CI machine, which runs as root: partition.toml needs it.
            let text = std::fs::read_to_string(&path).unwrap();
            let loaded = kbench::scenario::load_str_on(&text, &path, &[], &ROOT)
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(!loaded.variants.is_empty());
            seen.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    for required in [
        "smoke.toml",
        "1gb.toml",
        "latency.toml",
        "acks.toml",
        "exactly-once.toml",
        "pipeline.toml",
        "producer-modes.toml",
        "broker-restart.toml",
        "consumer-failover.toml",
        "replication.toml",
        "failover.toml",
        "partition.toml",
    ] {
        assert!(
            seen.iter().any(|s| s == required),
            "{required} missing from scenarios/"
        );
    }
}

#[test]
fn the_1gb_scenario_is_the_seed_test() {
    let l = kbench::scenario::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/1gb.toml"),
        &[],
    )
    .unwrap();
    let s = &l.variants[0].scenario;
    assert_eq!(s.producers.count, 16);
    assert_eq!(s.producers.messages_each, Some(65_536));
    assert_eq!(s.producers.message_size.0, 1024);
    assert_eq!((s.consumers.groups, s.consumers.members), (1, 4));
    assert!(s.verify.on_disk);
    // The seeds' setup: 3 brokers, RF 3, acks=all.
    assert_eq!(s.cluster.brokers, 3);
    assert_eq!(s.topic.replication_factor, 3);
    assert_eq!(s.topic.min_insync(), Some(2));
    assert_eq!(s.producers.acks.as_config(), "all");
}

fn load(name: &str, sets: &[&str]) -> kbench::scenario::Loaded {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    kbench::scenario::load(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios")
            .join(name),
        &sets,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_replication_matrix_is_rf_by_acks_with_loss_judged_only_where_promised() {
    use kbench::scenario::Delivery;
    let l = load("replication.toml", &[]);
    let cells: Vec<(i16, Option<u32>, &str, Delivery)> = l
        .variants
        .iter()
        .map(|v| {
            let s = &v.scenario;
            assert_eq!(s.cluster.brokers, 3);
            assert_eq!(s.faults.len(), 1, "one leader kill per cell");
            (
                s.topic.replication_factor,
                s.topic.min_insync(),
                s.producers.acks.as_config(),
                s.verify.delivery,
            )
        })
        .collect();
    let mut sorted = cells.clone();
    sorted.sort_by_key(|c| (c.0, c.2));
    assert_eq!(
        sorted,
        vec![
            (1, None, "0", Delivery::None),
            (1, None, "1", Delivery::None),
            (1, None, "all", Delivery::None),
            (3, Some(2), "0", Delivery::None),
            (3, Some(2), "1", Delivery::None),
            (3, Some(2), "all", Delivery::AtLeastOnce),
        ]
    );
    // Bounded: tens of seconds per cell.
    for v in &l.variants {
        assert!(v
            .scenario
            .producers
            .duration
            .is_some_and(|d| d.0.as_secs() <= 30));
    }
    // The CI version (.ci/run) loads too.
    let short = load(
        "replication.toml",
        &[
            "producers.duration=6s",
            r#"faults=[{ at = "2s", action = "kill", broker = "leader:0", restart_after = "2s" }]"#,
        ],
    );
    assert_eq!(short.variants.len(), 6);
}

#[test]
fn failover_kills_the_leader_repeatedly_and_expects_no_loss() {
    use kbench::scenario::Delivery;
    let l = load("failover.toml", &[]);
    assert_eq!(l.variants.len(), 1);
    let s = &l.variants[0].scenario;
    assert_eq!(s.cluster.brokers, 3);
    assert_eq!(s.topic.replication_factor, 3);
    assert_eq!(s.topic.min_insync(), Some(2));
    assert_eq!(s.producers.acks.as_config(), "all");
    assert!(s.faults.len() >= 3, "repeated kills");
    assert_eq!(s.verify.delivery, Delivery::AtLeastOnce);
    let short = load(
        "failover.toml",
        &[
            "producers.duration=10s",
            r#"faults=[{ at = "2s", action = "kill", broker = "leader:0", restart_after = "2s" }, { at = "6s", action = "kill", broker = "leader:0", restart_after = "2s" }]"#,
        ],
    );
    assert_eq!(short.variants[0].scenario.faults.len(), 2);
}

#[test]
fn the_acks_matrix_expands_to_three_runs() {
    let l = kbench::scenario::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/acks.toml"),
        &[],
    )
    .unwrap();
    let acks: Vec<_> = l
        .variants
        .iter()
        .map(|v| v.scenario.producers.acks.as_config())
        .collect();
    assert_eq!(acks, vec!["0", "1", "all"]);
}

#[test]
fn the_producer_modes_matrix_is_plain_idempotent_transactional() {
    let l = kbench::scenario::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/producer-modes.toml"),
        &[],
    )
    .unwrap();
    let modes: Vec<_> = l
        .variants
        .iter()
        .map(|v| {
            let p = &v.scenario.producers;
            (v.label.clone().unwrap(), p.idempotent(), p.transactional)
        })
        .collect();
    assert_eq!(
        modes,
        vec![
            ("idempotence-false".to_string(), false, false),
            ("idempotence-true".to_string(), true, false),
            ("transactional-true".to_string(), true, true),
        ]
    );
}

#[test]
fn the_partition_scenario_cuts_off_the_leader_of_a_durable_topic() {
    use kbench::scenario::{BrokerRef, FaultAction};
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/partition.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let l = kbench::scenario::load_str_on(&text, &path, &[], &ROOT).unwrap();
    let s = &l.variants[0].scenario;
    assert!(s.needs_namespaces());
    assert_eq!(s.cluster.brokers, 3);
    assert_eq!(s.topic.replication_factor, 3);
    assert_eq!(s.topic.min_insync(), Some(2));
    assert_eq!(s.producers.acks.as_config(), "all");
    assert!(s.producers.idempotence && s.verify.offsets);
    assert_eq!(s.faults.len(), 1);
    let f = &s.faults[0];
    assert_eq!(f.action, Some(FaultAction::Partition));
    assert_eq!(
        f.broker,
        Some(BrokerRef::Leader {
            topic: None,
            partition: 0
        })
    );
    // Longer than Kafka's broker.session.timeout.ms (9 s): the majority fails over while the
    // partition holds.
    assert!(f.duration.unwrap().0 > std::time::Duration::from_secs(9));
    // Without root the same file is refused, with the reason.
    let e = kbench::scenario::load_str_on(&text, &path, &[], &Host { uid: 1000 })
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("partition.toml:") && e.contains("needs root"),
        "{e}"
    );
}
