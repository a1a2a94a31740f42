//! Deciding whether a test that needs root runs (loop devices, LVM,
//! mounts). Same rule as [`crate::ebpf`]: as root the test runs; with
//! HYPERWATCH_REQUIRE_EBPF=1 (what `cargo xtask test` sets as root, and CI
//! is root) it must run, so not being root is a failure; otherwise it says
//! loudly that it skipped.

/// True when root-only tests can run here. Panics when they are required
/// (HYPERWATCH_REQUIRE_EBPF=1) but this is not root.
pub fn available(test: &str, needs: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    let required = std::env::var("HYPERWATCH_REQUIRE_EBPF").is_ok_and(|v| v == "1");
    if root {
        return true;
    }
    assert!(
        !required,
        "{test}: root tests are required (HYPERWATCH_REQUIRE_EBPF=1) but this is not root ({needs})"
    );
    eprintln!("SKIPPED {test}: needs root for {needs}");
    false
}
