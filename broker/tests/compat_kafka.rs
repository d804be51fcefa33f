//! The differential half of `compat.rs`: the same client scenarios (confluent-kafka,
//! kafka-python, kcat, transactions of both Python clients, the Java client's checks) and
//! `kafka_tools.rs`'s command-line tool steps, with the same expectations, against a real Apache
//! Kafka 4.4.0 (one node from `compat/kafka/kafka.sh up --set num.partitions=3`, shared by every
//! test of this file). A check that passes on one broker and fails on the other is a kbroker bug
//! or a wrong check; `compat/FINDINGS.md` keeps how each was settled.
//!
//! Needs Java 17+, Kafka's jars (`compat/kafka/kafka.sh libs`), the venv, kcat and
//! compat/java/target, all from `.ci/install-deps.sh`; without them the tests fail saying so.

mod common;

use std::process::Command;
use std::time::Duration;

use common::clients::{self, run_client};
use common::kafka::{shared_kafka, SharedKafka};
use common::kafka_tools::{self, Target};

/// Longest any one client script may run (each one bounds its own polls well below this).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);

fn run_on(what: &str, make: impl FnOnce(&str) -> Command) {
    let kafka: &SharedKafka = shared_kafka();
    let out = run_client(
        &format!("{what} on Apache Kafka"),
        make(&kafka.bootstrap),
        None,
        SCRIPT_TIMEOUT,
        &|| kafka.log_tail(40),
    );
    println!("{}", out.stdout);
}

fn python(script: &str, scenario: &str) {
    clients::venv_python();
    run_on(&format!("{script} {scenario}"), |b| {
        clients::python_scenario(script, scenario, b)
    });
}

fn kcat(scenario: &str) {
    clients::on_path("kcat");
    run_on(&format!("kcat_compat.sh {scenario}"), |b| {
        clients::kcat_scenario(scenario, b)
    });
}

#[test]
fn kafka_confluent_kafka_admin() {
    python("confluent_kafka_compat.py", "admin");
}

#[test]
fn kafka_confluent_kafka_roundtrip() {
    python("confluent_kafka_compat.py", "roundtrip");
}

#[test]
fn kafka_confluent_kafka_group_commit_and_resume() {
    python("confluent_kafka_compat.py", "group");
}

#[test]
fn kafka_confluent_kafka_codecs() {
    python("confluent_kafka_compat.py", "codecs");
}

#[test]
fn kafka_confluent_kafka_too_large_refused() {
    python("confluent_kafka_compat.py", "too_large");
}

#[test]
fn kafka_kafka_python_admin() {
    python("kafka_python_compat.py", "admin");
}

#[test]
fn kafka_kafka_python_roundtrip() {
    python("kafka_python_compat.py", "roundtrip");
}

#[test]
fn kafka_kafka_python_roundtrip_not_idempotent() {
    python("kafka_python_compat.py", "roundtrip_not_idempotent");
}

#[test]
fn kafka_kafka_python_group_commit_and_resume() {
    python("kafka_python_compat.py", "group");
}

#[test]
fn kafka_kafka_python_codecs() {
    python("kafka_python_compat.py", "codecs");
}

#[test]
fn kafka_kafka_python_too_large_refused() {
    python("kafka_python_compat.py", "too_large");
}

#[test]
fn kafka_kcat_metadata() {
    kcat("metadata");
}

#[test]
fn kafka_kcat_codecs() {
    kcat("codecs");
}

#[test]
fn kafka_kcat_group_commit_and_resume() {
    kcat("group");
}

#[test]
fn kafka_transactions_both_python_clients() {
    // All ten transaction scenarios (ck_* and kp_*), one script run each, in one test: each is
    // a few seconds and they share nothing but the broker.
    for client in ["ck", "kp"] {
        for scenario in [
            "commit_abort",
            "zombie_fenced",
            "consume_transform_produce",
            "interleaved",
            "transactional_input",
        ] {
            python("transactions_compat.py", &format!("{client}_{scenario}"));
        }
    }
}

/// compat/java's seven checks in one JVM, as `compat.rs::java_client_checks` runs them on kbroker.
#[test]
fn kafka_java_client_checks() {
    clients::java_checks("");
    run_on("KafkaCompat (Java client)", clients::java_checks);
}

/// Kafka's own tools against Kafka: the expectations `kafka_tools.rs` holds kbroker to.
#[test]
fn kafka_command_line_tools() {
    let kafka = shared_kafka();
    let context = || kafka.log_tail(40);
    let t = Target {
        bootstrap: &kafka.bootstrap,
        broker_ids: &[1],
        context: &context,
    };
    let topic = kafka_tools::topics(&t, 1);
    kafka_tools::console_and_groups(&t, &topic, 4);
    kafka_tools::active_group(&t, &topic, 4);
    kafka_tools::producer_perf(&t, 20_000, &[]);
    kafka_tools::broker_configs(&t);
}
