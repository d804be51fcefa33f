//! One real Apache Kafka node (`compat/kafka/kafka.sh up`, KRaft combined mode, Kafka's jars
//! from Maven Central) shared by every test of one test binary, so the same client checks that
//! run against kbroker run against Kafka without paying a JVM start per test.
//!
//! The node starts with the first test that asks for it. Statics are never dropped, so the node
//! is stopped by a watchdog: a detached shell that waits for the test process to exit, then runs
//! `kafka.sh down` and removes the node's folder. A test that is killed (or a binary that
//! panics) therefore never leaves a JVM behind.

use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::clients::{kafka_sh, log_tail, INSTALL_HINT};

/// A Kafka node started by `kafka.sh up`.
pub struct SharedKafka {
    /// `127.0.0.1:port` to give clients.
    pub bootstrap: String,
    /// The cluster folder (`kafka.sh --dir`): config, data and `node-1/kafka.log`.
    pub dir: std::path::PathBuf,
}

static KAFKA: OnceLock<Result<SharedKafka, String>> = OnceLock::new();

/// The binary's Kafka node, started on first use with `num.partitions=3` (kcat relies on
/// auto-created topics with several partitions, as FINDINGS.md says). Fails the test with
/// `kafka.sh`'s own message (which names what is missing) when it cannot start.
pub fn shared_kafka() -> &'static SharedKafka {
    match KAFKA.get_or_init(start) {
        Ok(k) => k,
        Err(e) => panic!("{e}"),
    }
}

fn start() -> Result<SharedKafka, String> {
    let dir = std::env::temp_dir().join(format!("kbroker-test-kafka-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // The watchdog first: whatever happens from here on, the node goes when this process does.
    let watchdog = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
         '{sh}' down --dir '{dir}' >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        sh = kafka_sh().display(),
        dir = dir.display()
    );
    std::os::unix::process::CommandExt::process_group(
        Command::new("bash")
            .arg("-c")
            .arg(watchdog)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        0,
    )
    .spawn()
    .map_err(|e| format!("cannot start the Kafka watchdog shell: {e}"))?;
    // `timeout`: kafka.sh bounds its own waits (90 s per node), this bounds Maven's first fetch.
    let o = Command::new("timeout")
        .arg("300")
        .arg(kafka_sh())
        .args(["up", "--set", "num.partitions=3", "--dir"])
        .arg(&dir)
        .env_remove("LD_LIBRARY_PATH")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", kafka_sh().display()))?;
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    if !o.status.success() {
        let log = std::fs::read_to_string(dir.join("node-1/kafka.log")).unwrap_or_default();
        return Err(format!(
            "`kafka.sh up` failed ({}): Apache Kafka could not be started; it needs Java 17+ \
             and Kafka's jars ({INSTALL_HINT})\n----- stdout -----\n{stdout}\n\
             ----- stderr -----\n{stderr}\n{}",
            o.status,
            log_tail("node-1/kafka.log", &log, 40)
        ));
    }
    let bootstrap = stdout
        .lines()
        .find_map(|l| l.strip_prefix("BOOTSTRAP="))
        .ok_or_else(|| format!("kafka.sh up printed no BOOTSTRAP= line:\n{stdout}\n{stderr}"))?
        .to_owned();
    Ok(SharedKafka { bootstrap, dir })
}

impl SharedKafka {
    /// The tail of the node's log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(self.dir.join("node-1/kafka.log")).unwrap_or_default();
        log_tail("Apache Kafka node-1/kafka.log", &log, n)
    }
}
