use super::*;

fn load_text(src: &str, sets: &[&str]) -> Result<Loaded, ScenarioError> {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    load_str(src, Path::new("x.toml"), &sets)
}

const GOOD: &str = r#"
name = "t"

[producers]
count = 2
messages_each = 100
message_size = "1KiB"
acks = 1

[consumers]
groups = 1
members = 2
"#;

#[test]
fn min_insync_replicas_becomes_a_topic_config_and_is_checked() {
    let l = load_text(
        "name = \"t\"\n[cluster]\nbrokers = 3\n[topic]\nreplication_factor = 3\nmin_insync_replicas = 2\nconfigs = { \"min.insync.replicas\" = 1, \"retention.ms\" = 1000 }\n",
        &[],
    )
    .unwrap();
    let t = &l.variants[0].scenario.topic;
    assert_eq!(t.min_insync(), Some(2));
    let mut c = t.create_configs();
    c.sort();
    assert_eq!(
        c,
        vec![
            ("min.insync.replicas".to_string(), "2".to_string()),
            ("retention.ms".to_string(), "1000".to_string()),
        ]
    );
    let err = load_text(
        "name = \"t\"\n[cluster]\nbrokers = 3\n[topic]\nreplication_factor = 2\nmin_insync_replicas = 3\n",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("min_insync_replicas = 3") && err.contains("replication_factor (2)"),
        "{err}"
    );
}

#[test]
fn transactions_run_on_an_embedded_cluster() {
    let src =
        "name = \"t\"\n[cluster]\nbrokers = 3\n[producers]\nacks = \"all\"\ntransactional = true\n";
    assert!(load_text(src, &[]).is_ok());
    let one = src.replace("brokers = 3", "brokers = 1");
    assert!(load_text(&one, &[]).is_ok());
    let pipeline = "name = \"t\"\n[cluster]\nbrokers = 3\n[producers]\nacks = \"all\"\n[pipeline]\nworkers = 2\n";
    assert!(
        load_text(pipeline, &[]).is_ok(),
        "{:?}",
        load_text(pipeline, &[]).err()
    );
}

#[test]
fn durable_delivery_is_judged_only_where_the_settings_promise_it() {
    let expect = |sets: &[&str]| {
        let mut all = vec!["verify.delivery=durable", "cluster.brokers=3"];
        all.extend_from_slice(sets);
        load_text("name = \"t\"", &all).unwrap().variants[0]
            .scenario
            .verify
            .delivery
    };
    let durable = [
        "producers.acks=all",
        "topic.replication_factor=3",
        "topic.min_insync_replicas=2",
    ];
    assert_eq!(expect(&durable), Delivery::AtLeastOnce);
    assert_eq!(
        expect(&[
            "producers.acks=1",
            "topic.replication_factor=3",
            "topic.min_insync_replicas=2"
        ]),
        Delivery::None
    );
    assert_eq!(
        expect(&["producers.acks=all", "topic.replication_factor=3"]),
        Delivery::None,
        "min.insync 1 lets one replica acknowledge alone"
    );
    assert_eq!(expect(&["producers.acks=all"]), Delivery::None);
    // Other expectations are left alone.
    let l = load_text("name = \"t\"\n[verify]\ndelivery = \"exactly-once\"\n", &[]).unwrap();
    assert_eq!(
        l.variants[0].scenario.verify.delivery,
        Delivery::ExactlyOnce
    );
}

#[test]
fn cluster_mode_defaults_to_replicated() {
    use crate::scenario::schema::ClusterMode;
    let l = load_text("name = \"t\"\n[cluster]\nbrokers = 3\n", &[]).unwrap();
    assert_eq!(l.variants[0].scenario.cluster.mode, ClusterMode::Replicated);
    let l = load_text(
        "name = \"t\"\n[cluster]\nbrokers = 3\nmode = \"independent\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(
        l.variants[0].scenario.cluster.mode,
        ClusterMode::Independent
    );
    assert!(load_text("name = \"t\"\n[cluster]\nmode = \"raft\"\n", &[]).is_err());
}

