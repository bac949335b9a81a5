//! The gold layer in front of people: `fitlake report`'s dashboard as a pure function of query
//! results and table states.
//!
//! - [`PANELS`]: each panel's title and the SQL query (over the tables by qualified name, as
//!   `fitlake sql` runs it) whose rows it charts and lists.
//! - [`build`]: the rows of every panel's query, the tables' versions and last commits, and the
//!   time of the report, become one self-contained HTML page (charts drawn by plotters as inline
//!   SVG, no script or style from a network) and the [`Chart`]s, which also draw as PNG.
//!
//! No IO, no clock: the caller runs the queries and passes the time.

pub mod chart;

use std::fmt::Write as _;

pub use chart::{Chart, Plot, Series};
pub use polars;
use polars::prelude::*;

/// Errors of building a report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A query's rows are not what its panel reads (a column missing or of another type).
    #[error("panel {panel}: {source}")]
    Rows {
        /// The panel.
        panel: &'static str,
        /// What was wrong.
        #[source]
        source: PolarsError,
    },
    /// plotters could not draw a chart.
    #[error("drawing a chart: {0}")]
    Draw(String),
    /// The inputs do not match [`PANELS`].
    #[error("{0}")]
    Inputs(String),
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// A panel of the dashboard fed by a SQL query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Panel {
    /// Its HTML id and PNG file name.
    pub id: &'static str,
    /// Its heading.
    pub title: &'static str,
    /// The query whose rows it shows (`fitlake sql` runs the same text).
    pub query: &'static str,
}

/// The panels fed by queries, in page order.
pub const PANELS: [Panel; 5] = [
    Panel {
        id: "bpm_by_age_gender",
        title: "Average bpm by age band and gender",
        query: "SELECT age, gender, AVG(avg_bpm) AS avg_bpm, COUNT(*) AS sessions \
                FROM gold.workout_bpm_summary WHERE age IS NOT NULL AND gender IS NOT NULL \
                GROUP BY age, gender ORDER BY age, gender",
    },
    Panel {
        id: "gym_days",
        title: "Sessions and minutes exercising per gym per day",
        query: "SELECT date, gym, COUNT(DISTINCT login) AS visits, COUNT(session_id) AS sessions, \
                SUM(minutes_exercising) AS minutes_exercising \
                FROM gold.gym_summary GROUP BY date, gym ORDER BY date, gym",
    },
    Panel {
        id: "gym_vs_exercise",
        title: "Minutes in the gym against minutes exercising, per visit",
        query: "SELECT mac_address, gym, login, MAX(minutes_in_gym) AS minutes_in_gym, \
                SUM(minutes_exercising) AS minutes_exercising \
                FROM gold.gym_summary GROUP BY mac_address, gym, login ORDER BY login, gym, mac_address",
    },
    Panel {
        id: "quarantine",
        title: "Quarantined records per table",
        query: "SELECT \"table\", COUNT(*) AS records FROM bronze.quarantine GROUP BY \"table\" ORDER BY \"table\"",
    },
    Panel {
        id: "expectations",
        title: "Failed expectation rows per table",
        query: "SELECT \"table\", SUM(rows_failed) AS rows_failed, \
                SUM(CASE WHEN rows_failed > 0 THEN 1 ELSE 0 END) AS failed_checks, COUNT(*) AS checks \
                FROM bronze.quality_events GROUP BY \"table\" ORDER BY \"table\"",
    },
];

/// A table's state for the freshness and version panels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableState {
    /// `layer.table`.
    pub table: String,
    /// Its latest version.
    pub version: i64,
    /// Its rows.
    pub rows: u64,
    /// When its latest version was committed (ms since the epoch), when known.
    pub committed_ms: Option<i64>,
}

/// What a report is built from.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The rows of each of [`PANELS`]' queries, in the same order.
    pub results: Vec<DataFrame>,
    /// Every table's state.
    pub tables: Vec<TableState>,
    /// The time of the report (ms since the epoch): freshness is measured against it.
    pub now_ms: i64,
    /// Where the lakehouse is, for the heading.
    pub lakehouse: String,
}

/// A built report: the page and its charts (id, chart), which also draw as PNG.
#[derive(Debug, Clone)]
pub struct Report {
    /// The self-contained HTML page.
    pub html: String,
    /// Every chart, by id, in page order.
    pub charts: Vec<(String, Chart)>,
}

/// Rows a panel's table lists before "… more rows".
pub const LISTED_ROWS: usize = 30;

