//! `fitlake sql` over the tables by qualified name, and `fitlake report`'s dashboard opened in a
//! real headless browser, its numbers checked against `fitlake sql`.

#![allow(clippy::unwrap_used)] // a test fails loudly on any unexpected error
use std::path::Path;
use std::process::Command;

use polars::prelude::*;

use crate::harness::{succeeded, Lake};

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Rows of CSV text (header first), with the `csv` reader's quoting rules.
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes())
        .records()
        .map(|r| r.expect("CSV record").iter().map(str::to_string).collect())
        .collect()
}

#[test]
fn sql_reads_tables_by_qualified_name_in_every_format() {
    let lake = Lake::after_set_1();
    let summary = lake.table("gym_summary");

    // CSV: a group-by agrees with the same aggregate computed here from the table.
    let out = lake.fitlake(&[
        "sql",
        "--format",
        "csv",
        "SELECT gym, COUNT(*) AS n, SUM(minutes_in_gym) AS minutes FROM gold.gym_summary GROUP BY gym ORDER BY gym",
    ]);
    let rows = csv_rows(&text(&out));
    assert_eq!(rows[0], ["gym", "n", "minutes"]);
    let expected = summary
        .clone()
        .lazy()
        .group_by([col("gym")])
        .agg([len().alias("n"), col("minutes_in_gym").sum().alias("minutes")])
        .sort(["gym"], SortMultipleOptions::default())
        .collect()
        .unwrap();
    assert_eq!(rows.len() - 1, expected.height());
    for (i, row) in rows[1..].iter().enumerate() {
        assert_eq!(row[0], expected.column("gym").unwrap().get(i).unwrap().to_string());
        assert_eq!(row[1], expected.column("n").unwrap().get(i).unwrap().to_string());
        let minutes: f64 = row[2].parse().unwrap();
        assert!((minutes - expected.column("minutes").unwrap().f64().unwrap().get(i).unwrap()).abs() < 1e-9);
    }

    // JSON, a bare table name and a join across layers.
    let out = lake.fitlake(&[
        "sql",
        "--format",
        "json",
        "SELECT COUNT(*) AS n FROM user_bins b JOIN silver.users u ON b.user_id = u.user_id",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON array");
    let users = lake.table("users");
    let bins = lake.table("user_bins");
    let joined = users.join(&bins, ["user_id"], ["user_id"], JoinArgs::new(JoinType::Inner), None).unwrap();
    assert_eq!(json, serde_json::json!([{ "n": joined.height() }]));

    // Parquet to a file, read back.
    let file = lake.root.parent().unwrap().join("out.parquet");
    lake.fitlake(&["sql", "--format", "parquet", "--out", file.to_str().unwrap(), "SELECT * FROM gold.gym_summary"]);
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file).unwrap())
            .unwrap();
    let names: Vec<String> = reader.schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, summary.get_column_names().iter().map(|n| n.to_string()).collect::<Vec<_>>());
    let rows: usize = reader.build().unwrap().map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, summary.height());

    // The text table says how many rows.
    let out = lake.fitlake(&["sql", "SELECT * FROM gold.gym_summary"]);
    assert!(text(&out).contains(&format!("({} rows)", summary.height())), "{}", text(&out));

    // What is not a query over the tables is the user's to fix: exit 2, a clear message.
    for (sql, says) in [
        ("SELECT * FROM gold.nope", "no table gold.nope"),
        ("SELECT * FROM read_csv('/etc/passwd')", "table functions"),
        ("DELETE FROM gold.gym_summary", "only SELECT"),
        ("SELECT no_such_column FROM gold.gym_summary", "no_such_column"),
    ] {
        let out = lake.fitlake_env(&["sql", sql], &[]);
        assert_eq!(out.status.code(), Some(2), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains(says), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Each `<table data-panel="ID">`'s rows in the page, as cell texts.
fn page_tables(html: &str) -> Vec<(String, Vec<Vec<String>>)> {
    let mut out = Vec::new();
    for part in html.split("<table data-panel=\"").skip(1) {
        let (id, rest) = part.split_once('"').unwrap();
        let body = rest.split("</table>").next().unwrap();
        let body = body.split("<tbody>").nth(1).unwrap_or("");
        let rows = body
            .split("<tr>")
            .skip(1)
            .map(|row| {
                row.split("<td>")
                    .skip(1)
                    .map(|cell| cell.split("</td>").next().unwrap().replace("&amp;", "&").replace("&lt;", "<"))
                    .collect()
            })
            .collect();
        out.push((id.to_string(), rows));
    }
    out
}

/// The same value as the page shows it (floats to two decimals, times with a space).
fn same_value(page: &str, sql: &str) -> bool {
    match (page.parse::<f64>(), sql.parse::<f64>()) {
        (Ok(a), Ok(b)) => (a - b).abs() <= 0.005 + 1e-9,
        _ => page == sql.replace('T', " ") || page == sql,
    }
}

fn chromium(args: &[&str], page: &Path) -> std::process::Output {
    let bin = std::env::var("FITLAKE_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let out = Command::new(&bin)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=3000"])
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap_or_else(|e| panic!("start {bin} (scripts/install-services.sh installs it): {e}"));
    succeeded(out, "chromium")
}

#[test]
fn report_draws_every_chart_in_a_headless_browser_and_shows_what_sql_gives() {
    let lake = Lake::after_set_1();
    lake.fitlake(&["produce", "--set", "2"]);
    // A line no one can read: the quarantine panel has a row.
    std::fs::write(lake.landing("kafka_multiplex_bz").join("broken.json"), "{\"key\": not json\n").unwrap();
    lake.run_once();

    let dir = lake.root.parent().unwrap().join("report");
    let out = lake.fitlake(&["report", "--out", dir.to_str().unwrap(), "--png"]);
    assert!(text(&out).contains("fitlake-report: ok"), "{}", text(&out));
    let page = dir.join("index.html");
    let html = std::fs::read_to_string(&page).unwrap();
    let charts = html.matches("<figure id=\"chart-").count();
    assert_eq!(charts, 8);
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"), "the page needs no network");

    // The browser ran the page's check: every chart laid out with drawn shapes.
    let dom = text(&chromium(&["--dump-dom"], &page));
    assert!(
        dom.contains(&format!("data-charts=\"{charts}/{charts}\"")),
        "charts the browser drew: {:?}",
        dom.split("data-charts=").nth(1).map(|s| &s[..12])
    );

    // A screenshot: the page is drawn, in more than a few colours.
    let shot = dir.join("screenshot.png");
    chromium(&[&format!("--screenshot={}", shot.display()), "--window-size=1200,6000"], &page);
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    let step = info.color_type.samples();
    let colours: std::collections::HashSet<&[u8]> = pixels[..info.buffer_size()].chunks(step).collect();
    assert!(colours.len() > 20, "{} colours in the screenshot", colours.len());

    // Every chart of the page also as PNG.
    let ids: Vec<&str> = html.split("<figure id=\"chart-").skip(1).filter_map(|f| f.split('"').next()).collect();
    assert_eq!(ids.len(), charts);
    for id in ids {
        assert!(dir.join(format!("{id}.png")).metadata().is_ok_and(|m| m.len() > 1000), "{id}.png");
    }

    // The numbers the page shows are the ones `fitlake sql` gives for each panel's query.
    let tables = page_tables(&dom);
    for panel in fitlake_report::PANELS {
        let (_, shown) = tables.iter().find(|(id, _)| id == panel.id).unwrap_or_else(|| panic!("{}: table", panel.id));
        let sql = csv_rows(&text(&lake.fitlake(&["sql", "--format", "csv", panel.query])));
        assert_eq!(shown.len(), (sql.len() - 1).min(fitlake_report::LISTED_ROWS), "{}: rows", panel.id);
        if panel.id != "expectations" || !shown.is_empty() {
            assert!(!shown.is_empty(), "{}: the seed sets give it rows", panel.id);
        }
        for (row, expected) in shown.iter().zip(&sql[1..]) {
            assert_eq!(row.len(), expected.len(), "{}", panel.id);
            for (a, b) in row.iter().zip(expected) {
                assert!(same_value(a, b), "{}: page shows {a}, sql gives {b}", panel.id);
            }
        }
    }
    let quarantine = &tables.iter().find(|(id, _)| id == "quarantine").unwrap().1;
    assert!(quarantine.iter().any(|r| r[0] == "kafka_multiplex_bz"), "{quarantine:?}");
    // Versions as `fitlake status` reports them.
    let versions = &tables.iter().find(|(id, _)| id == "tables").unwrap().1;
    for table in lake.status() {
        let name = table["table"].as_str().unwrap();
        let row = versions.iter().find(|r| r[0] == name).unwrap_or_else(|| panic!("{name} listed"));
        assert_eq!(row[1], table["version"].to_string(), "{name}");
    }
}