#[test]
fn defaults_fill_in_what_the_file_leaves_out() {
    let l = load_text("name = \"t\"", &[]).unwrap();
    let s = &l.variants[0].scenario;
    assert_eq!(s.cluster.brokers, 1);
    assert_eq!(s.topic.partitions, 8);
    assert_eq!(s.producers.stop(), Stop::Messages(10_000));
    assert_eq!(s.producers.acks, Acks::All);
    assert_eq!(s.consumers.groups, 1);
    assert_eq!(s.verify.delivery, Delivery::AtLeastOnce);
}

#[test]
fn typo_is_located_with_section_and_suggestion() {
    let src = GOOD.replace("messages_each", "messages_eahc");
    let e = load_text(&src, &[]).unwrap_err().to_string();
    assert!(
        e.starts_with("x.toml:6:1: unknown key \"messages_eahc\" in [producers]"),
        "{e}"
    );
    assert!(e.contains("did you mean \"messages_each\""), "{e}");
    let e = load_text("name = \"t\"\nnaem = 1\n", &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("x.toml:2:1: unknown key \"naem\" at the top level"),
        "{e}"
    );
}

#[test]
fn bad_unit_is_located() {
    let src = GOOD.replace("\"1KiB\"", "\"1 parsec\"");
    let e = load_text(&src, &[]).unwrap_err().to_string();
    assert!(e.starts_with("x.toml:7:"), "{e}");
    assert!(e.contains("unknown size unit"), "{e}");
}

#[test]
fn bad_enum_names_the_choices() {
    let src = GOOD.replace("groups = 1", "groups = 1\ncommit = \"sometimes\"");
    let e = load_text(&src, &[]).unwrap_err().to_string();
    assert!(e.contains("x.toml:12:"), "{e}");
    assert!(e.contains("manual-sync"), "{e}");
}

#[test]
fn syntax_error_is_located() {
    let e = load_text("name = \"t\"\n[producers\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("x.toml:2:"), "{e}");
}

#[test]
fn validation_error_points_at_the_key() {
    let src = GOOD.replace("count = 2", "count = 0");
    let e = load_text(&src, &[]).unwrap_err().to_string();
    assert_eq!(e, "x.toml:5:1: producers.count = 0: must be 1..=10000");
    let src = GOOD.replace("message_size = \"1KiB\"", "message_size = 8");
    let e = load_text(&src, &[]).unwrap_err().to_string();
    assert!(
        e.contains("x.toml:7:1") && e.contains("identity header"),
        "{e}"
    );
}

#[test]
fn catch_up_and_max_rate_keys_are_checked_and_named() {
    let base = "name = \"t\"\n";
    let err = |sets: &[&str]| load_text(base, sets).unwrap_err().to_string();
    let e = err(&["consumers.drop_page_cache=true"]);
    assert!(
        e.contains("consumers.drop_page_cache") && e.contains("after-produce"),
        "{e}"
    );
    let e = err(&["consumers.begin=after-produce", "consumers.start=latest"]);
    assert!(
        e.contains("consumers.start") && e.contains("skip the whole backlog"),
        "{e}"
    );
    let l = load_text(
        base,
        &[
            "consumers.begin=after-produce",
            "consumers.drop_page_cache=true",
        ],
    )
    .unwrap();
    assert_eq!(l.variants[0].scenario.consumers.begin, Begin::AfterProduce);
    let search =
        "name = \"t\"\n[max_rate]\np99_bound = \"50ms\"\nstart_rate = 100\nceiling = 1000\n";
    let l = load_text(search, &[]).unwrap();
    let m = l.variants[0].scenario.max_rate.clone().unwrap();
    assert_eq!((m.max_steps, m.precision), (8, 0.1));
    let e = load_text(search, &["producers.messages_each=5"])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("max_rate") && e.contains("remove producers.messages_each"),
        "{e}"
    );
    let e = load_text(search, &["max_rate.ceiling=10"])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("max_rate.ceiling") && e.contains("at least start_rate"),
        "{e}"
    );
    let e = load_text(search, &["max_rate.max_steps=0"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("max_rate.max_steps = 0"), "{e}");
}

