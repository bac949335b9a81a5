//! Running the `fitlake` binary on a temporary lakehouse and reading its tables back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use fitlake_catalog::TableId;
use fitlake_config::Lakehouse;
use fitlake_governance::Policy;
use fitlake_storage::{Access, Table};
use polars::prelude::*;

/// The as-of date every test runs at, so ages (and snapshots) do not move with the clock.
pub const AS_OF: &str = "2023-03-15";

/// A lakehouse in a temporary directory, or in remote storage with a temporary directory for
/// the runners' output.
pub struct Lake {
    _dir: tempfile::TempDir,
    /// Its root directory (on a remote lakehouse: only where runner output goes).
    pub root: PathBuf,
    /// Where it is: the local root, or a remote lakehouse and its storage settings.
    remote: Option<Remote>,
}

/// A lakehouse in remote storage.
pub struct Remote {
    /// The `--lakehouse` value.
    pub location: String,
    /// Environment variables every command gets (storage endpoint, credentials, roots).
    pub env: Vec<(String, String)>,
    /// The same lakehouse and storage, for reading tables back in this process.
    pub lakehouse: Lakehouse,
    /// How this process reaches its storage.
    pub stores: fitlake_storage::Stores,
}

impl Lake {
    /// A fresh, empty lakehouse directory.
    pub fn new() -> Lake {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("lakehouse");
        Lake { _dir: dir, root, remote: None }
    }

    /// A lakehouse in remote storage.
    pub fn remote(remote: Remote) -> Lake {
        Lake { remote: Some(remote), ..Lake::new() }
    }

    fn location(&self) -> &std::ffi::OsStr {
        self.remote.as_ref().map_or(self.root.as_os_str(), |r| std::ffi::OsStr::new(&r.location))
    }

    fn remote_env(&self) -> &[(String, String)] {
        self.remote.as_ref().map_or(&[], |r| &r.env)
    }

    /// A set-up lakehouse with seed set 1 produced and run once.
    pub fn after_set_1() -> Lake {
        let lake = Lake::new();
        lake.fitlake(&["setup"]);
        lake.fitlake(&["produce", "--set", "1"]);
        lake.run_once();
        lake
    }

