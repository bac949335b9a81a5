//! The Azure DevOps pipeline cannot rot silently: every fitlake command it runs (in its YAML
//! and in the validation script it calls) exists, with those options, in the built binaries;
//! and the validation script passes on the seed sets.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The files the pipeline runs commands from.
fn pipeline_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = vec![root.join("ci/azure-pipelines.yml"), root.join("scripts/validate.sh")];
    let templates = std::fs::read_dir(root.join("ci/templates")).expect("ci/templates");
    files.extend(templates.map(|e| e.expect("entry").path()));
    files.sort();
    files
}

/// The fitlake binary of a command name.
fn binary(name: &str) -> Option<&'static str> {
    Some(match name {
        "fitlake" => env!("CARGO_BIN_EXE_fitlake"),
        "fitlake-bronze" => env!("CARGO_BIN_EXE_fitlake-bronze"),
        "fitlake-silver" => env!("CARGO_BIN_EXE_fitlake-silver"),
        "fitlake-gold" => env!("CARGO_BIN_EXE_fitlake-gold"),
        _ => return None,
    })
}

/// Every fitlake invocation in `text` (lines starting with a fitlake binary's name), as words,
/// with pipeline variables and shell variables replaced by a sample value and template
/// parameters expanded.
fn invocations(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if !(line.starts_with("fitlake ") || line.starts_with("fitlake-")) {
            continue;
        }
        let command = line.split(['>', '|']).next().unwrap_or(line).split("&&").next().unwrap_or(line);
        let layers: &[&str] =
            if command.contains("${{ parameters.layer }}") { &["bronze", "silver", "gold"] } else { &[""] };
        for layer in layers {
            let expanded = command.replace("${{ parameters.layer }}", layer);
            let words = expanded
                .split_whitespace()
                .map(|w| w.trim_matches('"').to_string())
                .map(|w| if w.starts_with('$') { "/tmp/fitlake-pipeline-check".to_string() } else { w })
                .collect();
            out.push(words);
        }
    }
    out
}

/// Runs the invocation with `--help` appended: clap rejects an unknown subcommand or option
/// before it prints the help.
fn accepted(words: &[String]) -> Result<(), String> {
    let bin = binary(&words[0]).ok_or_else(|| format!("{} is not a fitlake binary", words[0]))?;
    let out = Command::new(bin).args(&words[1..]).arg("--help").output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn every_command_the_pipeline_runs_exists_in_the_binaries() {
    let mut seen = Vec::new();
    for file in pipeline_files() {
        let text = std::fs::read_to_string(&file).expect("read pipeline file");
        for words in invocations(&text) {
            if let Err(e) = accepted(&words) {
                panic!("{}: `{}` is not accepted by the built binaries:\n{e}", file.display(), words.join(" "));
            }
            seen.push(words.join(" "));
        }
    }
    for expected in ["fitlake governance plan", "fitlake-bronze --once", "fitlake-gold --once", "fitlake --lakehouse"] {
        assert!(seen.iter().any(|c| c.starts_with(expected)), "no `{expected}` found in the pipeline: {seen:#?}");
    }
    // The check itself can fail: a renamed subcommand or option is caught.
    for rotten in ["fitlake governance apply", "fitlake-silver --once --trigger-interval 5s", "fitlake-platinum --once"]
    {
        let words = invocations(rotten).pop().expect("one invocation");
        assert!(accepted(&words).is_err(), "`{rotten}` should be refused");
    }
}

#[test]
fn the_validation_stage_passes_on_the_seed_sets() {
    let work = tempfile::tempdir().expect("temp dir");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_fitlake")).parent().expect("bin dir");
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/validate.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg(work.path())
        .env("PATH", path)
        .env_remove("FITLAKE_PRINCIPAL")
        .env_remove("FITLAKE_LAKEHOUSE")
        .output()
        .expect("run validate.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "validate.sh failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("validate: ok tables=10 fitlake-quality: ok events="), "{stdout}");
}

/// The pipeline publishes one binary and links the layer jobs to it: under a layer job's name,
/// `fitlake` is that job (its command line, its layer).
#[test]
fn the_fitlake_binary_under_a_layer_name_is_that_layer_job() {
    let dir = tempfile::tempdir().expect("temp dir");
    let linked = dir.path().join("fitlake-gold");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_fitlake"), &linked).expect("link");
    let help = |bin: &Path| {
        let out = Command::new(bin).arg("--help").output().expect("run");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let as_layer = help(&linked);
    assert!(as_layer.contains("Runs one layer of the fitlake pipeline") && as_layer.contains("--once"), "{as_layer}");
    assert!(!as_layer.contains("Commands:"), "a layer job has no subcommands: {as_layer}");
    let as_fitlake = help(Path::new(env!("CARGO_BIN_EXE_fitlake")));
    assert!(as_fitlake.contains("Commands:") && as_fitlake.contains("governance"), "{as_fitlake}");
    // The linked job refuses what `fitlake-gold` refuses.
    let out = Command::new(&linked).args(["--once", "--trigger-interval", "5s"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}
