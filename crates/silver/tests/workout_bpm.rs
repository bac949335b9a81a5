//! `workout_bpm` finds each session's readings by binary searches in its device's run of
//! readings in (device, time) order; whatever the sessions (overlapping, very long, sharing a
//! device, at the readings' edges) and whatever the readings' order (sorted first when not in
//! key order), the pairs are exactly those of the definition: a valid reading of the session's
//! user's device with start < time <= end. Checked against a plain nested loop on random
//! inputs, readings shuffled and in key order, with device ids close together and at the ends
//! of `i64`.

use fitlake_silver::polars::prelude::*;
use proptest::prelude::*;

fn micros(name: &str, values: Vec<i64>) -> Column {
    Column::new(name.into(), values).cast(&DataType::Datetime(TimeUnit::Microseconds, None)).expect("datetime")
}

/// (user, start µs, length µs)
type Session = (i64, i64, i64);
/// (device, time µs, heartrate, valid)
type Reading = (i64, i64, f64, bool);

/// The device of slot 0-4: users 1-3 wear the devices of their slots; 0 and 4 are nobody's.
fn device_of(slot: i64, far: bool) -> i64 {
    if far {
        [i64::MIN, -7, 0, i64::MAX - 1, i64::MAX][slot as usize]
    } else {
        slot + 100
    }
}

fn expected(sessions: &[Session], readings: &[Reading], far: bool) -> Vec<(i64, i64, i64, String)> {
    let mut out = Vec::new();
    for (i, &(user, start, len)) in sessions.iter().enumerate() {
        for &(device, time, hr, valid) in readings {
            if valid && device == device_of(user, far) && time > start && time <= start + len {
                out.push((user, i as i64, time, format!("{hr:.1}")));
            }
        }
    }
    out.sort();
    out
}

fn actual(sessions: &[Session], readings: &[Reading], far: bool) -> Vec<(i64, i64, i64, String)> {
    let s = DataFrame::new(
        sessions.len(),
        vec![
            Column::new("user_id".into(), sessions.iter().map(|s| s.0).collect::<Vec<_>>()),
            Column::new("workout_id".into(), vec![1i64; sessions.len()]),
            Column::new("session_id".into(), (0..sessions.len() as i64).collect::<Vec<_>>()),
            micros("start_time", sessions.iter().map(|s| s.1).collect()),
            micros("end_time", sessions.iter().map(|s| s.1 + s.2).collect()),
        ],
    )
    .expect("sessions");
    let users = df!("user_id" => [1i64, 2, 3], "device_id" => [1, 2, 3].map(|u| device_of(u, far))).expect("users");
    let r = DataFrame::new(
        readings.len(),
        vec![
            Column::new("device_id".into(), readings.iter().map(|r| r.0).collect::<Vec<_>>()),
            micros("time", readings.iter().map(|r| r.1).collect()),
            Column::new("heartrate".into(), readings.iter().map(|r| r.2).collect::<Vec<_>>()),
            Column::new("valid".into(), readings.iter().map(|r| r.3).collect::<Vec<_>>()),
        ],
    )
    .expect("readings");
    let bpm = fitlake_silver::workout_bpm(&s, &users, &r).expect("workout_bpm");
    let col_i64 = |name: &str| -> Vec<i64> {
        bpm.column(name)
            .expect(name)
            .to_physical_repr()
            .cast(&DataType::Int64)
            .expect("i64")
            .i64()
            .expect("i64")
            .into_no_null_iter()
            .collect()
    };
    let (user, session, time) = (col_i64("user_id"), col_i64("session_id"), col_i64("time"));
    let hr: Vec<f64> = bpm.column("heartrate").expect("hr").f64().expect("f64").into_no_null_iter().collect();
    let mut out: Vec<_> = (0..bpm.height()).map(|i| (user[i], session[i], time[i], format!("{:.1}", hr[i]))).collect();
    out.sort();
    out
}

const MINUTE: i64 = 60_000_000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn pairs_are_those_of_the_definition(
        sessions in prop::collection::vec(
            // Sessions of a second to two days, often overlapping, starting near bucket edges.
            (1i64..=3, (0i64..600).prop_map(|m| m * MINUTE / 2), prop_oneof![1i64..120 * MINUTE, 1i64..2 * 1440 * MINUTE]),
            0..12,
        ),
        readings in prop::collection::vec(
            (0i64..=4, 0i64..400 * MINUTE, 40.0f64..200.0, prop::bool::weighted(0.9)),
            0..200,
        ),
        far in any::<bool>(),
    ) {
        let mut readings: Vec<Reading> = readings.into_iter().map(|(slot, t, hr, v)| (device_of(slot, far), t, hr, v)).collect();
        // Readings also exactly at session starts and ends (the boundaries of start < time <= end).
        for (i, s) in sessions.iter().enumerate() {
            readings.push((device_of(s.0, far), s.1, 60.0 + i as f64, true));
            readings.push((device_of(s.0, far), s.1 + s.2, 70.0 + i as f64, true));
        }
        prop_assert_eq!(actual(&sessions, &readings, far), expected(&sessions, &readings, far));
        // In key order, as `heart_rate` writes its files: taken as they are, not sorted.
        readings.sort_by_key(|r| (r.0, r.1));
        prop_assert_eq!(actual(&sessions, &readings, far), expected(&sessions, &readings, far));
    }
}

#[test]
fn times_compare_as_instants_whatever_their_unit() {
    // Sessions in microseconds, readings in milliseconds: the same instants.
    let sessions = DataFrame::new(
        1,
        vec![
            Column::new("user_id".into(), [1i64]),
            Column::new("workout_id".into(), [1i64]),
            Column::new("session_id".into(), [1i64]),
            micros("start_time", vec![10 * MINUTE]),
            micros("end_time", vec![20 * MINUTE]),
        ],
    )
    .expect("sessions");
    let users = df!("user_id" => [1i64], "device_id" => [7i64]).expect("users");
    let ms = |minutes: &[i64]| {
        Column::new("time".into(), minutes.iter().map(|m| m * 60_000).collect::<Vec<_>>())
            .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
            .expect("datetime")
    };
    let readings = DataFrame::new(
        3,
        vec![
            Column::new("device_id".into(), [7i64, 7, 7]),
            ms(&[10, 15, 21]),
            Column::new("heartrate".into(), [60.0f64, 70.0, 80.0]),
            Column::new("valid".into(), [true, true, true]),
        ],
    )
    .expect("readings");
    let bpm = fitlake_silver::workout_bpm(&sessions, &users, &readings).expect("workout_bpm");
    assert_eq!(bpm.column("heartrate").expect("hr").f64().expect("f64").to_vec(), [Some(70.0)]);
}