    /// Runs `fitlake --lakehouse ROOT ARGS…` with extra environment variables.
    pub fn fitlake_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fitlake"));
        cmd.arg("--lakehouse").arg(self.location()).args(args);
        for var in ["FITLAKE_FAULT", "FITLAKE_PRINCIPAL", "FITLAKE_POLICY", "FITLAKE_EXPECTATIONS", "FITLAKE_LAKEHOUSE"]
        {
            cmd.env_remove(var);
        }
        cmd.envs(self.remote_env().iter().map(|(k, v)| (k, v)));
        // The shipped policy maps every OS user to `developer`, who acts as the principal a
        // command needs: landing files are written by the producer (the pipeline may only read
        // them); everything else runs as the pipeline.
        cmd.env("FITLAKE_PRINCIPAL", if args.first() == Some(&"produce") { "producer" } else { "pipeline" });
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run fitlake")
    }

    /// Runs `fitlake` and asserts it succeeded.
    pub fn fitlake(&self, args: &[&str]) -> Output {
        succeeded(self.fitlake_env(args, &[]), &format!("fitlake {args:?}"))
    }

    /// Starts `BIN --lakehouse ROOT ARGS…` (a fitlake binary) in the background, its output
    /// going to files next to the lakehouse (a pipe nobody reads could block it).
    pub fn spawn(&self, bin: &str, args: &[&str], env: &[(&str, &str)]) -> Runner {
        static SPAWNED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = SPAWNED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let parent = self.root.parent().expect("lakehouse has a parent");
        let (out, err) = (parent.join(format!("runner-{n}.out")), parent.join(format!("runner-{n}.err")));
        let mut cmd = Command::new(bin);
        cmd.arg("--lakehouse").arg(self.location()).args(args).env_remove("FITLAKE_FAULT");
        cmd.env("FITLAKE_PRINCIPAL", "pipeline").envs(self.remote_env().iter().map(|(k, v)| (k, v)));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let file = |p: &PathBuf| Stdio::from(std::fs::File::create(p).expect("output file"));
        let child = cmd.stdout(file(&out)).stderr(file(&err)).spawn().expect("start fitlake");
        Runner { child: Some(child), out, err }
    }

    /// `fitlake status --json`, parsed.
    pub fn status(&self) -> Vec<serde_json::Value> {
        let out = self.fitlake(&["status", "--json"]);
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }

    /// True when every step has consumed all its landing files and upstream commits.
    pub fn caught_up(&self) -> bool {
        self.status().iter().all(|t| {
            t["landing"].as_object().is_none_or(|l| l["files"] == 0)
                && t["sources"].as_array().is_some_and(|s| s.iter().all(|s| s["behind"] == 0))
        })
    }

    /// Runs `fitlake` as `principal` and asserts it succeeded.
    pub fn fitlake_ok_as(&self, principal: &str, args: &[&str]) -> Output {
        succeeded(
            self.fitlake_env(args, &[("FITLAKE_PRINCIPAL", principal)]),
            &format!("fitlake {args:?} as {principal}"),
        )
    }

    /// `run --once` at the fixed as-of date.
    pub fn run_once(&self) -> Output {
        self.fitlake(&["run", "--once", "--as-of", AS_OF])
    }

    /// The landing folder of a source.
    pub fn landing(&self, source: &str) -> PathBuf {
        self.root.join("unmanaged/data_zone/raw").join(source)
    }

    /// The pipeline's access to this lakehouse under the shipped policy (how the tests read
    /// tables back).
    fn access(&self) -> Access {
        let policy = Policy::shipped().expect("policy");
        if let Some(remote) = &self.remote {
            let access = Access::new(remote.lakehouse.clone(), policy, "pipeline").expect("access");
            return access.with_stores(remote.stores.clone());
        }
        let lakehouse =
            Lakehouse::from_root(self.root.to_str().expect("utf-8 path"), Path::new("/")).expect("lakehouse");
        Access::new(lakehouse, policy, "pipeline").expect("access")
    }

    /// Rewrites every data file of a table into one new file in a `dataChange = false` commit,
    /// as another engine's OPTIMIZE does; returns the number of files it replaced.
    pub fn compact(&self, name: &str) -> usize {
        let id = TableId::from_name(name).expect("known table");
        block_on(async {
            let mut table = Table::open(&self.access(), id).await.expect("open");
            let files: Vec<String> = table.files(None).expect("files").into_iter().map(|f| f.path).collect();
            let rows = table.scan().collect().await.expect("read");
            table
                .commit()
                .rows(&rows)
                .remove(files.clone())
                .operation(fitlake_storage::Operation::Compact)
                .await
                .expect("compact");
            files.len()
        })
    }

    /// Every table's row count as an independent reader sees it: the Python `deltalake` package
    /// (`$FITLAKE_DELTA_READER`, installed by scripts/install-services.sh) opens each table and
    /// reads all its rows.
    pub fn counts_read_independently(&self) -> BTreeMap<String, u64> {
        let python = std::env::var("FITLAKE_DELTA_READER")
            .expect("FITLAKE_DELTA_READER is not set: run the tests with scripts/test.sh (it installs the reader)");
        let tables: serde_json::Map<String, serde_json::Value> = TableId::ALL
            .iter()
            .map(|t| {
                let def = t.def();
                let path = self.root.join("managed").join(def.layer.name()).join(def.name);
                (t.name().to_string(), serde_json::Value::String(path.display().to_string()))
            })
            .collect();
        // The Python package's runtime aborts now and then while the interpreter shuts down
        // ("terminate called without an active exception" after the last table, about every
        // other run on some machines), so the script leaves with `os._exit` once its answer is
        // written and flushed. A retry is kept for an abort while reading; a table that cannot
        // be read fails every attempt with its reason.
        let script = "import json, os, sys\nfrom deltalake import DeltaTable\n\
                      tables = json.loads(sys.argv[1])\ncounts = {}\n\
                      for n, p in tables.items():\n    print('reading', n, file=sys.stderr, flush=True)\n    \
                      counts[n] = DeltaTable(p).to_pyarrow_table().num_rows\n\
                      print(json.dumps(counts), flush=True)\nsys.stderr.flush()\nos._exit(0)\n";
        let tables = serde_json::Value::Object(tables).to_string();
        let mut failures = Vec::new();
        let out = loop {
            let out = Command::new(&python).args(["-c", script, &tables]).output().expect("run the Python reader");
            if out.status.success() {
                break out;
            }
            failures.push(String::from_utf8_lossy(&out.stderr).into_owned());
            assert!(failures.len() < 3, "the Python deltalake reader failed 3 times: {failures:#?}");
        };
        serde_json::from_slice(&out.stdout).expect("counts as JSON")
    }

    /// Every table's version and row count.
    pub fn versions_and_counts(&self) -> BTreeMap<String, (i64, u64)> {
        block_on(async {
            let mut out = BTreeMap::new();
            for id in TableId::ALL {
                let table = Table::open(&self.access(), id).await.expect("open table");
                out.insert(id.name().to_string(), (table.version(), table.row_count().expect("row count")));
            }
            out
        })
    }

    /// Row counts by table name.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.versions_and_counts().into_iter().map(|(k, (_, n))| (k, n)).collect()
    }

    /// A table's rows sorted by every column, without `load_time` (which differs between runs)
    /// and with floats rounded to 9 decimals (sums over differently split files may differ in
    /// the last bit).
    pub fn table(&self, name: &str) -> DataFrame {
        let id = TableId::from_name(name).expect("known table");
        let df = block_on(async {
            Table::open(&self.access(), id).await.expect("open").scan().collect().await.expect("read")
        });
        let keep: Vec<Expr> = df
            .columns()
            .iter()
            .filter(|c| c.name() != "load_time")
            .map(|c| match c.dtype() {
                DataType::Float64 => col(c.name().clone()).round(9, RoundMode::HalfAwayFromZero),
                _ => col(c.name().clone()),
            })
            .collect();
        let names: Vec<PlSmallStr> =
            df.get_column_names().into_iter().filter(|n| n.as_str() != "load_time").cloned().collect();
        df.lazy().select(keep).sort(names, SortMultipleOptions::default()).collect().expect("sort")
    }

    /// Every silver and gold table, as [`Lake::table`] gives it (bronze holds each run's
    /// records as they came, so it differs between differently split runs by `source_file`).
    pub fn all_tables_but_bronze(&self) -> BTreeMap<String, DataFrame> {
        self.all_tables()
            .into_iter()
            .filter(|(name, _)| TableId::from_name(name).is_some_and(|t| t.layer() != fitlake_config::Layer::Bronze))
            .collect()
    }

    /// Every data table, as [`Lake::table`] gives it. Left out are the run logs
    /// `landing_files` (which files each bronze batch took) and `quality_events` (one row per
    /// step run): they record how the work was split into runs, which differs between a
    /// crashed-and-rerun or streaming run and one batch run by design.
    pub fn all_tables(&self) -> BTreeMap<String, DataFrame> {
        TableId::ALL
            .into_iter()
            .filter(|t| ![TableId::LandingFiles, TableId::QualityEvents].contains(t))
            .map(|t| (t.name().to_string(), self.table(t.name())))
            .collect()
    }
}

