//! `hyperwatch policy check` and `hyperwatch policy test` as an operator runs
//! them: exit status and what they print.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn hyperwatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hyperwatch"))
        .args(args)
        .output()
        .expect("runs hyperwatch")
}

fn default_policies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/default")
}

#[test]
fn check_passes_on_the_shipped_policies() {
    let dir = default_policies();
    let out = hyperwatch(&[
        "policy",
        "check",
        dir.to_str().unwrap(),
        "--channels",
        "console,email,sms",
        "--actions",
        "restart-service",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("ok: 7 policies in 7 files"), "{stdout}");
}

#[test]
fn check_fails_with_file_line_column_and_exit_status_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "version = 1\n[target]\nkind = \"host\"\n[when]\nstate = \"host\"\nis = \"failed\"\n[[escalate]]\nnotify = [\"pagr\"]\n").unwrap();
    let out = hyperwatch(&[
        "policy",
        "check",
        dir.path().to_str().unwrap(),
        "--channels",
        "pager,console",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:8:11: error: unknown channel `pagr`",
            file.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `pager`?"), "{stderr}");
}

#[test]
fn test_runs_the_shipped_tests_and_fails_a_wrong_expectation() {
    let good = default_policies().join("service-crashed.test.toml");
    let out = hyperwatch(&["policy", "test", good.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("passed, 0 failed"), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        default_policies().join("ebpf-unavailable.toml"),
        dir.path().join("ebpf-unavailable.toml"),
    )
    .unwrap();
    let test = dir.path().join("e.test.toml");
    std::fs::write(
        &test,
        "version = 1\npolicies = [\"ebpf-unavailable.toml\"]\n\n[[test]]\nname = \"pages at once\"\nuntil = \"5m\"\ngiven = [\"0s state host:hv1 ebpf=unavailable\"]\nexpect = [\n  \"0s inc-1 pending: ebpf-unavailable on host:hv1\",\n  \"0s inc-1 notify console level 1\",\n]\n",
    )
    .unwrap();
    let out = hyperwatch(&["policy", "test", test.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL  pages at once"), "{stdout}");
    assert!(
        stdout.contains("- 0s  inc-1 notify console level 1    (line 10)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("+ 1m  inc-1 notify console level 1"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "hint: \"inc-1 notify console level 1\" was expected at 0s (line 10) and happened at 1m"
        ),
        "{stdout}"
    );
}
