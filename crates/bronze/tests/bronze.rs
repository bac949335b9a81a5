//! Bronze transforms on small frames, snapshotted.

use fitlake_frame::to_text;
use fitlake_landing::calendar::{calendar_frame, generate_calendar};
use fitlake_landing::multiplex::parse_kafka_multiplex;

#[test]
fn multiplex_rows_get_date_and_week_part_even_past_the_calendar() {
    let text = concat!(
        r#"{"key":"1","value":"{\"device_id\": 1, \"time\": 1678451170, \"heartrate\": 80}","topic":"bpm","partition":0,"offset":1,"timestamp":1678451170123}"#,
        "\n",
        r#"{"key":null,"value":"{\"device_id\": 1, \"time\": 1704067199, \"heartrate\": 80}","topic":"bpm","partition":1,"offset":2,"timestamp":1704067199}"#,
        "\n",
        r#"{"key":"2","value":"{\"device_id\": 1, \"time\": 1704067200, \"heartrate\": 80}","topic":"bpm","partition":1,"offset":3,"timestamp":1704067200000}"#,
        "\n",
    );
    let envelopes = parse_kafka_multiplex(text.as_bytes(), "m.json", &Default::default()).expect("parse").rows;
    let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
    // The loaded calendar covers 2023 only; 2024-01-01 comes from the calendar rules.
    let lookup =
        calendar_frame(&generate_calendar(d("2023-01-01"), d("2023-12-31")).expect("calendar")).expect("frame");
    let rows =
        fitlake_bronze::kafka_multiplex_bz(&envelopes, &lookup, 1_700_000_000_000_000, "m.json").expect("bronze");
    insta::assert_snapshot!(to_text(&rows.drop("value").expect("drop")), @r"
        key: str,topic: str,partition: i64,offset: i64,timestamp: datetime[μs],bpm_device_id: i64,bpm_time: datetime[μs],bpm_heartrate: f64,date: date,week_part: str,load_time: datetime[μs],source_file: str
        1,bpm,0,1,2023-03-10 12:26:10.123,1,2023-03-10 12:26:10,80.0,2023-03-10,2023-10,2023-11-14 22:13:20,m.json
        null,bpm,1,2,2023-12-31 23:59:59,1,2023-12-31 23:59:59,80.0,2023-12-31,2023-53,2023-11-14 22:13:20,m.json
        2,bpm,1,3,2024-01-01 00:00:00,1,2024-01-01 00:00:00,80.0,2024-01-01,2024-1,2023-11-14 22:13:20,m.json
    ");
}

#[test]
fn multiplex_rows_keep_the_chunks_they_were_parsed_in() {
    // Two parser threads give two chunks; a join (or any step that made one chunk of them)
    // would have the writer copy every column, the raw payloads included, to align them.
    let line = r#"{"key":"1","value":"{\"device_id\": 1, \"time\": 1678451170, \"heartrate\": 80}","topic":"bpm","partition":0,"offset":1,"timestamp":1678451170123}"#;
    let text = format!("{line}\n").repeat(1000);
    let options = fitlake_landing::ReadOptions { threads: 2, ..Default::default() };
    let envelopes = parse_kafka_multiplex(text.as_bytes(), "m.json", &options).expect("parse").rows;
    let parsed: Vec<usize> =
        envelopes.column("value").expect("value").as_materialized_series().chunk_lengths().collect();
    assert_eq!(parsed.len(), 2, "{parsed:?}");
    let rows = fitlake_bronze::kafka_multiplex_bz(&envelopes, &calendar_frame(&[]).expect("frame"), 0, "m.json")
        .expect("bronze");
    for column in rows.columns() {
        let chunks: Vec<usize> = column.as_materialized_series().chunk_lengths().collect();
        assert_eq!(chunks, parsed, "{}", column.name());
    }
}

proptest::proptest! {
    /// Whatever the days' order and the chunks, each row's week is its date's: from the loaded
    /// calendar (March 2023 here) or, past it, from the calendar rules.
    #[test]
    fn each_row_gets_the_week_of_its_own_date(
        days in proptest::collection::vec(0i64..60, 1..200),
        runs in proptest::collection::vec(1usize..40, 1..8),
        threads in 1usize..4,
    ) {
        let fail = |e: &dyn std::fmt::Display| proptest::test_runner::TestCaseError::fail(e.to_string());
        // 2023-03-01 00:00:00 UTC, then a day and some seconds per step; runs of repeated days.
        let mut text = String::new();
        let mut dates = Vec::new();
        for (i, day) in days.iter().enumerate() {
            for _ in 0..runs[i % runs.len()] {
                let ms = (1_677_628_800 + day * 86_400 + (i as i64 * 7_919) % 86_400) * 1000;
                text.push_str(&format!(r#"{{"key":"1","value":"{{\"device_id\": 1, \"time\": {}, \"heartrate\": 80}}","topic":"bpm","partition":0,"offset":{i},"timestamp":{ms}}}"#, ms / 1000));
                text.push('\n');
                dates.push(chrono::DateTime::from_timestamp_millis(ms).ok_or_else(|| fail(&"ms"))?.date_naive());
            }
        }
        let options = fitlake_landing::ReadOptions { threads, ..Default::default() };
        let envelopes = parse_kafka_multiplex(text.as_bytes(), "m.json", &options).map_err(|e| fail(&e))?.rows;
        let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|e| fail(&e));
        let calendar = generate_calendar(d("2023-03-01")?, d("2023-03-31")?).map_err(|e| fail(&e))?;
        let lookup = calendar_frame(&calendar).map_err(|e| fail(&e))?;
        let rows = fitlake_bronze::kafka_multiplex_bz(&envelopes, &lookup, 0, "m.json").map_err(|e| fail(&e))?;
        let weeks: Vec<Option<String>> =
            rows.column("week_part").map_err(|e| fail(&e))?.str().map_err(|e| fail(&e))?.iter().map(|w| w.map(str::to_string)).collect();
        let expected: Vec<Option<String>> =
            dates.iter().map(|date| Some(fitlake_landing::calendar::CalendarDay::of(*date).week_part)).collect();
        proptest::prop_assert_eq!(weeks, expected);
    }
}
