//! `fitlake-gold`: runs the gold layer once (for one Azure DevOps job per layer).

#[path = "../alloc.rs"]
mod alloc;

fn main() -> std::process::ExitCode {
    fitlake_lakehouse::cli::main_layer(fitlake_config::Layer::Gold)
}
