//! Third-party clients nobody here wrote against a real kbroker: Python `confluent-kafka`
//! (librdkafka), `kafka-python` (pure Python) and Debian's `kcat` (librdkafka 2.0.2); the
//! transactional producers and read_committed consumers of both Python clients are in
//! `compat/transactions_compat.py`; Apache Kafka's Java client runs `compat/java`'s checks.
//! `compat_kafka.rs` runs the very same scenarios against a real Apache Kafka.
//!
//! Each test starts a fresh kbroker on a free port with a temporary log dir, runs one scenario of
//! one client script from `compat/` with the broker's address, and asserts it exits 0; on failure
//! it prints the script's stdout/stderr and the broker's log. The clients come from
//! `.ci/install-deps.sh` (a virtualenv at `<repo>/.venv` from `compat/requirements.txt`, and
//! Debian's kcat, and compat/java built into compat/java/target); when they are missing the tests fail and say so, they never skip.

mod common;

use std::time::Duration;

use common::clients::{self, log_tail, run_client};
use common::TestBroker;

/// Longest any one client script may run (each one bounds its own polls well below this).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);

/// Runs `compat/<script>` with the venv's python against a fresh broker.
fn python_scenario(script: &str, scenario: &str, overrides: &[&str]) {
    let cmd = clients::python_scenario(script, scenario, "");
    let broker = TestBroker::start(overrides);
    let cmd = with_bootstrap(cmd, &broker.bootstrap);
    run_on(&format!("{script} {scenario}"), cmd, &broker);
}

/// Runs `compat/kcat_compat.sh` for one scenario against a fresh broker that, like a stock Kafka,
/// auto-creates topics (with 3 partitions, so groups and ordering are exercised).
fn kcat_scenario(scenario: &str) {
    clients::on_path("kcat");
    let broker = TestBroker::start(&["num.partitions=3", "auto.create.topics.enable=true"]);
    let cmd = clients::kcat_scenario(scenario, &broker.bootstrap);
    run_on(&format!("kcat_compat.sh {scenario}"), cmd, &broker);
}

/// The client commands take the bootstrap as their first argument; the prerequisites are
/// checked before a broker is started, so the address is put in afterwards.
fn with_bootstrap(cmd: std::process::Command, bootstrap: &str) -> std::process::Command {
    let mut args: Vec<std::ffi::OsString> = cmd.get_args().map(|a| a.to_owned()).collect();
    if let Some(a) = args.iter_mut().find(|a| a.is_empty()) {
        *a = bootstrap.into();
    }
    let mut fresh = std::process::Command::new(cmd.get_program());
    fresh.args(args);
    fresh
}

fn run_on(what: &str, cmd: std::process::Command, broker: &TestBroker) {
    let out = run_client(what, cmd, None, SCRIPT_TIMEOUT, &|| {
        log_tail("kbroker log", &broker.log(), 60)
    });
    println!("{}", out.stdout);
}

// ----- confluent-kafka (librdkafka, as bundled in the PyPI wheel) -----

#[test]
fn confluent_kafka_admin() {
    python_scenario("confluent_kafka_compat.py", "admin", &[]);
}

#[test]
fn confluent_kafka_roundtrip() {
    python_scenario("confluent_kafka_compat.py", "roundtrip", &[]);
}

#[test]
fn confluent_kafka_group_commit_and_resume() {
    python_scenario("confluent_kafka_compat.py", "group", &[]);
}

#[test]
fn confluent_kafka_codecs() {
    python_scenario("confluent_kafka_compat.py", "codecs", &[]);
}

#[test]
fn confluent_kafka_too_large_refused() {
    python_scenario("confluent_kafka_compat.py", "too_large", &[]);
}

// ----- kafka-python (pure Python; 3.x producers are idempotent by default) -----

#[test]
fn kafka_python_admin() {
    python_scenario("kafka_python_compat.py", "admin", &[]);
}

#[test]
fn kafka_python_roundtrip() {
    python_scenario("kafka_python_compat.py", "roundtrip", &[]);
}

#[test]
fn kafka_python_roundtrip_not_idempotent() {
    python_scenario("kafka_python_compat.py", "roundtrip_not_idempotent", &[]);
}

#[test]
fn kafka_python_group_commit_and_resume() {
    python_scenario("kafka_python_compat.py", "group", &[]);
}

#[test]
fn kafka_python_codecs() {
    python_scenario("kafka_python_compat.py", "codecs", &[]);
}

#[test]
fn kafka_python_too_large_refused() {
    python_scenario("kafka_python_compat.py", "too_large", &[]);
}

// ----- kcat (Debian's 1.7.1 with librdkafka 2.0.2) -----

#[test]
fn kcat_metadata() {
    kcat_scenario("metadata");
}

#[test]
fn kcat_codecs() {
    kcat_scenario("codecs");
}

#[test]
fn kcat_group_commit_and_resume() {
    kcat_scenario("group");
}

// ----- transactions (compat/transactions_compat.py): both Python clients -----

/// Commit N, abort M, commit K: read_committed sees the two committed sets in order (and stops at
/// the last stable offset while the third is open), read_uncommitted sees all three.
#[test]
fn confluent_kafka_transactions_commit_abort() {
    python_scenario("transactions_compat.py", "ck_commit_abort", &[]);
}

/// A second producer with the same transactional id fences the first one's open transaction.
#[test]
fn confluent_kafka_transactions_zombie_fenced() {
    python_scenario("transactions_compat.py", "ck_zombie_fenced", &[]);
}

/// Consume, produce transformed records and `send_offsets_to_transaction` in one transaction.
#[test]
fn confluent_kafka_transactions_consume_transform_produce() {
    python_scenario(
        "transactions_compat.py",
        "ck_consume_transform_produce",
        &[],
    );
}

/// Two producers' transactions interleaved on the same partitions: one commits while the other is
/// open (nothing visible yet), the other aborts; read_committed also from inside the aborted one.
#[test]
fn confluent_kafka_transactions_interleaved() {
    python_scenario("transactions_compat.py", "ck_interleaved", &[]);
}

/// Consume-transform-produce whose input is itself transactional (with an aborted transaction).
#[test]
fn confluent_kafka_transactions_transactional_input() {
    python_scenario("transactions_compat.py", "ck_transactional_input", &[]);
}

#[test]
fn kafka_python_transactions_commit_abort() {
    python_scenario("transactions_compat.py", "kp_commit_abort", &[]);
}

#[test]
fn kafka_python_transactions_zombie_fenced() {
    python_scenario("transactions_compat.py", "kp_zombie_fenced", &[]);
}

#[test]
fn kafka_python_transactions_consume_transform_produce() {
    python_scenario(
        "transactions_compat.py",
        "kp_consume_transform_produce",
        &[],
    );
}

#[test]
fn kafka_python_transactions_interleaved() {
    python_scenario("transactions_compat.py", "kp_interleaved", &[]);
}

#[test]
fn kafka_python_transactions_transactional_input() {
    python_scenario("transactions_compat.py", "kp_transactional_input", &[]);
}

// ----- the Java client (kafka-clients 4.4.0, compat/java): the same checks as on Kafka -----

/// AdminClient, every codec, idempotence, range and cooperative-sticky groups, static
/// membership and transactions (compat/java's seven checks, in one JVM).
#[test]
fn java_client_checks() {
    let cmd = clients::java_checks("");
    let broker = TestBroker::start(&[]);
    let cmd = with_bootstrap(cmd, &broker.bootstrap);
    run_on("KafkaCompat (Java client)", cmd, &broker);
}
