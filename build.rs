//! Link-time layout of `tcpconns.so`, to keep the memory it adds to collectd
//! small. Measured: VmHWM of `collectd -f` with only `load` and tcpconns
//! (default config) one second after start, median of six starts: 2,784 KiB
//! with a plain build, 2,626 KiB with this, 2,234 KiB with the C plugin.
//!
//! - The Rust standard library links the unwinder as `libgcc_s.so.1`, which
//!   collectd does not load otherwise (60-100 KiB resident). Linking the
//!   static `libgcc_eh.a` ahead of it gives our panics the same unwinder
//!   inside our own file; no unwind ever leaves it (every callback catches
//!   panics), so a second unwinder elsewhere in collectd never meets ours.
//! - About 170 KiB of the standard library's code only ever runs to print a
//!   panic backtrace (DWARF parsing, symbol demangling, decompression), yet
//!   the linker mixes it with the code every read runs, and the kernel maps
//!   code in 64 KiB windows around each page fault, so all of it became
//!   resident. A linker script puts those functions after the rest of the
//!   code, where no read touches them.

use std::env;
use std::fs;
use std::path::PathBuf;

/// Input sections (one per function) of the backtrace printer's crates.
const COLD: &str = "SECTIONS {
  .text.cold : {
    *(.text.*gimli* .text.*addr2line* .text.*rustc_demangle* .text.*backtrace_rs* .text.*miniz_oxide*)
  }
} INSERT AFTER .text;
";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os != "linux" || target_env != "gnu" {
        return;
    }
    let Some(out) = env::var_os("OUT_DIR").map(PathBuf::from) else {
        return;
    };
    let script = out.join("cold.ld");
    if fs::write(&script, COLD).is_ok() {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-T,{}", script.display());
    }
    println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
}
