//! `fitlake-bronze`: runs the bronze layer once (for one Azure DevOps job per layer).

/// Polars allocates and frees large buffers all the time; mimalloc keeps them out of the kernel.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    fitlake_lakehouse::cli::main_layer(fitlake_config::Layer::Bronze)
}
