//! Access control enforced by every command, the governance plan, and data-quality actions.

use std::process::Output;

use polars::prelude::ChunkAgg;

use crate::harness::{succeeded, Lake, AS_OF};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `fitlake ARGS` as `principal` and asserts the policy refused it, naming the principal,
/// the privilege and the securable.
fn refused(lake: &Lake, principal: &str, args: &[&str], privilege: &str, securable: &str) {
    let out = lake.fitlake_env(args, &[("FITLAKE_PRINCIPAL", principal)]);
    assert_eq!(out.status.code(), Some(3), "{principal} {args:?} must be refused:\n{}", stderr(&out));
    let message = stderr(&out);
    for part in [format!("principal `{principal}`"), privilege.to_string(), securable.to_string()] {
        assert!(message.contains(&part), "{principal} {args:?}: {part:?} missing from: {message}");
    }
}

#[test]
fn each_principal_gets_what_the_policy_grants_and_nothing_more() {
    let lake = Lake::new();
    // Setup creates tables: the pipeline may, the others may not, and a refusal creates nothing.
    refused(&lake, "analyst", &["setup"], "USE SCHEMA", "schema fitlake.bronze");
    refused(&lake, "producer", &["setup"], "USE CATALOG", "catalog fitlake");
    assert!(!lake.root.join("managed").exists(), "a refused setup wrote something");
    lake.fitlake(&["setup"]);

    // Landing: the producer writes, the pipeline only reads.
    refused(&lake, "pipeline", &["produce", "--set", "1"], "WRITE FILES", "external location landing_zone");
    refused(&lake, "analyst", &["produce", "--set", "1"], "WRITE FILES", "external location landing_zone");
    let landing = lake.landing("kafka_multiplex_bz");
    assert_eq!(std::fs::read_dir(&landing).map_or(0, |d| d.count()), 0, "a refused produce wrote files");
    lake.fitlake_ok_as("producer", &["produce", "--set", "1"]);

    // Only the pipeline runs the layers; a refused run commits nothing.
    let before = lake.versions_and_counts();
    refused(&lake, "producer", &["run", "--once", "--as-of", AS_OF], "USE CATALOG", "catalog fitlake");
    refused(&lake, "analyst", &["run", "--once", "--as-of", AS_OF], "READ FILES", "external location landing_zone");
    refused(&lake, "analyst", &["run", "--once", "--layer", "gold", "--as-of", AS_OF], "MODIFY", "table fitlake.gold.");
    assert_eq!(lake.versions_and_counts(), before, "a refused run committed something");
    lake.fitlake_ok_as("pipeline", &["run", "--once", "--as-of", AS_OF]);

    // Analysts read gold, nothing else.
    let out = lake.fitlake_ok_as("analyst", &["show", "gym_summary"]);
    assert!(stdout(&out).contains("gold.gym_summary (8 rows)"), "{}", stdout(&out));
    refused(&lake, "analyst", &["show", "users"], "USE SCHEMA", "schema fitlake.silver");
    refused(&lake, "analyst", &["status"], "USE SCHEMA", "schema fitlake.bronze");
    refused(&lake, "producer", &["show", "gym_summary"], "USE CATALOG", "catalog fitlake");

    // A principal the identity may not act as is refused before anything is read.
    for args in [&["status"][..], &["show", "gym_summary"]] {
        let out = lake.fitlake_env(args, &[("FITLAKE_PRINCIPAL", "mallory")]);
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        assert!(stderr(&out).contains("may not act as `mallory`"), "{}", stderr(&out));
    }
}

