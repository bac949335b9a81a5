//! Messy, late and hostile landing input: every case quarantines the record it is in (with a
//! reason naming the field and value) or keeps it with an optional field read as null, and
//! never stops the parser. Then a property suite: 10,000 mutated files per parser, no panic,
//! every line in exactly one of {rows, quarantine}.

use fitlake_landing::csv::{parse_gym_logins, parse_registered_users};
use fitlake_landing::multiplex::parse_kafka_multiplex;
use fitlake_landing::value::decode_user_info;
use fitlake_landing::{Parsed, ReadOptions, TimeWindow};
use proptest::prelude::*;

const USERS_HEADER: &str = "user_id,device_id,mac_address,registration_timestamp";
const LOGINS_HEADER: &str = "mac_address,gym,login,logout";

fn options() -> ReadOptions {
    ReadOptions::default()
}

fn reasons(parsed: &Parsed) -> Vec<(u64, String)> {
    parsed.quarantined.iter().map(|q| (q.line, q.reason.clone())).collect()
}

fn bpm(time: &str, timestamp: &str) -> String {
    format!(
        r#"{{"key":"7","value":"{{\"device_id\": 7, \"time\": {time}, \"heartrate\": 70.0}}","topic":"bpm","partition":0,"offset":1,"timestamp":{timestamp}}}"#
    )
}

#[test]
fn a_login_far_outside_the_window_is_quarantined_not_a_crash_later() {
    let text = format!("{LOGINS_HEADER}\n4c:c5:9f:cb:13:bd,5,-9000000000000,9000000000000\nab,5,1678521600,\n");
    let parsed = parse_gym_logins(text.as_bytes(), "g.csv", &options()).expect("parse");
    assert_eq!(parsed.rows.height(), 1);
    assert_eq!(
        reasons(&parsed),
        [(2, "login: -9000000000000 is outside the plausible window 2000-01-01 to 2100-01-01".to_string())]
    );
}

#[test]
fn envelope_timestamps_outside_the_window_say_which_unit_they_look_like() {
    let lines = [
        bpm("1678521900", "9000000000000000"),
        bpm("1678521900", "1678521900000000"),
        bpm("1678521900000", "1678521900000"),
        bpm("1678521900", "1678521900000"),
    ];
    let parsed = parse_kafka_multiplex(lines.join("\n").as_bytes(), "m.json", &options()).expect("parse");
    assert_eq!(parsed.rows.height(), 1, "only the last line is plausible");
    let reasons = reasons(&parsed);
    assert_eq!(
        reasons[0],
        (1, "timestamp: 9000000000000000 is outside the plausible window 2000-01-01 to 2100-01-01".into())
    );
    assert_eq!(
        reasons[1],
        (2, "timestamp: 1678521900000000 is outside the plausible window 2000-01-01 to 2100-01-01 (looks like microseconds)".into())
    );
    assert_eq!(
        reasons[2],
        (3, "value.time: 1678521900000 is outside the plausible window 2000-01-01 to 2100-01-01 (looks like milliseconds)".into())
    );
}

#[test]
fn the_window_is_configurable() {
    let narrow = ReadOptions {
        window: TimeWindow::between(
            chrono::NaiveDate::from_ymd_opt(2023, 3, 12).expect("date"),
            chrono::NaiveDate::from_ymd_opt(2023, 3, 13).expect("date"),
        )
        .expect("window"),
        ..options()
    };
    let text = format!("{USERS_HEADER}\n1,10,aa,1678451168\n2,20,bb,1678608000\n");
    let parsed = parse_registered_users(text.as_bytes(), "u.csv", &narrow).expect("parse");
    assert_eq!(parsed.rows.height(), 1);
    assert!(parsed.quarantined[0].reason.contains("outside the plausible window 2023-03-12 to 2023-03-13"));
}

