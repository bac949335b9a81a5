//! `fitlake sql`: a SQL query over the tables, each named by its qualified name
//! (`gold.gym_summary`, `silver.user_bins`) or, where that is unambiguous, its table name alone,
//! run by Polars' SQL context.
//!
//! [`Query::parse`] is pure: it checks that the text is one `SELECT` query over known tables
//! (no table functions such as `read_parquet('…')`, which would read files past the policy),
//! rewrites each table name to the one name the SQL context knows it by, and works out which
//! columns of each table the query can name, so that [`Query::run`] reads only those.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use fitlake_catalog::TableId;
use fitlake_storage::{Access, Table};
use polars::prelude::*;
use polars::sql::SQLContext;
use sqlparser::ast::{
    Ident, ObjectName, ObjectNamePart, Select, SelectItem, Statement, TableFactor, VisitMut, VisitorMut,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::Error;

/// A checked query: its text with table names rewritten, and what to read of which table.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The query as Polars' SQL context runs it.
    pub statement: String,
    /// Each table the query reads, with the columns to read (`None`: all of them).
    pub tables: Vec<(TableId, Option<Vec<String>>)>,
}

impl Query {
    /// Checks and rewrites `sql`. Errors are the user's to fix ([`Error::Config`]).
    pub fn parse(sql: &str) -> Result<Query, Error> {
        let invalid = |msg: String| Error::Config(format!("sql: {msg}"));
        let mut statements = Parser::parse_sql(&GenericDialect, sql).map_err(|e| invalid(e.to_string()))?;
        let mut statement = match statements.len() {
            1 => statements.remove(0),
            0 => return Err(invalid("no query given".into())),
            n => return Err(invalid(format!("one query at a time, got {n} statements"))),
        };
        if !matches!(statement, Statement::Query(_)) {
            return Err(invalid("only SELECT queries are run (tables change through the pipeline)".into()));
        }
        let mut names = Names { tables: BTreeSet::new(), wildcard: false, error: None };
        let _ = statement.visit(&mut names);
        if let Some(msg) = names.error {
            return Err(invalid(msg));
        }
        if names.tables.is_empty() {
            return Err(invalid(format!("the query names no table; the tables are: {}", table_list())));
        }
        let words = words(sql).map_err(invalid)?;
        let all_columns = names.wildcard || words.contains("natural");
        let tables = names
            .tables
            .into_iter()
            .map(|id| {
                if all_columns {
                    return (id, None);
                }
                let fields = id.def().schema.fields().iter().map(|f| f.name().clone()).collect::<Vec<_>>();
                let mut named: Vec<String> =
                    fields.iter().filter(|f| words.contains(&f.to_lowercase())).cloned().collect();
                if named.is_empty() {
                    // `SELECT COUNT(*)`: one column still carries the row count.
                    named.push(fields[0].clone());
                }
                (id, Some(named))
            })
            .collect();
        Ok(Query { statement: statement.to_string(), tables })
    }

    /// Reads the tables the query names (their named columns only) and runs it.
    pub async fn run(&self, access: &Access) -> Result<DataFrame, Error> {
        let mut context = SQLContext::new();
        for (id, columns) in &self.tables {
            let table = Table::open(access, *id).await?;
            let scan = table.scan();
            let rows = match columns {
                Some(columns) => scan.columns(&columns.iter().map(String::as_str).collect::<Vec<_>>()),
                None => scan,
            }
            .collect()
            .await?;
            context.register(&id.qualified_name(), rows.lazy());
        }
        let statement = self.statement.clone();
        tokio::task::spawn_blocking(move || context.execute(&statement).and_then(LazyFrame::collect))
            .await?
            .map_err(|e| Error::Config(format!("sql: {e}")))
    }
}

/// Every table's qualified name, for messages.
fn table_list() -> String {
    TableId::ALL.iter().map(|t| t.qualified_name()).collect::<Vec<_>>().join(", ")
}

/// The table a name in a `FROM` or `JOIN` means: `layer.table`, or `table` alone.
fn table_named(parts: &[String]) -> Option<TableId> {
    let lower: Vec<String> = parts.iter().map(|p| p.to_lowercase()).collect();
    TableId::ALL.iter().copied().find(|t| match lower.as_slice() {
        [layer, name] => *layer == t.layer().to_string() && name == t.name(),
        [name] => name == t.name(),
        _ => false,
    })
}

/// Rewrites table names and notes the tables and whether any `SELECT *` reads whole rows.
struct Names {
    tables: BTreeSet<TableId>,
    wildcard: bool,
    error: Option<String>,
}

