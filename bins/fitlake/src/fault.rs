//! The crash-test hook: `FITLAKE_FAULT=<point>:<table>` makes the process abort (as a
//! `kill -9` would) when a commit reaches that point for that table (`*` for any table).
//! Points: `after-plan`, `after-write`, `after-commit` (see [`fitlake_storage::fault`]).

use std::sync::OnceLock;

/// The environment variable that arms a fault.
pub const FAULT_ENV: &str = "FITLAKE_FAULT";

fn armed() -> &'static Option<(String, String)> {
    static ARMED: OnceLock<Option<(String, String)>> = OnceLock::new();
    ARMED.get_or_init(|| {
        std::env::var(FAULT_ENV).ok().and_then(|v| v.split_once(':').map(|(p, t)| (p.to_string(), t.to_string())))
    })
}

/// Aborts the process if the armed fault is `point` for `table`.
pub fn from_env(point: &str, table: &str) {
    if let Some((p, t)) = armed() {
        if p == point && (t == table || t == "*") {
            eprintln!("fitlake: injected fault {point}:{table}, aborting");
            std::process::abort();
        }
    }
}
