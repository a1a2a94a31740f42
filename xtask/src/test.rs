//! `cargo xtask test`: what CI runs. Formatting, clippy with warnings denied
//! (host crates and the eBPF crate), then every test. As root, the eBPF
//! tests are required to run: they fail rather than skip.

use std::process::Command;

use crate::sh;

pub fn run(filter: Option<&str>) -> anyhow::Result<()> {
    let root = sh::root();
    let ebpf = root.join("agent-ebpf");
    let cargo = || {
        let mut c = Command::new("cargo");
        c.current_dir(&root);
        c
    };

    sh::run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    sh::run(cargo().current_dir(&ebpf).args(["fmt", "--", "--check"]))?;
    sh::run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    sh::run(
        cargo()
            .current_dir(&ebpf)
            .env("RUSTC_BOOTSTRAP", "1")
            .args([
                "clippy",
                "--target",
                "bpfel-unknown-none",
                "-Z",
                "build-std=core",
                "--release",
                "--",
                "-D",
                "warnings",
            ]),
    )?;

    // The end-to-end tests run the real binaries; `cargo test` builds a
    // package's binary only when that package has integration tests.
    sh::run(cargo().args(["build", "--workspace", "--bins"]))?;
    // The packaging, checked on the debug build just made (seconds).
    crate::package::run(crate::package::Profile::Dev)?;
    let mut test = cargo();
    test.args(["test", "--workspace"]);
    if crate::setup::is_root() {
        // Tests that need eBPF fail instead of skipping when this is set.
        test.env("HYPERWATCH_REQUIRE_EBPF", "1");
    } else {
        eprintln!("xtask test: not root: eBPF tests will report themselves skipped");
    }
    if let Some(f) = filter {
        test.args(["--", f]);
    }
    sh::run(&mut test)?;
    eprintln!("xtask test: all checks passed");
    Ok(())
}
