//! Compiles the .proto files with a vendored protoc, so no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // prost-build reads PROTOC; a build script is single-threaded, so setting it is sound.
    std::env::set_var("PROTOC", protoc);
    tonic_prost_build::configure().compile_protos(
        &[
            "proto/raft.proto",
            "proto/cluster.proto",
            "proto/execute.proto",
        ],
        &["proto"],
    )?;
    Ok(())
}
