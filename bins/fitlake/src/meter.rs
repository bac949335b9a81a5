//! The progress bar of long steps (`--progress`): bytes of landing or bronze files read, or
//! sessions taken, with the rows written so far. Drawn on stderr when it is a terminal
//! (`auto`), always (`always`: also into a pipe or a CI log), or never. Log lines go through
//! [`Bars::writer`], which lifts the bar while a line is written so the two do not mix.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use fitlake_pipeline::{Meter, Unit};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// When the bar is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// When stderr is a terminal (and the run is not streaming or logging JSON).
    Auto,
    /// Always, whatever stderr is.
    Always,
    /// Never.
    Never,
}

/// The process's progress bars.
#[derive(Debug, Clone)]
pub struct Bars {
    multi: MultiProgress,
    current: Arc<Mutex<Option<(ProgressBar, String)>>>,
    rows: Arc<AtomicU64>,
}

static BARS: OnceLock<Bars> = OnceLock::new();

impl Bars {
    /// The process's bars, drawn as `mode` says (the first call decides; later calls get the
    /// same bars).
    pub fn install(mode: ProgressMode) -> Bars {
        BARS.get_or_init(|| {
            let target = match mode {
                ProgressMode::Auto => ProgressDrawTarget::stderr(),
                ProgressMode::Always => ProgressDrawTarget::term_like(Box::new(console::Term::stderr())),
                ProgressMode::Never => ProgressDrawTarget::hidden(),
            };
            Bars {
                multi: MultiProgress::with_draw_target(target),
                current: Arc::new(Mutex::new(None)),
                rows: Arc::new(AtomicU64::new(0)),
            }
        })
        .clone()
    }

    /// The bars [`Bars::install`] installed (hidden ones when it was not called).
    pub fn installed() -> Bars {
        Bars::install(ProgressMode::Never)
    }

    /// A writer for log lines that lifts the bar while it writes.
    pub fn writer(&self) -> LogWriter {
        LogWriter(self.multi.clone())
    }

    fn with_bar(&self, f: impl FnOnce(&ProgressBar, &str)) {
        if let Some((bar, what)) = self.current.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            f(bar, what);
        }
    }
}

impl Meter for Bars {
    fn begin(&self, what: &str, total: u64, unit: Unit) {
        self.end();
        let template = match unit {
            Unit::Bytes => "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            Unit::Rows => "{msg} [{bar:30}] {human_pos}/{human_len} sessions ETA {eta}",
        };
        let style = ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar());
        let bar = self.multi.add(ProgressBar::new(total).with_style(style.progress_chars("=> ")));
        bar.set_message(format!("{what}: 0 rows written"));
        self.rows.store(0, Ordering::Relaxed);
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some((bar, what.to_string()));
    }

    fn advance(&self, done: u64) {
        self.with_bar(|bar, _| bar.inc(done));
    }

    fn written(&self, rows: u64) {
        let total = self.rows.fetch_add(rows, Ordering::Relaxed) + rows;
        self.with_bar(|bar, what| bar.set_message(format!("{what}: {total} rows written")));
    }

    fn end(&self) {
        if let Some((bar, _)) = self.current.lock().unwrap_or_else(|p| p.into_inner()).take() {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }
}

/// Writes to stderr with the bars lifted.
pub struct LogWriter(MultiProgress);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.suspend(|| std::io::stderr().write(buf))
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0.suspend(|| std::io::stderr().write_all(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
