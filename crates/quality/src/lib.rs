//! Data quality expectations: declared per table in a TOML file, evaluated on the rows a step
//! is about to commit, each with an action.
//!
//! - `warn`: the rows are kept; the failures are counted in the event log.
//! - `drop`: failing rows are not written; they go to the quarantine with the expectation's name
//!   as the reason. Only for append-only tables: dropping a row of a MERGE would delete the
//!   stored version it replaces.
//! - `fail`: the step commits nothing and the run fails, naming the expectation.
//!
//! Evaluation is a pure transform: rows, the referenced tables' keys and the as-of date in;
//! kept rows, dropped rows with reasons and per-expectation counts out.

use std::collections::HashMap;

use chrono::NaiveDate;
use polars::prelude::*;
use serde::Deserialize;

/// The expectations shipped with fitlake (`crates/quality/expectations.toml`).
pub const SHIPPED_EXPECTATIONS: &str = include_str!("../expectations.toml");

/// Polars, as the transforms' frames are of it (use this one to build their inputs).
pub use polars;

/// Errors of the quality crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The expectations file is not valid; the message says what to fix.
    #[error("expectations file: {0}")]
    Invalid(String),
    /// Polars refused an operation (a column the expectation names is missing, or a bug).
    #[error("evaluating expectations: {0}")]
    Polars(#[from] PolarsError),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What happens to rows that fail an expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Keep them; count them.
    Warn,
    /// Quarantine them instead of writing them.
    Drop,
    /// Commit nothing and fail the run.
    Fail,
}

impl Action {
    /// The action's name in the event log.
    pub fn name(self) -> &'static str {
        match self {
            Action::Warn => "warn",
            Action::Drop => "drop",
            Action::Fail => "fail",
        }
    }
}

/// What an expectation checks about each row (or, for `unique`, about the rows together).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "check", rename_all = "snake_case", deny_unknown_fields)]
pub enum Check {
    /// The column is never null.
    NotNull {
        /// Column.
        column: String,
    },
    /// The column's value lies within `[min, max]` (either bound may be left out); rows where
    /// the boolean column `when` is false (or null) are not checked.
    Range {
        /// Column.
        column: String,
        /// Lowest allowed value.
        min: Option<f64>,
        /// Highest allowed value.
        max: Option<f64>,
        /// Only rows where this boolean column is true are checked.
        when: Option<String>,
    },
    /// A timestamp column lies on or after `not_before` and at most `max_days_ahead` days after
    /// the run's as-of date.
    TimeWindow {
        /// Column.
        column: String,
        /// Earliest plausible date (YYYY-MM-DD).
        not_before: String,
        /// How far past the as-of date a time may be.
        max_days_ahead: i64,
    },
    /// Every non-null value of `column` appears in `ref_column` of table `ref_table`.
    References {
        /// Column.
        column: String,
        /// The referenced table.
        ref_table: String,
        /// The referenced column.
        ref_column: String,
    },
    /// No two rows written together share these columns.
    Unique {
        /// The key columns.
        columns: Vec<String>,
    },
}

/// One declared expectation (unknown fields are refused by its [`Check`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Expectation {
    /// Its name (unique per table), as reports and quarantine reasons show it.
    pub name: String,
    /// The table it guards.
    pub table: String,
    /// What to do with failing rows.
    pub action: Action,
    /// What it checks.
    #[serde(flatten)]
    pub check: Check,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    expectation: Vec<Expectation>,
}

/// Every declared expectation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expectations {
    /// In file order.
    pub all: Vec<Expectation>,
}

