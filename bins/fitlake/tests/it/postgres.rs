//! Registrations and gym logins from PostgreSQL: a throwaway cluster on a loopback port, the
//! seed sets inserted as rows, exactly once across crashes, bad rows quarantined by key.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::harness::{assert_same_tables, succeeded, testdata, Lake, AS_OF};
use crate::reference_run;

/// A PostgreSQL cluster in a temporary directory, stopped when dropped.
struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

fn run(mut cmd: Command, what: &str) -> Output {
    succeeded(cmd.output().unwrap_or_else(|e| panic!("{what}: {e}")), what)
}

impl PgServer {
    fn start() -> PgServer {
        PgServer::start_with(false)
    }

    /// A cluster that takes TLS connections only (a certificate signed by a test CA,
    /// `ca.crt` in its folder) and asks the role `fitlake` for its password.
    fn start_tls() -> PgServer {
        PgServer::start_with(true)
    }

    /// The test CA's certificate (PEM) of a [`PgServer::start_tls`] cluster.
    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    fn start_with(tls: bool) -> PgServer {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("initdb").exists())
            .max()
            .expect(
                "PostgreSQL server binaries (apt-get install postgresql; .ci/run and scripts/test.sh install them)",
            );
        let dir = tempfile::tempdir().expect("temp dir");
        let port = crate::harness::free_port();
        let server = PgServer { dir, bin, port };
        if server.as_root() {
            // initdb refuses root: the cluster belongs to the postgres user.
            let mut chown = Command::new("chown");
            chown.args(["-R", "postgres:postgres"]).arg(server.dir.path());
            run(chown, "chown");
        }
        let data = server.dir.path().join("data");
        let mut initdb = server.command("initdb");
        initdb.arg("-D").arg(&data).args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"]);
        run(initdb, "initdb");
        let mut options =
            format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", port, server.dir.path().display());
        if tls {
            server.make_certificates(&data);
            options.push_str(" -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key");
        }
        let mut start = server.command("pg_ctl");
        start.arg("-D").arg(&data).arg("-l").arg(server.dir.path().join("log")).args(["-w", "-o"]).arg(options);
        start.arg("start");
        run(start, "pg_ctl start");
        server.psql("postgres", "CREATE DATABASE gym");
        server
    }

    /// A test CA and a server certificate for 127.0.0.1 it signed (openssl), in the data folder;
    /// pg_hba.conf then takes TCP connections over TLS only, `fitlake` with a password.
    fn make_certificates(&self, data: &std::path::Path) {
        let dir = self.dir.path();
        let ca = crate::harness::TestCa::new(dir);
        let (crt, key) = ca.issue("server", false);
        for (from, file) in [(crt, "server.crt"), (key, "server.key")] {
            std::fs::copy(from, data.join(file)).expect("certificate into the data folder");
        }
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all postgres 127.0.0.1/32 trust\nhostssl all fitlake 127.0.0.1/32 scram-sha-256\n\
             host all all 127.0.0.1/32 reject\n",
        )
        .expect("pg_hba.conf");
        let mut chmod = Command::new("chmod");
        chmod.arg("600").arg(data.join("server.key"));
        run(chmod, "chmod");
        if self.as_root() {
            let mut chown = Command::new("chown");
            chown.args(["-R", "postgres:postgres"]).arg(data);
            run(chown, "chown");
        }
    }

    fn as_root(&self) -> bool {
        Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"))
    }

    /// A PostgreSQL program, run as the postgres user when we are root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_root() {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        }
    }

    fn psql(&self, database: &str, sql: &str) {
        let mut cmd = Command::new(self.bin.join("psql"));
        cmd.args(["-v", "ON_ERROR_STOP=1", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", database])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-c")
            .arg(sql);
        run(cmd, "psql");
    }

    fn sql(&self, sql: &str) {
        self.psql("gym", sql);
    }

    fn dsn(&self) -> String {
        format!("host=127.0.0.1 port={} user=postgres dbname=gym", self.port)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let mut stop = self.command("pg_ctl");
        stop.arg("-D").arg(self.dir.path().join("data")).args(["-m", "immediate", "stop"]);
        let _ = stop.output();
    }
}

