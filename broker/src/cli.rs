//! The `kbroker` command line, shared by the standalone binary and `kbench broker`.
//!
//! `kbroker [CONFIG.properties] [--override key=value]...` mirrors Kafka's
//! `kafka-server-start.sh config/server.properties --override ...`. The process runs until
//! SIGINT or SIGTERM, then stops accepting connections, lets in-flight requests finish, flushes
//! every log and exits 0.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::config::BrokerConfig;

/// A Kafka-wire-compatible broker.
#[derive(Debug, Parser)]
#[command(name = "kbroker", version, about)]
struct Args {
    /// A Kafka `server.properties` file (optional: Kafka's defaults apply without one).
    config: Option<PathBuf>,
    /// Override a property, e.g. `--override log.dirs=/tmp/kbroker` (repeatable; later wins).
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

/// Runs the broker with command-line arguments (`args[0]` is the program name).
pub fn main(args: Vec<String>) -> ExitCode {
    let args = match Args::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_tracing();
    let config = match BrokerConfig::load(args.config.as_deref(), &args.overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kbroker: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kbroker: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kbroker: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: BrokerConfig) -> anyhow::Result<()> {
    let addr = config.bind_addr()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| crate::StartError::Bind { addr, source })?;
    crate::server::run(listener, config, shutdown_signal()).await?;
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot install SIGTERM handler; stop with Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = term.recv() => tracing::info!("SIGTERM received"),
    }
}

/// Logs to stderr; `RUST_LOG` (or `KBROKER_LOG`) selects the level, `info` by default. The Raft
/// library logs every vote and append at info; it is held to warnings unless named explicitly.
fn init_tracing() {
    let mut filter = std::env::var("KBROKER_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    if !filter.contains("openraft") {
        filter.push_str(",openraft=warn");
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}