impl Expectations {
    /// Parses an expectations file. `append_only` lists the tables where `drop` is allowed
    /// and `known` every table name.
    pub fn parse(text: &str, known: &[&str], append_only: &[&str]) -> Result<Expectations> {
        let file: File = toml::from_str(text).map_err(|e| Error::Invalid(e.to_string()))?;
        let mut seen = std::collections::HashSet::new();
        for e in &file.expectation {
            let at = format!("expectation {:?} on {:?}", e.name, e.table);
            if !known.contains(&e.table.as_str()) {
                return Err(Error::Invalid(format!("{at}: no such table")));
            }
            if !seen.insert((e.table.clone(), e.name.clone())) {
                return Err(Error::Invalid(format!("{at}: declared twice")));
            }
            if e.action == Action::Drop && !append_only.contains(&e.table.as_str()) {
                return Err(Error::Invalid(format!(
                    "{at}: `drop` only works on append-only tables ({}); a dropped MERGE row would delete the \
                     version it replaces. Use `warn` or `fail`",
                    append_only.join(", ")
                )));
            }
            match &e.check {
                Check::Range { min: Some(lo), max: Some(hi), .. } if lo > hi => {
                    return Err(Error::Invalid(format!("{at}: min {lo} is above max {hi}")))
                }
                Check::Range { min: None, max: None, .. } => {
                    return Err(Error::Invalid(format!("{at}: a range needs min, max or both")))
                }
                Check::TimeWindow { not_before, .. } if parse_day(not_before).is_none() => {
                    return Err(Error::Invalid(format!("{at}: not_before {not_before:?} is not YYYY-MM-DD")))
                }
                Check::References { ref_table, .. } if !known.contains(&ref_table.as_str()) => {
                    return Err(Error::Invalid(format!("{at}: referenced table {ref_table:?} does not exist")))
                }
                Check::Unique { columns } if columns.is_empty() => {
                    return Err(Error::Invalid(format!("{at}: unique needs at least one column")))
                }
                _ => {}
            }
        }
        Ok(Expectations { all: file.expectation })
    }

    /// The expectations of one table.
    pub fn of(&self, table: &str) -> Vec<&Expectation> {
        self.all.iter().filter(|e| e.table == table).collect()
    }

    /// The tables and columns the expectations of `table` reference: (table, column).
    pub fn references_of(&self, table: &str) -> Vec<(&str, &str)> {
        self.of(table)
            .into_iter()
            .filter_map(|e| match &e.check {
                Check::References { ref_table, ref_column, .. } => Some((ref_table.as_str(), ref_column.as_str())),
                _ => None,
            })
            .collect()
    }
}

fn parse_day(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()
}

/// The counts of one expectation over one batch of rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The table.
    pub table: String,
    /// The expectation.
    pub expectation: String,
    /// Its action.
    pub action: Action,
    /// Rows checked.
    pub checked: u64,
    /// Rows that passed.
    pub passed: u64,
    /// Rows that failed.
    pub failed: u64,
}

/// The result of evaluating a table's expectations on the rows a step is about to write.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The rows to write (all rows, less those a `drop` expectation removed).
    pub kept: DataFrame,
    /// The dropped rows, one per row, with the column `reason` naming the expectation(s).
    pub dropped: DataFrame,
    /// Counts per expectation, in declaration order.
    pub outcomes: Vec<Outcome>,
}

impl Evaluation {
    /// The `fail` expectations that failed, as messages; empty when the rows may be written.
    pub fn failures(&self) -> Vec<String> {
        self.outcomes
            .iter()
            .filter(|o| o.action == Action::Fail && o.failed > 0)
            .map(|o| {
                format!("expectation {:?} on {}: {} of {} rows failed", o.expectation, o.table, o.failed, o.checked)
            })
            .collect()
    }
}

/// For each row: does it pass? (`true` also for rows the expectation does not check.)
fn passes(
    check: &Check,
    rows: &DataFrame,
    references: &HashMap<(String, String), DataFrame>,
    as_of: NaiveDate,
) -> Result<(Expr, Expr)> {
    // (applies, passes) expressions over the rows.
    Ok(match check {
        Check::NotNull { column } => (lit(true), col(column.as_str()).is_not_null()),
        Check::Range { column, min, max, when } => {
            let applies = match when {
                Some(w) => col(w.as_str()).fill_null(lit(false)),
                None => lit(true),
            };
            let value = col(column.as_str()).cast(DataType::Float64);
            let mut ok = value.clone().is_not_null();
            if let Some(lo) = min {
                ok = ok.and(value.clone().gt_eq(lit(*lo)));
            }
            if let Some(hi) = max {
                ok = ok.and(value.lt_eq(lit(*hi)));
            }
            (applies, ok)
        }
        Check::TimeWindow { column, not_before, max_days_ahead } => {
            let micros = |d: NaiveDate| d.and_hms_opt(0, 0, 0).map_or(0, |t| t.and_utc().timestamp_micros());
            let lo = parse_day(not_before).map_or(i64::MIN, micros);
            let hi = micros(as_of) + (max_days_ahead + 1) * 86_400_000_000;
            let value = col(column.as_str()).cast(DataType::Int64);
            (col(column.as_str()).is_not_null(), value.clone().gt_eq(lit(lo)).and(value.lt(lit(hi))))
        }
        Check::References { column, ref_table, ref_column } => {
            let dtype = rows.column(column.as_str())?.dtype().clone();
            let known = match references.get(&(ref_table.clone(), ref_column.clone())) {
                Some(df) => df.column(ref_column.as_str())?.as_materialized_series().cast(&dtype)?,
                None => Series::new_empty(ref_column.as_str().into(), &dtype),
            };
            (col(column.as_str()).is_not_null(), col(column.as_str()).is_in(lit(known).implode(false), false))
        }
        Check::Unique { columns } if strictly_increasing(rows, columns)? => (lit(true), lit(true)),
        Check::Unique { columns } => {
            let keys: Vec<Expr> = columns.iter().map(|c| col(c.as_str())).collect();
            (lit(true), len().over(keys)?.eq(lit(1u32)))
        }
    })
}

