//! Messy, late and hostile input through the real pipeline (issue 11): mutated records next
//! to clean data, CDC out of order across runs, conflicting duplicates in separate files and
//! runs, a byte-order mark, and times far out of range. A fault in the data is a quarantine
//! row, never a failed run, and never changes the clean data's tables.

use std::collections::BTreeMap;

use polars::prelude::*;

use crate::harness::{assert_same_tables, Lake};

/// Keys at or above this belong to the mutated (foreign) records; the seed's are below.
const FOREIGN: i64 = 100_000_000;

/// A small deterministic generator (the test must be reproducible without a seed file).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A seed line with every id and MAC made foreign, so that whatever survives a mutation cannot
/// touch the clean data's keys.
fn foreign(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 16);
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        // Ids of 4 to 6 digits (users, devices) become 9-digit foreign ids.
        if (4..=6).contains(&digits.len()) {
            out.push_str(&(FOREIGN + digits.parse::<i64>().unwrap_or(0)).to_string());
        } else {
            out.push_str(digits);
        }
        digits.clear();
    };
    let mut previous = ' ';
    for c in line.chars() {
        if c.is_ascii_digit() && (previous != '.' || !digits.is_empty()) {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out);
            out.push(c);
        }
        previous = c;
    }
    flush(&mut digits, &mut out);
    // MAC addresses (`4c:c5:9f:cb:13:bd`) start with `ff:ff:` instead.
    match out.find(':') {
        Some(i) if i >= 2 && out.as_bytes().get(i + 3) == Some(&b':') => {
            let start = i - 2;
            format!("{}ff:ff{}", &out[..start], &out[start + 5..])
        }
        _ => out,
    }
}

/// One mutation of a line, as real feeds break (no quote characters, so each line stays one
/// CSV record): a byte flipped, the line cut, a number made extreme, invalid UTF-8, a BOM in
/// the middle, a very long line, or nothing.
fn mutate(line: &str, rng: &mut Lcg) -> Vec<u8> {
    let mut bytes = line.as_bytes().to_vec();
    let at = rng.below(bytes.len());
    match rng.below(7) {
        0 => {
            let byte = loop {
                let b = rng.next() as u8;
                if !b"\n\r\"".contains(&b) {
                    break b;
                }
            };
            bytes[at] = byte;
        }
        1 => bytes.truncate(at),
        2 => {
            let extreme = ["-9000000000000", "9000000000000000", "1678521900000", "1e400", "NaN", "null", "[]"];
            let start = bytes[..at].iter().rposition(|b| b" :,{".contains(b)).map_or(0, |p| p + 1);
            let end = bytes[at..].iter().position(|b| b" ,}\\".contains(b)).map_or(bytes.len(), |p| at + p);
            bytes.splice(start..end.max(start), extreme[rng.below(extreme.len())].bytes()).for_each(drop);
        }
        3 => bytes.insert(at, 0xff),
        4 => bytes.splice(at..at, b"\xef\xbb\xbf".iter().copied()).for_each(drop),
        5 => bytes.splice(at..at, std::iter::repeat_n(b'7', 3000)).for_each(drop),
        _ => {}
    }
    bytes
}

/// Lands `count` mutated foreign copies of `lines` as `file` (after `header`), and returns the
/// number of non-blank record lines landed.
fn land_mutated(
    lake: &Lake,
    source: &str,
    file: &str,
    header: Option<&str>,
    lines: &[&str],
    count: usize,
    rng: &mut Lcg,
) -> usize {
    let mut out = header.map(|h| format!("{h}\n").into_bytes()).unwrap_or_default();
    let mut records = 0;
    for _ in 0..count {
        let line = mutate(&foreign(lines[rng.below(lines.len())]), rng);
        if !line.trim_ascii().is_empty() {
            records += 1;
        }
        out.extend_from_slice(&line);
        out.push(b'\n');
    }
    std::fs::write(lake.landing(source).join(file), out).expect("land");
    records
}

