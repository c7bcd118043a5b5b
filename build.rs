//! Links the unwinder statically, so `tcpconns.so` needs nothing but libc.
//!
//! The Rust standard library links its unwinder as `libgcc_s.so.1`, a
//! library collectd does not load otherwise. `libgcc_eh.a` is the same
//! unwinder as a static archive, shipped with every GCC toolchain that
//! builds for `*-linux-gnu`; linked ahead of `libgcc_s`, it resolves the
//! unwinder inside our own file. No unwind ever leaves it (every callback
//! catches panics), so it never meets another unwinder in collectd.
//! `tests/artifact.rs` checks the result on the built file: its `DT_NEEDED`
//! entries and its one exported symbol.

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && target_env == "gnu" {
        println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
    }
}
