//! What the integration tests share: running the real `kbench` binary and reading what it
//! wrote.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kbench::summary::Summary;

/// The `kbench` binary under test, run from the workspace root.
pub fn kbench() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kbench"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

/// A shipped scenario file.
pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

/// The run's `summary.json`.
pub fn summary(dir: &Path) -> Summary {
    let text = std::fs::read_to_string(dir.join("summary.json")).expect("summary.json written");
    serde_json::from_str(&text).expect("summary.json parses")
}

/// A process's status and output, for assertion messages.
pub fn show(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Writes scenario `text` to `dir/<file>` and returns the path.
pub fn write_scenario(dir: &Path, file: &str, text: &str) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(&path, text).expect("write scenario");
    path
}

/// `kbench run SCENARIO ARGS... --out OUT`, to completion.
pub fn run(scenario: &Path, args: &[&str], out: &Path) -> Output {
    kbench()
        .arg("run")
        .arg(scenario)
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .expect("run kbench")
}

/// `kbench run SCENARIO --out OUT` in the background, output piped.
pub fn spawn_run(scenario: &Path, out: &Path) -> std::process::Child {
    kbench()
        .arg("run")
        .arg(scenario)
        .arg("--out")
        .arg(out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn kbench")
}
