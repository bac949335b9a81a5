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
