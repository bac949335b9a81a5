//! The shipped policy's rules, each both ways; policy checks; the plan and its idempotence.

use fitlake_governance::plan::{applied, plan, Current, ShownGrant, TableLocation, ZoneUrls};
use fitlake_governance::policy::Zone;
use fitlake_governance::{Policy, Privilege, Securable};

fn shipped() -> Policy {
    Policy::shipped().expect("the shipped policy is valid")
}

fn table(schema: &str, name: &str) -> Securable {
    Securable::Table("fitlake".into(), schema.into(), name.into())
}

fn schema(name: &str) -> Securable {
    Securable::Schema("fitlake".into(), name.into())
}

fn urls() -> ZoneUrls {
    ZoneUrls {
        landing: "abfss://lake@fitlakeprod.dfs.core.windows.net/unmanaged/data_zone/".into(),
        checkpoint: "abfss://lake@fitlakeprod.dfs.core.windows.net/unmanaged/checkpoint_zone/".into(),
        managed: "abfss://lake@fitlakeprod.dfs.core.windows.net/managed/".into(),
        catalog_storage: "abfss://lake@fitlakeprod.dfs.core.windows.net/metastore-root/unity-catalog/".into(),
        tables: [("bronze", "kafka_multiplex_bz"), ("silver", "heart_rate"), ("gold", "gym_summary")]
            .map(|(schema, name)| TableLocation {
                schema: schema.into(),
                name: name.into(),
                location: format!("abfss://lake@fitlakeprod.dfs.core.windows.net/managed/{schema}/{name}/"),
            })
            .to_vec(),
    }
}

#[test]
fn rule_1_nobody_reaches_table_or_metastore_storage_directly() {
    let p = shipped();
    for who in ["pipeline", "producer", "analyst", "platform_admins"] {
        for zone in [Zone::Managed, Zone::Metastore] {
            for privilege in [Privilege::ReadFiles, Privilege::WriteFiles] {
                let denied = p.authorize_files(who, privilege, zone).expect_err("direct access must be refused");
                assert!(denied.reason.contains("no external location"), "{denied}");
            }
        }
    }
    // The pipeline reaches the same data through the tables.
    assert!(p.authorize("pipeline", Privilege::Select, &table("silver", "users")).is_ok());
}

#[test]
fn rule_2_landing_is_read_only_for_the_pipeline_and_written_by_the_producer() {
    let p = shipped();
    assert!(p.authorize_files("pipeline", Privilege::ReadFiles, Zone::Landing).is_ok());
    let denied = p.authorize_files("pipeline", Privilege::WriteFiles, Zone::Landing).expect_err("read-only");
    assert_eq!(
        denied.to_string(),
        "access denied: principal `pipeline` may not use WRITE FILES on external location landing_zone (not granted)"
    );
    assert!(p.authorize_files("producer", Privilege::WriteFiles, Zone::Landing).is_ok());
    assert!(p.authorize_files("analyst", Privilege::ReadFiles, Zone::Landing).is_err());
}

#[test]
fn rule_3_the_pipeline_reads_and_writes_the_three_schemas_and_nobody_else_writes() {
    let p = shipped();
    for layer in ["bronze", "silver", "gold"] {
        let t = table(layer, "any_table");
        assert!(p.authorize("pipeline", Privilege::Select, &t).is_ok());
        assert!(p.authorize("pipeline", Privilege::Modify, &t).is_ok());
        assert!(p.authorize("pipeline", Privilege::CreateTable, &schema(layer)).is_ok());
        for other in ["producer", "analyst"] {
            let denied = p.authorize(other, Privilege::Modify, &t).expect_err("only the pipeline writes");
            assert_eq!(denied.principal, other);
        }
    }
}

#[test]
fn rule_4_checkpoints_are_read_only() {
    let p = shipped();
    assert!(p.authorize_files("pipeline", Privilege::ReadFiles, Zone::Checkpoint).is_ok());
    assert!(p.authorize_files("pipeline", Privilege::WriteFiles, Zone::Checkpoint).is_err());
    assert!(p.authorize_files("producer", Privilege::ReadFiles, Zone::Checkpoint).is_err());
}

#[test]
fn analysts_read_gold_only_through_their_group() {
    let p = shipped();
    assert!(p.authorize("analyst", Privilege::Select, &table("gold", "gym_summary")).is_ok());
    let denied = p.authorize("analyst", Privilege::Select, &table("silver", "users")).expect_err("silver");
    assert_eq!(denied.privilege, Privilege::UseSchema, "{denied}");
    assert_eq!(denied.securable, "schema fitlake.silver");
    assert!(p.authorize("analyst", Privilege::Modify, &table("gold", "gym_summary")).is_err());
    let stranger = p.authorize("mallory", Privilege::Select, &table("gold", "gym_summary")).expect_err("stranger");
    assert!(stranger.to_string().contains("`mallory`") && stranger.reason.contains("not a principal"));
}

