//! The `kbench` binary: everything is in the library; see `kbench::cli`.

fn main() -> std::process::ExitCode {
    kbench::cli::main()
}