/// Every silver and gold table of `lake`; with `clean_keys`, only the rows whose key is in
/// that lake's table (the mutated records may add rows under their own, foreign, keys, but
/// must not change or remove a clean row).
fn silver_and_gold(lake: &Lake, clean_keys: Option<&BTreeMap<String, DataFrame>>) -> BTreeMap<String, DataFrame> {
    fitlake_catalog::TableId::ALL
        .into_iter()
        .filter(|t| t.layer() != fitlake_config::Layer::Bronze)
        .map(|t| {
            let rows = lake.table(t.name());
            let rows = match clean_keys {
                Some(clean) => {
                    let keys: Vec<Expr> = t.def().keys.iter().map(|k| col(*k)).collect();
                    let args = JoinArgs { nulls_equal: true, ..JoinArgs::new(JoinType::Semi) };
                    rows.lazy()
                        .join(clean[t.name()].clone().lazy(), keys.clone(), keys, args)
                        .collect()
                        .expect("semi join")
                }
                None => rows,
            };
            (t.name().to_string(), rows)
        })
        .collect()
}

/// Rows of `table` (bronze or quarantine) per source file.
fn rows_per_file(lake: &Lake, table: &str) -> BTreeMap<String, usize> {
    let df = lake.table(table);
    let files = df.column("source_file").expect("source_file").str().expect("str").clone();
    let mut out = BTreeMap::new();
    for file in files.iter().flatten() {
        *out.entry(file.to_string()).or_insert(0) += 1;
    }
    out
}

#[test]
fn mutated_records_next_to_clean_data_are_quarantined_and_change_nothing_clean() {
    let clean = Lake::new();
    let messy = Lake::new();
    for lake in [&clean, &messy] {
        lake.fitlake(&["setup"]);
        lake.fitlake(&["produce", "--set", "1"]);
    }
    let seed = fitlake_landing::seed::SEED_SETS;
    let lines = |text: &'static str, header: bool| -> Vec<&'static str> {
        text.lines().skip(usize::from(header)).filter(|l| !l.trim().is_empty()).collect()
    };
    let multiplex: Vec<&str> =
        seed.iter().flat_map(|s| lines(s.user_info.1, false).into_iter().chain(lines(s.workouts.1, false))).collect();
    let users: Vec<&str> = seed.iter().flat_map(|s| lines(s.registered_users.1, true)).collect();
    let logins: Vec<&str> = seed.iter().flat_map(|s| lines(s.gym_logins.1, true)).collect();
    let mut rng = Lcg(11);
    let landed = [
        (
            "kafka_multiplex_bz",
            "9-mutated.json",
            land_mutated(&messy, "kafka_multiplex_bz", "9-mutated.json", None, &multiplex, 600, &mut rng),
        ),
        (
            "registered_users_bz",
            "9-mutated-users.csv",
            land_mutated(
                &messy,
                "registered_users_bz",
                "9-mutated-users.csv",
                Some("user_id,device_id,mac_address,registration_timestamp"),
                &users,
                250,
                &mut rng,
            ),
        ),
        (
            "gym_logins_bz",
            "9-mutated-logins.csv",
            land_mutated(
                &messy,
                "gym_logins_bz",
                "9-mutated-logins.csv",
                Some("mac_address,gym,login,logout"),
                &logins,
                250,
                &mut rng,
            ),
        ),
    ];
    assert!(landed.iter().map(|l| l.2).sum::<usize>() >= 1000);
    for lake in [&clean, &messy] {
        lake.run_once();
    }
    let expected = silver_and_gold(&clean, None);
    assert_same_tables(&expected, &silver_and_gold(&messy, Some(&expected)), "after set 1 and the mutated records");
    // Every landed record line is in its bronze table or in the quarantine, by file.
    let quarantined = rows_per_file(&messy, "quarantine");
    for (table, file, records) in landed {
        let kept = rows_per_file(&messy, table).get(file).copied().unwrap_or(0);
        let refused = quarantined.get(file).copied().unwrap_or(0);
        assert_eq!(kept + refused, records, "{table}/{file}: {kept} in bronze, {refused} quarantined");
        assert!(refused > records / 3, "{table}/{file}: most mutations must be refused ({refused} of {records})");
    }
    let reasons = messy.table("quarantine");
    let reasons = reasons.column("reason").expect("reason").str().expect("str").clone();
    assert!(reasons.iter().flatten().all(|r| !r.is_empty()));
    assert!(reasons.iter().flatten().any(|r| r.contains("outside the plausible window")));
    assert!(reasons.iter().flatten().any(|r| r.contains("not valid UTF-8")));
    // Every table still opens and reads in an independent reader, with the same rows.
    assert_eq!(messy.counts_read_independently(), messy.counts());
    // Later clean batches go through.
    for lake in [&clean, &messy] {
        lake.fitlake(&["produce", "--set", "2"]);
        lake.run_once();
    }
    let expected = silver_and_gold(&clean, None);
    assert_same_tables(&expected, &silver_and_gold(&messy, Some(&expected)), "after set 2");
}

