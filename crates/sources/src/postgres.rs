//! The operational database as a source: PostgreSQL tables `registrations` and `gym_logins`
//! feed `bronze.registered_users_bz` and `bronze.gym_logins_bz` incrementally.
//!
//! Each source table needs a `bigint` key `id` (a `bigserial`), which names a row in the
//! quarantine. Rows are read in the order their transactions finished, not by `id`: an `id` is
//! allocated at insert but becomes visible at commit, so a lower `id` can commit after a higher
//! one. A batch is the rows inserted by transactions with ids (64-bit `xid8`) in
//! `[from, to)`, where `to` is at most `pg_snapshot_xmin(pg_current_snapshot())`, the oldest
//! transaction still in progress: every transaction below it has finished, so the rows of that
//! range are final, and nothing is skipped however commits interleave. `to` goes into the
//! bronze commit as its `txn` (`fitlake/<bronze table>/postgres/xid`), so a crash at any point and
//! a rerun neither skip nor repeat a row. Lakehouses that read by `id` before keep their last
//! `id` (`fitlake/<bronze table>/postgres`) as a floor: rows at or below it were read then.
//!
//! Rows are rendered in the landing CSV layout (times as exact epoch seconds) and parsed by the
//! same parser as landing files, so they are validated and quarantined the same way; a
//! quarantined row names its table and `id`. `xmin` has no index: each batch scans the source
//! table (fine for operational tables of millions of rows; for more, feed bronze from logical
//! replication or Kafka instead).
//!
//! Expected tables:
//! ```sql
//! CREATE TABLE registrations (id bigserial PRIMARY KEY, user_id bigint, device_id bigint,
//!                             mac_address text, registration_timestamp timestamptz);
//! CREATE TABLE gym_logins (id bigserial PRIMARY KEY, mac_address text, gym bigint,
//!                          login timestamptz, logout timestamptz);
//! ```
//! Needs PostgreSQL 13 or later (`pg_current_snapshot`).

use std::collections::BTreeMap;

use fitlake_landing::csv::{GYM_LOGINS_COLUMNS, REGISTERED_USERS_COLUMNS};
use fitlake_landing::sources::{GYM_LOGINS, REGISTERED_USERS};

use fitlake_config::Secret;

use crate::{Error, Part, RecordSource, Result, SourceReader};

/// Where the operational database is, and how to reach it.
///
/// TLS follows the DSN's `sslmode`: `disable` connects in the clear; `prefer` (the default)
/// uses TLS when the server offers it; `require` refuses a server without it. Whenever TLS is
/// used the server's certificate is verified (as libpq's `verify-full` does: chain and host
/// name) against the system's certificate authorities and [`PgSource::ca_file`]'s; rustls does
/// the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgSource {
    /// libpq-style connection string (`host=127.0.0.1 port=5432 user=fitlake dbname=gym`) or
    /// URL (`postgresql://user:password@host/db`); a secret, since it may hold the password.
    pub dsn: Secret,
    /// The password, when the DSN has none (from the environment or a file, not the command line).
    pub password: Option<Secret>,
    /// A PEM file of certificate authorities to trust besides the system's (a private CA).
    pub ca_file: Option<std::path::PathBuf>,
}

/// Most rows one bronze batch takes from a table.
pub const BATCH_ROWS: i64 = 100_000;

/// The stream position of the transaction-ordered read.
pub const XID_STREAM: &str = "xid";

/// The source table feeding a bronze table, with the expressions that render its rows as the
/// landing CSV's fields (after the key).
fn source_of(landing_source: &str) -> Option<(&'static str, &'static str, &'static [&'static str; 4])> {
    match landing_source {
        REGISTERED_USERS => Some((
            "registrations",
            "user_id::text, device_id::text, mac_address, extract(epoch FROM registration_timestamp)::text",
            &REGISTERED_USERS_COLUMNS,
        )),
        GYM_LOGINS => Some((
            "gym_logins",
            "mac_address, gym::text, extract(epoch FROM login)::text, extract(epoch FROM logout)::text",
            &GYM_LOGINS_COLUMNS,
        )),
        _ => None,
    }
}