impl VisitorMut for Names {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table { name, args, .. } = factor else {
            return ControlFlow::Continue(());
        };
        if args.is_some() {
            self.error = Some(format!("table functions such as {name}(…) are not available: query the tables"));
            return ControlFlow::Break(());
        }
        let parts: Option<Vec<String>> = name
            .0
            .iter()
            .map(|part| match part {
                ObjectNamePart::Identifier(ident) => Some(ident.value.clone()),
                ObjectNamePart::Function(_) => None,
            })
            .collect();
        match parts.as_deref().and_then(table_named) {
            Some(id) => {
                self.tables.insert(id);
                *name = ObjectName(vec![ObjectNamePart::Identifier(Ident::with_quote('"', id.qualified_name()))]);
            }
            // One part may be a common table expression (`WITH x AS (…) SELECT … FROM x`).
            None if name.0.len() == 1 => {}
            None => {
                self.error = Some(format!("no table {name}; the tables are: {}", table_list()));
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<()> {
        if select
            .projection
            .iter()
            .any(|item| matches!(item, SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)))
        {
            self.wildcard = true;
        }
        ControlFlow::Continue(())
    }
}

/// Every word of the query, lower-cased: a column the query names in any way (`SELECT`,
/// `WHERE`, `USING (…)`, a qualified `t.col`, a quoted `"col"`) is one of them.
fn words(sql: &str) -> Result<BTreeSet<String>, String> {
    let tokens = Tokenizer::new(&GenericDialect, sql).tokenize().map_err(|e| e.to_string())?;
    Ok(tokens
        .into_iter()
        .filter_map(|t| match t {
            Token::Word(w) if w.keyword == Keyword::NATURAL => Some("natural".to_string()),
            Token::Word(w) => Some(w.value.to_lowercase()),
            _ => None,
        })
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails loudly on any unexpected error
mod tests {
    use super::*;

    fn columns(q: &Query, id: TableId) -> Option<Vec<String>> {
        q.tables.iter().find(|(t, _)| *t == id).expect("table read").1.clone()
    }

    #[test]
    fn qualified_and_bare_names_map_to_one_name_per_table() {
        let q = Query::parse(
            "SELECT b.age, AVG(s.avg_bpm) AS bpm FROM gold.workout_bpm_summary s JOIN user_bins b USING (user_id) GROUP BY b.age",
        )
        .unwrap();
        insta::assert_snapshot!(q.statement, @r#"SELECT b.age, AVG(s.avg_bpm) AS bpm FROM "gold.workout_bpm_summary" s JOIN "silver.user_bins" b USING(user_id) GROUP BY b.age"#);
        assert_eq!(q.tables.len(), 2);
        assert_eq!(columns(&q, TableId::UserBins), Some(vec!["user_id".to_string(), "age".to_string()]));
    }

    #[test]
    fn a_wildcard_reads_every_column_and_count_star_reads_one() {
        let q = Query::parse("SELECT * FROM gold.gym_summary").unwrap();
        assert_eq!(q.tables, vec![(TableId::GymSummary, None)]);
        let q = Query::parse("SELECT s.* FROM gold.gym_summary s").unwrap();
        assert_eq!(q.tables, vec![(TableId::GymSummary, None)]);
        let q = Query::parse("SELECT COUNT(*) FROM SILVER.HEART_RATE").unwrap();
        let first = TableId::HeartRate.def().schema.fields()[0].name().clone();
        assert_eq!(q.tables, vec![(TableId::HeartRate, Some(vec![first]))]);
    }

    #[test]
    fn refuses_what_is_not_one_query_over_the_tables() {
        for (sql, says) in [
            ("SELECT * FROM read_parquet('/etc/passwd')", "table functions"),
            ("DROP TABLE gold.gym_summary", "only SELECT"),
            ("SELECT 1; SELECT 2", "one query at a time"),
            ("SELECT * FROM gold.nope", "no table gold.nope"),
            ("SELECT 1", "names no table"),
            ("SELEC 1", "sql:"),
        ] {
            let err = Query::parse(sql).unwrap_err().to_string();
            assert!(err.contains(says), "{sql}: {err}");
        }
    }

    #[test]
    fn common_table_expressions_keep_their_names() {
        let q = Query::parse("WITH v AS (SELECT gym FROM gold.gym_summary) SELECT gym, COUNT(*) FROM v GROUP BY gym")
            .unwrap();
        assert_eq!(q.tables, vec![(TableId::GymSummary, Some(vec!["gym".to_string()]))]);
        assert!(q.statement.contains("FROM v GROUP BY"), "{}", q.statement);
    }

    #[test]
    fn runs_over_registered_frames() {
        // The rewritten text is what Polars' SQL context resolves: one quoted name per table.
        let q = Query::parse("SELECT gym, SUM(x) AS total FROM gold.gym_summary GROUP BY gym ORDER BY gym").unwrap();
        let mut context = SQLContext::new();
        let rows = df!("gym" => [1i64, 2, 1], "x" => [10i64, 20, 30]).unwrap();
        context.register("gold.gym_summary", rows.lazy());
        let out = context.execute(&q.statement).unwrap().collect().unwrap();
        assert_eq!(fitlake_frame::to_text(&out), "gym: i64,total: i64\n1,40\n2,20\n");
    }
}
