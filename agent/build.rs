//! Builds the kernel programs (agent-ebpf) into one eBPF object that the
//! agent embeds.
//!
//! The eBPF crate needs `-Z build-std=core` and bpf-linker; `cargo xtask
//! setup` installs both. The machine's stable compiler is used with
//! RUSTC_BOOTSTRAP=1, so the LLVM that bpf-linker was built against stays the
//! compiler's own.

use std::{env, path::PathBuf, process::Command};

use anyhow::{Context, bail};

fn main() -> anyhow::Result<()> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest_dir.parent().context("agent/ has a parent")?;
    let ebpf_dir = root.join("agent-ebpf");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    for path in [
        "agent-ebpf/src",
        "agent-ebpf/Cargo.toml",
        "agent-common/src",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    println!("cargo:rerun-if-env-changed=PATH");

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&ebpf_dir)
        .args(["build", "--release", "--target", "bpfel-unknown-none"])
        .args(["-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(out_dir.join("ebpf-target"))
        .env("RUSTC_BOOTSTRAP", "1");
    // The host build's flags and wrappers must not leak into the BPF build.
    for var in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().context("running cargo to build agent-ebpf")?;
    if !status.success() {
        bail!(
            "building the eBPF programs (agent-ebpf) failed: {status}.\n\
             It needs rust-src and bpf-linker built against LLVM {}; run `cargo xtask setup`.",
            "the compiler's"
        );
    }
    let object = out_dir.join("ebpf-target/bpfel-unknown-none/release/hyperwatch");
    std::fs::copy(&object, out_dir.join("hyperwatch.bpf.o"))
        .with_context(|| format!("copying {}", object.display()))?;
    Ok(())
}
