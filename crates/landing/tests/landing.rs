//! Landing schemas on small, messy inputs.

use chrono::NaiveDate;
use fitlake_frame::to_text;
use fitlake_landing::calendar::{calendar_frame, generate_calendar, parse_date_lookup};
use fitlake_landing::csv::{parse_gym_logins, parse_registered_users};
use fitlake_landing::multiplex::parse_kafka_multiplex;
use fitlake_landing::synthetic::{generate, interleave_by_time, write_bpm_envelopes, Synthetic, Visit};
use fitlake_landing::Quarantined;
use fitlake_landing::ReadOptions;

/// A bundled seed file by name.
fn seed(name: &str) -> String {
    let files = fitlake_landing::seed::SEED_SETS
        .iter()
        .flat_map(|s| [s.registered_users, s.user_info, s.workouts, s.gym_logins]);
    let mut all = files.chain([("6-date-lookup.json", fitlake_landing::seed::SEED_DATE_LOOKUP)]);
    all.find(|(n, _)| *n == name).map(|(_, text)| text.to_string()).expect("seed file")
}

fn quarantine_text(q: &[Quarantined]) -> String {
    q.iter().map(|q| format!("{}:{}: {} <- {}\n", q.source_file, q.line, q.reason, q.raw)).collect()
}

#[test]
fn generated_calendar_equals_the_seed_calendar() {
    let fitlake_landing::calendar::ParsedCalendar { days: seeded, quarantined: bad } =
        parse_date_lookup(&seed("6-date-lookup.json"), "6-date-lookup.json");
    assert!(bad.is_empty());
    assert_eq!(seeded.len(), 365);
    let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).expect("date");
    let generated = generate_calendar(d(2023, 1, 1), d(2023, 12, 31)).expect("calendar");
    assert_eq!(generated, seeded);
    // Beyond the seed: 2024 starts on a Monday, so its first week has six days.
    let next = generate_calendar(d(2023, 12, 30), d(2024, 1, 8)).expect("calendar");
    insta::assert_snapshot!(to_text(&calendar_frame(&next).expect("frame")));
}