/// True when `rows` are in strictly increasing order of `columns` (compared in turn), none
/// null: then no two share them, found in one pass without a hash table (the silver upserts
/// come out sorted by their key).
fn strictly_increasing(rows: &DataFrame, columns: &[String]) -> Result<bool> {
    for c in columns {
        match rows.column(c.as_str()) {
            Ok(column) if column.null_count() == 0 => {}
            _ => return Ok(false),
        }
    }
    if rows.height() < 2 {
        return Ok(true);
    }
    let mut after = lit(false);
    for c in columns.iter().rev() {
        let (now, before) = (col(c.as_str()), col(c.as_str()).shift(lit(1)));
        after = now.clone().gt(before.clone()).or(now.eq(before).and(after));
    }
    // The first row has no row before it (null): it passes.
    let ordered = rows.clone().lazy().select([after.fill_null(lit(true)).all(false).alias("ordered")]).collect()?;
    Ok(ordered.column("ordered")?.bool()?.get(0) == Some(true))
}

/// Evaluates `expectations` (all of one table) on `rows`. `references` holds, for each
/// `(table, column)` an expectation references, a frame with that column; `as_of` anchors
/// time windows.
pub fn evaluate(
    expectations: &[&Expectation],
    rows: &DataFrame,
    references: &HashMap<(String, String), DataFrame>,
    as_of: NaiveDate,
) -> Result<Evaluation> {
    let mut flags = Vec::new();
    let mut outcomes = Vec::new();
    let mut drops: Vec<(String, String)> = Vec::new();
    for (i, e) in expectations.iter().enumerate() {
        let (applies, ok) = passes(&e.check, rows, references, as_of)?;
        let (a, f) = (format!("__applies_{i}"), format!("__fails_{i}"));
        flags.push(applies.clone().alias(a.as_str()));
        flags.push(applies.and(ok.fill_null(lit(false)).not()).alias(f.as_str()));
        if e.action == Action::Drop {
            drops.push((f, format!("expectation {} failed", e.name)));
        }
    }
    let flagged = rows.clone().lazy().with_columns(flags).collect()?;
    for (i, e) in expectations.iter().enumerate() {
        let count =
            |name: String| -> Result<u64> { Ok(flagged.column(name.as_str())?.bool()?.sum().unwrap_or(0) as u64) };
        let checked = count(format!("__applies_{i}"))?;
        let failed = count(format!("__fails_{i}"))?;
        outcomes.push(Outcome {
            table: e.table.clone(),
            expectation: e.name.clone(),
            action: e.action,
            checked,
            passed: checked - failed,
            failed,
        });
    }
    let original: Vec<Expr> = rows.get_column_names().into_iter().map(|c| col(c.clone())).collect();
    // The reason is the first `drop` expectation the row failed.
    let reason = drops.iter().rev().fold(lit(NULL).cast(DataType::String), |otherwise, (flag, reason)| {
        when(col(flag.as_str())).then(lit(reason.clone())).otherwise(otherwise)
    });
    let with_reason = flagged.lazy().with_column(reason.alias("__reason"));
    let dropped_mask = col("__reason").is_not_null();
    let kept = with_reason.clone().filter(dropped_mask.clone().not()).select(original.clone()).collect()?;
    let mut dropped_cols = original;
    dropped_cols.push(col("__reason").alias("reason"));
    let dropped = with_reason.filter(dropped_mask).select(dropped_cols).collect()?;
    Ok(Evaluation { kept, dropped, outcomes })
}

/// The README's examples, compiled and run as doctests (`cargo test --doc`).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