/// Builds the report.
pub fn build(inputs: &Inputs) -> Result<Report> {
    if inputs.results.len() != PANELS.len() {
        return Err(Error::Inputs(format!("{} query results for {} panels", inputs.results.len(), PANELS.len())));
    }
    let mut charts: Vec<(String, Chart)> = Vec::new();
    let mut sections = String::new();
    for (panel, rows) in PANELS.iter().zip(&inputs.results) {
        let rows_err = |source| Error::Rows { panel: panel.id, source };
        let panel_charts = panel_charts(panel, rows).map_err(rows_err)?;
        let mut figures = String::new();
        for (suffix, chart) in panel_charts {
            let id = if suffix.is_empty() { panel.id.to_string() } else { format!("{}_{suffix}", panel.id) };
            let _ = write!(figures, "<figure id=\"chart-{id}\">{}</figure>", chart.svg()?);
            charts.push((id, chart));
        }
        let _ = writeln!(
            sections,
            "<section id=\"{id}\"><h2>{title}</h2>{figures}<details><summary>Query</summary><pre>{query}</pre>\
             </details>{table}</section>",
            id = panel.id,
            title = escape(panel.title),
            query = escape(panel.query),
            table = html_table(panel.id, rows),
        );
    }
    let (freshness, versions) = state_charts(&inputs.tables, inputs.now_ms);
    let _ = writeln!(
        sections,
        "<section id=\"tables\"><h2>Tables: freshness and versions</h2><figure id=\"chart-freshness\">{}</figure>\
         <figure id=\"chart-versions\">{}</figure>{}</section>",
        freshness.svg()?,
        versions.svg()?,
        state_table(&inputs.tables, inputs.now_ms),
    );
    charts.push(("freshness".into(), freshness));
    charts.push(("versions".into(), versions));
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; \
         img-src data:; script-src 'unsafe-inline'\">\
         <title>fitlake report</title><style>{STYLE}</style></head><body>\
         <h1>fitlake report</h1><p class=\"meta\">{lakehouse} · as of {now}</p>\n{sections}<script>{SCRIPT}</script></body></html>\n",
        lakehouse = escape(&inputs.lakehouse),
        now = utc(inputs.now_ms),
    );
    Ok(Report { html, charts })
}

/// A panel's charts (id suffix, chart) from its query's rows.
fn panel_charts(panel: &Panel, rows: &DataFrame) -> PolarsResult<Vec<(&'static str, Chart)>> {
    let chart = |title: &str, plot| Chart { title: title.to_string(), plot };
    Ok(match panel.id {
        "bpm_by_age_gender" => {
            let (categories, series) = pivot(rows, "age", "gender", "avg_bpm")?;
            vec![("", chart(panel.title, Plot::Bars { categories, series, y_desc: "bpm".into() }))]
        }
        "gym_days" => {
            let (x, sessions) = pivot(rows, "date", "gym", "sessions")?;
            let (_, minutes) = pivot(rows, "date", "gym", "minutes_exercising")?;
            let name =
                |s: Vec<Series>| s.into_iter().map(|s| Series { name: format!("gym {}", s.name), ..s }).collect();
            vec![
                (
                    "sessions",
                    chart(
                        "Sessions per gym per day",
                        Plot::Lines { x: x.clone(), series: name(sessions), y_desc: "sessions".into() },
                    ),
                ),
                (
                    "minutes",
                    chart(
                        "Minutes exercising per gym per day",
                        Plot::Lines { x, series: name(minutes), y_desc: "minutes".into() },
                    ),
                ),
            ]
        }
        "gym_vs_exercise" => {
            let x = floats(rows, "minutes_in_gym")?;
            let y = floats(rows, "minutes_exercising")?;
            let points = x.into_iter().zip(y).filter_map(|(x, y)| Some((x?, y?))).collect();
            vec![(
                "",
                chart(
                    panel.title,
                    Plot::Scatter { points, x_desc: "minutes in the gym".into(), y_desc: "minutes exercising".into() },
                ),
            )]
        }
        "quarantine" => {
            let categories = strings(rows, "table")?;
            let values = floats(rows, "records")?;
            let series = vec![Series { name: "records".into(), values }];
            vec![("", chart(panel.title, Plot::Bars { categories, series, y_desc: "records".into() }))]
        }
        "expectations" => {
            let categories = strings(rows, "table")?;
            let series = vec![Series { name: "rows failed".into(), values: floats(rows, "rows_failed")? }];
            vec![("", chart(panel.title, Plot::Bars { categories, series, y_desc: "rows failed".into() }))]
        }
        other => polars_bail!(ComputeError: "no chart for panel {other}"),
    })
}