#[test]
fn a_byte_order_mark_crlf_and_rfc4180_quoting_are_read() {
    let text =
        format!("\u{feff}{USERS_HEADER}\r\n\"1\",10,\"aa:bb\",1678451168\r\n2,20,\"c,\"\"d\"\"\",1678451169\r\n");
    let parsed = parse_registered_users(text.as_bytes(), "u.csv", &options()).expect("parse");
    assert!(parsed.quarantined.is_empty(), "{:?}", parsed.quarantined);
    let macs: Vec<Option<&str>> = parsed.rows.column("mac_address").expect("mac").str().expect("str").iter().collect();
    assert_eq!(macs, [Some("aa:bb"), Some("c,\"d\"")]);
    let json = format!("\u{feff}{}\n", bpm("1678521900", "1678521900000"));
    let parsed = parse_kafka_multiplex(json.as_bytes(), "m.json", &options()).expect("parse");
    assert_eq!((parsed.rows.height(), parsed.quarantined.len()), (1, 0));
}

#[test]
fn invalid_utf8_quarantines_its_line_only() {
    let mut csv = format!("{LOGINS_HEADER}\nab,5,1678521600,\n").into_bytes();
    csv.extend_from_slice(b"c\xff\xfed,5,1678521600,\nef,5,1678521601,\n");
    let parsed = parse_gym_logins(&csv, "g.csv", &options()).expect("parse");
    assert_eq!(parsed.rows.height(), 2);
    assert_eq!(parsed.quarantined.len(), 1);
    assert_eq!(parsed.quarantined[0].line, 3);
    assert!(parsed.quarantined[0].reason.contains("not valid UTF-8"), "{}", parsed.quarantined[0].reason);
    let mut json = bpm("1678521900", "1678521900000").into_bytes();
    json.extend_from_slice(b"\n{\"key\":\"\xc3\x28\"}\n");
    json.extend_from_slice(bpm("1678521901", "1678521901000").as_bytes());
    let parsed = parse_kafka_multiplex(&json, "m.json", &options()).expect("parse");
    assert_eq!((parsed.rows.height(), parsed.quarantined.len()), (2, 1));
    assert_eq!(parsed.quarantined[0].line, 2);
}

#[test]
fn an_overlong_line_is_cut_to_a_prefix_with_its_length_and_digest() {
    let small = ReadOptions { max_line_bytes: 200, ..options() };
    let long = format!(r#"{{"key":"{}"}}"#, "x".repeat(5000));
    let text = format!("{long}\n{}\n", bpm("1678521900", "1678521900000"));
    let parsed = parse_kafka_multiplex(text.as_bytes(), "m.json", &small).expect("parse");
    assert_eq!((parsed.rows.height(), parsed.quarantined.len()), (1, 1));
    let q = &parsed.quarantined[0];
    assert_eq!(q.raw.len(), fitlake_landing::quarantine::RAW_PREFIX_BYTES);
    assert!(q.reason.starts_with("line of 5010 bytes is over the limit of 200 bytes (sha256 "), "{}", q.reason);
    let csv = format!("{USERS_HEADER}\n1,10,{},1678451168\n2,20,bb,1678451169\n", "m".repeat(300));
    let parsed = parse_registered_users(csv.as_bytes(), "u.csv", &small).expect("parse");
    assert_eq!((parsed.rows.height(), parsed.quarantined.len()), (1, 1));
    assert!(parsed.quarantined[0].reason.starts_with("record of 316 bytes"), "{}", parsed.quarantined[0].reason);
}

#[test]
fn a_bad_optional_profile_field_is_null_and_named_the_rest_is_kept() {
    let window = TimeWindow::default();
    let info = decode_user_info(
        r#"{"user_id": 1, "update_type": "update", "timestamp": 1678451168, "dob": "99/99/9999", "gender": 5,
            "first_name": "Ann", "address": {"city": "Boston", "zip": "02134"}}"#,
        &window,
    )
    .expect("kept");
    assert_eq!((info.dob, info.gender.as_deref(), info.first_name.as_deref()), (None, None, Some("Ann")));
    assert_eq!((info.city.as_deref(), info.zip), (Some("Boston"), Some(2134)));
    assert_eq!(info.unusable, ["value.dob", "value.gender"]);
    let info = decode_user_info(
        r#"{"user_id": 1, "update_type": "new", "timestamp": 1678451168, "dob": "07/25/1939", "address": "none", "zip": 1}"#,
        &window,
    )
    .expect("kept");
    assert_eq!(info.unusable, ["value.address"]);
    // The user, the change type and its time are what the change means: those quarantine.
    for bad in [
        r#"{"user_id": "x", "update_type": "new", "timestamp": 1678451168}"#,
        r#"{"user_id": 1, "update_type": "rename", "timestamp": 1678451168}"#,
        r#"{"user_id": 1, "update_type": "new", "timestamp": 1678451168000}"#,
    ] {
        assert!(decode_user_info(bad, &window).is_err(), "{bad}");
    }
}

