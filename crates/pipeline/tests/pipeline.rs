//! The IO layer on a temporary directory: zones, plan logs, Delta commits with progress.

use fitlake_catalog::TableId;
use fitlake_config::Lakehouse;
use fitlake_governance::policy::Zone;
use fitlake_governance::Policy;
use fitlake_pipeline::progress::{BatchPlan, PlanCache, PlanLog};
use fitlake_storage::{Access, Folder, Operation, Table};
use polars::prelude::*;

fn lakehouse(dir: &tempfile::TempDir) -> Lakehouse {
    Lakehouse::from_root("lh", dir.path()).expect("lakehouse")
}

/// The pipeline's access under the shipped policy.
fn pipeline(lh: &Lakehouse) -> Access {
    Access::new(lh.clone(), Policy::shipped().expect("policy"), "pipeline").expect("access")
}

/// Rows of `silver.users` for `ids` (device id and registration time the same number).
fn users(ids: &[i64]) -> DataFrame {
    DataFrame::new(
        ids.len(),
        vec![
            Column::new("user_id".into(), ids.to_vec()),
            Column::new("device_id".into(), ids.to_vec()),
            Column::new("mac_address".into(), ids.iter().map(|i| format!("m{i}")).collect::<Vec<_>>()),
            Column::new("registration_timestamp".into(), ids.to_vec())
                .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
                .expect("cast"),
        ],
    )
    .expect("frame")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_hide_in_flight_files_and_plans_round_trip() {
    let dir = tempfile::tempdir().expect("dir");
    let lh = lakehouse(&dir);
    let producer = Access::new(lh.clone(), Policy::shipped().expect("policy"), "producer").expect("access");
    let landing = Folder::zone(&producer, Zone::Landing, &lh.landing_url("gym_logins_bz")).expect("folder");
    landing.write("b.csv", b"x".to_vec()).await.expect("write");
    landing.write("a.csv", b"yy".to_vec()).await.expect("write");
    landing.write(".tmp-c.csv", b"z".to_vec()).await.expect("write");
    landing.write("_d.csv", b"z".to_vec()).await.expect("write");
    let names: Vec<(String, u64)> = landing.list().await.expect("list").into_iter().map(|f| (f.name, f.size)).collect();
    assert_eq!(names, vec![("a.csv".to_string(), 2), ("b.csv".to_string(), 1)]);

    // The pipeline may list and read landing files, not write them.
    let read_only = Folder::zone(&pipeline(&lh), Zone::Landing, &lh.landing_url("gym_logins_bz")).expect("folder");
    assert_eq!(read_only.list().await.expect("list").len(), 2);
    let err = read_only.write("c.csv", b"no".to_vec()).await.expect_err("read-only");
    assert!(err.to_string().contains("WRITE FILES"), "{err}");
    assert!(
        !lh_path(&lh).join("unmanaged/data_zone/raw/gym_logins_bz/c.csv").exists(),
        "a refused write writes nothing"
    );

    // Batch plans live in bronze.landing_files, first writer wins.
    let access = pipeline(&lh);
    Table::create(&access, TableId::LandingFiles).await.expect("create landing_files");
    let log = PlanLog::new(&access, Default::default(), TableId::GymLoginsBz);
    assert!(log.load().await.expect("empty").is_empty());
    let plan = BatchPlan::new(0, [("b.csv".to_string(), None), ("a.csv".to_string(), None)]);
    assert_eq!(log.write(&plan).await.expect("write plan"), plan);
    assert_eq!(log.load().await.expect("load").get(&0), Some(&plan), "file order is kept");
    // A second runner planning the same batch gets the first runner's plan, not its own.
    let rival = PlanLog::new(&access, Default::default(), TableId::GymLoginsBz);
    let other = BatchPlan::new(0, [("a.csv".to_string(), None)]);
    assert_eq!(rival.write(&other).await.expect("write rival plan"), plan);
    // Plans of another bronze table are separate.
    let other_table = PlanLog::new(&access, Default::default(), TableId::RegisteredUsersBz);
    assert!(other_table.load().await.expect("load").is_empty());
    // One run's bronze steps share a cache: one read of the log keeps every table's plans, and
    // each step gets its own table's, brought up to date with plans committed since.
    let shared = PlanCache::default();
    let gym = PlanLog::new(&access, shared.clone(), TableId::GymLoginsBz);
    assert_eq!(gym.load().await.expect("load").get(&0), Some(&plan));
    let users_plan = BatchPlan::new(0, [("u.csv".to_string(), None)]);
    assert_eq!(other_table.write(&users_plan).await.expect("write plan"), users_plan);
    let users = PlanLog::new(&access, shared.clone(), TableId::RegisteredUsersBz);
    assert_eq!(users.load().await.expect("load").into_values().collect::<Vec<_>>(), [users_plan]);
    assert_eq!(gym.load().await.expect("load").into_values().collect::<Vec<_>>(), [plan], "read once, kept once");
}

fn lh_path(lh: &Lakehouse) -> std::path::PathBuf {
    fitlake_config::local_path(lh.unmanaged_url()).expect("local").parent().expect("root").to_path_buf()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_carries_rows_removes_and_progress_together() {
    let dir = tempfile::tempdir().expect("dir");
    let lh = lakehouse(&dir);
    let err = Table::open(&pipeline(&lh), TableId::Users).await.expect_err("not set up");
    assert!(err.to_string().contains("fitlake setup"), "{err}");
    let mut table = Table::create(&pipeline(&lh), TableId::Users).await.expect("create");
    let rows = |ids: &[i64]| {
        DataFrame::new(
            ids.len(),
            vec![
                Column::new("user_id".into(), ids.to_vec()),
                Column::new("device_id".into(), ids.iter().map(|i| i * 10).collect::<Vec<_>>()),
                Column::new("mac_address".into(), ids.iter().map(|i| format!("m{i}")).collect::<Vec<_>>()),
                Column::new("registration_timestamp".into(), ids.to_vec())
                    .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
                    .expect("cast"),
            ],
        )
        .expect("frame")
    };
    let first_rows = rows(&[1, 2]);
    let v1 = table.commit().rows(&first_rows).progress([("app".into(), 7)]).await.expect("commit");
    assert_eq!(v1, Some(1));
    assert_eq!(table.progress("app").await.expect("progress"), Some(7));
    let first = table.files(Some("user_id")).expect("files");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].range, Some((1, 2)));

    let removed = vec![first[0].path.clone()];
    let merged = rows(&[3]);
    table
        .commit()
        .rows(&merged)
        .remove(removed)
        .progress([("app".into(), 8)])
        .operation(Operation::Merge)
        .merge_counts(1, 0, 2)
        .await
        .expect("commit");
    assert_eq!(table.row_count().expect("count"), 1);
    assert_eq!(table.progress("app").await.expect("progress"), Some(8));
    let added = table.files_added_since(Some(1), None).await.expect("since");
    assert_eq!(added.len(), 1);
    let all = table.scan().collect().await.expect("read");
    assert_eq!(all.column("user_id").expect("col").i64().expect("i64").get(0), Some(3));
    let only_keys = table.scan().columns(&["user_id"]).with_file_column().collect().await.expect("read");
    assert_eq!(only_keys.get_column_names(), ["user_id", fitlake_frame::FILE_COLUMN]);
    // Nothing to add, remove or record: no commit.
    assert_eq!(table.commit().await.expect("noop"), None);
    assert_eq!(table.version(), 2);
    // The history says what each commit did, as DESCRIBE HISTORY on Databricks shows it.
    let log = std::fs::read_to_string(
        fitlake_config::local_path(&lh.table_url(TableId::Users.layer(), "users"))
            .expect("local")
            .join("_delta_log/00000000000000000002.json"),
    )
    .expect("commit 2");
    let info: serde_json::Value = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|a| a.get("commitInfo").cloned())
        .expect("commitInfo");
    let metrics = &info["operationMetrics"];
    assert_eq!(info["operation"], "MERGE", "{info}");
    assert_eq!(metrics["numTargetRowsInserted"], "1", "{info}");
    assert_eq!(metrics["numTargetRowsDeleted"], "2", "{info}");
    assert_eq!(metrics["numTargetFilesRemoved"], "1", "{info}");
    assert_eq!(metrics["numOutputRows"], "1", "{info}");
}

