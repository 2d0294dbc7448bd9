//! The `canopy` binary as an operator meets it: which database each command opened, no
//! database created by a command that should not create one, a busy port failing before the
//! database is touched, misspelt settings refused, and no colour codes in piped logs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs `canopy args...` in `dir` with no Canopy settings from the environment.
fn canopy(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_canopy"));
    cmd.current_dir(dir).args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("CANOPY_") || key == "DATABASE_URL" || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn admin_commands_never_create_a_database_and_say_which_they_opened() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["admin", "purge-history"][..],
        &["admin", "set-tier", "--org", "acme", "--tier", "pro"],
        &["admin", "outbox"],
    ] {
        let out = canopy(dir.path(), args);
        let stderr = text(&out.stderr);
        assert!(
            !out.status.success(),
            "{args:?} succeeded without a database"
        );
        assert!(stderr.contains("database: sqlite://canopy.db"), "{stderr}");
        assert!(stderr.contains("never create"), "{stderr}");
        assert!(
            !dir.path().join("canopy.db").exists(),
            "{args:?} created a database"
        );
    }
    // Where `canopy migrate` made one, the same command opens it.
    let migrated = canopy(dir.path(), &["migrate"]);
    assert!(migrated.status.success(), "{}", text(&migrated.stderr));
    let out = canopy(dir.path(), &["admin", "outbox"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("The outbox is empty."));
}

#[test]
fn a_busy_port_fails_before_the_database_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = canopy(
        dir.path(),
        &["serve", "--bind", &format!("127.0.0.1:{port}")],
    );
    assert!(!out.status.success());
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(said.contains("binding"), "{said}");
    assert!(!dir.path().join("canopy.db").exists());
}

#[test]
fn a_misspelt_setting_in_canopy_toml_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("canopy.toml"),
        "[server]\nbnd = \"0.0.0.0:9\"\n",
    )
    .unwrap();
    let out = canopy(dir.path(), &["migrate"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("bnd"), "{stderr}");
    assert!(!dir.path().join("canopy.db").exists());
}

#[test]
fn logs_written_to_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let out = canopy(dir.path(), &["migrate"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("migrations applied"), "{stdout}");
    assert!(!stdout.contains('\u{1b}'), "{stdout:?}");
}

/// A worker process with no workers would idle while jobs wait: it refuses to start, before
/// opening any database, and says which setting to change.
#[test]
fn a_worker_with_no_workers_refuses_to_start_and_says_which_setting() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_canopy"));
    cmd.current_dir(dir.path()).arg("worker");
    for (key, _) in std::env::vars() {
        if key.starts_with("CANOPY_") || key == "DATABASE_URL" || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    // The API replicas' environment, copied to the worker.
    let out = cmd.env("CANOPY_JOB_WORKERS", "0").output().unwrap();
    assert!(!out.status.success(), "it started with no workers");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("would run no jobs"), "{stderr}");
    assert!(stderr.contains("CANOPY_JOB_WORKERS"), "{stderr}");
    assert!(stderr.contains("--workers"), "{stderr}");
    assert!(
        !dir.path().join("canopy.db").exists(),
        "a database was opened"
    );
    // The flag says the same.
    let flag = canopy(dir.path(), &["worker", "--workers", "0"]);
    assert!(!flag.status.success());
    assert!(text(&flag.stderr).contains("would run no jobs"));
}