/// One seed line, mutated as real feeds break: byte flips, truncation, a field's type or value
/// swapped for another, extreme numbers, invalid UTF-8, a very long line.
fn mutated(line: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let extremes = prop::sample::select(vec![
        "-9000000000000",
        "9000000000000000",
        "1e400",
        "NaN",
        "\"\"",
        "null",
        "[]",
        "{}",
        "\"99/99/9999\"",
        "1678521900000",
        "-0",
        "18446744073709551616",
        "\"\u{feff}\"",
    ]);
    (0usize..8, any::<prop::sample::Index>(), any::<u8>(), extremes, 1usize..40).prop_map(
        move |(kind, at, byte, extreme, repeat)| {
            let mut bytes = line.as_bytes().to_vec();
            let i = at.index(bytes.len().max(1)).min(bytes.len().saturating_sub(1));
            match kind {
                0 => bytes[i] = byte,
                1 => bytes.truncate(i),
                2 => {
                    // Replace the number or word at `i` with an extreme value.
                    let start = bytes[..i].iter().rposition(|b| b" :,{[".contains(b)).map_or(0, |p| p + 1);
                    let end = bytes[i..].iter().position(|b| b" ,}]\\".contains(b)).map_or(bytes.len(), |p| i + p);
                    bytes.splice(start..end.max(start), extreme.bytes()).for_each(drop);
                }
                3 => bytes.insert(i, 0xff),
                4 => bytes.splice(i..i, std::iter::repeat_n(b'9', repeat * 100)).for_each(drop),
                5 => bytes.splice(i..i, b"\xef\xbb\xbf".iter().copied()).for_each(drop),
                6 => bytes.splice(i..i, b"\"".iter().copied()).for_each(drop),
                _ => {}
            }
            bytes
        },
    )
}

/// A file of mutated seed lines (after `header`, when given).
fn file_of(lines: Vec<&'static str>, header: Option<&'static str>) -> impl Strategy<Value = (Vec<u8>, usize)> {
    prop::collection::vec(prop::sample::select(lines).prop_flat_map(mutated), 1..8).prop_map(move |lines| {
        let mut out = header.map(|h| format!("{h}\n").into_bytes()).unwrap_or_default();
        let mut count = 0;
        for line in lines {
            // A CSV reader ends a record at CR, LF or CRLF; the multiplex at LF (CR before it
            // is dropped).
            let normalized: Vec<u8> = match header {
                Some(_) => String::from_utf8_lossy(&line).replace("\r\n", "\n").replace('\r', "\n").into_bytes(),
                None => line.clone(),
            };
            count += normalized.split(|&b| b == b'\n').filter(|l| !l.trim_ascii().is_empty()).count();
            out.extend_from_slice(&line);
            out.push(b'\n');
        }
        (out, count)
    })
}

