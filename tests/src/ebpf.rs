//! Deciding whether an eBPF test runs. As root the tests must run; CI sets
//! HYPERWATCH_REQUIRE_EBPF=1 (through `cargo xtask test`) so that nothing
//! quietly skips there. Without root a test says loudly that it skipped.

/// True when eBPF tests can run here. Panics when they are required
/// (HYPERWATCH_REQUIRE_EBPF=1) but cannot run.
pub fn available(test: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    let required = std::env::var("HYPERWATCH_REQUIRE_EBPF").is_ok_and(|v| v == "1");
    if root {
        return true;
    }
    assert!(
        !required,
        "{test}: eBPF tests are required (HYPERWATCH_REQUIRE_EBPF=1) but this is not root"
    );
    eprintln!("SKIPPED {test}: needs root for eBPF");
    false
}