/// `Table::open` brings the process's last snapshot of a table up to date instead of loading
/// it anew: it must still see every commit, whoever made it, and a table deleted and created
/// again at the same location (its log starting over) must be read afresh, not on top of the
/// old snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_of_many_rows_is_written_in_lanes_each_keeping_its_slice_in_order() {
    let dir = tempfile::tempdir().expect("dir");
    let lh = lakehouse(&dir);
    let mut table = Table::create(&pipeline(&lh), TableId::HeartRate).await.expect("create");
    // Two frames, together just enough rows for the lanes: the first lane's share ends in the
    // second frame.
    let readings = |from: i64, n: i64| {
        let devices: Vec<i64> = (from..from + n).map(|i| i / 1000).collect();
        DataFrame::new(
            n as usize,
            vec![
                Column::new("device_id".into(), devices),
                Column::new("time".into(), (from..from + n).map(|i| i * 1000).collect::<Vec<_>>())
                    .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
                    .expect("cast"),
                Column::new("heartrate".into(), (from..from + n).map(|i| (i % 90) as f64).collect::<Vec<_>>()),
                Column::new("valid".into(), vec![true; n as usize]),
            ],
        )
        .expect("frame")
    };
    let half = fitlake_storage::LANE_ROWS as i64 / 2 + 1;
    let (first, second) = (readings(0, half), readings(half, half));
    table.commit().rows(&first).rows(&second).await.expect("commit");
    let files = table.files(Some("time")).expect("files");
    assert_eq!(files.len(), fitlake_storage::WRITE_LANES, "one file a lane");
    // Each lane's file holds its share in row order: the lanes' time ranges (to the millisecond
    // in the statistics; the readings are a millisecond apart) are disjoint.
    let mut ranges: Vec<(i64, i64)> = files.iter().map(|f| f.range.expect("range")).collect();
    ranges.sort();
    assert!(ranges.windows(2).all(|w| w[0].1 < w[1].0), "{ranges:?}");
    for file in &files {
        let rows = table.scan().files(vec![file.clone()]).collect().await.expect("read");
        let times: Vec<i64> = rows
            .column("time")
            .expect("time")
            .cast(&DataType::Int64)
            .expect("cast")
            .i64()
            .expect("i64")
            .into_no_null_iter()
            .collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]), "a lane's rows keep their order");
    }
    // Every row once, as given.
    let all = table.scan().collect().await.expect("read").sort(["time"], Default::default()).expect("sort");
    let given = first.vstack(&second).expect("stack");
    assert!(
        all.equals(&given.select(all.get_column_names().into_iter().cloned()).expect("columns")),
        "the rows read back are the rows committed"
    );
    // Fewer than `LANE_ROWS` rows are written by one writer: one more file.
    table.commit().rows(&readings(2 * half, 10)).await.expect("commit");
    assert_eq!(table.files(None).expect("files").len(), fitlake_storage::WRITE_LANES + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_a_table_sees_new_commits_and_a_table_created_anew() {
    let dir = tempfile::tempdir().expect("dir");
    let lh = lakehouse(&dir);
    let access = pipeline(&lh);
    let stored = |table: &Table| table.row_count().expect("count");
    let mut writer = Table::create(&access, TableId::Users).await.expect("create");
    writer.commit().rows(&users(&[1, 2])).await.expect("commit");
    let opened = Table::open(&access, TableId::Users).await.expect("open");
    assert_eq!((opened.version(), stored(&opened)), (1, 2));
    // Committed through another handle (another step, another runner): the next open sees it.
    writer.commit().rows(&users(&[3])).await.expect("commit");
    writer.commit().rows(&users(&[4, 5, 6])).await.expect("commit");
    let opened = Table::open(&access, TableId::Users).await.expect("open");
    assert_eq!((opened.version(), stored(&opened)), (3, 6));

    // The table dropped and created again, with more commits than before: the snapshot of the
    // old log must not be the start of the new one's.
    let location =
        fitlake_config::local_path(&lh.table_url(TableId::Users.layer(), TableId::Users.name())).expect("local");
    std::fs::remove_dir_all(&location).expect("drop");
    let mut writer = Table::create(&access, TableId::Users).await.expect("create again");
    for id in [7, 8, 9, 10] {
        writer.commit().rows(&users(&[id])).await.expect("commit");
    }
    let opened = Table::open(&access, TableId::Users).await.expect("open");
    assert_eq!((opened.version(), stored(&opened)), (4, 4));
    let users = opened.scan().columns(&["user_id"]).collect().await.expect("read");
    let mut read: Vec<i64> = users.column("user_id").expect("col").i64().expect("i64").into_no_null_iter().collect();
    read.sort();
    assert_eq!(read, vec![7, 8, 9, 10]);
}

/// A table loaded ahead (a run loads the tables of its later steps while its first steps work)
/// is brought up to date when a step opens it: commits made meanwhile by another runner (a
/// process with stores of its own) are seen, and a load ahead does not replace a newer
/// snapshot kept since.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_loaded_ahead_is_brought_up_to_date_when_opened() {
    let dir = tempfile::tempdir().expect("dir");
    let lh = lakehouse(&dir);
    let (runner, other) = (pipeline(&lh), pipeline(&lh));
    let mut writer = Table::create(&other, TableId::Users).await.expect("create");
    writer.commit().rows(&users(&[1])).await.expect("commit");
    Table::preload(&runner, TableId::Users).await.expect("preload");
    writer.commit().rows(&users(&[2, 3])).await.expect("commit");
    let opened = Table::open(&runner, TableId::Users).await.expect("open");
    assert_eq!((opened.version(), opened.row_count().expect("count")), (2, 3));
    // The runner commits (its snapshot after the commit is kept); a load ahead now keeps it.
    let mut opened = opened;
    opened.commit().rows(&users(&[4])).await.expect("commit");
    Table::preload(&runner, TableId::Users).await.expect("preload");
    writer.commit().rows(&users(&[5])).await.expect("commit");
    let reopened = Table::open(&runner, TableId::Users).await.expect("open");
    assert_eq!((reopened.version(), reopened.row_count().expect("count")), (4, 5));
    // A table not set up is left to the open, which says so.
    assert!(Table::preload(&runner, TableId::Workouts).await.is_ok());
    let err = Table::open(&runner, TableId::Workouts).await.expect_err("not set up");
    assert!(err.to_string().contains("fitlake setup"), "{err}");
}

