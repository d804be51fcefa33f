//! The first ten minutes with kbench, through the real binary: scenarios by name, the quick
//! mode, one error format, an unreachable cluster named in under 2 s, and what `--out` holds
//! when a run cannot start.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{kbench, scenario, show, summary};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `kbench ARGS`, to completion, in `cwd`.
fn kbench_in(cwd: &Path, args: &[&str]) -> std::process::Output {
    kbench().current_dir(cwd).args(args).output().unwrap()
}

#[test]
fn scenarios_lists_every_built_in_scenario_in_one_line_and_shows_its_toml() {
    let o = kbench().arg("scenarios").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    let shipped = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "toml")
        })
        .count();
    assert_eq!(text.lines().count(), shipped, "{text}");
    assert!(
        text.lines().any(|l| l
            == "smoke              A few seconds end to end on one broker; what CI runs"),
        "{text}"
    );
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
    let o = kbench()
        .args(["scenarios", "show", "smoke"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        std::fs::read_to_string(scenario("smoke.toml")).unwrap()
    );
    let o = kbench()
        .args(["scenarios", "show", "nope"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o)
        .starts_with("kbench: error: no built-in scenario \"nope\"; there are: 1gb, acks,"));
}

#[test]
fn a_built_in_scenario_runs_by_name_from_any_directory() {
    let cwd = tempfile::tempdir().unwrap();
    // A file called like the scenario in the current directory does not win over the name.
    std::fs::write(cwd.path().join("smoke"), "not a scenario").unwrap();
    let o = kbench_in(
        cwd.path(),
        &["run", "smoke", "--messages", "300", "-o", "out"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let err = stderr(&o);
    assert!(
        err.contains("kbench: scenario smoke (built in; `kbench scenarios show smoke` prints it)"),
        "{err}"
    );
    assert!(
        err.contains("kbench: plan: smoke: 2 producer(s) × 300 messages each of 1KiB (1024 B)"),
        "{err}"
    );
    let s = summary(&cwd.path().join("out"));
    assert!(s.verdict.passed, "{:?}", s.verdict);
    assert_eq!(s.produce.acked, 600);
    assert_eq!(s.scenario.file, "built-in:smoke.toml");
    // A path names a file; a missing one points at the built-in of that name.
    let o = kbench_in(cwd.path(), &["run", "smoke.toml"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert_eq!(
        stderr(&o).trim_end(),
        "kbench: error: smoke.toml (the built-in scenario of that name is `kbench run smoke`): \
         cannot read the scenario: No such file or directory (os error 2)"
    );
    // A name that is neither is an error that lists the names.
    let o = kbench_in(cwd.path(), &["validate", "./smoke"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let o = kbench_in(cwd.path(), &["run", "smok"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        stderr(&o).starts_with(
            "kbench: error: no scenario \"smok\": it is not a built-in scenario (1gb, acks,"
        ),
        "{}",
        show(&o)
    );
}

#[test]
fn quick_mode_runs_on_an_embedded_broker_and_json_is_all_of_stdout() {
    let out = tempfile::tempdir().unwrap();
    let o = kbench()
        .args([
            "run",
            "--producers",
            "2",
            "--messages",
            "0.3k",
            "--size",
            "1KB",
            "--acks",
            "1",
            "--partitions",
            "2",
            "--json",
            "-o",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let err = stderr(&o);
    assert!(
        err.contains("kbench: no scenario: the defaults and the flags (quick mode)"),
        "{err}"
    );
    assert!(
        err.contains("kbench: plan: quick: 2 producer(s) × 300 messages each of 1KB (1000 B) (flat out, acks=1), 1 group(s) × 1 member(s), 2 partition(s) RF 1, 1 broker(s), delivery at-least-once"),
        "{err}"
    );
    let s: kbench::summary::Summary = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not the summary ({e}): {}", show(&o)));
    assert!(s.verdict.passed, "{:?}", s.verdict);
    assert_eq!(s.produce.acked, 600);
    assert_eq!(s.produce.bytes, 600 * 1000);
    assert_eq!(s.config["producers"]["acks"], "1");
    // The tables went to stderr.
    assert!(err.contains("PASSED"), "{err}");
}

#[test]
fn overrides_that_only_hold_together_are_checked_together() {
    for sets in [
        &[
            "topic.replication_factor=1",
            "topic.min_insync_replicas=1",
            "cluster.brokers=1",
        ][..],
        &["consumers.groups=0", "verify.delivery=none"][..],
    ] {
        let mut cmd = kbench();
        cmd.args(["validate", "1gb"]);
        for s in sets {
            cmd.args(["--set", s]);
        }
        let o = cmd.output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{sets:?}: {}", show(&o));
    }
}

/// `kbench validate FILE ARGS` on `text`: the error line.
fn error_of(text: &str, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.toml"), text).unwrap();
    let o = kbench_in(dir.path(), &[&["validate", "s.toml"][..], args].concat());
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    stderr(&o).trim_end().to_string()
}

#[test]
fn errors_name_the_place_the_key_the_value_and_what_is_allowed() {
    assert_eq!(
        error_of("name = \"x\"\n[producers]\ncount = -3\n", &[]),
        "kbench: error: s.toml:3:9: producers.count = -3: expected a whole number 0..=4294967295"
    );
    assert_eq!(
        error_of("name = \"x\"\n[producers]\ncount = 0\n", &[]),
        "kbench: error: s.toml:3:1: producers.count = 0: must be 1..=10000"
    );
    assert_eq!(
        error_of("[producers]\ncount = 2\n", &[]),
        "kbench: error: s.toml:1:1: name is missing at the top level: every scenario needs one, \
         e.g. name = \"mytest\" (it names the output folder and the topic)"
    );
    assert_eq!(
        error_of("name = \"x\"\n[producers]\nduration = \"10 sec\"\n", &[]),
        "kbench: error: s.toml:3:12: producers.duration = \"10 sec\": \"10 sec\" is not a duration \
         (unknown unit \"sec\"); write e.g. \"10s\", \"250ms\" or \"1m 30s\" (units ms, s, m, h)"
    );
    let e = error_of("name = \"x\"\n", &["--set", "producers.cout=2"]);
    assert!(
        e.starts_with("kbench: error: --set producers.cout=2: unknown key \"cout\" in [producers]; expected one of count, ")
            && e.ends_with(" (did you mean \"count\"?)"),
        "{e}"
    );
    assert_eq!(
        error_of("name = \"x\"\n", &["--set", "producers.count=0"]),
        "kbench: error: --set producers.count=0: producers.count = 0: must be 1..=10000"
    );
    // A flag of the quick mode is named as written.
    let o = kbench().args(["run", "--producers", "0"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert_eq!(
        stderr(&o).trim_end(),
        "kbench: error: --producers 0: producers.count = 0: must be 1..=10000"
    );
}

/// `kbench run smoke -b BOOTSTRAP -o OUT`: the output, how long it took, and whether OUT exists.
fn run_against(bootstrap: &str) -> (String, Duration, bool) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let started = Instant::now();
    let o = kbench()
        .args(["run", "smoke", "-b", bootstrap, "-o"])
        .arg(&out)
        .output()
        .unwrap();
    let took = started.elapsed();
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let last = stderr(&o).lines().last().unwrap_or("").to_string();
    (last, took, out.exists())
}

#[test]
fn a_refused_port_is_named_in_under_two_seconds_and_no_out_is_made() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (err, took, made) = run_against(&format!("127.0.0.1:{port}"));
    assert_eq!(
        err,
        format!(
            "kbench: error: --bootstrap 127.0.0.1:{port}: cannot reach the cluster: \
             127.0.0.1:{port}: connection refused: nothing listens there; is the broker running \
             and the port right?"
        )
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(!made, "--out was created for a cluster that never answered");
}

#[test]
fn a_name_that_does_not_resolve_is_named_in_under_two_seconds() {
    let (err, took, made) = run_against("no-such-host.invalid:9092");
    assert!(
        err.starts_with(
            "kbench: error: --bootstrap no-such-host.invalid:9092: cannot reach the cluster: \
             no-such-host.invalid:9092: no-such-host.invalid does not resolve ("
        ),
        "{err}"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(!made);
}

#[test]
fn a_connection_nobody_answers_times_out_in_under_two_seconds() {
    // A listener that never accepts, with a backlog of one already taken: the kernel drops
    // further SYNs, so a connection to it hangs as to a blackholed address.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::new();
    let full = (0..8).any(|_| {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(s) => {
                held.push(s);
                false
            }
            Err(_) => true,
        }
    });
    if !full {
        eprintln!("skipped: this kernel accepts connections beyond the backlog");
        return;
    }
    let (err, took, made) = run_against(&addr.to_string());
    assert_eq!(
        err,
        format!(
            "kbench: error: --bootstrap {addr}: cannot reach the cluster: {addr}: timed out \
             after 1.5 s (at {addr}): no answer to the TCP connection; a firewall dropping \
             packets, or the wrong address"
        )
    );
    assert!(
        took < Duration::from_secs(2) + Duration::from_millis(500),
        "{took:?}"
    );
    assert!(!made);
}

#[test]
fn a_run_that_cannot_start_leaves_a_summary_that_says_why() {
    // TCP is answered, Kafka is not: every connection is closed at once.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in listener.incoming() {
            drop(c);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = kbench()
        .args(["run", "smoke", "-b", &addr.to_string(), "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let s = summary(&out);
    assert!(!s.verdict.passed);
    assert_eq!(s.verdict.failures.len(), 1);
    assert!(
        s.verdict.failures[0].starts_with(&format!(
            "could not start: --bootstrap {addr}: cannot reach the cluster: "
        )),
        "{:?}",
        s.verdict
    );
    let files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, vec!["summary.json".to_string()]);
    // compare says what happened instead of failing to parse.
    let o = kbench().arg("compare").arg(&out).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        stderr(&o).contains("the run could not start, so there is nothing to compare: --bootstrap"),
        "{}",
        show(&o)
    );
}

#[test]
fn help_shows_examples_and_exit_codes() {
    let o = kbench().args(["run", "--help"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    let text = String::from_utf8_lossy(&o.stdout);
    for want in [
        "kbench run smoke",
        "--producers 4 --messages 1M --size 1KiB --acks all",
        "Exit codes:",
        "0  ran, and every expectation held",
        "2  could not run",
        "-b, --bootstrap",
        "-o, --out",
    ] {
        assert!(text.contains(want), "{want} missing from:\n{text}");
    }
}