/// The OS user running the tests, by the same lookup fitlake makes (`id -un`).
fn os_user() -> String {
    let out = std::process::Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn commands_run_as_the_principal_the_os_user_is_and_act_only_as_the_policy_allows() {
    let lake = Lake::new();
    let user = os_user();
    let policy_file = lake.root.parent().expect("parent").join("policy.toml");
    let policy_path = policy_file.to_str().expect("utf-8");
    // The harness names a principal for every command; an empty one is none.
    let without = |principal: Option<&str>, args: &[&str]| {
        lake.fitlake_env(args, &[("FITLAKE_POLICY", policy_path), ("FITLAKE_PRINCIPAL", principal.unwrap_or(""))])
    };

    // The shipped policy: every OS user is `developer`, who holds nothing and must name a
    // principal it may act as. Without one, nothing is done, and the refusal says how.
    std::fs::write(&policy_file, fitlake_governance::SHIPPED_POLICY).expect("policy");
    let out = without(None, &["setup"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("principal `developer`"), "{}", stderr(&out));
    assert!(!lake.root.join("managed").exists(), "a refused setup wrote something");

    // A policy naming this OS user as the pipeline: it runs with no --principal, may not act as
    // anyone else, and its commits record who ran them.
    let named = fitlake_governance::SHIPPED_POLICY.replace("os_users = [\"*\"]\n", "").replace(
        "name = \"pipeline\"\nkind = \"service_principal\"",
        &format!("name = \"pipeline\"\nkind = \"service_principal\"\nos_users = [\"{user}\"]"),
    );
    assert_ne!(named, fitlake_governance::SHIPPED_POLICY);
    std::fs::write(&policy_file, &named).expect("policy");
    succeeded(without(None, &["setup"]), "setup as the OS user's principal");
    succeeded(without(Some("pipeline"), &["status"]), "--principal naming the identity's own principal");
    for other in ["producer", "analyst", "developer"] {
        let out = without(Some(other), &["status"]);
        assert_eq!(out.status.code(), Some(3), "{other}: {}", stderr(&out));
        let message = stderr(&out);
        assert!(
            message.contains(&format!("OS user `{user}` is principal `pipeline`, which may not act as `{other}`")),
            "{message}"
        );
    }
    let log_dir = lake.root.join("managed/bronze/registered_users_bz/_delta_log");
    let log = std::fs::read_to_string(log_dir.join(format!("{:020}.json", 0))).expect("the table's creation");
    assert!(log.contains("\"userName\":\"pipeline\""), "commitInfo names the principal: {log}");
    assert!(log.contains(&format!("\"fitlake.identity\":\"os:{user}\"")), "commitInfo names the identity: {log}");

    // An OS user no principal claims is refused, whatever it asks to be.
    let unmapped = named.replace(&format!("os_users = [\"{user}\"]"), "os_users = [\"someone_else\"]");
    std::fs::write(&policy_file, &unmapped).expect("policy");
    for principal in [None, Some("pipeline")] {
        let out = without(principal, &["status"]);
        assert_eq!(out.status.code(), Some(3), "{principal:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("OS user `{user}` is not a principal of the policy")),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn a_policy_without_a_grant_refuses_before_anything_is_written() {
    let lake = Lake::after_set_1();
    lake.fitlake(&["produce", "--set", "2"]);
    let policy = fitlake_governance::SHIPPED_POLICY.replace(
        "on = \"schema fitlake.gold\"\nprivileges = [\"USE SCHEMA\", \"SELECT\", \"MODIFY\", \"CREATE TABLE\"]",
        "on = \"schema fitlake.gold\"\nprivileges = [\"USE SCHEMA\", \"SELECT\"]",
    );
    assert_ne!(policy, fitlake_governance::SHIPPED_POLICY);
    let path = lake.root.parent().expect("parent").join("no-gold-writes.toml");
    std::fs::write(&path, policy).expect("write policy");
    let before = lake.versions_and_counts();
    let out =
        lake.fitlake_env(&["run", "--once", "--as-of", AS_OF], &[("FITLAKE_POLICY", path.to_str().expect("utf-8"))]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("MODIFY on table fitlake.gold."), "{}", stderr(&out));
    assert_eq!(lake.versions_and_counts(), before, "bronze and silver were written before gold was refused");

    let broken = lake.root.parent().expect("parent").join("broken.toml");
    std::fs::write(&broken, "catalog = 1").expect("write");
    let out = lake.fitlake_env(&["status"], &[("FITLAKE_POLICY", broken.to_str().expect("utf-8"))]);
    assert_eq!(out.status.code(), Some(2), "a broken policy is a configuration error: {}", stderr(&out));
    assert!(stderr(&out).contains("broken.toml"), "the message names the file: {}", stderr(&out));
}

#[test]
fn governance_plan_prints_sql_for_the_lakehouse_and_nothing_once_applied() {
    let lake = Lake::new();
    let root = "abfss://lake@fitlakeprod.dfs.core.windows.net/fitlake";
    let plan_for = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_fitlake"))
            .args(["--lakehouse", root, "governance", "plan"])
            .args(extra)
            .output()
            .expect("run fitlake");
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let plan = plan_for(&[]);
    assert!(plan.contains(
        "CREATE EXTERNAL LOCATION IF NOT EXISTS `landing_zone` URL 'abfss://lake@fitlakeprod.dfs.core.windows.net/fitlake/unmanaged/data_zone/'"
    ));
    assert!(plan.contains("GRANT READ FILES ON EXTERNAL LOCATION `checkpoint_zone` TO `pipeline`;"));
    assert!(!plan.contains("GRANT WRITE FILES ON EXTERNAL LOCATION `checkpoint_zone`"), "checkpoints are read-only");
    assert!(plan.contains("\"max_clusters_per_user\": 3"));
    assert!(plan.contains(&format!(
        "CREATE TABLE IF NOT EXISTS `fitlake`.`gold`.`gym_summary` USING DELTA LOCATION '{root}/managed/gold/gym_summary/';"
    )));
    assert!(plan.contains(&format!("MANAGED LOCATION '{root}/metastore-root/unity-catalog/';")), "{plan}");

    let lakehouse = fitlake_config::Lakehouse::from_root(root, std::path::Path::new("/")).expect("lakehouse");
    let urls = fitlake_pipeline::setup::zone_urls(&lakehouse).expect("urls");
    let applied = fitlake_governance::plan::applied(&fitlake_governance::Policy::shipped().expect("policy"), &urls)
        .expect("applied");
    let current = lake.root.parent().expect("parent").join("current.json");
    std::fs::write(&current, serde_json::to_string(&applied).expect("json")).expect("write");
    let again = plan_for(&["--current", current.to_str().expect("utf-8")]);
    assert_eq!(again, "-- nothing to change: the workspace already matches the policy\n");
}

fn expectations_file(lake: &Lake, name: &str, body: &str) -> String {
    let path = lake.root.parent().expect("parent").join(name);
    std::fs::write(&path, body).expect("write expectations");
    path.to_str().expect("utf-8").to_string()
}

const HIGH_HEART_RATE: &str = r#"
[[expectation]]
table = "heart_rate"
name = "below_120"
check = "range"
column = "heartrate"
max = 120
when = "valid"
action = "ACTION"
"#;

#[test]
fn expectations_warn_drop_and_fail_as_declared_and_are_logged() {
    // The shipped expectations run on every commit and are logged.
    let lake = Lake::after_set_1();
    let report = stdout(&lake.fitlake(&["quality"]));
    assert!(report.contains("valid_heartrate_in_range"), "{report}");
    assert!(report.lines().last().is_some_and(|l| l.starts_with("fitlake-quality: ok events=")), "{report}");
    let baseline = lake.counts()["heart_rate"];

    // warn: rows kept, failures counted.
    let warn = Lake::new();
    let file = expectations_file(&warn, "warn.toml", &HIGH_HEART_RATE.replace("ACTION", "warn"));
    let env = [("FITLAKE_EXPECTATIONS", file.as_str())];
    for args in [&["setup"][..], &["produce", "--set", "1"], &["run", "--once", "--as-of", AS_OF]] {
        assert!(warn.fitlake_env(args, &env).status.success());
    }
    assert_eq!(warn.counts()["heart_rate"], baseline, "warn keeps every row");
    let events = warn.table("quality_events");
    let failed: i64 = events.column("rows_failed").expect("col").i64().expect("i64").sum().unwrap_or(0);
    assert!(failed > 0, "some readings are above 120 bpm in set 1");

    // drop: the failing rows go to the quarantine with the expectation's name instead.
    let drop = Lake::new();
    let file = expectations_file(&drop, "drop.toml", &HIGH_HEART_RATE.replace("ACTION", "drop"));
    let env = [("FITLAKE_EXPECTATIONS", file.as_str())];
    for args in [&["setup"][..], &["produce", "--set", "1"], &["run", "--once", "--as-of", AS_OF]] {
        assert!(drop.fitlake_env(args, &env).status.success());
    }
    assert_eq!(drop.counts()["heart_rate"], baseline - failed as u64, "exactly the failing rows are dropped");
    let quarantine = drop.table("quarantine");
    let reasons = quarantine.column("reason").expect("reason").str().expect("str").clone();
    let dropped = reasons.iter().filter(|r| *r == Some("expectation below_120 failed")).count();
    assert_eq!(dropped as i64, failed);

    // fail: the step commits nothing and the run fails, naming the expectation; fixing the
    // expectation and rerunning loses nothing.
    let fail = Lake::new();
    let file = expectations_file(&fail, "fail.toml", &HIGH_HEART_RATE.replace("ACTION", "fail"));
    let env = [("FITLAKE_EXPECTATIONS", file.as_str())];
    fail.fitlake(&["setup"]);
    fail.fitlake(&["produce", "--set", "1"]);
    let out = fail.fitlake_env(&["run", "--once", "--as-of", AS_OF], &env);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("expectation \"below_120\" on heart_rate"), "{}", stderr(&out));
    assert_eq!(fail.counts()["heart_rate"], 0, "a failed expectation commits nothing");
    // No step reading heart_rate starts (their logs hold only their creation); a step beside
    // it, started with it, commits.
    let commits = |table: &str| {
        let log = fail.root.join("managed/silver").join(table).join("_delta_log");
        let files = std::fs::read_dir(&log).expect("log").filter_map(|e| e.ok());
        files.filter(|e| e.file_name().to_string_lossy().ends_with(".json")).count()
    };
    assert_eq!(commits("workout_bpm"), 1, "workout_bpm waits for heart_rate");
    assert!(commits("workouts") > 1 && fail.counts()["workouts"] > 0, "workouts runs beside heart_rate");
    let logged = fail.table("quality_events");
    assert!(logged.column("table_version").expect("col").null_count() > 0, "the failure is logged without a version");
    fail.run_once();
    assert_eq!(fail.counts()["heart_rate"], baseline, "the rerun with the shipped expectations loses nothing");

    // A `drop` on a MERGE table is refused when the file is read.
    let bad = expectations_file(&fail, "bad.toml", "[[expectation]]\ntable = \"gym_logs\"\nname = \"x\"\ncheck = \"not_null\"\ncolumn = \"gym\"\naction = \"drop\"\n");
    let out = fail.fitlake_env(&["run", "--once", "--as-of", AS_OF], &[("FITLAKE_EXPECTATIONS", bad.as_str())]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("append-only"), "{}", stderr(&out));
}

#[test]
fn the_table_registry_records_delta_types() {
    let lake = Lake::new();
    lake.fitlake(&["setup"]);
    let text = std::fs::read_to_string(lake.root.join("metastore-root/tables.json")).expect("tables.json");
    let registry: serde_json::Value = serde_json::from_str(&text).expect("json");
    let users =
        registry.as_array().expect("tables").iter().find(|t| t["name"] == "registered_users_bz").expect("users");
    let columns: Vec<(String, String)> = users["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| (c[0].as_str().unwrap_or_default().to_string(), c[1].as_str().unwrap_or_default().to_string()))
        .collect();
    for (name, delta_type) in [("user_id", "long"), ("mac_address", "string"), ("registration_timestamp", "timestamp")]
    {
        assert!(columns.contains(&(name.to_string(), delta_type.to_string())), "{name}: {columns:?}");
    }
    assert!(!text.contains("Utf8") && !text.contains("Timestamp("), "Arrow names left: {text}");
}

#[test]
fn a_group_is_not_a_principal_to_run_as() {
    let lake = Lake::new();
    lake.fitlake(&["setup"]);
    for group in ["platform_admins", "analysts"] {
        let out = lake.fitlake_env(&["status"], &[("FITLAKE_PRINCIPAL", group)]);
        assert_eq!(out.status.code(), Some(3), "{group}: {}", stderr(&out));
        assert!(stderr(&out).contains("is a group"), "{}", stderr(&out));
    }
    lake.fitlake_ok_as("analyst", &["show", "gym_summary"]);
}

#[test]
fn the_acl_script_gives_entra_principals_their_file_access_through_the_azure_cli() {
    let dir = tempfile::tempdir().expect("dir");
    let (pipeline, analysts) = ("11111111-1111-1111-1111-111111111111", "33333333-3333-3333-3333-333333333333");
    let policy = fitlake_governance::SHIPPED_POLICY
        .replace(
            "name = \"pipeline\"\nkind = \"service_principal\"",
            &format!("name = \"pipeline\"\nkind = \"service_principal\"\nentra_ids = [\"{pipeline}\"]"),
        )
        .replace(
            "name = \"analysts\"\nkind = \"group\"",
            &format!("name = \"analysts\"\nkind = \"group\"\nentra_ids = [\"{analysts}\"]"),
        );
    let policy_file = dir.path().join("policy.toml");
    std::fs::write(&policy_file, policy).expect("policy");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fitlake"))
        .args(["--lakehouse", "abfss://lake@fitlakeprod.dfs.core.windows.net/fitlake", "governance", "acls"])
        .arg("--policy")
        .arg(&policy_file)
        .output()
        .expect("run fitlake");
    let script = succeeded(out, "governance acls").stdout;
    let script_file = dir.path().join("acls.sh");
    std::fs::write(&script_file, &script).expect("script");

    // A stand-in for the Azure CLI: logs each call; every folder's ACL already holds an entry
    // for the pipeline that the script must replace, not repeat.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("bin");
    let log = dir.path().join("az.log");
    std::fs::write(
        bin.join("az"),
        format!(
            "#!/usr/bin/env bash\necho \"$*\" >> {}\ncase \"$*\" in *' access show '*) echo \
             'user::rwx,group::r-x,other::---,user:{pipeline}:r--' ;; esac\n",
            log.display()
        ),
    )
    .expect("fake az");
    std::fs::set_permissions(bin.join("az"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let ran = std::process::Command::new("bash").arg(&script_file).env("PATH", path).output().expect("bash");
    succeeded(ran, "the ACL script");
    let calls = std::fs::read_to_string(&log).expect("az log");
    let gold = "--path fitlake/managed/gold/gym_summary";
    assert!(
        calls.contains(&format!("access update-recursive --account-name fitlakeprod --file-system lake {gold} --acl group:{analysts}:r-x,default:group:{analysts}:r-x")),
        "{calls}"
    );
    assert!(
        calls.contains(&format!(
            "--path fitlake/managed/bronze/gym_logins_bz --acl user:{pipeline}:rwx,default:user:{pipeline}:rwx"
        )),
        "{calls}"
    );
    // Folder entries keep what the folder had and replace the pipeline's old entry.
    assert!(
        calls.contains(&format!("access set --account-name fitlakeprod --file-system lake --path / --acl user::rwx,group::r-x,other::---,user:{pipeline}:--x")),
        "{calls}"
    );
    let sets_pipeline =
        calls.lines().filter(|l| l.contains(" access set ") && l.contains(&format!("user:{pipeline}:--x")));
    assert!(sets_pipeline.clone().count() >= 3, "/, fitlake, fitlake/managed: {calls}");
    assert!(
        sets_pipeline.clone().all(|l| !l.contains(&format!("user:{pipeline}:r--"))),
        "an old entry for the same subject is kept: {calls}"
    );
    assert!(
        !calls
            .lines()
            .any(|l| l.contains(&format!("group:{analysts}")) && (l.contains("/silver") || l.contains("/bronze"))),
        "analysts reach only gold: {calls}"
    );
}
