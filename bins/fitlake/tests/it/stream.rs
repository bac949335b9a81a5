//! Streaming mode: the original stream test, crashes at random moments, concurrent runners,
//! and per-layer streaming processes.

use std::time::Duration;

use crate::harness::{assert_same_tables, testdata, wait_until, Lake, AS_OF};
use crate::{bpm_counts_of, expected, original_counts, reference_run};

const FITLAKE: &str = env!("CARGO_BIN_EXE_fitlake");
const DEADLINE: Duration = Duration::from_secs(180);

/// The streaming runner of the crash and concurrency tests: fixed as-of date, fast trigger, one
/// landing file per bronze batch (so the work spreads over many micro-batches).
fn stream_args(trigger: &str) -> Vec<&str> {
    vec!["run", "--stream", "--trigger", trigger, "--as-of", AS_OF, "--quiet", "--max-batch-bytes", "1"]
}

#[test]
fn original_stream_test() {
    let lake = Lake::new();
    lake.fitlake(&["setup"]);
    let runner = lake.spawn(FITLAKE, &["run", "--stream", "--trigger", "1s", "--as-of", AS_OF], &[]);
    let landing = lake.landing("kafka_multiplex_bz");

    lake.fitlake(&["produce", "--set", "1"]);
    let want = expected::bpm_counts(&testdata(), &landing, 1);
    wait_until("the set 1 counts are reached", DEADLINE, || {
        original_counts(&lake) == [5, 8, 7, 16, 5, 8, 5, 16, 5, 8, 8] && bpm_counts_of(&lake) == want
    });

    lake.fitlake(&["produce", "--set", "2"]);
    let want = expected::bpm_counts(&testdata(), &landing, 2);
    wait_until("the set 2 counts are reached", DEADLINE, || {
        original_counts(&lake) == [10, 16, 13, 32, 10, 16, 10, 32, 10, 16, 16] && bpm_counts_of(&lake) == want
    });

    let ended = runner.terminate();
    assert!(ended.status.success(), "SIGTERM must end the stream cleanly: {:?}\n{}", ended.status, ended.stderr);
    let lines: Vec<&str> = ended.stdout.lines().collect();
    assert!(lines.iter().any(|l| l.starts_with("fitlake-stream: batch=") && l.contains("silver.heart_rate:")));
    assert!(lines.last().is_some_and(|l| l.starts_with("fitlake-stream: stopped after ")), "{}", ended.stdout);
    assert!(lake.caught_up(), "status must show nothing left behind");
    assert_same_tables(&reference_run(), &lake.all_tables(), "stream vs batch");
}

#[test]
fn status_shows_what_each_step_has_not_consumed_yet() {
    let lake = Lake::after_set_1();
    assert!(lake.caught_up());
    let landed = || std::fs::read_dir(lake.landing("kafka_multiplex_bz")).expect("landing").count();
    let before = landed();
    lake.fitlake(&["produce", "--set", "2"]);
    let new_files = landed() - before;
    assert!(new_files >= 2);
    let status = lake.status();
    let multiplex = status.iter().find(|t| t["table"] == "bronze.kafka_multiplex_bz").expect("multiplex");
    assert_eq!(multiplex["landing"]["files"], new_files, "{multiplex}");
    assert!(!lake.caught_up());

    lake.fitlake(&["run", "--once", "--layer", "bronze", "--as-of", AS_OF]);
    let status = lake.status();
    let heart_rate = status.iter().find(|t| t["table"] == "silver.heart_rate").expect("heart_rate");
    assert_eq!(heart_rate["sources"][0]["source"], "kafka_multiplex_bz");
    assert_eq!(heart_rate["sources"][0]["behind"], 1, "one bronze commit not consumed: {heart_rate}");
    let text = String::from_utf8_lossy(&lake.fitlake(&["status"]).stdout).into_owned();
    assert!(text.contains("kafka_multiplex_bz:1"), "{text}");
    assert!(!text.contains("behind=0"), "{text}");

    lake.run_once();
    assert!(lake.caught_up());
    let text = String::from_utf8_lossy(&lake.fitlake(&["status"]).stdout).into_owned();
    assert!(text.contains("fitlake-status: ok tables=17 behind=0"), "{text}");
}

/// Generated landing data for the crash and concurrency tests (75 gym visits, one BPM file
/// per visit), produced into a staging lakehouse: `(source, file name, path)` in name order.
fn generated_files(staging: &Lake) -> Vec<(String, String, std::path::PathBuf)> {
    staging.fitlake(&[
        "produce",
        "--generate",
        "--users",
        "25",
        "--days",
        "3",
        "--seed",
        "7",
        "--readings-per-file",
        "1",
        "--quiet",
    ]);
    let mut files = Vec::new();
    for source in ["registered_users_bz", "gym_logins_bz", "kafka_multiplex_bz"] {
        for entry in std::fs::read_dir(staging.landing(source)).expect("staging landing") {
            let path = entry.expect("entry").path();
            let name = path.file_name().expect("name").to_string_lossy().into_owned();
            files.push((source.to_string(), name, path));
        }
    }
    files.sort();
    files
}

