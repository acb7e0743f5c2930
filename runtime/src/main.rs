//! The `ferry` binary: a thin wrapper around [`ferry::cli::main`].

fn main() -> std::process::ExitCode {
    ferry::cli::main()
}
