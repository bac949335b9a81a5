//! `fitlake-bronze`: runs the bronze layer (for one Azure DevOps job per layer); the same as
//! `fitlake run --layer bronze`.

#[path = "../alloc.rs"]
mod alloc;

fn main() -> std::process::ExitCode {
    alloc::tune();
    fitlake::cli::main_layer(fitlake_config::Layer::Bronze)
}