fn profile_change(user: i64, kind: &str, time: i64, city: &str, offset: i64) -> String {
    let value = format!(
        r#"{{"user_id": {user}, "update_type": "{kind}", "timestamp": {time}, "dob": "07/25/1990", "sex": "F", "gender": "F", "first_name": "Ann", "last_name": "Lee", "address": {{"city": "{city}", "state": "MA", "zip": "02134"}}}}"#
    );
    format!(
        "{}\n",
        serde_json::json!({"key": user.to_string(), "value": value, "topic": "user_info", "partition": 0, "offset": offset, "timestamp": time * 1000})
    )
}

fn land(lake: &Lake, source: &str, file: &str, text: &str) {
    std::fs::write(lake.landing(source).join(file), text).expect("land");
}

fn profiles(lake: &Lake) -> Vec<(i64, String, Option<String>)> {
    let df = lake.table("user_profile");
    let users = df.column("user_id").expect("user_id").i64().expect("i64").clone();
    let kinds = df.column("update_type").expect("update_type").str().expect("str").clone();
    let cities = df.column("city").expect("city").str().expect("str").clone();
    (0..df.height())
        .map(|i| (users.get(i).unwrap_or(0), kinds.get(i).unwrap_or("").to_string(), cities.get(i).map(str::to_string)))
        .collect()
}

#[test]
fn cdc_across_runs_gives_the_one_run_answer() {
    const T: i64 = 1_678_451_000;
    let split = Lake::new();
    let together = Lake::new();
    for lake in [&split, &together] {
        lake.fitlake(&["setup"]);
    }
    // User 1: new, then a delete at T+300; an older update (T+200) arrives a run later.
    // User 2: an update at T+100 and a delete at the same time, in different runs.
    let first = [
        profile_change(1, "new", T, "Boston", 1),
        profile_change(1, "delete", T + 300, "", 2),
        profile_change(2, "update", T + 100, "Salem", 3),
    ]
    .concat();
    let second =
        [profile_change(1, "update", T + 200, "Lynn", 4), profile_change(2, "delete", T + 100, "", 5)].concat();
    land(&split, "kafka_multiplex_bz", "a.json", &first);
    split.run_once();
    land(&split, "kafka_multiplex_bz", "b.json", &second);
    split.run_once();
    land(&together, "kafka_multiplex_bz", "a.json", &first);
    land(&together, "kafka_multiplex_bz", "b.json", &second);
    together.run_once();
    let expected = vec![(1, "delete".to_string(), None), (2, "delete".to_string(), None)];
    assert_eq!(profiles(&split), expected, "deleted users stay deleted (tombstones)");
    assert_eq!(profiles(&together), expected);
    assert_eq!(split.counts()["user_bins"], 0, "tombstones are not profiles");
}

