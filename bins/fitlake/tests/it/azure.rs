//! The lakehouse on Azure Data Lake Storage, tested against Azurite (the Azure Storage
//! emulator) started on a loopback port for each test.

use std::process::Command;

use fitlake_config::Lakehouse;
use fitlake_storage::azure::AzureAuth;
use fitlake_storage::Stores;

use crate::harness::{assert_same_tables, Lake, Remote, Service};
use crate::original_counts;

/// An Azurite blob service with in-memory storage; stopped when dropped.
pub struct Azurite(Service);

impl Azurite {
    /// Starts Azurite (`$FITLAKE_AZURITE` or `azurite-blob` on the PATH).
    pub fn start() -> Azurite {
        Azurite(Service::start("FITLAKE_AZURITE", "azurite-blob", |port| {
            let args = ["--blobHost", "127.0.0.1", "--blobPort", &port.to_string(), "--inMemoryPersistence"];
            let quiet = ["--disableTelemetry", "--skipApiVersionCheck"];
            args.iter().chain(&quiet).map(|a| a.to_string()).collect()
        }))
    }

    /// The blob endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.0.port)
    }

    /// The environment that points fitlake at this emulator.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![("AZURE_STORAGE_USE_EMULATOR".into(), "true".into()), ("AZURITE_BLOB_STORAGE_URL".into(), self.endpoint())]
    }
}

const ACCOUNT: &str = "devstoreaccount1";

/// A lakehouse whose managed tables and catalog live in container `lakehouse` and whose landing
/// and checkpoint zones live in container `unmanaged` (the original's separate roots).
fn lake_on(azurite: &Azurite) -> Lake {
    let location = format!("abfss://lakehouse@{ACCOUNT}.dfs.core.windows.net/fitlake");
    let unmanaged = format!("abfss://unmanaged@{ACCOUNT}.dfs.core.windows.net/zones");
    let mut env = azurite.env();
    env.push(("FITLAKE_UNMANAGED_ROOT".into(), unmanaged.clone()));
    let lakehouse = Lakehouse::from_root(&location, std::path::Path::new("/"))
        .and_then(|l| l.with_roots(None, None, Some(&unmanaged), std::path::Path::new("/")))
        .expect("lakehouse");
    let endpoint = url::Url::parse(&azurite.endpoint()).expect("endpoint");
    let stores = Stores::with_azure(AzureAuth::Emulator { endpoint, key: None, sas: None });
    Lake::remote(Remote { location, env, lakehouse, stores })
}

#[test]
fn the_batch_test_passes_with_every_zone_on_azurite() {
    let azurite = Azurite::start();
    // object_store finds the emulator through this variable; no other test of this process
    // reads it (the other Azure tests only run the binary, with their own environment).
    std::env::set_var("AZURITE_BLOB_STORAGE_URL", azurite.endpoint());
    let lake = lake_on(&azurite);
    let local = Lake::new();

    let setup = lake.fitlake(&["setup"]);
    let said = String::from_utf8_lossy(&setup.stderr).to_string();
    for container in ["lakehouse", "unmanaged"] {
        assert!(said.contains(&format!("created the container {container} of storage account {ACCOUNT}")), "{said}");
    }
    let again = lake.fitlake(&["setup"]);
    assert!(!String::from_utf8_lossy(&again.stderr).contains("created"), "setup is idempotent");
    assert_eq!(lake.counts()["date_lookup"], 365);
    local.fitlake(&["setup"]);

    for (set, counts) in
        [(1, vec![5, 8, 7, 16, 5, 8, 5, 16, 5, 8, 8]), (2, vec![10, 16, 13, 32, 10, 16, 10, 32, 10, 16, 16])]
    {
        let set = set.to_string();
        for lake in [&lake, &local] {
            lake.fitlake(&["produce", "--set", &set]);
            lake.run_once();
        }
        assert_eq!(original_counts(&lake), counts, "set {set}");
        assert_same_tables(&local.all_tables(), &lake.all_tables(), &format!("Azurite vs local disk, set {set}"));
    }
    // Everything is in the emulator: nothing was written next to the runner's output.
    assert!(!lake.root.exists(), "{} holds files", lake.root.display());
    let status = lake.fitlake(&["status"]);
    let status = String::from_utf8_lossy(&status.stdout).to_string();
    assert!(status.contains("fitlake-status: ok") && status.contains(" behind=0"), "{status}");

    // OPTIMIZE and VACUUM on Azure: fewer files, the same rows, the replaced files deleted.
    let optimized = lake.fitlake(&["optimize", "--json"]);
    let reports: serde_json::Value = serde_json::from_slice(&optimized.stdout).expect("json");
    let compacted: u64 = reports.as_array().expect("reports").iter().filter_map(|r| r["files_removed"].as_u64()).sum();
    assert!(compacted >= 2, "{reports}");
    assert_same_tables(&local.all_tables(), &lake.all_tables(), "Azurite after optimize");
    let vacuumed = lake.fitlake(&["vacuum", "--retain", "0h", "--force", "--json"]);
    let reports: serde_json::Value = serde_json::from_slice(&vacuumed.stdout).expect("json");
    let deleted: usize =
        reports.as_array().expect("reports").iter().map(|r| r["files"].as_array().map_or(0, Vec::len)).sum();
    assert!(deleted as u64 >= compacted, "{reports}");
    assert_same_tables(&local.all_tables(), &lake.all_tables(), "Azurite after vacuum");

    // SQL and the report read Azure tables as they read local ones.
    for panel in fitlake_report::PANELS {
        let on_azure = lake.fitlake(&["sql", "--format", "csv", panel.query]);
        let on_disk = local.fitlake(&["sql", "--format", "csv", panel.query]);
        assert_eq!(String::from_utf8_lossy(&on_azure.stdout), String::from_utf8_lossy(&on_disk.stdout), "{}", panel.id);
    }
    let dir = local.root.parent().expect("parent").join("azure-report");
    lake.fitlake(&["report", "--out", dir.to_str().expect("utf-8")]);
    assert!(std::fs::read_to_string(dir.join("index.html")).expect("page").contains("<svg"));
}

