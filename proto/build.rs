//! Compiles the event schema with protox (pure Rust), so building needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let schema = "proto/hoist/v1/events.proto";
    println!("cargo:rerun-if-changed={schema}");
    let descriptors = protox::compile([schema], ["proto"])?;
    prost_build::Config::new()
        // BTreeMap keeps encoding deterministic, which the per-app hash chain relies on.
        .btree_map(["."])
        .compile_fds(descriptors)?;
    Ok(())
}