const SCHEMA: &str = "
CREATE TABLE registrations (id bigserial PRIMARY KEY, user_id bigint, device_id bigint, mac_address text,
                            registration_timestamp timestamptz);
CREATE TABLE gym_logins (id bigserial PRIMARY KEY, mac_address text, gym bigint, login timestamptz,
                         logout timestamptz);";

/// An exact epoch-seconds literal as a timestamptz expression (no float on the way).
fn time(text: &str) -> String {
    if text.trim().is_empty() {
        "NULL".into()
    } else {
        format!("('epoch'::timestamptz + ({}::numeric * 1000000)::bigint * interval '1 microsecond')", text.trim())
    }
}

/// INSERTs for the rows of one seed set's CSV files (blank lines skipped, as the parser does).
fn seed_inserts(set: usize) -> String {
    let read = |name: String| std::fs::read_to_string(testdata().join("seed-sets").join(name)).expect("seed file");
    let rows = |text: &str| -> Vec<Vec<String>> {
        text.lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split(',').map(str::to_string).collect())
            .collect()
    };
    let mut sql = String::new();
    for f in rows(&read(format!("1-registered_users_{set}.csv"))) {
        sql.push_str(&format!(
            "INSERT INTO registrations (user_id, device_id, mac_address, registration_timestamp) VALUES ({}, {}, '{}', {});\n",
            f[0],
            f[1],
            f[2],
            time(&f[3])
        ));
    }
    for f in rows(&read(format!("5-gym_logins_{set}.csv"))) {
        let logout = f.get(3).map_or("NULL".to_string(), |t| time(t));
        sql.push_str(&format!(
            "INSERT INTO gym_logins (mac_address, gym, login, logout) VALUES ('{}', {}, {}, {logout});\n",
            f[0],
            f[1],
            time(&f[2])
        ));
    }
    sql
}

fn remove_landed_csvs(lake: &Lake) {
    for source in ["registered_users_bz", "gym_logins_bz"] {
        let folder = lake.landing(source);
        for entry in std::fs::read_dir(&folder).expect("landing") {
            std::fs::remove_file(entry.expect("entry").path()).expect("remove");
        }
    }
}

#[test]
fn registrations_and_gym_logins_come_from_postgres_exactly_once() {
    let pg = PgServer::start();
    pg.sql(SCHEMA);
    let lake = Lake::new();
    lake.fitlake(&["setup"]);
    let dsn = pg.dsn();
    let run_args = ["run", "--once", "--as-of", AS_OF, "--source", "postgres", "--dsn", dsn.as_str()];
    for set in [1, 2] {
        pg.sql(&seed_inserts(set));
        lake.fitlake(&["produce", "--set", &set.to_string()]);
        remove_landed_csvs(&lake); // only the database can feed registrations and logins now
        if set == 1 {
            // Crashes between writing and committing, and right after committing, a batch.
            for fault in ["after-write:registered_users_bz", "after-commit:gym_logins_bz"] {
                let out = lake.fitlake_env(&run_args, &[("FITLAKE_FAULT", fault)]);
                assert!(!out.status.success(), "fault {fault} did not stop the run");
            }
        }
        lake.fitlake(&run_args);
    }
    let counts = lake.counts();
    assert_eq!((counts["registered_users_bz"], counts["gym_logins_bz"]), (10, 16), "no row skipped or repeated");
    // Silver and gold equal the run fed by files; bronze differs only in source_file.
    let mut reference = reference_run();
    let mut actual = lake.all_tables();
    for bronze in ["registered_users_bz", "gym_logins_bz"] {
        let strip = |df: &polars::prelude::DataFrame| df.drop("source_file").expect("source_file");
        assert!(strip(&reference[bronze]).equals_missing(&strip(&actual[bronze])), "{bronze} differs");
        reference.remove(bronze);
        actual.remove(bronze);
    }
    assert_same_tables(&reference, &actual, "postgres-fed run");
    let sources = lake.table("registered_users_bz");
    let names = sources.column("source_file").expect("col").str().expect("str").clone();
    assert!(names.iter().all(|n| n.is_some_and(|n| n.starts_with("postgres:registrations#"))));

    // A bad row is quarantined with its key; the rest goes on.
    pg.sql("INSERT INTO registrations (user_id, device_id, mac_address, registration_timestamp) VALUES (NULL, 9, 'aa:bb', now());");
    lake.fitlake(&run_args);
    let quarantine = crate::harness::rows_text(&lake.table("quarantine"));
    assert!(quarantine.contains("postgres:registrations#11-11,11,"), "{quarantine}");
    assert!(quarantine.contains("user_id"), "{quarantine}");

    // Streaming mode follows the database: rows inserted while the stream runs reach silver.
    let stream_args =
        ["run", "--stream", "--trigger", "200ms", "--as-of", AS_OF, "--source", "postgres", "--dsn", dsn.as_str()];
    let runner = lake.spawn(env!("CARGO_BIN_EXE_fitlake"), &stream_args, &[]);
    pg.sql("INSERT INTO registrations (user_id, device_id, mac_address, registration_timestamp) VALUES (777, 7770, '77:77:77:77:77:77', 'epoch'::timestamptz + 1678886400123456 * interval '1 microsecond');");
    crate::harness::wait_until(
        "the new registration reaches silver.users",
        std::time::Duration::from_secs(120),
        || lake.counts()["users"] == 11,
    );
    let ended = runner.terminate();
    assert!(ended.status.success(), "{}", ended.stderr);
    let users = crate::harness::rows_text(&lake.table("users"));
    assert!(users.contains("777,7770,77:77:77:77:77:77,2023-03-15 13:20:00.123456"), "exact time kept: {users}");
}

