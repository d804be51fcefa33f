//! The command line: `kbench run | validate | compare | report | merge | cluster up | kill | stop |
//! start | down | describe` (and the hidden `broker`, which
//! is how kbench starts embedded brokers: it re-executes itself as one).
//!
//! Parsing (clap derive) and dispatch live here so `main.rs` stays a few lines. Exit codes:
//! 0 = ran and every expectation held; 1 = ran and an expectation failed (or `compare` found a
//! regression); 2 = could not run (bad scenario, bad flag, unreachable cluster, interrupted).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::run::{Outcome, RunOptions};
use crate::sut::{load_client_config, ClusterAccess};
use crate::workload::Stop;

/// Benchmark and load-test Kafka: scenario in, verified report out.
#[derive(Debug, Parser)]
#[command(
    name = "kbench",
    version,
    about,
    propagate_version = true,
    after_help = MAIN_HELP
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario: start (or connect to) a cluster, produce, consume, verify, report.
    #[command(after_help = RUN_HELP)]
    Run {
        /// A built-in scenario's name (`kbench scenarios` lists them) or a scenario file
        /// (a path: `./my.toml`); none = the quick mode, a scenario made of the defaults and
        /// the flags below.
        #[arg(value_name = "NAME|FILE")]
        scenario: Option<String>,
        /// Use this cluster (`host:port,...`, any Kafka) instead of starting embedded brokers.
        #[arg(short = 'b', long, value_name = "HOST:PORT,...")]
        bootstrap: Option<String>,
        /// librdkafka properties every client kbench creates gets (security settings such as
        /// `security.protocol`, `sasl.*`, `ssl.*`), like kcat's `-F`.
        #[arg(long, value_name = "FILE")]
        client_config: Option<PathBuf>,
        /// Output folder [default: reports/<scenario name>/<UTC timestamp>/].
        #[arg(short = 'o', long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Override a scenario key, e.g. `--set producers.count=4` (repeatable; value read as
        /// TOML, else as a string). Applied after the flags below.
        #[arg(long = "set", value_name = "KEY.PATH=VALUE")]
        sets: Vec<String>,
        /// Run the scenario N times into OUT/run-1..N and report medians with 95 % intervals
        /// (the scenario's `runs`, overridden).
        #[arg(long, value_name = "N")]
        runs: Option<u32>,
        /// Print the run's summary.json to stdout (and nothing else there; the tables go to
        /// stderr).
        #[arg(long)]
        json: bool,
        /// Run shard I of N of the scenario (1-based; also KBENCH_SHARD=I/N, or a Kubernetes
        /// Indexed Job's JOB_COMPLETION_INDEX with KBENCH_SHARDS=N); needs --run-id and
        /// --bootstrap. Merge the shards' folders with `kbench merge`.
        #[arg(long, value_name = "I/N")]
        shard: Option<String>,
        /// The run id every shard of one run shares (also KBENCH_RUN_ID); names its topic,
        /// groups and start barrier.
        #[arg(long, value_name = "ID")]
        run_id: Option<String>,
        /// Seconds a shard waits for the others at the start and end barriers [default: 120].
        #[arg(long, value_name = "SECS")]
        barrier_timeout: Option<u64>,
        #[command(flatten)]
        quick: Box<QuickFlags>,
    },
    /// Merge the run folders of the shards of one sharded run into one report and verdict.
    Merge {
        /// Every shard's run folder (one per shard).
        #[arg(value_name = "RUN_DIR", required = true)]
        run_dirs: Vec<PathBuf>,
        /// Folder for the merged report.
        #[arg(short = 'o', long, value_name = "DIR")]
        out: PathBuf,
        /// The hosts' clocks are synchronised: include end-to-end latency of messages
        /// consumed on another shard's host than the one that produced them.
        #[arg(long)]
        clocks_synced: bool,
    },
    /// Parse and check a scenario without running it.
    Validate {
        /// A built-in scenario's name or a scenario file.
        #[arg(value_name = "NAME|FILE")]
        scenario: String,
        /// Overrides, as for `run`.
        #[arg(long = "set", value_name = "KEY.PATH=VALUE")]
        sets: Vec<String>,
    },
    /// List the built-in scenarios, or print one (`kbench scenarios show NAME`).
    Scenarios {
        /// `show NAME`: print that scenario's TOML.
        #[command(subcommand)]
        command: Option<ScenariosCommand>,
    },
    /// Compare runs or run sets side by side; with thresholds, judge the last (candidate)
    /// against the first (base) per metric and exit 1 on a regression.
    #[command(after_help = "Examples:\n  \
        kbench run scenarios/gate.toml --runs 5 --out base   (then the same for cand)\n  \
        kbench compare --calibrate base --out cal             A/A noise, recommended thresholds\n  \
        kbench compare base cand --thresholds cal/calibration.json\n  \
        kbench compare base cand --max-throughput-drop 5 --max-latency-rise 20 --format markdown")]
    Compare {
        /// Run-set folders (`kbench run --runs N`), run folders or summary.json files; the
        /// first is the base.
        #[arg(required_unless_present = "calibrate")]
        inputs: Vec<PathBuf>,
        /// Regressed when a throughput metric's whole 95 % interval lies more than PCT percent
        /// below the base.
        #[arg(long, value_name = "PCT")]
        max_throughput_drop: Option<f64>,
        /// Regressed when a latency metric's whole 95 % interval lies more than PCT percent
        /// above the base.
        #[arg(long, value_name = "PCT")]
        max_latency_rise: Option<f64>,
        /// Per-metric thresholds from `kbench compare --calibrate` (win over the two flags).
        #[arg(long, value_name = "calibration.json")]
        thresholds: Option<PathBuf>,
        /// Measure the A/A noise of one run set of an unchanged build and recommend thresholds
        /// (writes calibration.json into --out).
        #[arg(long, value_name = "RUN_SET", conflicts_with_all = ["inputs", "thresholds"])]
        calibrate: Option<PathBuf>,
        /// With --calibrate: runs a side of the comparisons to calibrate for [default: the
        /// set's size].
        #[arg(long, value_name = "K", requires = "calibrate")]
        runs_per_side: Option<usize>,
        /// What to print: the terminal table, markdown (a pull-request comment), or the
        /// verdicts as CSV or the whole comparison as JSON.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Also write comparison.md, comparison.csv, verdicts.csv, comparison.json, charts and
        /// report.html (or calibration.json) into DIR.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Redraw a run's charts and report.html from its CSV and JSON files.
    Report {
        /// The run folder.
        run_dir: PathBuf,
    },
    /// A local embedded cluster for manual use, or a description of any cluster.
    Cluster {
        /// up | kill | stop | start | down | describe.
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Run a kbroker (used by kbench to start embedded brokers): `[CONFIG.properties] [--override key=value]...`.
    #[command(hide = true, disable_help_flag = true)]
    Broker {
        /// Arguments for kbroker.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// `kbench scenarios show NAME`.
#[derive(Debug, Subcommand)]
pub enum ScenariosCommand {
    /// Print a built-in scenario's TOML (save it to a file to make your own).
    Show {
        /// The scenario's name.
        name: String,
    },
}

/// The quick mode's flags: each sets one scenario key, with or without a scenario.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct QuickFlags {
    /// Producer tasks (`producers.count`).
    #[arg(long, value_name = "N", help_heading = "Quick mode")]
    pub producers: Option<String>,
    /// Messages per producer (`producers.messages_each`); `1M` = 1,000,000, `64k` = 64,000.
    #[arg(long, value_name = "N", help_heading = "Quick mode")]
    pub messages: Option<String>,
    /// Produce for this long instead of a count (`producers.duration`), e.g. `30s`.
    #[arg(long, value_name = "DURATION", help_heading = "Quick mode")]
    pub duration: Option<String>,
    /// Message size (`producers.message_size`): `1KiB` = 1024 B, `1KB` = 1000 B.
    #[arg(long, value_name = "SIZE", help_heading = "Quick mode")]
    pub size: Option<String>,
    /// `0`, `1` or `all` (`producers.acks`).
    #[arg(long, value_name = "ACKS", help_heading = "Quick mode")]
    pub acks: Option<String>,
    /// Messages per second of all producers together (`producers.total_rate`), e.g. `20k/s`.
    #[arg(long, value_name = "RATE", help_heading = "Quick mode")]
    pub rate: Option<String>,
    /// Topic partitions (`topic.partitions`).
    #[arg(long, value_name = "N", help_heading = "Quick mode")]
    pub partitions: Option<String>,
    /// Replication factor (`topic.replication_factor`).
    #[arg(long, value_name = "N", help_heading = "Quick mode")]
    pub replication: Option<String>,
    /// Members of the consumer group (`consumers.members`; 0 = no consumers).
    #[arg(long, value_name = "N", help_heading = "Quick mode")]
    pub consumers: Option<String>,
    /// Embedded brokers to start (`cluster.brokers`).
    #[arg(long, value_name = "N", help_heading = "Quick mode")]
    pub brokers: Option<String>,
}

impl QuickFlags {
    /// The overrides the flags stand for, in a fixed order (before any `--set`).
    pub fn overrides(&self) -> Vec<crate::scenario::Override> {
        use crate::scenario::Override;
        fn add(out: &mut Vec<Override>, flag: &str, key: &str, value: &Option<String>) {
            if let Some(v) = value {
                out.push(Override::flag(key, v, format!("--{flag} {v}")));
            }
        }
        let mut out = Vec::new();
        add(&mut out, "producers", "producers.count", &self.producers);
        if let Some(m) = &self.messages {
            let n = crate::scenario::units::parse_count(m).map_or(m.clone(), |n| n.to_string());
            out.push(Override::flag(
                "producers.messages_each",
                &n,
                format!("--messages {m}"),
            ));
        }
        add(&mut out, "duration", "producers.duration", &self.duration);
        add(&mut out, "size", "producers.message_size", &self.size);
        add(&mut out, "acks", "producers.acks", &self.acks);
        add(&mut out, "rate", "producers.total_rate", &self.rate);
        add(&mut out, "partitions", "topic.partitions", &self.partitions);
        add(
            &mut out,
            "replication",
            "topic.replication_factor",
            &self.replication,
        );
        add(&mut out, "brokers", "cluster.brokers", &self.brokers);
        if let Some(n) = &self.consumers {
            if n.trim() == "0" {
                out.push(Override::flag(
                    "consumers.groups",
                    "0",
                    format!("--consumers {n}"),
                ));
                out.push(Override::flag(
                    "verify.delivery",
                    "none",
                    format!("--consumers {n}"),
                ));
            } else {
                out.push(Override::flag(
                    "consumers.members",
                    n,
                    format!("--consumers {n}"),
                ));
            }
        }
        out
    }
}

/// `kbench run --help`, after the options.
const RUN_HELP: &str = "\
Examples:
  kbench run smoke                            a built-in scenario (kbench scenarios lists them)
  kbench run ./my-test.toml -o /tmp/run       a scenario file, report into /tmp/run
  kbench run 1gb --set producers.count=4      any scenario key overridden
  kbench run --producers 4 --messages 1M --size 1KiB --acks all
                                              quick mode: an embedded broker, no file
  kbench run -b kafka1:9092 --producers 4 --messages 1M --json > summary.json
                                              quick mode against your cluster

A bare NAME is always the built-in scenario, even if a file of that name is in the current
directory; name a file by a path (./smoke.toml, smoke.toml, dir/x.toml).

Exit codes:
  0  ran, and every expectation held
  1  ran, and an expectation failed (loss, duplicates, corruption, offsets or on-disk mismatch,
     time limit, required rate missed, storage errors)
  2  could not run: bad scenario or flag, unreachable cluster, interrupted (Ctrl-C)";

/// `kbench --help`, after the commands.
const MAIN_HELP: &str = "\
Examples:
  kbench run smoke                   a few seconds end to end on an embedded broker
  kbench scenarios                   the built-in scenarios, one line each
  kbench run -b HOST:9092 --producers 4 --messages 1M --size 1KiB --acks all
  kbench compare base candidate      two runs or run sets side by side
  kbench run S -b HOST:9092 --shard 2/3 --run-id R   shard 2 of 3 of one run (on its host)
  kbench merge shard-1 shard-2 shard-3 --out merged  one report from the shards' folders

Exit codes: 0 passed; 1 ran and an expectation failed (compare: a regression); 2 could not
run (bad scenario or flag, unreachable cluster, interrupted).";

/// `kbench compare --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text.
    Table,
    /// Markdown tables.
    Markdown,
    /// The per-metric verdicts as CSV.
    Csv,
    /// The whole comparison as JSON.
    Json,
}

/// `kbench cluster ...`
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Run a local cluster of embedded brokers in the foreground; prints `bootstrap: ...`; a
    /// broker that dies is reported and the others keep serving; Ctrl-C or `down` stops it
    /// (the brokers never outlive it).
    Up {
        /// Number of brokers (ids 1..=N).
        #[arg(long, default_value_t = 1)]
        brokers: u32,
        /// Port of broker 1 (broker i listens on PORT + i − 1; in a cluster its controller
        /// listener on PORT + N + i − 1) [default: free ports].
        #[arg(long, value_name = "PORT")]
        port: Option<u16>,
        /// Directory for the brokers' data and logs (`DIR/brokers/<id>/`), `cluster.env` and
        /// the control socket the other verbs use [default: a new directory under the
        /// system's temp dir].
        #[arg(long, value_name = "DIR", alias = "data")]
        dir: Option<PathBuf>,
        /// `broker.rack` values handed to the brokers in turn, e.g. `--racks a,b,c`.
        #[arg(long, value_name = "RACK,...")]
        racks: Option<String>,
        /// Start N unrelated single-node brokers instead of one replicated cluster.
        #[arg(long)]
        independent: bool,
    },
    /// SIGKILL one broker of the `cluster up` at DIR.
    Kill(NodeArgs),
    /// SIGTERM one broker of the `cluster up` at DIR and wait until it has exited (SIGKILL
    /// after 30 s).
    Stop(NodeArgs),
    /// Start a stopped broker of the `cluster up` at DIR again (same config, ports and data)
    /// and wait until it serves (at most 30 s).
    Start(NodeArgs),
    /// Stop every broker of the `cluster up` at DIR, and `up` itself (nothing running: no
    /// error).
    Down {
        /// The directory given to `cluster up --dir`.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Print the brokers (id, address, rack, alive, controller), then the topics with
    /// Leader / Replicas / Isr like `kafka-topics --describe`.
    Describe {
        /// The cluster (`host:port,...`, any Kafka) [default: localhost:9092, or the
        /// brokers of `--dir`].
        #[arg(long, value_name = "HOST:PORT,...")]
        bootstrap: Option<String>,
        /// A `kbench cluster up --dir DIR`: its brokers are listed, stopped ones as down.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Only this topic.
        #[arg(long, value_name = "TOPIC")]
        topic: Option<String>,
        /// librdkafka properties for the client (security settings), like kcat's `-F`.
        #[arg(long, value_name = "FILE")]
        client_config: Option<PathBuf>,
    },
}

/// `--dir DIR --node ID`, as `compat/kafka/kafka.sh kill|stop|start` take them.
#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    /// The directory given to `cluster up --dir`.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// The broker's `node.id` (1..=N).
    #[arg(long, value_name = "ID")]
    pub node: u32,
}