fn reading(device: i64, time: i64, heartrate: f64, offset: i64) -> String {
    let value = format!(r#"{{"device_id": {device}, "time": {time}, "heartrate": {heartrate}}}"#);
    format!(
        "{}\n",
        serde_json::json!({"key": device.to_string(), "value": value, "topic": "bpm", "partition": 0, "offset": offset, "timestamp": time * 1000})
    )
}

#[test]
fn conflicting_readings_in_two_files_keep_the_greater_in_any_order_and_split() {
    const T: i64 = 1_678_521_900;
    let mut results = Vec::new();
    for (first, second, split) in [
        ("a.json", "b.json", false),
        ("b.json", "a.json", false),
        ("a.json", "b.json", true),
        ("b.json", "a.json", true),
    ] {
        let lake = Lake::new();
        lake.fitlake(&["setup"]);
        let files = BTreeMap::from([("a.json", reading(7, T, 80.0, 1)), ("b.json", reading(7, T, 60.0, 2))]);
        land(&lake, "kafka_multiplex_bz", first, &files[first]);
        if split {
            lake.run_once();
        }
        land(&lake, "kafka_multiplex_bz", second, &files[second]);
        lake.run_once();
        let heart_rate = lake.table("heart_rate");
        results.push(heart_rate.column("heartrate").expect("heartrate").f64().expect("f64").to_vec());
    }
    assert!(results.iter().all(|r| *r == [Some(80.0)]), "{results:?}");
}

#[test]
fn a_bom_a_login_far_out_of_range_and_a_microsecond_envelope_stall_nothing() {
    let lake = Lake::new();
    lake.fitlake(&["setup"]);
    land(
        &lake,
        "registered_users_bz",
        "u.csv",
        "\u{feff}user_id,device_id,mac_address,registration_timestamp\r\n1,10,aa:bb,1678451168\r\n",
    );
    land(
        &lake,
        "gym_logins_bz",
        "g.csv",
        "mac_address,gym,login,logout\n4c:c5:9f:cb:13:bd,5,-9000000000000,9000000000000\n",
    );
    let micro = reading(10, 1_678_521_900, 70.0, 1).replace("1678521900000", "1678521900000000");
    land(&lake, "kafka_multiplex_bz", "m.json", &format!("{micro}{}", reading(10, 1_678_521_901, 70.0, 2)));
    lake.run_once();
    let counts = lake.counts();
    assert_eq!((counts["users"], counts["heart_rate"], counts["quarantine"]), (1, 1, 2));
    let reasons = crate::harness::rows_text(&lake.table("quarantine"));
    assert!(reasons.contains("login: -9000000000000 is outside the plausible window"), "{reasons}");
    assert!(reasons.contains("(looks like microseconds)"), "{reasons}");
    // Later runs, with clean data, go through.
    land(&lake, "gym_logins_bz", "g2.csv", "mac_address,gym,login,logout\naa:bb,5,1678521600,1678525200\n");
    lake.run_once();
    assert_eq!(lake.counts()["gym_logs"], 1);
    // Every table stays readable, in another engine too.
    assert_eq!(lake.counts_read_independently(), lake.counts());
}

#[test]
fn another_engines_compaction_is_not_new_input_and_hides_nothing() {
    let plain = Lake::new();
    let compacted = Lake::new();
    for lake in [&plain, &compacted] {
        lake.fitlake(&["setup"]);
        lake.fitlake(&["produce", "--set", "1"]);
        lake.run_once();
        lake.fitlake(&["produce", "--set", "2"]);
        // Bronze takes set 2; silver and gold have not read it yet.
        lake.fitlake(&["run", "--once", "--as-of", crate::harness::AS_OF, "--layer", "bronze"]);
    }
    // OPTIMIZE by another engine: bronze files silver has not consumed yet, and silver files.
    for table in ["kafka_multiplex_bz", "registered_users_bz", "heart_rate", "workouts", "user_profile", "workout_bpm"]
    {
        assert!(compacted.compact(table) >= 1, "{table} has files to rewrite");
    }
    let before = compacted.versions_and_counts();
    for lake in [&plain, &compacted] {
        lake.run_once();
    }
    assert_same_tables(&plain.all_tables(), &compacted.all_tables(), "after another engine's compaction");
    // Compacting what every step has consumed gives no step anything to read.
    for table in ["kafka_multiplex_bz", "heart_rate", "workouts", "user_profile", "completed_workouts", "workout_bpm"] {
        compacted.compact(table);
    }
    let out = compacted.fitlake(&["run", "--once", "--as-of", crate::harness::AS_OF, "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    for step in report["steps"].as_array().expect("steps") {
        assert_eq!(step["rows_read"].as_u64(), Some(0), "a compaction is not new input: {step}");
    }
    assert_same_tables(&plain.all_tables(), &compacted.all_tables(), "after a rerun");
    assert!(compacted.versions_and_counts()["heart_rate"].0 > before["heart_rate"].0, "set 2 reached heart_rate");
}

#[test]
fn a_table_with_deletion_vectors_fails_clearly() {
    let lake = Lake::new();
    lake.fitlake(&["setup"]);
    // Turn deletion vectors on as `ALTER TABLE silver.heart_rate SET TBLPROPERTIES` would: a
    // metadata action with the property, in a new commit.
    let log = lake.root.join("managed/silver/heart_rate/_delta_log");
    let first = std::fs::read_to_string(log.join(format!("{:020}.json", 0))).expect("first commit");
    let metadata = first.lines().find(|l| l.contains("\"metaData\"")).expect("metadata action");
    let mut action: serde_json::Value = serde_json::from_str(metadata).expect("json");
    action["metaData"]["configuration"]["delta.enableDeletionVectors"] = "true".into();
    let versions = std::fs::read_dir(&log)
        .expect("log")
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json")))
        .count();
    std::fs::write(log.join(format!("{versions:020}.json")), format!("{action}\n")).expect("commit");
    let out = lake.fitlake_env(&["run", "--once", "--as-of", crate::harness::AS_OF], &[]);
    assert_eq!(out.status.code(), Some(2), "a configuration error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("silver.heart_rate uses deletion vectors (delta.enableDeletionVectors = true)"),
        "{stderr}"
    );
}

/// Appends a commit to a table's log holding `action` (as another writer, or an older fitlake,
/// would have written it).
fn append_commit(lake: &Lake, layer: &str, table: &str, action: &serde_json::Value) {
    let log = lake.root.join("managed").join(layer).join(table).join("_delta_log");
    let versions = std::fs::read_dir(&log)
        .expect("log")
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json")))
        .count();
    std::fs::write(log.join(format!("{versions:020}.json")), format!("{action}\n")).expect("commit");
}

/// The table's `metaData` action from its first commit.
fn first_metadata(lake: &Lake, layer: &str, table: &str) -> serde_json::Value {
    let log = lake.root.join("managed").join(layer).join(table).join("_delta_log");
    let first = std::fs::read_to_string(log.join(format!("{:020}.json", 0))).expect("first commit");
    let line = first.lines().find(|l| l.contains("\"metaData\"")).expect("metadata action");
    serde_json::from_str(line).expect("json")
}

#[test]
fn a_landing_file_changed_after_ingestion_is_reported_once_and_a_young_one_waits() {
    let lake = Lake::new();
    lake.fitlake(&["setup"]);
    let header = "user_id,device_id,mac_address,registration_timestamp\n";
    land(&lake, "registered_users_bz", "u.csv", &format!("{header}1,10,aa:bb,1678451168\n"));
    // Younger than --min-file-age: it waits.
    lake.fitlake(&["run", "--once", "--as-of", crate::harness::AS_OF, "--min-file-age", "1h"]);
    assert_eq!(lake.counts()["registered_users_bz"], 0, "a file still young waits");
    lake.run_once();
    assert_eq!(lake.counts()["users"], 1);
    // The file is rewritten in place after its batch was committed.
    std::thread::sleep(std::time::Duration::from_millis(20));
    land(&lake, "registered_users_bz", "u.csv", &format!("{header}1,10,aa:bb,1678451168\n2,20,cc:dd,1678451169\n"));
    lake.run_once();
    lake.run_once();
    let quarantine = lake.table("quarantine");
    let reasons: Vec<String> =
        quarantine.column("reason").expect("reason").str().expect("str").iter().flatten().map(str::to_string).collect();
    assert_eq!(reasons.len(), 1, "reported once, not at every run: {reasons:?}");
    assert!(reasons[0].starts_with("changed after ingestion in batch 0: planned at 75 bytes"), "{}", reasons[0]);
    assert_eq!(lake.counts()["users"], 1, "the change is not ingested");
}

#[test]
fn setup_upgrades_an_older_lakehouse_schema() {
    let lake = Lake::new();
    lake.fitlake(&["setup"]);
    // A lakehouse set up before plans kept file stamps and before `dob` could be null.
    let mut plans = first_metadata(&lake, "bronze", "landing_files");
    let mut schema: serde_json::Value =
        serde_json::from_str(plans["metaData"]["schemaString"].as_str().expect("schema")).expect("schema json");
    schema["fields"].as_array_mut().expect("fields").retain(|f| f["name"] != "size" && f["name"] != "modified");
    plans["metaData"]["schemaString"] = schema.to_string().into();
    append_commit(&lake, "bronze", "landing_files", &plans);
    let mut profile = first_metadata(&lake, "silver", "user_profile");
    let mut schema: serde_json::Value =
        serde_json::from_str(profile["metaData"]["schemaString"].as_str().expect("schema")).expect("schema json");
    for field in schema["fields"].as_array_mut().expect("fields") {
        if field["name"] == "dob" {
            field["nullable"] = false.into();
        }
    }
    profile["metaData"]["schemaString"] = schema.to_string().into();
    append_commit(&lake, "silver", "user_profile", &profile);
    lake.fitlake(&["setup"]);
    lake.fitlake(&["produce", "--set", "1"]);
    lake.run_once();
    let plans = lake.table("landing_files");
    assert_eq!(plans.column("size").expect("size").null_count(), 0, "plans keep each file's size again");
    assert!(lake.counts()["user_profile"] > 0);
}

#[test]
fn symlinks_and_fifos_in_landing_are_skipped_and_reported() {
    let lake = Lake::new();
    lake.fitlake(&["setup"]);
    let folder = lake.landing("registered_users_bz");
    let outside = lake.root.join("outside.csv");
    std::fs::write(&outside, "user_id,device_id,mac_address,registration_timestamp\n9,90,zz,1678451168\n")
        .expect("write");
    std::os::unix::fs::symlink(&outside, folder.join("link.csv")).expect("symlink");
    let fifo = folder.join("pipe.csv");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    land(
        &lake,
        "registered_users_bz",
        "u.csv",
        "user_id,device_id,mac_address,registration_timestamp\n1,10,aa,1678451168\n",
    );
    lake.run_once();
    assert_eq!(lake.counts()["registered_users_bz"], 1, "only the regular file is read");
    let status = lake.status();
    let bronze = status.iter().find(|t| t["table"] == "bronze.registered_users_bz").expect("status");
    assert_eq!(bronze["skipped"], serde_json::json!(["link.csv", "pipe.csv"]));
}

fn workout(user: i64, workout: i64, session: i64, action: &str, time: i64, offset: i64) -> String {
    let value = format!(
        r#"{{"user_id": {user}, "workout_id": {workout}, "timestamp": {time}, "action": "{action}", "session_id": {session}}}"#
    );
    format!(
        "{}\n",
        serde_json::json!({"key": user.to_string(), "value": value, "topic": "workout", "partition": 0, "offset": offset, "timestamp": time * 1000})
    )
}

#[test]
fn conflicting_workout_events_and_late_stops_give_the_one_run_sessions() {
    const T: i64 = 1_678_521_900;
    // User 1 (device 10): a session paired in run 1; in run 2 a different event at the same
    // instant as its start wins (`start` of workout 0), so the session of workout 1 is gone.
    // User 2 (device 20): run 1 pairs its start with a late stop; run 2 brings an earlier stop.
    let users = "user_id,device_id,mac_address,registration_timestamp\n1,10,aa,1678451168\n2,20,bb,1678451168\n";
    let first = [
        workout(1, 1, 1, "start", T, 1),
        workout(1, 1, 1, "stop", T + 600, 2),
        workout(2, 1, 1, "start", T, 3),
        workout(2, 1, 1, "stop", T + 1200, 4),
    ]
    .concat();
    let second = [workout(1, 0, 1, "start", T, 5), workout(2, 1, 1, "stop", T + 300, 6)].concat();
    let readings: String = (0..1300).map(|s| reading(10, T + s, 70.0, s) + &reading(20, T + s, 80.0, s)).collect();
    let split = Lake::new();
    let together = Lake::new();
    for lake in [&split, &together] {
        lake.fitlake(&["setup"]);
        land(lake, "registered_users_bz", "u.csv", users);
        land(lake, "kafka_multiplex_bz", "r.json", &readings);
        land(lake, "kafka_multiplex_bz", "w1.json", &first);
    }
    split.run_once();
    assert_eq!(split.counts()["completed_workouts"], 2);
    land(&split, "kafka_multiplex_bz", "w2.json", &second);
    split.run_once();
    land(&together, "kafka_multiplex_bz", "w2.json", &second);
    together.run_once();
    let sessions = together.table("completed_workouts");
    assert_eq!(crate::harness::rows_text(&sessions).lines().count(), 2, "one session left: {sessions}");
    assert_same_tables(&together.all_tables_but_bronze(), &split.all_tables_but_bronze(), "split against one run");
}

#[test]
fn a_landing_file_over_the_size_limit_is_quarantined_by_its_digest_not_read() {
    let lake = Lake::new();
    lake.fitlake(&["setup"]);
    let big: String = (0..200).map(|i| reading(7, 1_678_521_900 + i, 70.0, i)).collect();
    land(&lake, "kafka_multiplex_bz", "big.json", &big);
    land(&lake, "kafka_multiplex_bz", "small.json", &reading(8, 1_678_521_900, 70.0, 1));
    let limit = (big.len() - 1).to_string();
    lake.fitlake(&["run", "--once", "--as-of", crate::harness::AS_OF, "--max-file-bytes", &limit]);
    assert_eq!(lake.counts()["heart_rate"], 1, "only the small file is read");
    let quarantine = lake.table("quarantine");
    let reason =
        quarantine.column("reason").expect("reason").str().expect("str").get(0).unwrap_or_default().to_string();
    let digest: String = ring::digest::digest(&ring::digest::SHA256, big.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(reason, format!("file of {} bytes is over --max-file-bytes {limit} (sha256 {digest})", big.len()));
    let raw = quarantine.column("raw").expect("raw").str().expect("str").get(0).unwrap_or_default().len();
    assert_eq!(raw, fitlake_landing::quarantine::RAW_PREFIX_BYTES, "a bounded prefix is kept");
}

#[test]
fn a_line_longer_than_a_read_chunk_streams_past_into_the_quarantine() {
    // The smallest budget reads landing files in 1 MiB pieces: a 3 MiB line never fits in one,
    // so it is hashed as it streams past, and the readings around it are read as usual.
    let lake = Lake::new();
    lake.fitlake(&["setup"]);
    let long = format!("{{\"key\":\"{}\"}}", "x".repeat(3 << 20));
    let text = format!("{}{long}\n{}", reading(7, 1_678_521_900, 70.0, 1), reading(7, 1_678_521_901, 71.0, 2));
    land(&lake, "kafka_multiplex_bz", "long.json", &text);
    lake.fitlake(&["run", "--once", "--as-of", crate::harness::AS_OF, "--memory-budget", "16384"]);
    assert_eq!(lake.counts()["heart_rate"], 2, "the lines before and after the long one are read");
    let quarantine = lake.table("quarantine");
    assert_eq!(quarantine.height(), 1);
    let line = quarantine.column("line").expect("line").i64().expect("i64").get(0);
    assert_eq!(line, Some(2));
    let reason =
        quarantine.column("reason").expect("reason").str().expect("str").get(0).unwrap_or_default().to_string();
    let digest: String = ring::digest::digest(&ring::digest::SHA256, long.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(reason, format!("line of {} bytes is over the limit of 1048576 bytes (sha256 {digest})", long.len()));
    // A later run, with nothing new, does not stall on it.
    lake.fitlake(&["run", "--once", "--as-of", crate::harness::AS_OF]);
    assert_eq!(lake.counts()["heart_rate"], 2);
}
