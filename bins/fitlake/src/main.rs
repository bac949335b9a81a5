//! `fitlake`: setup, produce, run, show, status, quality, governance and serve of a fitness
//! lakehouse. Also a multi-call binary: run under the name `fitlake-bronze`, `fitlake-silver`
//! or `fitlake-gold` (a link or a copy), it is that layer's job.

mod alloc;

fn main() -> std::process::ExitCode {
    alloc::tune();
    match fitlake::cli::layer_of_program() {
        Some(layer) => fitlake::cli::main_layer(layer),
        None => fitlake::cli::main_fitlake(),
    }
}
