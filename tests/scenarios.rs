//! Every scenario shipped in `scenarios/` loads and checks through the library.

use std::path::Path;

#[test]
fn every_shipped_scenario_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let loaded = kbench::scenario::load(&path, &[]).unwrap_or_else(|e| panic!("{e}"));
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