/// A server a test runs against, listening on a loopback port, its output in a temporary
/// directory; stopped when dropped.
pub struct Service {
    child: Child,
    /// The port it listens on.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Service {
    /// Starts `$<bin_var>` (set by scripts/test.sh through scripts/install-services.sh), or
    /// `default_bin` on the PATH, with the arguments `args` gives for a free port, and waits
    /// until it listens.
    pub fn start(bin_var: &str, default_bin: &str, args: impl Fn(u16) -> Vec<String>) -> Service {
        let bin = std::env::var_os(bin_var).map(PathBuf::from).unwrap_or_else(|| default_bin.into());
        // A port found free can be taken by another test's server before this one binds it;
        // then this server exits while the port still answers. Such a start is retried on a
        // new port: the server must still run a moment after its port answers.
        for attempt in 1..=5 {
            let dir = tempfile::tempdir().expect("temp dir");
            let port = free_port();
            let log = |name: &str| Stdio::from(std::fs::File::create(dir.path().join(name)).expect("log file"));
            let child = Command::new(&bin)
                .args(args(port))
                .current_dir(dir.path())
                .stdout(log("service.out"))
                .stderr(log("service.err"))
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot start {}: {e}; run scripts/install-services.sh (scripts/test.sh does)",
                        bin.display()
                    )
                });
            let mut service = Service { child, port, dir };
            let deadline = Instant::now() + Duration::from_secs(60);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() && service.running() {
                assert!(Instant::now() < deadline, "{} did not listen on {port}: {}", bin.display(), service.log());
                std::thread::sleep(Duration::from_millis(100));
            }
            std::thread::sleep(Duration::from_millis(500));
            if service.running() {
                return service;
            }
            eprintln!("{} exited on port {port} (attempt {attempt}): {}", bin.display(), service.log());
        }
        panic!("{} did not stay up on any of 5 ports", bin.display());
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn log(&self) -> String {
        ["service.out", "service.err"]
            .iter()
            .map(|f| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port free on 127.0.0.1 right now, never handed out before in this test process.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Asserts a finished command (`what`) succeeded, showing its output when it did not.
pub fn succeeded(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what} failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A fitlake process running in the background; killed if still running when dropped.
pub struct Runner {
    child: Option<Child>,
    out: PathBuf,
    err: PathBuf,
}

/// How a background runner ended.
pub struct Ended {
    /// Its exit status.
    pub status: ExitStatus,
    /// What it printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
}

impl Runner {
    fn signal(&self, name: &str) {
        let child = self.child.as_ref().expect("running");
        let ok = Command::new("kill").args(["-s", name, &child.id().to_string()]).status().expect("kill").success();
        assert!(ok, "kill -s {name} failed");
    }

    fn wait(mut self) -> Ended {
        let status = self.child.take().expect("running").wait().expect("wait");
        let read = |p: &PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        Ended { status, stdout: read(&self.out), stderr: read(&self.err) }
    }

    /// Sends SIGTERM and waits for the process to end by itself.
    pub fn terminate(self) -> Ended {
        self.signal("TERM");
        self.wait()
    }

    /// Kills the process with SIGKILL, like a crash or a lost machine.
    pub fn kill_hard(self) -> Ended {
        self.signal("KILL");
        self.wait()
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `done` every 200 ms until it holds; panics with `what` after `deadline`.
pub fn wait_until(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < deadline, "timed out after {deadline:?} waiting until {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A frame's rows as CSV text, for `contains` checks.
pub fn rows_text(df: &DataFrame) -> String {
    fitlake_frame::to_text(df)
}

/// Runs a future to completion on a fresh runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime").block_on(f)
}

/// The folder holding the bundled `seed-sets/` (in the landing crate, which ships them).
pub fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crates/landing")
}

/// Asserts two sets of tables are equal row for row, naming the first that differs.
pub fn assert_same_tables(expected: &BTreeMap<String, DataFrame>, actual: &BTreeMap<String, DataFrame>, context: &str) {
    for (name, want) in expected {
        let got = &actual[name];
        assert!(
            want.equals_missing(got),
            "{context}: table {name} differs\nexpected ({} rows):\n{}\nactual ({} rows):\n{}",
            want.height(),
            want.head(Some(10)),
            got.height(),
            got.head(Some(10))
        );
    }
}

/// A throwaway certificate authority (openssl) in `dir`: `ca.crt`, and certificates it signs.
pub struct TestCa {
    dir: PathBuf,
}

impl TestCa {
    /// Makes the authority's key and self-signed certificate in `dir`.
    pub fn new(dir: &Path) -> TestCa {
        let ca = TestCa { dir: dir.to_path_buf() };
        ca.openssl(
            &["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt"]
                .into_iter()
                .chain(["-days", "2", "-subj", "/CN=fitlake test CA"])
                .collect::<Vec<_>>(),
        );
        ca
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl").current_dir(&self.dir).args(args).output().expect("openssl");
        succeeded(out, &format!("openssl {}", args[0]));
    }

    /// The authority's certificate (PEM).
    pub fn cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// A certificate and key `NAME.crt`, `NAME.key` signed by the authority: for a server at
    /// 127.0.0.1 and localhost, or (`client`) for a client named `NAME`.
    pub fn issue(&self, name: &str, client: bool) -> (PathBuf, PathBuf) {
        let (crt, key, csr, ext) =
            (format!("{name}.crt"), format!("{name}.key"), format!("{name}.csr"), format!("{name}.ext"));
        let subject = if client { format!("/CN={name}") } else { "/CN=127.0.0.1".to_string() };
        self.openssl(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", &subject]);
        let extensions = if client {
            "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n"
        } else {
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
        };
        std::fs::write(self.dir.join(&ext), extensions).expect("extensions");
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            &ext,
        ]);
        (self.dir.join(crt), self.dir.join(key))
    }
}