fn seed_lines(text: &'static str, skip_header: bool) -> Vec<&'static str> {
    text.lines().skip(usize::from(skip_header)).filter(|l| !l.trim().is_empty()).collect()
}

fn small() -> ReadOptions {
    // A small line limit so that the long-line mutation is exercised too.
    ReadOptions { max_line_bytes: 2000, ..ReadOptions::default() }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn multiplex_lines_end_in_rows_or_quarantine((text, lines) in file_of(
        fitlake_landing::seed::SEED_SETS.iter().flat_map(|s| seed_lines(s.user_info.1, false).into_iter().chain(seed_lines(s.workouts.1, false))).collect(),
        None,
    )) {
        let parsed = parse_kafka_multiplex(&text, "m.json", &small()).expect("a bad record is never an error");
        prop_assert_eq!(parsed.rows.height() + parsed.quarantined.len(), lines);
        prop_assert!(parsed.quarantined.iter().all(|q| !q.reason.is_empty() && q.line >= 1));
    }

    #[test]
    fn registration_records_end_in_rows_or_quarantine((text, lines) in file_of(
        fitlake_landing::seed::SEED_SETS.iter().flat_map(|s| seed_lines(s.registered_users.1, true)).collect(),
        Some(USERS_HEADER),
    )) {
        let parsed = parse_registered_users(&text, "u.csv", &small()).expect("a bad record is never an error");
        check_csv(&parsed, &text, lines)?;
    }

    #[test]
    fn gym_login_records_end_in_rows_or_quarantine((text, lines) in file_of(
        fitlake_landing::seed::SEED_SETS.iter().flat_map(|s| seed_lines(s.gym_logins.1, true)).collect(),
        Some(LOGINS_HEADER),
    )) {
        let parsed = parse_gym_logins(&text, "g.csv", &small()).expect("a bad record is never an error");
        check_csv(&parsed, &text, lines)?;
    }
}

/// Every CSV line is in exactly one record: without a quote character, one line is one record;
/// an RFC 4180 quote may join lines into one record, never split or drop one.
fn check_csv(parsed: &Parsed, text: &[u8], lines: usize) -> std::result::Result<(), TestCaseError> {
    let records = parsed.rows.height() + parsed.quarantined.len();
    if text.contains(&b'"') {
        prop_assert!(records <= lines, "{records} records from {lines} lines");
        prop_assert!(records >= 1 || lines == 0);
    } else {
        prop_assert_eq!(records, lines);
    }
    prop_assert!(parsed.quarantined.iter().all(|q| !q.reason.is_empty() && q.line >= 1));
    // Every time that reached the rows lies in the window.
    let window = TimeWindow::default();
    for name in ["registration_timestamp", "login", "logout"] {
        if let Ok(times) = parsed.rows.column(name).and_then(|c| c.datetime().cloned()) {
            prop_assert!(times.physical().iter().flatten().all(|t| window.contains(t)));
        }
    }
    Ok(())
}

/// A file of mutated lines as text (the calendar parser and the HTTP API take text: invalid
/// UTF-8 never reaches them), with the number of non-blank lines.
fn text_of(lines: Vec<&'static str>) -> impl Strategy<Value = (String, usize)> {
    file_of(lines, None).prop_map(|(bytes, _)| {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let count = text.split('\n').filter(|l| !l.strip_suffix('\r').unwrap_or(l).trim().is_empty()).count();
        (text, count)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn calendar_lines_end_in_days_or_quarantine((text, lines) in text_of(
        fitlake_landing::seed::SEED_DATE_LOOKUP.lines().take(40).collect(),
    )) {
        let parsed = fitlake_landing::calendar::parse_date_lookup(&text, "6-date-lookup.json");
        prop_assert_eq!(parsed.days.len() + parsed.quarantined.len(), lines);
    }

    #[test]
    fn http_records_are_accepted_or_rejected_with_a_reason((text, lines) in text_of(vec![
        r#"{"device_id": 7, "time": 1678521900.5, "heartrate": 70.0}"#,
        r#"{"device_id": 8, "time": "2023-03-11T08:45:00Z", "heartrate": -1}"#,
    ])) {
        let out = fitlake_landing::device_events::envelopes("bpm", &text, 0, 1_678_521_900_000);
        prop_assert!(out.rejected.iter().all(|(_, reason)| !reason.is_empty()));
        if !text.trim_start().starts_with('[') {
            prop_assert_eq!(out.accepted + out.rejected.len(), lines);
        }
        // What was accepted parses back as envelopes, every one of them.
        let back = parse_kafka_multiplex(out.ndjson.as_bytes(), "http.json", &ReadOptions::default()).expect("parse");
        prop_assert_eq!((back.rows.height(), back.quarantined.len()), (out.accepted, 0));
    }
}