/// Lands `files` in `lake`'s landing zone (under a hidden name first, then renamed, as a
/// well-behaved producer does).
fn land(lake: &Lake, files: &[(String, String, std::path::PathBuf)]) {
    for (source, name, path) in files {
        let folder = lake.landing(source);
        std::fs::create_dir_all(&folder).expect("landing folder");
        std::fs::copy(path, folder.join(format!(".{name}"))).expect("copy");
        std::fs::rename(folder.join(format!(".{name}")), folder.join(name)).expect("rename");
    }
}

/// The files split in two drops: users, gym logins and the first half of the BPM files, then
/// the workout and profile events with the other half (readings arriving before their sessions).
fn two_drops(files: &[(String, String, std::path::PathBuf)]) -> [Vec<(String, String, std::path::PathBuf)>; 2] {
    let (events, rest): (Vec<_>, Vec<_>) =
        files.iter().cloned().partition(|(_, name, _)| name.ends_with("-events.json"));
    let half = rest.len() / 2;
    let mut second = events;
    second.extend(rest[half..].iter().cloned());
    [rest[..half].to_vec(), second]
}

/// SplitMix64: the kill moments are random but the same on every run.
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[test]
fn twenty_kills_then_drain_equal_one_batch_run() {
    let staging = Lake::new();
    let files = generated_files(&staging);
    let [first, second] = two_drops(&files);
    let lake = Lake::new();
    lake.fitlake(&["setup"]);
    land(&lake, &first);

    let mut random = 2026;
    let mut interrupted_work = 0;
    for kill in 0..20 {
        if kill == 10 {
            land(&lake, &second); // more data lands while the stream is crashing
        }
        let runner = lake.spawn(FITLAKE, &stream_args("100ms"), &[]);
        std::thread::sleep(Duration::from_millis(150 + next_random(&mut random) % 750));
        let ended = runner.kill_hard();
        assert!(!ended.status.success(), "kill {kill}: the runner ended by itself: {}", ended.stderr);
        if !lake.caught_up() {
            interrupted_work += 1;
        }
    }
    eprintln!("{interrupted_work} of 20 kills hit a runner with work left");
    assert!(interrupted_work >= 10, "only {interrupted_work} of 20 kills hit a runner with work left");

    let runner = lake.spawn(FITLAKE, &stream_args("100ms"), &[]);
    wait_until("the restarted stream drains", DEADLINE, || lake.caught_up());
    let ended = runner.terminate();
    assert!(ended.status.success(), "{}", ended.stderr);

    let reference = Lake::new();
    reference.fitlake(&["setup"]);
    land(&reference, &files);
    reference.run_once();
    assert_same_tables(&reference.all_tables(), &lake.all_tables(), "after 20 kills");
}

#[test]
fn concurrent_runners_give_the_batch_result() {
    let staging = Lake::new();
    let files = generated_files(&staging);
    let reference = Lake::new();
    reference.fitlake(&["setup"]);
    land(&reference, &files);
    reference.fitlake(&["produce", "--set", "1"]);
    reference.run_once();
    let want = reference.all_tables();

    // With table locks the runners take turns per table; without, Delta's conflict checker
    // rejects the second commit of the same progress and the loser redoes its step.
    for locks in ["on", "off"] {
        let lake = Lake::new();
        lake.fitlake(&["setup"]);
        let env = [("FITLAKE_TABLE_LOCKS", locks)];
        let first = lake.spawn(FITLAKE, &stream_args("50ms"), &env);
        let second = lake.spawn(FITLAKE, &stream_args("50ms"), &env);
        land(&lake, &files);
        lake.fitlake(&["produce", "--set", "1"]);
        // A batch run joins in too.
        let once = lake.fitlake_env(&["run", "--once", "--as-of", AS_OF, "--quiet"], &env);
        assert!(once.status.success(), "locks {locks}: {}", String::from_utf8_lossy(&once.stderr));
        wait_until("both runners drain", DEADLINE, || lake.caught_up());
        for runner in [first, second] {
            let ended = runner.terminate();
            assert!(ended.status.success(), "locks {locks}: {}", ended.stderr);
        }
        assert_same_tables(&want, &lake.all_tables(), &format!("two runners, table locks {locks}"));
    }
}

#[test]
fn each_layer_streams_in_its_own_process() {
    let lake = Lake::new();
    lake.fitlake(&["setup"]);
    let args = ["--stream", "--trigger", "200ms", "--as-of", AS_OF, "--quiet"];
    let runners: Vec<_> = [
        env!("CARGO_BIN_EXE_fitlake-gold"),
        env!("CARGO_BIN_EXE_fitlake-silver"),
        env!("CARGO_BIN_EXE_fitlake-bronze"),
    ]
    .into_iter()
    .map(|bin| lake.spawn(bin, &args, &[]))
    .collect();
    for set in ["1", "2"] {
        lake.fitlake(&["produce", "--set", set]);
        wait_until(&format!("set {set} flows through the three processes"), DEADLINE, || lake.caught_up());
    }
    for runner in runners {
        let ended = runner.terminate();
        assert!(ended.status.success(), "{}", ended.stderr);
    }
    assert_same_tables(&reference_run(), &lake.all_tables(), "per-layer streams");
}