/// Log files older than the log retention (30 days) are removed by the commits that write a
/// checkpoint, as Spark does, not after every commit (a listing of the whole log each time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_log_files_go_with_a_checkpoint_commit_only() {
    let dir = tempfile::tempdir().expect("dir");
    let lh = lakehouse(&dir);
    let mut table = Table::create(&pipeline(&lh), TableId::Users).await.expect("create");
    let log =
        fitlake_config::local_path(&lh.table_url(TableId::Users.layer(), "users")).expect("local").join("_delta_log");
    let first = log.join("00000000000000000000.json");
    // Versions 1 to 9; 9 writes the first checkpoint (every 10 commits).
    for n in 1..=9 {
        table.commit().progress([("app".into(), n)]).await.expect("commit");
    }
    assert!(log.join("00000000000000000009.checkpoint.parquet").exists());
    // Versions 0 to 9 expire: 40 days old.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(40 * 24 * 3600);
    for v in 0..=9 {
        let file = std::fs::File::options().write(true).open(log.join(format!("{v:020}.json"))).expect("open");
        file.set_modified(old).expect("backdate");
    }
    for n in 10..=18 {
        table.commit().progress([("app".into(), n)]).await.expect("commit");
        assert!(first.exists(), "version {n} is no checkpoint commit: it removes no log file");
    }
    table.commit().progress([("app".into(), 19)]).await.expect("commit");
    assert!(!first.exists(), "the checkpoint commit removes the expired log files");
    assert!(log.join("00000000000000000009.json").exists(), "the files after the last kept checkpoint stay");
    let reopened = Table::open(&pipeline(&lh), TableId::Users).await.expect("open");
    assert_eq!((reopened.version(), reopened.progress("app").await.expect("progress")), (19, Some(19)));
}

