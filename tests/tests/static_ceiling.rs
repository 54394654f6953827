//! `tracing`'s compile-time ceiling (`max_level_*` features): a `#[logged]` or `#[timed]` site
//! above it emits nothing, whatever the subscriber wants. The features of `tracing` hold for a
//! whole build, so `fixtures/static_ceiling` is built as a project of its own.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use decor_tests::output_within;

#[test]
fn sites_above_the_compile_time_ceiling_emit_nothing_but_errors() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = here.parent().expect("the workspace holds the tests crate");
    let project = Path::new(env!("CARGO_TARGET_TMPDIR")).join("static_ceiling");
    std::fs::create_dir_all(&project).unwrap();
    let manifest = format!(
        r#"[package]
name = "static-ceiling"
version = "0.0.0"
edition = "2024"
publish = false

[[bin]]
name = "static-ceiling"
path = {main:?}

[dependencies]
decor = {{ path = {decor:?} }}
tracing = {{ version = "0.1", features = ["max_level_info"] }}

[workspace]
"#,
        main = here.join("fixtures/static_ceiling/main.rs"),
        decor = workspace.join("runtime"),
    );
    std::fs::write(project.join("Cargo.toml"), manifest).unwrap();
    // The workspace's versions, so that the build needs nothing new from the registry.
    std::fs::copy(workspace.join("Cargo.lock"), project.join("Cargo.lock")).unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = output_within(
        Command::new(cargo)
            .args(["run", "--quiet", "--offline", "--manifest-path"])
            .arg(project.join("Cargo.toml"))
            .env_remove("RUSTFLAGS")
            .env("CARGO_TARGET_DIR", project.join("target")),
        Duration::from_secs(600),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "ceiling info",
            // `below`'s span and return event are above the ceiling; its body's INFO event is not.
            "event INFO message=inside below",
            "span at",
            r#"event INFO message="at returned" ret=3"#,
            // A failed call's ERROR event still comes, without the arguments it could not record.
            r#"event ERROR message="fails_below failed" error=no 1"#,
            // `timed_below`'s event is above the ceiling; its statistics are kept.
            "stats static_ceiling::timed_below 1",
        ]
    );
}