#[test]
fn postgres_over_tls_verifies_the_server_and_takes_the_password_from_a_file_or_the_environment() {
    let pg = PgServer::start_tls();
    pg.sql(SCHEMA);
    pg.sql("CREATE ROLE fitlake LOGIN PASSWORD 'tls-test-pw'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO fitlake;");
    pg.sql(&seed_inserts(1));
    let lake = Lake::new();
    lake.fitlake(&["setup"]);
    lake.fitlake(&["produce", "--set", "1"]);
    remove_landed_csvs(&lake);
    let password_file = lake.root.parent().expect("parent").join("pg-password");
    std::fs::write(&password_file, "tls-test-pw\n").expect("password file");
    let ca = pg.ca_file();
    let dsn = |mode: &str| format!("host=127.0.0.1 port={} user=fitlake dbname=gym sslmode={mode}", pg.port);
    let run_with = |dsn: &str, extra: &[&str], env: &[(&str, &str)]| {
        let args = [
            &["run", "--once", "--as-of", AS_OF, "--layer", "bronze", "--source", "postgres", "--dsn", dsn][..],
            extra,
        ]
        .concat();
        lake.fitlake_env(&args, env)
    };
    let stderr = |out: &Output| String::from_utf8_lossy(&out.stderr).to_string();

    // Without the CA that signed the server's certificate, the handshake fails and says why.
    let out = run_with(&dsn("require"), &["--pg-password-file", password_file.to_str().expect("utf-8")], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("TLS handshake") && stderr(&out).contains("UnknownIssuer"), "{}", stderr(&out));
    // In the clear the server refuses (pg_hba.conf takes TLS only).
    let out = run_with(&dsn("disable"), &["--pg-password-file", password_file.to_str().expect("utf-8")], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no encryption"), "{}", stderr(&out));
    // A wrong password from the environment: refused, and not printed.
    let ca_arg = ["--pg-ca-file", ca.to_str().expect("utf-8")];
    let out = run_with(&dsn("require"), &ca_arg, &[("FITLAKE_POSTGRES_PASSWORD", "not-the-password")]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("password authentication failed"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("not-the-password"), "{}", stderr(&out));
    assert_eq!(lake.counts()["registered_users_bz"], 0, "nothing read by the failed runs");

    // Verified TLS, the password from a file: every row, once.
    let out = run_with(
        &dsn("require"),
        &[&ca_arg[..], &["--pg-password-file", password_file.to_str().expect("utf-8")]].concat(),
        &[],
    );
    succeeded(out, "run over TLS");
    let counts = lake.counts();
    assert_eq!((counts["registered_users_bz"], counts["gym_logins_bz"]), (5, 8));
    // The same password from the environment, and `prefer` (TLS, since the server offers it).
    let out = run_with(&dsn("prefer"), &ca_arg, &[("FITLAKE_POSTGRES_PASSWORD", "tls-test-pw")]);
    succeeded(out, "run with prefer");
}

#[test]
fn a_bad_database_address_fails_clearly_without_leaking_the_password() {
    let lake = Lake::after_set_1();
    let dsn = "host=127.0.0.1 port=1 user=fitlake password=hunter2 dbname=gym connect_timeout=2";
    let out = lake.fitlake_env(&["run", "--once", "--as-of", AS_OF, "--source", "postgres", "--dsn", dsn], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("postgres (127.0.0.1:1/gym)"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");
    let out = lake.fitlake_env(&["run", "--once", "--source", "postgres"], &[]);
    assert_eq!(out.status.code(), Some(2), "a missing --dsn is a configuration error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--dsn"));
}

impl PgServer {
    /// An interactive psql session on `gym`, fed through its standard input.
    fn session(&self) -> std::process::Child {
        let mut cmd = Command::new(self.bin.join("psql"));
        cmd.args(["-v", "ON_ERROR_STOP=1", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "gym"])
            .arg("-p")
            .arg(self.port.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null());
        cmd.spawn().expect("psql session")
    }
}

/// Sends SQL to a session.
fn send(session: &mut std::process::Child, sql: &str) {
    use std::io::Write;
    let stdin = session.stdin.as_mut().expect("stdin");
    stdin.write_all(sql.as_bytes()).and_then(|()| stdin.flush()).expect("send SQL");
}

#[test]
fn rows_committed_out_of_id_order_are_not_skipped() {
    let pg = PgServer::start();
    pg.sql(SCHEMA);
    let lake = Lake::new();
    lake.fitlake(&["setup"]);
    let dsn = pg.dsn();
    let run_args =
        ["run", "--once", "--as-of", AS_OF, "--layer", "bronze", "--source", "postgres", "--dsn", dsn.as_str()];
    let insert = |user: i64| {
        format!(
            "INSERT INTO registrations (user_id, device_id, mac_address, registration_timestamp) \
             VALUES ({user}, {user}0, 'm{user}', 'epoch'::timestamptz + 1678451168 * interval '1 second');\n"
        )
    };
    // Transaction A takes id 1 and stays open; B takes id 2 and commits first.
    let mut a = pg.session();
    send(&mut a, &format!("BEGIN;\n{}SELECT pg_sleep(0);\n", insert(1)));
    crate::harness::wait_until("transaction A to insert", std::time::Duration::from_secs(30), || {
        pg_count(&pg, "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction'") == 1
    });
    pg.sql(&insert(2));
    lake.fitlake(&run_args);
    assert_eq!(lake.counts()["registered_users_bz"], 0, "B's row waits while A, older, is in progress");
    send(&mut a, "COMMIT;\n");
    drop(a.stdin.take());
    assert!(a.wait().expect("psql").success());
    lake.fitlake(&run_args);
    pg.sql(&insert(3));
    lake.fitlake(&run_args);
    let users = lake.table("registered_users_bz");
    let ids: Vec<Option<i64>> = users.column("user_id").expect("user_id").i64().expect("i64").iter().collect();
    assert_eq!(ids, [Some(1), Some(2), Some(3)], "every row once, none skipped");
}

/// A number the query returns.
fn pg_count(pg: &PgServer, sql: &str) -> i64 {
    let mut cmd = Command::new(pg.bin.join("psql"));
    cmd.args(["-t", "-A", "-h", "127.0.0.1", "-U", "postgres", "-d", "gym"])
        .arg("-p")
        .arg(pg.port.to_string())
        .arg("-c")
        .arg(sql);
    let out = run(cmd, "psql");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(-1)
}