/// Bronze steps of different tables (one run's, or several runners') record their plans in one
/// table: plans of different tables written at the same moment are all recorded, each table's
/// own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_of_bronze_tables_written_at_once_are_all_recorded() {
    let dir = tempfile::tempdir().expect("dir");
    let lh = lakehouse(&dir);
    let access = pipeline(&lh);
    Table::create(&access, TableId::LandingFiles).await.expect("create landing_files");
    // A cache each, as separate runners have (one run's bronze steps share one and take turns).
    let logs: Vec<PlanLog> =
        TableId::INGESTED.into_iter().map(|t| PlanLog::new(&access, Default::default(), t)).collect();
    for batch in 0..8 {
        let plan = |table: TableId| BatchPlan::new(batch, [(format!("{}-{batch}.json", table.name()), None)]);
        let write = |i: usize| {
            let (log, plan) = (&logs[i], plan(TableId::INGESTED[i]));
            async move { (log.write(&plan).await.expect("write plan"), plan) }
        };
        let (a, b, c) = tokio::join!(write(0), write(1), write(2));
        for (written, planned) in [a, b, c] {
            assert_eq!(written, planned, "batch {batch}: each table's own plan");
        }
    }
    for (log, table) in logs.iter().zip(TableId::INGESTED) {
        let plans = log.load().await.expect("load");
        let files: Vec<String> = plans.values().flat_map(|p| p.files.clone()).collect();
        let expected: Vec<String> = (0..8).map(|b| format!("{}-{b}.json", table.name())).collect();
        assert_eq!(files, expected, "{table}");
    }
    let fresh = PlanLog::new(&access, Default::default(), TableId::KafkaMultiplexBz);
    assert_eq!(fresh.load().await.expect("load").len(), 8, "read afresh from the table");
}