#[test]
fn setup_says_clearly_when_the_credential_may_not_create_the_container() {
    let azurite = Azurite::start();
    let wrong_key = "d3Jvbmcta2V5LXRoYXQtaXMtYmFzZTY0LWFuZC1zZWNyZXQ="; // base64, not the account's
    let mut env = azurite.env();
    env.push(("AZURE_STORAGE_ACCOUNT_KEY".into(), wrong_key.into()));
    let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let lake = Lake::new();
    let location = format!("abfss://locked@{ACCOUNT}.dfs.core.windows.net/fitlake");
    let out = Command::new(env!("CARGO_BIN_EXE_fitlake"))
        .args(["--lakehouse", &location, "--principal", "pipeline", "setup"])
        .envs(vars.iter().copied())
        .current_dir(lake.root.parent().expect("temp dir"))
        .output()
        .expect("run fitlake");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("container locked of storage account {ACCOUNT}")), "{stderr}");
    assert!(
        stderr.contains("may not create it (HTTP 403") && stderr.contains("az storage container create"),
        "{stderr}"
    );
    assert!(!stderr.contains(wrong_key), "the key leaked: {stderr}");
}

#[test]
fn unusable_azure_settings_fail_fast_without_showing_secrets() {
    let lake = Lake::new();
    let fitlake = |location: &str, env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fitlake"));
        cmd.args(["--lakehouse", location, "--principal", "pipeline", "status"])
            .env_remove("AZURE_STORAGE_USE_EMULATOR");
        cmd.envs(env.iter().copied()).current_dir(lake.root.parent().expect("temp dir")).output().expect("run")
    };
    let no_container = fitlake("abfss://acct.dfs.core.windows.net/x", &[]);
    assert_eq!(no_container.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_container.stderr).contains("abfss://container@account.dfs.core.windows.net"));

    let secret = "this is not base64 but secret";
    let bad_key = fitlake("abfss://lake@acct.dfs.core.windows.net/x", &[("AZURE_STORAGE_ACCOUNT_KEY", secret)]);
    let stderr = String::from_utf8_lossy(&bad_key.stderr);
    assert_eq!(bad_key.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("AZURE_STORAGE_ACCOUNT_KEY is not base64") && !stderr.contains(secret), "{stderr}");

    let bad_scheme = fitlake("s3://bucket/x", &[]);
    assert_eq!(bad_scheme.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_scheme.stderr).contains("unsupported scheme"));
}

/// An account SAS for Azurite's account, signed with its well-known key (as the Azure portal
/// or `az storage account generate-sas` would make one).
fn account_sas(permissions: &str, types: &str) -> String {
    use base64::Engine as _;
    const KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
    let (services, expiry, protocol, version) = ("b", "2099-01-01T00:00:00Z", "https,http", "2021-08-06");
    let to_sign = format!("{ACCOUNT}\n{permissions}\n{services}\n{types}\n\n{expiry}\n\n{protocol}\n{version}\n\n");
    let key = base64::engine::general_purpose::STANDARD.decode(KEY).expect("key");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let signature = base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&key, to_sign.as_bytes()));
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("sv", version),
            ("ss", services),
            ("srt", types),
            ("sp", permissions),
            ("se", expiry),
            ("spr", protocol),
            ("sig", &signature),
        ])
        .finish()
}

#[test]
fn a_sas_token_works_and_one_without_the_create_right_is_told_so() {
    let azurite = Azurite::start();
    let lake = Lake::new();
    let fitlake = |container: &str, sas: &str, args: &[&str]| {
        let location = format!("abfss://{container}@{ACCOUNT}.dfs.core.windows.net/fitlake");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fitlake"));
        cmd.arg("--lakehouse").arg(location).args(args).env("FITLAKE_PRINCIPAL", "pipeline");
        cmd.envs(azurite.env()).env("AZURE_STORAGE_SAS_TOKEN", sas);
        cmd.current_dir(lake.root.parent().expect("temp dir")).output().expect("run fitlake")
    };
    let full = account_sas("rwdlac", "sco");
    let out = fitlake("withsas", &full, &["setup"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("created the container withsas of storage account {ACCOUNT}")), "{stderr}");
    let out = fitlake("withsas", &full, &["--principal", "producer", "produce", "--set", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = fitlake("withsas", &full, &["run", "--once", "--as-of", crate::harness::AS_OF]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("fitlake-run: ok steps=13"), "{stdout}");

    // Good for blobs but not for containers: the container cannot be made, and the SAS stays
    // secret.
    let no_create = account_sas("rwdlac", "o");
    let out = fitlake("nocreate", &no_create, &["setup"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the SAS token in AZURE_STORAGE_SAS_TOKEN may not create it (HTTP 403"), "{stderr}");
    let signature = no_create.split("sig=").nth(1).expect("sig");
    assert!(!stderr.contains(signature) && !stderr.contains(&no_create), "the SAS leaked: {stderr}");
}