/// The rows of `table` with the 64-bit id of the transaction that inserted them (`x8`), from
/// the 32-bit `xmin` and the snapshot's `xmax` (`$1`): every row's transaction is below `xmax`
/// and within 2^31 of it.
fn with_xid8(table: &str, fields: &str) -> String {
    format!(
        "SELECT id, {fields}, CASE WHEN xmin::text::bigint < $1 % 4294967296 \
           THEN ($1 / 4294967296) * 4294967296 + xmin::text::bigint \
           ELSE ($1 / 4294967296 - 1) * 4294967296 + xmin::text::bigint END AS x8 FROM {table}"
    )
}

/// A batch read from the database: the rows as landing CSV text, and the key of each CSV line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The source table.
    pub table: &'static str,
    /// The rows in the landing CSV layout, header first.
    pub csv: String,
    /// The `id` of each row, in order (CSV line `i + 2` holds row `i`).
    pub ids: Vec<i64>,
}

impl Batch {
    /// The name bronze records as the rows' `source_file`: `postgres:<table>#<first>-<last>`.
    pub fn source_name(&self) -> String {
        format!(
            "postgres:{}#{}-{}",
            self.table,
            self.ids.first().copied().unwrap_or_default(),
            self.ids.last().copied().unwrap_or_default()
        )
    }
}

fn db_error(dsn_hint: &str, e: tokio_postgres::Error) -> Error {
    Error::Postgres { target: dsn_hint.to_string(), source: e.into() }
}

impl PgSource {
    /// What the DSN reaches, for messages (`host:port/database`): its hosts, port and database, parsed with
    /// `tokio_postgres::Config` (key-value or URL form); never the user or password.
    pub fn target(&self) -> String {
        match self.dsn.expose().parse::<tokio_postgres::Config>() {
            Ok(config) => {
                let hosts: Vec<String> = config
                    .get_hosts()
                    .iter()
                    .map(|h| match h {
                        tokio_postgres::config::Host::Tcp(name) => name.clone(),
                        tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                    })
                    .collect();
                let port = config.get_ports().first().copied().unwrap_or(5432);
                format!("{}:{port}/{}", hosts.join(","), config.get_dbname().unwrap_or("?"))
            }
            Err(_) => "a DSN that does not parse".to_string(),
        }
    }

    /// A source at `dsn`, the password and certificate authorities in the DSN or the system.
    pub fn new(dsn: Secret) -> PgSource {
        PgSource { dsn, password: None, ca_file: None }
    }

    /// Connects (the connection lives as long as the returned client), over TLS unless the
    /// DSN says `sslmode=disable`.
    pub async fn connect(&self) -> Result<tokio_postgres::Client> {
        let mut config: tokio_postgres::Config = self
            .dsn
            .expose()
            .parse()
            .map_err(|e| Error::Config(format!("the PostgreSQL DSN for {} does not parse: {e}", self.target())))?;
        if config.get_password().is_none() {
            if let Some(password) = &self.password {
                config.password(password.expose());
            }
        }
        let err = |e| db_error(&self.target(), e);
        if matches!(config.get_ssl_mode(), tokio_postgres::config::SslMode::Disable) {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await.map_err(err)?;
            tokio::spawn(connection);
            Ok(client)
        } else {
            let (client, connection) = config.connect(self.tls()?).await.map_err(err)?;
            tokio::spawn(connection);
            Ok(client)
        }
    }

