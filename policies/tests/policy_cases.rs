//! Engine behaviours told as policy tests (tests/cases/*.test.toml: rate,
//! absence, events, batch and wait steps, label selection, silences, acks),
//! and how the test runner reports a failing test.

use std::path::{Path, PathBuf};

use hyperwatch_policies::test_file;

fn cases() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases")
}

#[test]
fn every_case_file_passes() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(cases())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".test.toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for f in files {
        let report = test_file(&f);
        assert!(report.passed(), "{report}");
        assert!(report.tests.len() >= 4, "{report}");
    }
}

/// A one-test file against tests/cases/oom-loop.toml.
fn run_one(given: &str, expect: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        cases().join("oom-loop.toml"),
        dir.path().join("oom-loop.toml"),
    )
    .unwrap();
    let path = dir.path().join("t.test.toml");
    let text = format!(
        "version = 1\npolicies = [\"oom-loop.toml\"]\n\n[[test]]\nname = \"t\"\nuntil = \"20m\"\ngiven = [{given}]\nexpect = [{expect}]\n"
    );
    std::fs::write(&path, text).unwrap();
    let report = test_file(&path);
    assert!(report.errors.is_empty(), "{report}");
    assert!(!report.passed(), "{report}");
    report.to_string()
}

#[test]
fn a_failing_test_shows_what_was_missing_and_what_was_extra_with_times_and_lines() {
    let shown = run_one(
        "\"0s event service:a/b oom-kill\", \"1m event service:a/b oom-kill\", \"2m event service:a/b oom-kill\"",
        "\"2m inc-1 firing: oom-loop on service:a/b\",\n\"3m inc-1 notify email level 1\"",
    );
    assert!(shown.contains("FAIL  t ("), "{shown}");
    assert!(
        shown.contains("     2m  inc-1 firing: oom-loop on service:a/b"),
        "matched lines are shown: {shown}"
    );
    assert!(
        shown.contains("-  3m  inc-1 notify email level 1    (line 9)"),
        "{shown}"
    );
    assert!(
        shown.contains("+  2m  inc-1 notify email level 1"),
        "{shown}"
    );
    assert!(shown.contains("+ 10m  inc-1 resolved"), "{shown}");
    assert!(
        shown.contains(
            "hint: \"inc-1 notify email level 1\" was expected at 3m (line 9) and happened at 2m"
        ),
        "{shown}"
    );
    assert!(shown.ends_with("1 test: 0 passed, 1 failed"), "{shown}");
}

#[test]
fn a_step_result_for_no_running_step_fails_the_test_naming_the_line() {
    let shown = run_one("\"5m step restart-service succeeded\"", "");
    assert!(
        shown.contains("line 7, at 5m: no `restart-service` step is running at 5m"),
        "{shown}"
    );
}
