//! Puts memory.x on the linker's search path and copies the split-agreement blob (the host's
//! decision for every capture frame, written by `cargo xtask` through the shared crate's
//! `write_target_split_blob` test) into OUT_DIR for `include_bytes!`.
use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    std::fs::copy("memory.x", out.join("memory.x")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-env-changed=SPLITRX_SPLIT_BLOB");
    let Some(blob) = std::env::var_os("SPLITRX_SPLIT_BLOB") else {
        panic!(
            "SPLITRX_SPLIT_BLOB is not set: build this crate through `cargo xtask test` or \
             `cargo xtask flash`, which write the blob first"
        );
    };
    println!("cargo:rerun-if-changed={}", PathBuf::from(&blob).display());
    std::fs::copy(&blob, out.join("split.blob")).unwrap();
}
