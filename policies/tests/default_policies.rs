//! The shipped policies in policies/default/: they check against the channel
//! and action names the watchdog's defaults provide, every one has a test
//! file, and every test file passes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hyperwatch_policies::{CheckOptions, check_dir, test_file};

/// Channel names the shipped policies use; the watchdog's default
/// configuration must define them.
const CHANNELS: [&str; 3] = ["console", "email", "sms"];
/// Agent actions the shipped policies ask for; the agent's default
/// allowlist must contain them.
const ACTIONS: [&str; 1] = ["restart-service"];

fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("default")
}

fn files(suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(default_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    out.sort();
    out
}

#[test]
fn shipped_policies_check_against_the_default_channels_and_actions() {
    let opts = CheckOptions {
        channels: Some(CHANNELS.iter().map(|s| s.to_string()).collect()),
        actions: Some(ACTIONS.iter().map(|s| s.to_string()).collect()),
    };
    let report = check_dir(&default_dir(), &opts);
    assert!(report.is_ok(), "{report}");
    let names: BTreeSet<&str> = report.policies.iter().map(String::as_str).collect();
    for wanted in [
        "heartbeat-lost",
        "host-cpu-capacity",
        "host-memory-capacity",
        "service-crashed",
        "storage-capacity",
        "storage-latency",
        "ebpf-unavailable",
    ] {
        assert!(names.contains(wanted), "{wanted} missing from {names:?}");
    }
}

#[test]
fn every_shipped_policy_has_a_test_file() {
    let tests: BTreeSet<String> = files(".test.toml")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    for policy in files(".toml")
        .iter()
        .filter(|p| !p.to_string_lossy().ends_with(".test.toml"))
    {
        let test = policy.to_string_lossy().replace(".toml", ".test.toml");
        assert!(
            tests.contains(&test),
            "{} has no test file {test}",
            policy.display()
        );
    }
}

#[test]
fn every_shipped_policy_test_passes() {
    let tests = files(".test.toml");
    assert!(
        tests.len() >= 7,
        "expected a test file per shipped policy, found {tests:?}"
    );
    let mut failed = Vec::new();
    for t in &tests {
        let report = test_file(t);
        println!("{report}");
        assert!(
            !report.tests.is_empty() || !report.errors.is_empty(),
            "{} ran no test",
            t.display()
        );
        if !report.passed() {
            failed.push(report.to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "failing policy tests:\n{}",
        failed.join("\n")
    );
}