#[test]
fn overrides_are_applied_together_then_checked_once() {
    let rf3 = "name = \"t\"\n[cluster]\nbrokers = 3\n[topic]\nreplication_factor = 3\nmin_insync_replicas = 2\n";
    let l = load_text(
        rf3,
        &[
            "topic.replication_factor=1",
            "topic.min_insync_replicas=1",
            "cluster.brokers=1",
        ],
    )
    .unwrap();
    assert_eq!(l.variants[0].scenario.topic.replication_factor, 1);
    let l = load_text(
        "name = \"t\"\n[verify]\ndelivery = \"exactly-once\"\n",
        &["consumers.groups=0", "verify.delivery=none"],
    )
    .unwrap();
    assert_eq!(l.variants[0].scenario.consumers.groups, 0);
    // Still wrong together: the key from the file is pointed at in the file.
    let e = load_text(rf3, &["topic.replication_factor=1"])
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "x.toml:6:1: topic.min_insync_replicas = 2: must be 1..=replication_factor (1); \
             with more, no acks=all write could ever succeed"
    );
}

#[test]
fn errors_name_the_key_and_the_value() {
    let e = load_text(&GOOD.replace("count = 2", "count = -3"), &[])
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "x.toml:5:9: producers.count = -3: expected a whole number 0..=4294967295"
    );
    let e = load_text(GOOD, &["producers.cout=2"])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(
            "--set producers.cout=2: unknown key \"cout\" in [producers]; expected one of count,"
        ) && e.ends_with("(did you mean \"count\"?)"),
        "{e}"
    );
    let e = load_text(&GOOD.replace("name = \"t\"", ""), &[])
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "x.toml:1:1: name is missing at the top level: every scenario needs one, e.g. \
             name = \"mytest\" (it names the output folder and the topic)"
    );
    let e = load_text(
        &GOOD.replace("message_size = \"1KiB\"", "duration = \"10 sec\""),
        &["producers.messages_each=0"],
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("x.toml:7:12: producers.duration = \"10 sec\": \"10 sec\" is not a duration (unknown unit \"sec\")"), "{e}");
    let e = load_text(GOOD, &["producers.count=0"])
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "--set producers.count=0: producers.count = 0: must be 1..=10000"
    );
}

#[test]
fn set_overrides_any_key() {
    let l = load_text(
        GOOD,
        &[
            "producers.count=5",
            "producers.acks=all",
            "topic.partitions=3",
            "producers.client_configs.\"linger.ms\"=7",
        ],
    )
    .unwrap();
    let s = &l.variants[0].scenario;
    assert_eq!(s.producers.count, 5);
    assert_eq!(s.producers.acks, Acks::All);
    assert_eq!(s.topic.partitions, 3);
    assert_eq!(s.producers.client_configs["linger.ms"].0, "7");
}

#[test]
fn set_errors_name_the_override() {
    let e = load_text(GOOD, &["producers.cuont=5"])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--set producers.cuont=5") && e.contains("unknown key \"cuont\""),
        "{e}"
    );
    let e = load_text(GOOD, &["producers.count=0"])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--set producers.count=0") && e.contains("at least") || e.contains("1..="),
        "{e}"
    );
}

#[test]
fn matrix_expands_to_checked_variants() {
    let src = format!("{GOOD}\n[matrix]\n\"producers.acks\" = [0, 1, \"all\"]\n");
    let l = load_text(&src, &[]).unwrap();
    assert_eq!(l.variants.len(), 3);
    assert_eq!(l.variants[0].scenario.producers.acks, Acks::None);
    assert_eq!(l.variants[2].scenario.producers.acks, Acks::All);
    assert_eq!(l.variants[2].label.as_deref(), Some("acks-all"));
    assert!(l.variants[0].scenario.matrix.is_empty());
    let src = format!("{GOOD}\n[matrix]\n\"producers.acks\" = [2]\n");
    let e = load_text(&src, &[]).unwrap_err().to_string();
    assert!(
        e.contains("combination acks-2") && e.contains("acks = 2"),
        "{e}"
    );
}

