//! `fitlake optimize` and `fitlake vacuum`, and streaming auto-compaction: fewer files, the
//! same rows, nothing new for the steps, and only unneeded files deleted.

use std::path::{Path, PathBuf};

use crate::harness::{assert_same_tables, wait_until, Lake, AS_OF};
use crate::reference_run;

/// The parquet data files under a table's folder (active or not), by walking the disk.
fn parquet_files(lake: &Lake, table: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "parquet") && !path.to_string_lossy().contains("_delta_log")
            {
                out.push(path);
            }
        }
    }
    let mut dirs = Vec::new();
    fn find(dir: &Path, name: &str, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n == name) && path.join("_delta_log").is_dir() {
                    out.push(path);
                } else {
                    find(&path, name, out);
                }
            }
        }
    }
    find(&lake.root, table, &mut dirs);
    assert_eq!(dirs.len(), 1, "one folder for {table}: {dirs:?}");
    let mut files = Vec::new();
    walk(&dirs[0], &mut files);
    files
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

#[test]
fn optimize_compacts_without_changing_rows_or_feeding_steps_and_vacuum_deletes_only_what_no_version_needs() {
    // Many small files: one bronze batch per landing file.
    let lake = Lake::new();
    lake.fitlake(&["setup"]);
    for set in ["1", "2"] {
        lake.fitlake(&["produce", "--set", set]);
        lake.fitlake(&["run", "--once", "--as-of", AS_OF, "--max-batch-bytes", "1"]);
    }
    let reference = reference_run();
    assert_same_tables(&reference, &lake.all_tables(), "before optimize");
    let before = lake.versions_and_counts();
    let on_disk = parquet_files(&lake, "heart_rate").len();

    let out = lake.fitlake(&["optimize", "--json"]);
    let reports = json(&out);
    let report = reports.as_array().expect("reports").iter().find(|r| r["table"] == "silver.heart_rate");
    let report = report.expect("heart_rate report").clone();
    let (removed, added) = (report["files_removed"].as_u64().unwrap_or(0), report["files_added"].as_u64().unwrap_or(0));
    assert!(removed >= 2 && added >= 1 && added < removed, "{report}");
    // Every reading was in a small file of the one partition: all of them were rewritten.
    assert_eq!(report["rows"].as_u64(), Some(before["heart_rate"].1), "{report}");
    assert!(report["bytes_removed"].as_u64() > Some(0) && report["bytes_added"].as_u64() > Some(0), "{report}");
    assert_eq!(parquet_files(&lake, "heart_rate").len(), on_disk + added as usize, "optimize deletes nothing");
    // The same rows, read by fitlake and by an independent reader.
    assert_same_tables(&reference, &lake.all_tables(), "after optimize");
    let counts: std::collections::BTreeMap<String, u64> = before.iter().map(|(t, (_, n))| (t.clone(), *n)).collect();
    assert_eq!(lake.counts_read_independently(), counts, "the Python deltalake reader sees the same rows");
    // A second optimize finds nothing to do.
    let again = lake.fitlake(&["optimize", "--table", "heart_rate"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to compact"));
    // No step reads a compaction as new input.
    let out = lake.fitlake(&["run", "--once", "--as-of", AS_OF, "--json"]);
    for step in json(&out)["steps"].as_array().expect("steps") {
        assert_eq!(step["rows_read"].as_u64(), Some(0), "a compaction is not new input: {step}");
    }
    assert_same_tables(&reference, &lake.all_tables(), "after a run");

    // VACUUM: a retention under the table's 7 days is refused unless forced.
    let refused = lake.fitlake_env(&["vacuum", "--retain", "0h"], &[]);
    assert_eq!(refused.status.code(), Some(2), "{}", String::from_utf8_lossy(&refused.stderr));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--force"));
    // The default retention keeps the files removed moments ago.
    let kept = lake.fitlake(&["vacuum", "--table", "heart_rate"]);
    assert!(String::from_utf8_lossy(&kept.stdout).contains(" files=0 "), "{}", String::from_utf8_lossy(&kept.stdout));
    let on_disk = parquet_files(&lake, "heart_rate").len();
    // A dry run lists what would go (every file but the active ones) and deletes nothing.
    let dry =
        json(&lake.fitlake(&["vacuum", "--table", "heart_rate", "--retain", "0h", "--force", "--dry-run", "--json"]));
    assert_eq!(dry[0]["files"].as_array().map(Vec::len), Some(on_disk - added as usize), "{dry}");
    assert!(dry[0]["bytes"].as_u64() > Some(0), "{dry}");
    assert_eq!(parquet_files(&lake, "heart_rate").len(), on_disk);
    // Forced: exactly the files no version needs go; the tables still read the same.
    let done = json(&lake.fitlake(&["vacuum", "--retain", "0h", "--force", "--json"]));
    let heart_rate =
        done.as_array().expect("reports").iter().find(|r| r["table"] == "silver.heart_rate").expect("report");
    assert_eq!(heart_rate["files"].as_array().map(Vec::len), Some(on_disk - added as usize), "{heart_rate}");
    assert_eq!(parquet_files(&lake, "heart_rate").len(), added as usize);
    assert_same_tables(&reference, &lake.all_tables(), "after vacuum");
    assert_eq!(lake.counts_read_independently(), counts);
    // And the pipeline goes on reading nothing again.
    let out = lake.fitlake(&["run", "--once", "--as-of", AS_OF, "--json"]);
    for step in json(&out)["steps"].as_array().expect("steps") {
        assert_eq!(step["rows_read"].as_u64(), Some(0), "{step}");
    }
}

#[test]
fn zorder_clusters_rows_and_keeps_them() {
    let lake = Lake::after_set_1();
    lake.fitlake(&["produce", "--set", "2"]);
    lake.run_once();
    let before = lake.all_tables();
    let out = lake.fitlake(&["optimize", "--table", "heart_rate", "--zorder-by", "device_id,time", "--json"]);
    let report = &json(&out)[0];
    assert!(report["files_removed"].as_u64() >= Some(2), "{report}");
    assert_same_tables(&before, &lake.all_tables(), "after Z-order");
    let bad = lake.fitlake_env(&["optimize", "--table", "heart_rate", "--zorder-by", "nope"], &[]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("nope"));
}

#[test]
fn a_stream_compacts_the_tables_it_fills_with_small_files() {
    let lake = Lake::new();
    lake.fitlake(&["setup"]);
    let runner = lake.spawn(
        env!("CARGO_BIN_EXE_fitlake"),
        &[
            "run",
            "--stream",
            "--trigger",
            "200ms",
            "--as-of",
            AS_OF,
            "--quiet",
            "--max-batch-bytes",
            "1",
            "--auto-compact-files",
            "3",
        ],
        &[],
    );
    lake.fitlake(&["produce", "--set", "1"]);
    lake.fitlake(&["produce", "--set", "2"]);
    let reference = reference_run();
    let heights = |tables: &std::collections::BTreeMap<String, polars::prelude::DataFrame>| -> Vec<usize> {
        tables.values().map(|df| df.height()).collect()
    };
    wait_until("the stream catches up", std::time::Duration::from_secs(180), || {
        lake.caught_up() && heights(&lake.all_tables()) == heights(&reference)
    });
    let ended = runner.terminate();
    assert!(ended.status.success(), "{}", ended.stderr);
    // Bronze was compacted (an OPTIMIZE commit in its log), and holds fewer files than batches.
    let log = lake.root.join("managed/bronze/kafka_multiplex_bz/_delta_log");
    let optimized = std::fs::read_dir(&log)
        .expect("log")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .any(|e| std::fs::read_to_string(e.path()).unwrap_or_default().contains("\"operation\":\"OPTIMIZE\""));
    assert!(optimized, "no OPTIMIZE commit in {}", log.display());
    assert_same_tables(&reference, &lake.all_tables(), "stream with auto-compaction vs batch");
}
