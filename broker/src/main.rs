//! The standalone `kbroker` binary: see [`kbroker::cli`].

fn main() -> std::process::ExitCode {
    kbroker::cli::main(std::env::args().collect())
}
