//! Third-party clients nobody here wrote against a real kbroker: Python `confluent-kafka`
//! (librdkafka), `kafka-python` (pure Python) and Debian's `kcat` (librdkafka 2.0.2); the
//! transactional producers and read_committed consumers of both Python clients are in
//! `compat/transactions_compat.py`.
//!
//! Each test starts a fresh kbroker on a free port with a temporary log dir, runs one scenario of
//! one client script from `compat/` with the broker's address, and asserts it exits 0; on failure
//! it prints the script's stdout/stderr and the broker's log. The clients come from
//! `.ci/install-deps.sh` (a virtualenv at `<repo>/.venv` from `compat/requirements.txt`, and
//! Debian's kcat); when they are missing the tests fail and say so, they never skip.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TestBroker;

/// Longest any one client script may run (each one bounds its own polls well below this).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);

/// What to run when a client is missing.
const INSTALL_HINT: &str = "run `.ci/install-deps.sh` (as root) to install kcat and create \
     <repo>/.venv from compat/requirements.txt";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("broker/ has a parent")
        .to_owned()
}

/// The virtualenv's python, or a failure that says how to get it.
fn venv_python() -> PathBuf {
    let python = repo_root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: {INSTALL_HINT}",
        python.display()
    );
    python
}

/// kcat from PATH, or a failure that says how to get it.
fn kcat() -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("kcat"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("kcat is not on PATH: {INSTALL_HINT}"))
}

/// Runs `cmd` (a client script given the broker's address) to completion within
/// [`SCRIPT_TIMEOUT`] and fails the test, showing everything, unless it exits 0.
fn run_client(what: &str, mut cmd: Command, broker: &TestBroker) {
    // `cargo test` puts the build dirs of -sys crates on LD_LIBRARY_PATH, among them
    // rdkafka-sys's freshly built librdkafka.so.1: kcat (and the confluent-kafka wheel) would
    // load that instead of the librdkafka they ship with, and the test would prove nothing
    // about Debian's kcat with librdkafka 2.0.2.
    cmd.env_remove("LD_LIBRARY_PATH")
        .current_dir(repo_root())
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what} ({cmd:?}): {e}; {INSTALL_HINT}"));
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for client") {
            break Some(status);
        }
        if started.elapsed() > SCRIPT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    let elapsed = started.elapsed();
    match status {
        Some(s) if s.success() => {
            println!("{what}: ok in {elapsed:.1?}\n{stdout}");
        }
        _ => {
            let verdict = match status {
                Some(s) => format!("exited with {s}"),
                None => format!("timed out after {SCRIPT_TIMEOUT:?} and was killed"),
            };
            let log = broker.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "{what} {verdict} ({cmd:?}, {elapsed:.1?})\n\
                 ----- stdout -----\n{stdout}\n\
                 ----- stderr -----\n{stderr}\n\
                 ----- kbroker log (last 60 lines) -----\n{}",
                tail.join("\n")
            );
        }
    }
}

/// Runs `compat/<script>` with the venv's python against a fresh broker.
fn python_scenario(script: &str, scenario: &str, overrides: &[&str]) {
    let python = venv_python();
    let broker = TestBroker::start(overrides);
    let mut cmd = Command::new(python);
    cmd.arg(repo_root().join("compat").join(script))
        .arg(&broker.bootstrap)
        .arg(scenario);
    run_client(&format!("{script} {scenario}"), cmd, &broker);
}

/// Runs `compat/kcat_compat.sh` for one scenario against a fresh broker that, like a stock Kafka,
/// auto-creates topics (with 3 partitions, so groups and ordering are exercised).
fn kcat_scenario(scenario: &str) {
    let kcat = kcat();
    let broker = TestBroker::start(&["num.partitions=3", "auto.create.topics.enable=true"]);
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join("compat/kcat_compat.sh"))
        .arg(&broker.bootstrap)
        .arg(scenario);
    // the script runs the same kcat this test found
    if let Some(dir) = kcat.parent() {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![dir.to_owned()];
        dirs.extend(std::env::split_paths(&path));
        cmd.env(
            "PATH",
            std::env::join_paths(dirs).expect("PATH entries are joinable"),
        );
    }
    run_client(&format!("kcat_compat.sh {scenario}"), cmd, &broker);
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