    /// rustls with the system's certificate authorities and those of [`PgSource::ca_file`].
    fn tls(&self) -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
        let config = crate::tls::client_config("--pg-ca-file", self.ca_file.as_deref())?;
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
    }

    /// The rows of `landing_source`'s source table inserted by transactions from `from` (an
    /// `xid8`) up to the oldest one still in progress, with `id` above `floor`: about `limit`
    /// rows (a transaction is never split), read in one snapshot. Returns the batch and the
    /// position after it (`None` when there is nothing to read).
    pub async fn fetch(
        &self,
        client: &mut tokio_postgres::Client,
        landing_source: &str,
        floor: i64,
        from: i64,
        limit: i64,
    ) -> Result<Option<(Batch, i64)>> {
        let (table, fields, columns) = source_of(landing_source)
            .ok_or_else(|| Error::Config(format!("{landing_source} has no database source")))?;
        let err = |e| db_error(&self.target(), e);
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(err)?;
        let bounds = tx
            .query_one(
                "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint, \
                        pg_snapshot_xmax(pg_current_snapshot())::text::bigint",
                &[],
            )
            .await
            .map_err(err)?;
        let (oldest_running, xmax): (i64, i64) = (bounds.try_get(0).map_err(err)?, bounds.try_get(1).map_err(err)?);
        let rows_sql = with_xid8(table, fields);
        let range = "x8 >= $2 AND x8 < $3 AND id > $4";
        // Where a batch of about `limit` rows ends: at a transaction boundary.
        let cut = tx
            .query_opt(
                &format!("SELECT x8 FROM ({rows_sql}) r WHERE {range} ORDER BY x8 OFFSET $5 LIMIT 1"),
                &[&xmax, &from, &oldest_running, &floor, &limit],
            )
            .await
            .map_err(err)?;
        let to = match cut {
            Some(row) => {
                let x8: i64 = row.try_get(0).map_err(err)?;
                // One transaction larger than a batch is taken whole.
                if x8 == from {
                    from + 1
                } else {
                    x8
                }
            }
            None => oldest_running,
        };
        let rows = tx
            .query(&format!("SELECT * FROM ({rows_sql}) r WHERE {range} ORDER BY x8, id"), &[&xmax, &from, &to, &floor])
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut csv = columns.join(",");
        csv.push('\n');
        let mut ids = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: i64 = row.try_get(0).map_err(err)?;
            ids.push(id);
            let mut fields = Vec::with_capacity(4);
            for i in 1..=4 {
                let value: Option<String> = row.try_get(i).map_err(err)?;
                fields.push(value.unwrap_or_default().replace([',', '\n', '\r'], " "));
            }
            csv.push_str(&fields.join(","));
            csv.push('\n');
        }
        Ok(Some((Batch { table, csv, ids }, to)))
    }
}

#[async_trait::async_trait]
impl RecordSource for PgSource {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn feeds(&self, landing_source: &str) -> bool {
        source_of(landing_source).is_some()
    }

    async fn reader(&self, landing_source: &str) -> Result<Box<dyn SourceReader>> {
        let client = self.connect().await?;
        Ok(Box::new(PgReader { source: self.clone(), client, table: landing_source.to_string() }))
    }
}

/// Reads one table in transaction order, about [`BATCH_ROWS`] rows at a time.
struct PgReader {
    source: PgSource,
    client: tokio_postgres::Client,
    table: String,
}

#[async_trait::async_trait]
impl SourceReader for PgReader {
    /// The transaction-ordered position ([`XID_STREAM`]), and the `id` floor of a lakehouse
    /// that read by key before (`""`, kept as it is).
    fn streams(&self) -> Vec<String> {
        vec![XID_STREAM.to_string(), String::new()]
    }

    async fn next(&mut self, committed: &BTreeMap<String, i64>, _max_bytes: u64) -> Result<Vec<Part>> {
        let floor = committed.get("").copied().unwrap_or(0);
        let from = committed.get(XID_STREAM).copied().unwrap_or(0);
        let Some((batch, to)) = self.source.fetch(&mut self.client, &self.table, floor, from, BATCH_ROWS).await? else {
            return Ok(Vec::new());
        };
        Ok(vec![
            Part {
                name: batch.source_name(),
                stream: XID_STREAM.to_string(),
                next: to,
                first_line: 2,
                keys: batch.ids,
                text: batch.csv,
            },
            // The floor, committed unchanged with every batch.
            Part {
                name: String::new(),
                stream: String::new(),
                next: floor,
                first_line: 2,
                keys: Vec::new(),
                text: String::new(),
            },
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dsn_never_prints_its_password_in_either_form() {
        for dsn in [
            "host=db.example.com port=6432 user=fitlake password=hunter2 dbname=gym",
            "postgresql://fitlake:hunter2@db.example.com:6432/gym?sslmode=require",
        ] {
            let source = PgSource::new(Secret::new(dsn));
            assert_eq!(source.target(), "db.example.com:6432/gym");
            assert!(!format!("{source:?}").contains("hunter2"), "{source:?}");
        }
        let broken = PgSource::new(Secret::new("postgresql://u:hunter2@[bad"));
        assert!(!broken.target().contains("hunter2"));
    }
}