#[test]
fn use_catalog_and_use_schema_are_needed_on_top_of_select() {
    let text = shipped_text().replace(
        "[[grants]]\nprincipal = \"analysts\"\non = \"catalog fitlake\"\nprivileges = [\"USE CATALOG\"]\n",
        "",
    );
    assert_ne!(text, shipped_text(), "the analysts' USE CATALOG grant was found and removed");
    let p = Policy::parse(&text).expect("still valid");
    let denied = p.authorize("analyst", Privilege::Select, &table("gold", "gym_summary")).expect_err("no USE CATALOG");
    assert_eq!(denied.privilege, Privilege::UseCatalog);
}

fn shipped_text() -> String {
    fitlake_governance::SHIPPED_POLICY.to_string()
}

#[test]
fn invalid_policies_are_refused_with_the_rule_they_break() {
    let cases = [
        (
            shipped_text().replace("zone = \"checkpoint\"", "zone = \"managed\""),
            "nobody may reach table or metastore storage directly",
        ),
        (shipped_text().replace("principal = \"producer\"", "principal = \"producr\""), "not a principal"),
        (
            shipped_text().replace(
                "on = \"external location landing_zone\"\nprivileges = [\"READ FILES\"]",
                "on = \"external location landing_zone\"\nprivileges = [\"SELECT\"]",
            ),
            "SELECT cannot be granted on external location landing_zone",
        ),
        (
            shipped_text().replace("\"dbus_per_hour\" = { type = \"range\", maxValue = 4 }\n", ""),
            "sets no cost (DBUs per hour) limit",
        ),
        (
            shipped_text().replace(
                "\"autoscale.max_workers\" = { type = \"range\", minValue = 1, maxValue = 4",
                "\"autoscale.max_workers\" = { type = \"range\", minValue = 5, maxValue = 4",
            ),
            "has min above max",
        ),
        (shipped_text().replace("members = [\"analyst\"]", "members = [\"analysts\"]"), "groups contain each other"),
        (shipped_text().replace("on = \"schema fitlake.gold\"", "on = \"schema fitlake.platinum\""), "does not define"),
        (format!("surprise = 1\n{}", shipped_text()), "unknown field"),
    ];
    for (text, expected) in cases {
        assert_ne!(text, shipped_text(), "the case for {expected:?} changed nothing");
        let err = Policy::parse(&text).expect_err(expected).to_string();
        assert!(err.contains(expected), "expected {expected:?} in: {err}");
    }
}

#[test]
fn the_full_plan_creates_locations_catalog_schemas_grants_and_cluster_policies() {
    let plan = plan(&shipped(), &urls(), None).expect("plan");
    insta::assert_snapshot!("full_plan", plan.render());
}

#[test]
fn planning_against_the_applied_state_is_empty_and_a_drift_is_repaired() {
    let p = shipped();
    let done = applied(&p, &urls()).expect("applied");
    let again = plan(&p, &urls(), Some(&done)).expect("plan");
    assert!(again.is_empty(), "not idempotent:\n{}", again.render());
    assert!(again.render().contains("nothing to change"));

    // Drift: an analyst was given MODIFY on gold, the pipeline lost SELECT on silver, a grant on
    // an object fitlake does not govern exists, and a cluster policy was loosened.
    let mut drifted = done.clone();
    drifted.grants.push(ShownGrant {
        principal: "analysts".into(),
        action_type: "MODIFY".into(),
        object_type: "SCHEMA".into(),
        object_key: "fitlake.gold".into(),
    });
    drifted.grants.push(ShownGrant {
        principal: "someone".into(),
        action_type: "SELECT".into(),
        object_type: "TABLE".into(),
        object_key: "other_catalog.s.t".into(),
    });
    drifted
        .grants
        .retain(|g| !(g.principal == "pipeline" && g.action_type == "SELECT" && g.object_key == "fitlake.silver"));
    drifted.cluster_policies[0].max_clusters_per_user = 50;
    let text = serde_json::to_string(&drifted).expect("json");
    let repair = plan(&p, &urls(), Some(&Current::parse(&text).expect("parse current"))).expect("plan");
    insta::assert_snapshot!("drift_repair_plan", repair.render());
}