/// Parses the command line, runs the command and returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Broker { args } => {
            let mut argv = vec!["kbroker".to_string()];
            argv.extend(args);
            kbroker::cli::main(argv)
        }
        command => {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return fail(&anyhow::anyhow!("cannot start the async runtime: {e}")),
            };
            runtime.block_on(dispatch(command))
        }
    }
}

fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("kbench: error: {e:#}");
    ExitCode::from(2)
}

async fn dispatch(command: Command) -> ExitCode {
    match command {
        Command::Run {
            scenario,
            bootstrap,
            client_config,
            out,
            sets,
            runs,
            json,
            shard,
            run_id,
            barrier_timeout,
            quick,
        } => {
            let flags = crate::shard::ShardFlags {
                shard,
                run_id,
                barrier_timeout_s: barrier_timeout,
            };
            let shard = match crate::shard::Shard::resolve(&flags, |k| std::env::var(k).ok()) {
                Ok(s) => s,
                Err(e) => return fail(&e),
            };
            let source = match crate::scenario::builtin::Source::resolve(scenario.as_deref()) {
                Ok(s) => s,
                Err(e) => return fail(&e.into()),
            };
            let mut overrides = quick.overrides();
            overrides.extend(crate::scenario::sets(&sets));
            if let Some(n) = runs {
                overrides.push(crate::scenario::Override::flag(
                    "runs",
                    &n.to_string(),
                    format!("--runs {n}"),
                ));
            }
            let interrupt = Stop::default();
            watch_signals(interrupt.clone());
            let opts = RunOptions {
                bootstrap,
                client_config,
                out,
                overrides,
                json,
                shard,
            };
            let (result, out) = crate::run::run_source(&source, &opts, &interrupt).await;
            if json {
                if let Some(text) = out.as_deref().and_then(crate::run::result_json) {
                    println!("{}", text.trim_end());
                }
            }
            match result {
                Ok(Outcome::Passed) => ExitCode::SUCCESS,
                Ok(Outcome::Failed) if interrupt.is_raised() => ExitCode::from(2),
                Ok(Outcome::Failed) => ExitCode::from(1),
                Err(e) => fail(&e),
            }
        }
        Command::Validate { scenario, sets } => {
            let source = match crate::scenario::builtin::Source::resolve(Some(&scenario)) {
                Ok(s) => s,
                Err(e) => return fail(&e.into()),
            };
            let loaded = source.text().and_then(|text| {
                crate::scenario::load_overridden(
                    &text,
                    &source.path(),
                    &crate::scenario::sets(&sets),
                    false,
                )
            });
            match loaded {
                Ok(loaded) => {
                    for v in &loaded.variants {
                        println!(
                            "{}",
                            crate::scenario::plan_line(&v.scenario, v.label.as_deref())
                        );
                    }
                    println!(
                        "{}: ok ({} run(s))",
                        source.path().display(),
                        loaded.variants.len()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e.into()),
            }
        }
        Command::Scenarios { command } => match command {
            None => {
                print!("{}", crate::scenario::builtin::listing());
                ExitCode::SUCCESS
            }
            Some(ScenariosCommand::Show { name }) => match crate::scenario::builtin::find(&name) {
                Some(b) => {
                    print!("{}", b.text);
                    ExitCode::SUCCESS
                }
                None => fail(&anyhow::anyhow!(
                    "no built-in scenario \"{name}\"; there are: {}",
                    crate::scenario::builtin::names()
                )),
            },
        },
        Command::Compare {
            inputs,
            max_throughput_drop,
            max_latency_rise,
            thresholds,
            calibrate,
            runs_per_side,
            format,
            out,
        } => {
            if let Some(set) = calibrate {
                return match calibrate_set(&set, runs_per_side, out.as_deref(), format) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => fail(&e),
                };
            }
            let opts = crate::compare::Options {
                max_throughput_drop_pct: max_throughput_drop,
                max_latency_rise_pct: max_latency_rise,
                ..Default::default()
            };
            let opts = match thresholds {
                Some(file) => match opts.with_calibration(&file) {
                    Ok(o) => o,
                    Err(e) => return fail(&e),
                },
                None => opts,
            };
            match crate::compare::run(&inputs, &opts, out.as_deref()) {
                Ok(outcome) => {
                    let printed = match format {
                        Format::Table => Ok(outcome.table.clone()),
                        Format::Markdown => Ok(outcome.markdown.clone()),
                        Format::Csv => outcome
                            .verdicts_csv()
                            .map(|b| String::from_utf8_lossy(&b).into_owned()),
                        Format::Json => outcome.json().map(|j| j + "\n"),
                    };
                    match printed {
                        Ok(text) => print!("{text}"),
                        Err(e) => return fail(&e),
                    }
                    if format != Format::Table {
                        for w in &outcome.warnings {
                            eprintln!("kbench: warning: {w}");
                        }
                    }
                    if outcome.regressed {
                        ExitCode::from(1)
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Err(e) => fail(&e),
            }
        }
        Command::Report { run_dir } => match crate::report::rebuild(&run_dir) {
            Ok(()) => {
                println!("{}: report rebuilt", run_dir.display());
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        Command::Merge {
            run_dirs,
            out,
            clocks_synced,
        } => match crate::merge::merge(&run_dirs, &out, clocks_synced) {
            Ok(summary) => {
                print!("{}", crate::report::terminal_table(&summary));
                println!("kbench: merged report in {}", out.display());
                if summary.verdict.passed {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
            Err(e) => fail(&e),
        },
        Command::Cluster { command } => cluster(command).await,
        Command::Broker { .. } => ExitCode::from(2),
    }
}

/// `kbench cluster ...`: prints what was done (stdout) or the error (stderr, exit 2).
async fn cluster(command: ClusterCommand) -> ExitCode {
    use crate::cluster::control::Request;
    let done = match command {
        ClusterCommand::Up {
            brokers,
            port,
            dir,
            racks,
            independent,
        } => {
            let racks = match racks.as_deref().map(crate::cluster::parse_racks) {
                None => Vec::new(),
                Some(Ok(r)) => r,
                Some(Err(e)) => return fail(&e),
            };
            let opts = crate::cluster::UpOptions {
                brokers,
                port,
                dir,
                racks,
                independent,
            };
            crate::cluster::up(&opts).await.map(|()| String::new())
        }
        ClusterCommand::Kill(a) => {
            crate::cluster::node_request(&a.dir, Request::Kill { node: a.node }).await
        }
        ClusterCommand::Stop(a) => {
            crate::cluster::node_request(&a.dir, Request::Stop { node: a.node }).await
        }
        ClusterCommand::Start(a) => {
            crate::cluster::node_request(&a.dir, Request::Start { node: a.node }).await
        }
        ClusterCommand::Down { dir } => crate::cluster::down(&dir).await,
        ClusterCommand::Describe {
            bootstrap,
            dir,
            topic,
            client_config,
        } => describe_cluster(bootstrap, dir, topic, client_config).await,
    };
    match done {
        Ok(text) if text.is_empty() => ExitCode::SUCCESS,
        Ok(text) => {
            println!("{}", text.trim_end());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// `kbench cluster describe`: of `--bootstrap`, or of the `cluster up` at `--dir`.
async fn describe_cluster(
    bootstrap: Option<String>,
    dir: Option<PathBuf>,
    topic: Option<String>,
    client_config: Option<PathBuf>,
) -> anyhow::Result<String> {
    let settings = match client_config.as_deref().map(load_client_config) {
        None => Default::default(),
        Some(s) => s?,
    };
    let (known, from_dir) = match &dir {
        Some(d) => crate::cluster::known_brokers(d).await?,
        None => (Vec::new(), String::new()),
    };
    let bootstrap = match (bootstrap, dir) {
        (Some(b), _) => b,
        (None, Some(_)) => from_dir,
        (None, None) => "localhost:9092".to_string(),
    };
    let cluster = ClusterAccess::new(&bootstrap, settings);
    crate::cluster::describe(&cluster, topic.as_deref(), &known).await
}

/// `kbench compare --calibrate`: prints the noise table (or its JSON) and writes
/// `calibration.json` into `out`.
fn calibrate_set(
    set: &std::path::Path,
    runs_per_side: Option<usize>,
    out: Option<&std::path::Path>,
    format: Format,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let set = crate::runset::RunSet::load(set)?;
    let calibration = crate::compare::calibrate(&set, runs_per_side)?;
    let json = serde_json::to_string_pretty(&calibration)?;
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(crate::compare::CALIBRATION_JSON);
        std::fs::write(&path, &json).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("kbench: calibration in {}", path.display());
    }
    match format {
        Format::Json => println!("{json}"),
        _ => print!("{}", calibration.table()),
    }
    Ok(())
}

/// First Ctrl-C or SIGTERM: stop the run cleanly (it still writes its report). Second Ctrl-C:
/// kill the brokers and exit at once.
fn watch_signals(interrupt: Stop) {
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let first = async {
            match term.as_mut() {
                Some(t) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {},
                        _ = t.recv() => {},
                    }
                }
                None => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        };
        first.await;
        eprintln!("\nkbench: stopping (press Ctrl-C again to kill the brokers and exit at once)");
        interrupt.raise();
        let _ = tokio::signal::ctrl_c().await;
        crate::sut::embedded::kill_registered();
        crate::sut::netns::remove_registered();
        std::process::exit(2);
    });
}
