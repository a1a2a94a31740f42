//! `hyperwatch serve --check-config` as an operator runs it: the
//! configuration, its channels, and the policies against the configured
//! channels and actions; exit status 1 with file, line and column.

use std::process::{Command, Output};

fn check(config: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("watchdog.toml");
    std::fs::write(&path, config).unwrap();
    Command::new(env!("CARGO_BIN_EXE_hyperwatch"))
        .args(["serve", "--check-config", "--config"])
        .arg(&path)
        .output()
        .expect("runs hyperwatch")
}

#[test]
fn the_embedded_default_checks_with_the_shipped_policies() {
    let out = Command::new(env!("CARGO_BIN_EXE_hyperwatch"))
        .args(["serve", "--check-config"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{out:?}");
    assert!(stdout.contains("ok: 7 policies in 7 files"), "{stdout}");
}

#[test]
fn policies_naming_a_missing_channel_fail_with_the_place() {
    // Only a console: the shipped policies also notify email and sms.
    let out = check("[channels.console]\ntype = \"console\"\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("heartbeat-lost.toml:29:22: error: unknown channel `email`"),
        "{stderr}"
    );
}

#[test]
fn policies_naming_an_action_the_agents_lack_fail() {
    let out = check("[policies]\nactions = [\"reboot\"]\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("service-crashed.toml:") && stderr.contains("restart-service"),
        "{stderr}"
    );
}

#[test]
fn a_bad_policies_directory_is_named() {
    let out = check("[policies]\ndir = \"/nonexistent/policies\"\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("/nonexistent/policies"), "{stderr}");
}
