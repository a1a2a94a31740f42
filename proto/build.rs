//! Compiles proto/hyperwatch/v1/stream.proto with the protoc that
//! protoc-bin-vendored ships, so the build needs no system protoc and no
//! network.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; prost-build reads PROTOC.
    unsafe { std::env::set_var("PROTOC", protoc) };
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure()
        .compile_protos(&["proto/hyperwatch/v1/stream.proto"], &["proto"])?;
    Ok(())
}
