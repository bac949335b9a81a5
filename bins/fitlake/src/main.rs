//! `fitlake`: setup, produce, run, show and status of a fitness lakehouse.

/// Polars allocates and frees large buffers all the time; mimalloc keeps them out of the kernel.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    fitlake_lakehouse::cli::main_fitlake()
}