#[test]
fn tables_are_registered_at_their_folders_outside_the_catalog_storage() {
    let full = plan(&shipped(), &urls(), None).expect("plan").render();
    assert!(full.contains(
        "CREATE TABLE IF NOT EXISTS `fitlake`.`silver`.`heart_rate` USING DELTA LOCATION \
         'abfss://lake@fitlakeprod.dfs.core.windows.net/managed/silver/heart_rate/';"
    ));
    assert!(
        full.contains("MANAGED LOCATION 'abfss://lake@fitlakeprod.dfs.core.windows.net/metastore-root/unity-catalog/'")
    );
    // The tables' external location is created before them, and nobody gets file access to it.
    let location = full.find("`fitlake_tables` URL").expect("tables location");
    assert!(location < full.find("CREATE TABLE").expect("create table"));
    assert!(!full.contains("FILES ON EXTERNAL LOCATION `fitlake_tables`"));
    // A catalog storage overlapping the tables is refused, either way round.
    for catalog_storage in
        ["abfss://lake@fitlakeprod.dfs.core.windows.net/managed/uc", "abfss://lake@fitlakeprod.dfs.core.windows.net/"]
    {
        let bad = ZoneUrls { catalog_storage: catalog_storage.into(), ..urls() };
        let err = plan(&shipped(), &bad, None).expect_err("overlap").to_string();
        assert!(err.contains("overlaps"), "{err}");
    }
    // A registered table is not created again.
    let mut current = applied(&shipped(), &urls()).expect("applied");
    current.tables.retain(|t| t != "fitlake.gold.gym_summary");
    let repair = plan(&shipped(), &urls(), Some(&current)).expect("plan").render();
    assert_eq!(repair.matches("CREATE TABLE").count(), 1, "{repair}");
    assert!(repair.contains("`gold`.`gym_summary`"));
}

/// The statements of a rendered plan as a Databricks SQL lexer splits them: `;` outside
/// string literals (with backslash escapes), backquoted names and `--` comments ends one.
fn statements(sql: &str) -> Vec<String> {
    let (mut out, mut current) = (Vec::new(), String::new());
    let mut chars = sql.chars().peekable();
    let (mut in_string, mut in_name, mut in_comment) = (false, false, false);
    while let Some(c) = chars.next() {
        current.push(c);
        match c {
            '\n' if in_comment => in_comment = false,
            _ if in_comment => {}
            '\\' if in_string => current.extend(chars.next()),
            '\'' if !in_name => in_string = !in_string,
            '`' if !in_string => in_name = !in_name,
            '-' if !in_string && !in_name && chars.peek() == Some(&'-') => in_comment = true,
            ';' if !in_string && !in_name => out.push(std::mem::take(&mut current).trim().to_string()),
            _ => {}
        }
    }
    out
}

#[test]
fn hostile_policy_text_cannot_add_statements_and_bad_names_are_refused_naming_the_field() {
    // A comment written to break out of its literal stays inside it.
    let hostile = r"\'; GRANT ALL PRIVILEGES ON METASTORE TO x; --";
    let text = shipped_text().replace(
        "comment = \"raw source files: registrations, gym logins, the Kafka multiplex\"",
        &format!("comment = {hostile:?}"),
    );
    let policy = Policy::parse(&text).expect("a comment may hold quotes and backslashes");
    let sql = plan(&policy, &urls(), None).expect("plan").sql.join("\n");
    let split = statements(&sql);
    assert!(split.iter().all(|s| !s.starts_with("GRANT ALL")), "{split:#?}");
    let location = split.iter().find(|s| s.contains("`landing_zone` URL")).expect("landing location");
    assert!(location.ends_with(r"COMMENT '\\\'; GRANT ALL PRIVILEGES ON METASTORE TO x; --';"), "{location}");
    assert_eq!(split.len(), statements(&plan(&shipped(), &urls(), None).expect("plan").sql.join("\n")).len());

    // Control characters in text, and names outside the safe patterns, are refused on load.
    let cases = [
        (
            "comment = \"streaming checkpoints (read-only)\"",
            "comment = \"line one\\nGRANT ALL PRIVILEGES ON METASTORE TO x\"",
            "external_locations.comment of \"checkpoint_zone\"",
        ),
        ("name = \"landing_zone\"", "name = \"landing`; DROP CATALOG fitlake; --\"", "external_locations.name"),
        (
            "owner = \"platform_admins\"\ncomment = \"raw",
            "owner = \"platform_admins'\"\ncomment = \"raw",
            "external_locations.owner",
        ),
    ];
    for (from, to, field) in cases {
        assert!(shipped_text().contains(from), "{from}");
        let err = Policy::parse(&shipped_text().replacen(from, to, 1)).expect_err(to).to_string();
        assert!(err.contains(field), "{to}: {err}");
    }
}
