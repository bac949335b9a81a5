//! `fitlake`: setup, produce, run, show and status of a fitness lakehouse.

mod alloc;

fn main() -> std::process::ExitCode {
    fitlake_lakehouse::cli::main_fitlake()
}