/// Rows `(category, series, value)` as categories in order of appearance and one series per
/// distinct `series` value (sorted), with a value per category.
fn pivot(rows: &DataFrame, category: &str, series: &str, value: &str) -> PolarsResult<(Vec<String>, Vec<Series>)> {
    let cats = strings(rows, category)?;
    let keys = strings(rows, series)?;
    let values = floats(rows, value)?;
    let mut categories: Vec<String> = Vec::new();
    for c in &cats {
        if !categories.contains(c) {
            categories.push(c.clone());
        }
    }
    let mut names: Vec<String> = keys.clone();
    names.sort();
    names.dedup();
    let mut out: Vec<Series> =
        names.iter().map(|n| Series { name: n.clone(), values: vec![None; categories.len()] }).collect();
    for ((c, k), v) in cats.iter().zip(&keys).zip(values) {
        // Both lists were built from these very rows just above: every row finds its places.
        if let (Some(ci), Some(si)) = (categories.iter().position(|x| x == c), names.iter().position(|x| x == k)) {
            out[si].values[ci] = v;
        }
    }
    Ok((categories, out))
}

fn strings(rows: &DataFrame, name: &str) -> PolarsResult<Vec<String>> {
    let column = rows.column(name)?;
    Ok((0..rows.height()).map(|i| column.get(i).map(|v| text(&v)).unwrap_or_default()).collect())
}

fn floats(rows: &DataFrame, name: &str) -> PolarsResult<Vec<Option<f64>>> {
    let column = rows.column(name)?.cast(&DataType::Float64)?;
    Ok(column.f64()?.iter().collect())
}

/// A value as the report prints it: floats with two decimals, nulls empty.
fn text(value: &AnyValue) -> String {
    match value {
        AnyValue::Null => String::new(),
        AnyValue::Float64(f) => format!("{f:.2}"),
        AnyValue::Float32(f) => format!("{f:.2}"),
        other => other.get_str().map_or_else(|| other.to_string(), str::to_string),
    }
}

