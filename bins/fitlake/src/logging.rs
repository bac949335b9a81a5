//! Log lines on stderr through `tracing`: fitlake's own spans and events (a span per run and
//! step, with row counts) and those of deltalake, object_store and azure_identity.
//!
//! `RUST_LOG` filters them when set (`RUST_LOG=fitlake_pipeline=debug,deltalake=info`).
//! Otherwise fitlake's crates log at `info` and dependencies at `warn`; `--quiet`, and
//! streaming runs (whose status line per micro-batch is their progress report), log warnings
//! and errors only. `--log-format json` writes one JSON object per line for log collectors.
//! Long steps draw a progress bar above the log lines (`--progress`, see [`crate::meter`]).

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::cli::Global;
use crate::meter::{Bars, ProgressMode};

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line per event for people.
    Text,
    /// One JSON object per event, with its span's fields.
    Json,
}

/// The subscriber a command installs.
pub struct Logging {
    format: LogFormat,
    default_filter: &'static str,
    progress: ProgressMode,
}

/// fitlake's crates at `info`, everything else at `warn`.
const DEFAULT: &str = "warn,fitlake=info,fitlake_pipeline=info,fitlake_storage=info,fitlake_sources=info";

impl Logging {
    /// The logging the global options ask for (`streaming`: a `--stream` run).
    pub fn from_global(global: &Global, streaming: bool) -> Logging {
        let quiet = global.quiet || global.json || streaming;
        // A stream's status line per micro-batch is its report, and a log collector wants no
        // bar between its JSON lines: `auto` draws none for them.
        let progress = match global.progress {
            ProgressMode::Auto if streaming || global.log_format == LogFormat::Json || global.quiet => {
                ProgressMode::Never
            }
            mode => mode,
        };
        Logging { format: global.log_format, default_filter: if quiet { "warn" } else { DEFAULT }, progress }
    }

    /// Installs it as the process's subscriber, the progress bars (see [`Bars`]) and the
    /// crash-test fault hook.
    pub fn install(self) {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(self.default_filter));
        let registry = tracing_subscriber::registry().with(filter);
        let bars = Bars::install(self.progress);
        let writer = move || bars.writer();
        let installed = match self.format {
            LogFormat::Text => registry
                .with(tracing_subscriber::fmt::layer().with_writer(writer).with_target(false).compact())
                .try_init(),
            LogFormat::Json => registry
                .with(tracing_subscriber::fmt::layer().with_writer(writer).json().with_current_span(true))
                .try_init(),
        };
        if let Err(e) = installed {
            eprintln!("fitlake: cannot install the log subscriber: {e}");
        }
        fitlake_storage::fault::install(crate::fault::from_env);
    }
}