#[test]
fn a_matrix_of_more_than_a_thousand_runs_is_refused_before_it_is_expanded() {
    // 8^10: a billion combinations, which the expansion tried to hold in memory.
    let keys: String = (0..10)
        .map(|i| format!("\"producers.k{i}\" = [1, 2, 3, 4, 5, 6, 7, 8]\n"))
        .collect();
    let src = format!("{GOOD}\n[matrix]\n{keys}");
    let e = load_text(&src, &[]).unwrap_err().to_string();
    assert!(
        e.starts_with("x.toml:14:2:") && e.contains("expands to 1073741824 runs (8 × 8"),
        "{e}"
    );
    // 7 × 11 × 13 = 1001, one past the limit, also through --set.
    let list = |n: u32| {
        format!(
            "[{}]",
            (1..=n).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
        )
    };
    let sets = [
        format!("matrix.\"producers.count\"={}", list(7)),
        format!("matrix.\"producers.messages_each\"={}", list(11)),
        format!("matrix.\"consumers.members\"={}", list(13)),
    ];
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let e = load_text(GOOD, &sets).unwrap_err().to_string();
    assert!(e.contains("1001 runs") && e.contains("at most 1000"), "{e}");
    // 10 × 10 × 10 is allowed.
    let sets = [
        format!("matrix.\"producers.count\"={}", list(10)),
        format!("matrix.\"producers.messages_each\"={}", list(10)),
        format!("matrix.\"consumers.members\"={}", list(10)),
    ];
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    assert_eq!(load_text(GOOD, &sets).unwrap().variants.len(), 1000);
}

#[test]
fn transaction_keys_are_checked_together() {
    let e = load_text(GOOD, &["producers.abort_ratio=0.1"])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("producers.abort_ratio") && e.contains("producers.transactional = true"),
        "{e}"
    );
    let e = load_text(GOOD, &["producers.transactional=true"])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("producers.acks") && e.contains("implies idempotence"),
        "{e}"
    );
    let l = load_text(
        GOOD,
        &[
            "producers.acks=all",
            "producers.transactional=true",
            "producers.abort_ratio=0.2",
        ],
    )
    .unwrap();
    let p = &l.variants[0].scenario.producers;
    assert!(p.idempotent() && p.messages_per_transaction == 100);
    let e = load_text(
        GOOD,
        &[
            "producers.acks=all",
            "producers.transactional=true",
            "producers.abort_ratio=1.5",
        ],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("between 0.0 and 1.0"), "{e}");
}

#[test]
fn a_bad_kill_is_located_in_its_array_entry() {
    let src = format!(
        "{GOOD}\n[pipeline]\nworkers = 2\n\n[[pipeline.kills]]\nworker = 0\nat = \"1s\"\n\n[[pipeline.kills]]\nworker = 5\nat = \"2s\"\n"
    );
    let e = load_text(&src, &[]).unwrap_err().to_string();
    assert!(e.starts_with("x.toml:22:1:"), "{e}");
    assert!(
        e.contains("pipeline.kills[1].worker") && e.contains("there are 2 workers"),
        "{e}"
    );
    let src = format!("{GOOD}\n[pipeline]\n[[pipeline.kills]]\nworker = 0\n");
    let e = load_text(&src, &[]).unwrap_err().to_string();
    assert!(e.contains("exactly one of at"), "{e}");
}

#[test]
fn resolved_config_round_trips() {
    let l = load_text(GOOD, &[]).unwrap();
    let json = l.variants[0].scenario.resolved();
    assert_eq!(json["producers"]["message_size"], "1KiB");
    assert_eq!(json["producers"]["acks"], "1");
    let back: Scenario = serde_json::from_value(json).unwrap();
    assert_eq!(back.producers.message_size.0, 1024);
}

#[test]
fn secret_client_settings_never_reach_the_report() {
    let l = load_text(
        GOOD,
        &[
            "cluster.client_configs.\"sasl.password\"=hunter2",
            "producers.client_configs.\"ssl.key.password\"=k3y",
            "cluster.client_configs.\"sasl.username\"=alice",
        ],
    )
    .unwrap();
    let json = l.variants[0].scenario.resolved().to_string();
    assert!(!json.contains("hunter2") && !json.contains("k3y"), "{json}");
    assert!(json.contains("alice"), "{json}");
}
