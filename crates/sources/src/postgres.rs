//! The operational database as a source: PostgreSQL tables `registrations` and `gym_logins`
//! feed `bronze.registered_users_bz` and `bronze.gym_logins_bz` incrementally.
//!
//! Each source table needs a monotonically increasing `bigint` key `id` (a `bigserial`). A batch
//! is the rows with `id` above the last one committed, in key order; the last key goes into the
//! bronze commit as its `txn` (`fitlake/<bronze table>/postgres` = last id), so a crash at any
//! point and a rerun neither skip nor repeat a row. Rows are rendered in the landing CSV layout
//! (times as exact epoch seconds) and parsed by the same parser as landing files, so they are
//! validated and quarantined the same way; a quarantined row names its table and `id`.
//!
//! Expected tables:
//! ```sql
//! CREATE TABLE registrations (id bigserial PRIMARY KEY, user_id bigint, device_id bigint,
//!                             mac_address text, registration_timestamp timestamptz);
//! CREATE TABLE gym_logins (id bigserial PRIMARY KEY, mac_address text, gym bigint,
//!                          login timestamptz, logout timestamptz);
//! ```
//! A key must not become visible below one already read: use a sequence and insert in
//! committed order (or keep writers from committing out of key order).

use std::collections::BTreeMap;

use fitlake_landing::csv::{GYM_LOGINS_COLUMNS, REGISTERED_USERS_COLUMNS};
use fitlake_landing::sources::{GYM_LOGINS, REGISTERED_USERS};

use crate::{Error, Part, RecordSource, Result, SourceReader};

/// Where the operational database is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgSource {
    /// libpq-style connection string, e.g. `host=127.0.0.1 port=5432 user=fitlake dbname=gym`.
    pub dsn: String,
}

/// Most rows one bronze batch takes from a table.
pub const BATCH_ROWS: i64 = 100_000;

/// The source table feeding a bronze table, with the query that renders its rows as the
/// landing CSV's fields (after the key).
fn source_of(landing_source: &str) -> Option<(&'static str, &'static str, &'static [&'static str; 4])> {
    match landing_source {
        REGISTERED_USERS => Some((
            "registrations",
            "SELECT id, user_id::text, device_id::text, mac_address, \
             extract(epoch FROM registration_timestamp)::text \
             FROM registrations WHERE id > $1 ORDER BY id LIMIT $2",
            &REGISTERED_USERS_COLUMNS,
        )),
        GYM_LOGINS => Some((
            "gym_logins",
            "SELECT id, mac_address, gym::text, extract(epoch FROM login)::text, extract(epoch FROM logout)::text \
             FROM gym_logins WHERE id > $1 ORDER BY id LIMIT $2",
            &GYM_LOGINS_COLUMNS,
        )),
        _ => None,
    }
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

/// The DSN without its password, for messages.
fn redacted(dsn: &str) -> String {
    dsn.split_whitespace()
        .map(|kv| if kv.to_ascii_lowercase().starts_with("password=") { "password=***" } else { kv })
        .collect::<Vec<_>>()
        .join(" ")
}

impl PgSource {
    /// Connects (the connection lives as long as the returned client).
    pub async fn connect(&self) -> Result<tokio_postgres::Client> {
        let (client, connection) = tokio_postgres::connect(&self.dsn, tokio_postgres::NoTls)
            .await
            .map_err(|e| db_error(&redacted(&self.dsn), e))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// The rows of `landing_source`'s source table with `id` above `after`, at most `limit`.
    pub async fn fetch(
        &self,
        client: &tokio_postgres::Client,
        landing_source: &str,
        after: i64,
        limit: i64,
    ) -> Result<Batch> {
        let (table, query, columns) = source_of(landing_source)
            .ok_or_else(|| Error::Config(format!("{landing_source} has no database source")))?;
        let rows = client.query(query, &[&after, &limit]).await.map_err(|e| db_error(&redacted(&self.dsn), e))?;
        let mut csv = columns.join(",");
        csv.push('\n');
        let mut ids = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: i64 = row.try_get(0).map_err(|e| db_error(&redacted(&self.dsn), e))?;
            ids.push(id);
            let mut fields = Vec::with_capacity(4);
            for i in 1..=4 {
                let value: Option<String> = row.try_get(i).map_err(|e| db_error(&redacted(&self.dsn), e))?;
                fields.push(value.unwrap_or_default().replace([',', '\n', '\r'], " "));
            }
            csv.push_str(&fields.join(","));
            csv.push('\n');
        }
        Ok(Batch { table, csv, ids })
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

/// Reads one table by key, [`BATCH_ROWS`] rows at a time.
struct PgReader {
    source: PgSource,
    client: tokio_postgres::Client,
    table: String,
}

#[async_trait::async_trait]
impl SourceReader for PgReader {
    /// One stream: the table, positioned by the last key read.
    fn streams(&self) -> Vec<String> {
        vec![String::new()]
    }

    async fn next(&mut self, committed: &BTreeMap<String, i64>, _max_bytes: u64) -> Result<Vec<Part>> {
        let after = committed.get("").copied().unwrap_or(0);
        let batch = self.source.fetch(&self.client, &self.table, after, BATCH_ROWS).await?;
        let Some(&last) = batch.ids.last() else { return Ok(Vec::new()) };
        Ok(vec![Part {
            name: batch.source_name(),
            stream: String::new(),
            next: last,
            first_line: 2,
            keys: batch.ids,
            text: batch.csv,
        }])
    }
}