fn html_table(panel: &str, rows: &DataFrame) -> String {
    let mut out = format!("<table data-panel=\"{panel}\"><thead><tr>");
    for column in rows.columns() {
        let _ = write!(out, "<th>{}</th>", escape(column.name()));
    }
    out.push_str("</tr></thead><tbody>");
    for i in 0..rows.height().min(LISTED_ROWS) {
        out.push_str("<tr>");
        for column in rows.columns() {
            let cell = column.get(i).map(|v| text(&v)).unwrap_or_default();
            let _ = write!(out, "<td>{}</td>", escape(&cell));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    if rows.height() > LISTED_ROWS {
        let _ = write!(
            out,
            "<p class=\"more\">and {} more rows (the query lists them all)</p>",
            rows.height() - LISTED_ROWS
        );
    }
    out
}

/// Hours since each table's last commit, and each table's version.
fn state_charts(tables: &[TableState], now_ms: i64) -> (Chart, Chart) {
    let categories: Vec<String> = tables.iter().map(|t| t.table.clone()).collect();
    let hours = tables.iter().map(|t| t.committed_ms.map(|c| (now_ms - c).max(0) as f64 / 3_600_000.0)).collect();
    let versions = tables.iter().map(|t| Some(t.version as f64)).collect();
    (
        Chart {
            title: "Hours since the last commit, per table".into(),
            plot: Plot::Bars {
                categories: categories.clone(),
                series: vec![Series { name: "hours".into(), values: hours }],
                y_desc: "hours".into(),
            },
        },
        Chart {
            title: "Table versions".into(),
            plot: Plot::Bars {
                categories,
                series: vec![Series { name: "version".into(), values: versions }],
                y_desc: "version".into(),
            },
        },
    )
}

fn state_table(tables: &[TableState], now_ms: i64) -> String {
    let mut out = String::from(
        "<table data-panel=\"tables\"><thead><tr><th>table</th><th>version</th><th>rows</th>\
         <th>last commit (UTC)</th><th>hours since</th></tr></thead><tbody>",
    );
    for t in tables {
        let (when, since) = match t.committed_ms {
            Some(c) => (utc(c), format!("{:.2}", (now_ms - c).max(0) as f64 / 3_600_000.0)),
            None => (String::new(), String::new()),
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{when}</td><td>{since}</td></tr>",
            escape(&t.table),
            t.version,
            t.rows
        );
    }
    out.push_str("</tbody></table>");
    out
}

fn utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| ms.to_string(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

/// Text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:sans-serif;margin:24px;color:#222;max-width:1100px}\
h2{margin-top:36px;border-bottom:1px solid #ddd}figure{margin:8px 0}\
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ddd;padding:2px 8px;text-align:right}\
th{background:#f4f4f4}.meta{color:#666}pre{white-space:pre-wrap;background:#f7f7f7;padding:8px}";

/// Marks the page with how many charts the browser laid out with drawn shapes: a headless
/// browser's DOM dump shows it (`<body data-charts="9/9">`).
const SCRIPT: &str = "(function(){var s=document.querySelectorAll('figure svg'),n=0;\
for(var i=0;i<s.length;i++){var b=s[i].getBBox();\
if(b.width>0&&b.height>0&&s[i].querySelectorAll('rect,polyline,path,circle,line,text').length>3)n++;}\
document.body.setAttribute('data-charts',n+'/'+s.length);})();";

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails loudly on any unexpected error
mod tests {
    use super::*;

    fn inputs() -> Inputs {
        let bpm = df!(
            "age" => ["18-25", "18-25", "26-35"],
            "gender" => ["female", "male", "female"],
            "avg_bpm" => [121.456, 118.0, 130.0],
            "sessions" => [3i64, 2, 1],
        )
        .unwrap();
        let days = df!(
            "date" => ["2023-03-14", "2023-03-14", "2023-03-15"],
            "gym" => [1i64, 2, 1],
            "visits" => [2i64, 1, 1],
            "sessions" => [3i64, 1, 2],
            "minutes_exercising" => [90.5, 30.0, 61.0],
        )
        .unwrap();
        let visits = df!(
            "mac_address" => ["a", "b"], "gym" => [1i64, 2], "login" => ["2023-03-14 08:00:00", "2023-03-14 09:00:00"],
            "minutes_in_gym" => [120.0, 45.0], "minutes_exercising" => [90.5, 30.0],
        )
        .unwrap();
        let quarantine = df!("table" => ["kafka_multiplex_bz"], "records" => [4u32]).unwrap();
        let expectations = df!("table" => Vec::<String>::new(), "rows_failed" => Vec::<i64>::new(),
            "failed_checks" => Vec::<i64>::new(), "checks" => Vec::<u32>::new())
        .unwrap();
        Inputs {
            results: vec![bpm, days, visits, quarantine, expectations],
            tables: vec![
                TableState {
                    table: "gold.gym_summary".into(),
                    version: 3,
                    rows: 4,
                    committed_ms: Some(1_678_780_800_000),
                },
                TableState { table: "bronze.<x>".into(), version: 0, rows: 0, committed_ms: None },
            ],
            now_ms: 1_678_788_000_000,
            lakehouse: "/tmp/lake".into(),
        }
    }

    #[test]
    fn every_panel_has_a_chart_and_its_rows() {
        let report = build(&inputs()).unwrap();
        let ids: Vec<&str> = report.charts.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "bpm_by_age_gender",
                "gym_days_sessions",
                "gym_days_minutes",
                "gym_vs_exercise",
                "quarantine",
                "expectations",
                "freshness",
                "versions"
            ]
        );
        let html = &report.html;
        assert_eq!(html.matches("<svg").count(), 8);
        assert!(html.contains("<td>121.46</td>"), "floats print with two decimals");
        assert!(html.contains("<td>bronze.&lt;x&gt;</td>"), "text is escaped");
        assert!(html.contains("<td>2.00</td>"), "two hours since gym_summary's commit");
        for fetch in ["src=\"http", "href=\"http", "url(http", "@import"] {
            assert!(!html.contains(fetch), "nothing from a network: {fetch}");
        }
        // The pivot: one series per gender, a value per age band.
        let Plot::Bars { categories, series, .. } = &report.charts[0].1.plot else { panic!() };
        assert_eq!(categories, &["18-25", "26-35"]);
        assert_eq!(series[1], Series { name: "male".into(), values: vec![Some(118.0), None] });
        assert!(report.charts[5].1.is_empty(), "no expectation failed: the chart says no rows");
    }

    #[test]
    fn charts_draw_as_svg_and_png() {
        let report = build(&inputs()).unwrap();
        for (id, chart) in &report.charts {
            let svg = chart.svg().unwrap();
            assert!(svg.contains(&chart.title), "{id}: title drawn");
            let png = chart.png().unwrap();
            assert_eq!(&png[1..4], b"PNG", "{id}");
            let decoder = png::Decoder::new(std::io::Cursor::new(png));
            let mut reader = decoder.read_info().unwrap();
            let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
            reader.next_frame(&mut pixels).unwrap();
            let dark = pixels.chunks(3).filter(|p| p.iter().all(|&c| c < 100)).count();
            assert!(dark > 200, "{id}: text and axes drawn ({dark} dark pixels)");
        }
    }

    #[test]
    fn inputs_must_match_the_panels() {
        let mut wrong = inputs();
        wrong.results.pop();
        assert!(build(&wrong).unwrap_err().to_string().contains("4 query results for 5 panels"));
        let mut wrong = inputs();
        wrong.results[0] = df!("age" => ["x"]).unwrap();
        assert!(build(&wrong).unwrap_err().to_string().starts_with("panel bpm_by_age_gender:"));
    }
}