#[test]
fn registered_users_skip_blanks_and_quarantine_bad_rows() {
    let text = "user_id,device_id,mac_address,registration_timestamp\r\n\
                12474,118440,4c:c5:9f:cb:13:bd,1678451168\n\
                \n\
                12140,141687,ae:ec:f6:48:ca:f7,1678451529.25\n\
                oops,1,aa,1678451529\n\
                1,2,,1678451529\n\
                3,4,bb,2023-03-10 12:00:00\n";
    let parsed = parse_registered_users(text.as_bytes(), "users.csv", &ReadOptions::default()).expect("parse");
    insta::assert_snapshot!(format!("{}\n{}", to_text(&parsed.rows), quarantine_text(&parsed.quarantined)), @r#"
        user_id: i64,device_id: i64,mac_address: str,registration_timestamp: datetime[μs]
        12474,118440,4c:c5:9f:cb:13:bd,2023-03-10 12:26:08
        12140,141687,ae:ec:f6:48:ca:f7,2023-03-10 12:32:09.250
        3,4,bb,2023-03-10 12:00:00

        users.csv:5: user_id: "oops" is not an integer <- oops,1,aa,1678451529
        users.csv:6: mac_address is empty <- 1,2,,1678451529
    "#);
}

#[test]
fn gym_logins_accept_open_visits_and_refuse_backwards_ones() {
    let text = "login,logout,gym,mac_address\n1678521600,1678526100,5,4c:c5:9f:cb:13:bd\n1678522500,,1,ae:ec\n1678522500,1678520000,3,36:1f\n";
    let parsed = parse_gym_logins(text.as_bytes(), "logins.csv", &ReadOptions::default()).expect("parse");
    insta::assert_snapshot!(format!("{}\n{}", to_text(&parsed.rows), quarantine_text(&parsed.quarantined)), @r"
        mac_address: str,gym: i64,login: datetime[μs],logout: datetime[μs]
        4c:c5:9f:cb:13:bd,5,2023-03-11 08:00:00,2023-03-11 09:15:00
        ae:ec,1,2023-03-11 08:15:00,null

        logins.csv:4: logout is before login <- 1678522500,1678520000,3,36:1f
    ");
}

#[test]
fn a_header_without_a_required_column_quarantines_the_file() {
    let parsed = parse_gym_logins(b"mac,gym,login,logout\na,1,2,3\n", "f.csv", &ReadOptions::default()).expect("parse");
    assert_eq!(parsed.rows.height(), 0);
    assert_eq!(parsed.quarantined.len(), 2);
    assert!(parsed.quarantined[0].reason.contains("mac_address"));
}

#[test]
fn multiplex_seed_file_parses_with_seconds_timestamps() {
    for threads in [1, 2, 3] {
        let parsed = parse_kafka_multiplex(
            seed("2-user_info_1.json").as_bytes(),
            "2-user_info_1.json",
            &ReadOptions { threads, ..Default::default() },
        )
        .expect("parse");
        assert_eq!(parsed.rows.height(), 7, "threads {threads}");
        assert!(parsed.quarantined.is_empty());
        insta::allow_duplicates! {
            insta::assert_snapshot!(to_text(&parsed.rows.drop("value").expect("drop")), @r"
                key: str,topic: str,partition: i64,offset: i64,timestamp: datetime[μs],bpm_device_id: i64,bpm_time: datetime[μs],bpm_heartrate: f64
                12474,user_info,0,12791,2023-03-10 12:26:08,null,null,null
                12140,user_info,0,12755,2023-03-10 12:32:09,null,null,null
                12140,user_info,0,12850,2023-03-10 12:33:45,null,null,null
                13559,user_info,0,12760,2023-03-10 12:33:51,null,null,null
                13559,user_info,0,12841,2023-03-10 12:34:10,null,null,null
                11745,user_info,0,12816,2023-03-10 12:34:41,null,null,null
                12227,user_info,0,12820,2023-03-10 12:40:28,null,null,null
            ");
        }
    }
}

#[test]
fn multiplex_quarantines_with_line_numbers_on_any_thread_count() {
    let good = r#"{"key":"1","value":"{\"device_id\": 1, \"time\": 1678451170.5, \"heartrate\": 80}","topic":"bpm","partition":0,"offset":1,"timestamp":1678451170500}"#;
    let text = format!("{good}\n\n{{bad\n{good}\n{}\n\n", good.replace("bpm", "nope"));
    for threads in [1, 2, 4] {
        let parsed = parse_kafka_multiplex(text.as_bytes(), "m.json", &ReadOptions { threads, ..Default::default() })
            .expect("parse");
        assert_eq!(parsed.rows.height(), 2);
        insta::allow_duplicates! {
            insta::assert_snapshot!(quarantine_text(&parsed.quarantined), @r#"
                m.json:3: envelope: key must be a string at line 1 column 2 <- {bad
                m.json:5: unknown topic "nope"; expected one of user_info, workout, bpm <- {"key":"1","value":"{\"device_id\": 1, \"time\": 1678451170.5, \"heartrate\": 80}","topic":"nope","partition":0,"offset":1,"timestamp":1678451170500}
            "#);
        }
    }
}

#[test]
fn bpm_generation_is_deterministic_and_one_reading_per_second() {
    let visits = [Visit { device_id: 7, login: 1_678_524_000, logout: 1_678_524_060 }];
    let (mut a, mut b) = (String::new(), String::new());
    let next = write_bpm_envelopes(&visits, 1, 100, &mut a);
    write_bpm_envelopes(&visits, 1, 100, &mut b);
    assert_eq!(a, b);
    assert_eq!(next, 160);
    let parsed = parse_kafka_multiplex(a.as_bytes(), "bpm.json", &ReadOptions { threads: 2, ..Default::default() })
        .expect("parse");
    assert_eq!(parsed.rows.height(), 60);
    assert!(parsed.quarantined.is_empty());

    let options = Synthetic { users: 3, days: 2, seed: 9, start: NaiveDate::from_ymd_opt(2023, 3, 13).expect("date") };
    let set = generate(options).expect("generate");
    assert_eq!(set.visits.len(), 6);
    assert_eq!(generate(options).expect("generate").events_jsonl, set.events_jsonl);
    let events = parse_kafka_multiplex(
        set.events_jsonl.as_bytes(),
        "events.json",
        &ReadOptions { threads: 2, ..Default::default() },
    )
    .expect("parse");
    assert!(events.quarantined.is_empty(), "{:?}", events.quarantined);
    assert_eq!(
        parse_registered_users(set.registered_users_csv.as_bytes(), "u.csv", &ReadOptions::default())
            .expect("parse")
            .rows
            .height(),
        3
    );
    assert_eq!(
        parse_gym_logins(set.gym_logins_csv.as_bytes(), "g.csv", &ReadOptions::default()).expect("parse").rows.height(),
        6
    );
}

#[test]
fn interleave_by_time_merges_streams_in_event_time_order() {
    let events = "{\"key\":\"1\",\"topic\":\"workout\",\"timestamp\":2000}\n\n{\"key\":\"1\",\"topic\":\"workout\",\"timestamp\":5000}\n";
    let bpm = "{\"key\":\"9\",\"topic\":\"bpm\",\"timestamp\":1000}\n{\"key\":\"9\",\"topic\":\"bpm\",\"timestamp\":2000}\n{\"key\":\"9\",\"topic\":\"bpm\",\"timestamp\":6000}\n";
    let merged = interleave_by_time(&[events, bpm]);
    let order: Vec<&str> = merged.iter().map(|l| l.rsplit_once(':').map_or("", |(_, t)| t)).collect();
    assert_eq!(order, ["1000}", "2000}", "2000}", "5000}", "6000}"]);
    // Equal timestamps keep their input order: the workout event came first.
    assert!(merged[1].contains("workout") && merged[2].contains("bpm"));
}

#[test]
fn device_events_become_envelopes_and_bad_records_get_reasons() {
    use fitlake_landing::device_events::envelopes;
    let body = "{\"device_id\": 7, \"time\": 1678886400.123456789, \"heartrate\": 71.5}\n\n{\"device_id\": 7, \"time\": \"x\", \"heartrate\": 70}\n[1]\n{\"time\": 1678886401, \"heartrate\": 70}\n";
    let out = envelopes("bpm", body, 100, 1_678_886_402_000);
    assert_eq!(out.accepted, 1);
    assert_eq!(out.rejected.len(), 3, "{:?}", out.rejected);
    assert_eq!(out.rejected[1], (2, "a record must be a JSON object".to_string()));
    insta::assert_snapshot!(format!("{}{:?}", out.ndjson, out.rejected), @r#"
        {"key":"7","offset":100,"partition":0,"timestamp":1678886402000,"topic":"bpm","value":"{\"device_id\": 7, \"time\": 1678886400.123456789, \"heartrate\": 71.5}"}
        [(1, "value.time: \"x\" is neither epoch seconds nor an ISO-8601 time"), (2, "a record must be a JSON object"), (3, "value: missing field `device_id` at line 1 column 37")]
    "#);
    // The envelopes parse as a landing multiplex file.
    let parsed = fitlake_landing::multiplex::parse_kafka_multiplex(
        out.ndjson.as_bytes(),
        "http.json",
        &ReadOptions { threads: 1, ..Default::default() },
    )
    .expect("parse");
    assert_eq!((parsed.rows.height(), parsed.quarantined.len()), (1, 0));
    let array = envelopes(
        "workout",
        "[{\"user_id\": 3, \"workout_id\": 1, \"timestamp\": 1678886400, \"action\": \"start\", \"session_id\": 1}]",
        0,
        0,
    );
    assert_eq!((array.accepted, array.rejected.len()), (1, 0));
    assert!(array.ndjson.starts_with("{\"key\":\"3\""), "{}", array.ndjson);
}
