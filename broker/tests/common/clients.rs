//! Running other people's clients from a test: the Python scripts and kcat of `compat/`, the
//! Java client checks of `compat/java`, and Apache Kafka's own command-line tools (through
//! `compat/kafka/kafka.sh run`).
//!
//! Every client is a child process in its own process group, bounded by a timeout: on expiry the
//! whole group (a shell and the JVM it started, say) is killed and the test fails with everything
//! the client printed. A missing prerequisite fails the test naming the install step; nothing is
//! skipped.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What to run when a client is missing.
pub const INSTALL_HINT: &str = "run `.ci/install-deps.sh` (as root): it installs kcat, \
     creates <repo>/.venv from compat/requirements.txt, fetches Apache Kafka's jars \
     (compat/kafka/kafka.sh libs) and builds compat/java into compat/java/target";

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("broker/ has a parent")
        .to_owned()
}

/// `compat/kafka/kafka.sh`.
pub fn kafka_sh() -> PathBuf {
    repo_root().join("compat/kafka/kafka.sh")
}

/// The virtualenv's python, or a failure that says how to get it.
pub fn venv_python() -> PathBuf {
    let python = repo_root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: {INSTALL_HINT}",
        python.display()
    );
    python
}

/// A program from PATH, or a failure that says how to get it.
pub fn on_path(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(program))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("{program} is not on PATH: {INSTALL_HINT}"))
}

/// A client script's command: `compat/<script> BOOTSTRAP SCENARIO` with the venv's python.
pub fn python_scenario(script: &str, scenario: &str, bootstrap: &str) -> Command {
    let mut cmd = Command::new(venv_python());
    cmd.arg(repo_root().join("compat").join(script))
        .arg(bootstrap)
        .arg(scenario);
    cmd
}

/// `compat/kcat_compat.sh BOOTSTRAP SCENARIO`, running the kcat found on PATH. The broker must
/// auto-create topics with 3 partitions (kcat cannot create topics).
pub fn kcat_scenario(scenario: &str, bootstrap: &str) -> Command {
    let kcat = on_path("kcat");
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join("compat/kcat_compat.sh"))
        .arg(bootstrap)
        .arg(scenario);
    if let Some(dir) = kcat.parent() {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![dir.to_owned()];
        dirs.extend(std::env::split_paths(&path));
        cmd.env(
            "PATH",
            std::env::join_paths(dirs).expect("PATH entries are joinable"),
        );
    }
    cmd
}

/// The Java client checks (`compat/java`, every check in one JVM): `KafkaCompat BOOTSTRAP`.
pub fn java_checks(bootstrap: &str) -> Command {
    on_path("java");
    let target = repo_root().join("compat/java/target");
    let jar = target.join("kafka-compat.jar");
    assert!(
        jar.is_file() && target.join("libs").is_dir(),
        "{} (and its libs/) is missing: the Java client checks are not built; {INSTALL_HINT} \
         (or `cd compat/java && mvn -q -o package`)",
        jar.display()
    );
    let mut cmd = Command::new("java");
    cmd.arg("-Xms32m")
        .arg("-Xmx256m")
        // slf4j-simple: the clients' warnings and errors, not their INFO config dumps
        .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
        .arg("-cp")
        .arg(format!("{}:{}/libs/*", jar.display(), target.display()))
        .arg("dev.kbench.compat.KafkaCompat")
        .arg(bootstrap);
    cmd
}

/// One of Apache Kafka's tools: `compat/kafka/kafka.sh run CLASS ARGS...` (Kafka's jars, fetched
/// once by `kafka.sh libs`).
pub fn kafka_tool(class: &str, args: &[&str]) -> Command {
    on_path("java");
    let mut cmd = Command::new("bash");
    cmd.arg(kafka_sh()).arg("run").arg(class).args(args);
    cmd
}

/// What a finished client printed.
pub struct Finished {
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// Runs `cmd` to completion within `timeout`, feeding it `stdin`, and fails the test, showing
/// everything it printed and `context()` (a broker's log, say), unless it exits 0.
pub fn run_client(
    what: &str,
    mut cmd: Command,
    stdin: Option<&str>,
    timeout: Duration,
    context: &dyn Fn() -> String,
) -> Finished {
    // `cargo test` puts the build dirs of -sys crates on LD_LIBRARY_PATH, among them
    // rdkafka-sys's freshly built librdkafka.so.1: kcat (and the confluent-kafka wheel) would
    // load that instead of the librdkafka they ship with, and the test would prove nothing
    // about Debian's kcat with librdkafka 2.0.2.
    cmd.env_remove("LD_LIBRARY_PATH")
        .current_dir(repo_root())
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // its own process group, so a timeout kills a script's children (a JVM) too
        .process_group(0);
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what} ({cmd:?}): {e}; {INSTALL_HINT}"));
    if let Some(text) = stdin {
        let mut input = child.stdin.take().expect("stdin");
        let text = text.to_owned();
        std::thread::spawn(move || {
            let _ = input.write_all(text.as_bytes());
        });
    }
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
        if started.elapsed() > timeout {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(format!("-{}", child.id()))
                .status();
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let finished = Finished {
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
        elapsed: started.elapsed(),
    };
    match status {
        Some(s) if s.success() => {
            println!("{what}: ok in {:.1?}", finished.elapsed);
            finished
        }
        _ => {
            let verdict = match status {
                Some(s) => format!("exited with {s}"),
                None => format!("timed out after {timeout:?} and was killed"),
            };
            panic!(
                "{what} {verdict} ({cmd:?}, {:.1?})\n\
                 ----- stdout -----\n{}\n\
                 ----- stderr -----\n{}\n{}",
                finished.elapsed,
                finished.stdout,
                finished.stderr,
                context()
            );
        }
    }
}

/// The last `n` lines of `log`, under a heading.
pub fn log_tail(heading: &str, log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let from = lines.len().saturating_sub(n);
    format!(
        "----- {heading} (last {n} lines) -----\n{}",
        lines[from..].join("\n")
    )
}
