//! The crash-test hook: points in a commit where a test may make the process die as a
//! `kill -9` would.
//!
//! The library only calls [`point`]; what happens there is the binary's choice (fitlake's
//! binaries install a hook that reads `FITLAKE_FAULT=<point>:<table>` and aborts). Points:
//! `after-plan` (a bronze batch is planned, nothing written), `after-write` (data files
//! written, not committed), `after-commit` (committed; steps not started yet do not run, and
//! steps running beside it die where they are).

use std::sync::OnceLock;

/// What runs at each fault point: `(point, table name)`.
pub type FaultHook = fn(&str, &str);

static HOOK: OnceLock<FaultHook> = OnceLock::new();

/// Installs the process's fault hook (the first installed stays).
pub fn install(hook: FaultHook) {
    let _ = HOOK.set(hook);
}

/// Calls the installed hook, if any, at `point` for `table`.
pub fn point(point: &str, table: &str) {
    if let Some(hook) = HOOK.get() {
        hook(point, table);
    }
}
