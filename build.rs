//! Link-time layout of `tcpconns.so`, to keep the memory it adds to collectd
//! small. Measured: VmHWM of `collectd -f` with only `load` and tcpconns
//! (default config) one second after start, median of eight starts: 2,650 KiB
//! with only the first two points below, 2,420-2,442 KiB with all three,
//! 2,250 KiB with the C plugin (README, "Benchmark").
//!
//! - The Rust standard library links the unwinder as `libgcc_s.so.1`, which
//!   collectd does not load otherwise (60-100 KiB resident). Linking the
//!   static `libgcc_eh.a` ahead of it gives our panics the same unwinder
//!   inside our own file; no unwind ever leaves it (every callback catches
//!   panics), so a second unwinder elsewhere in collectd never meets ours.
//! - The kernel maps a file's code in 64 KiB blocks around each page that
//!   runs, so code that never runs costs memory when it sits next to code
//!   that does. About 170 KiB of the standard library's code only ever runs
//!   to print a panic backtrace (DWARF parsing, symbol demangling,
//!   decompression): it goes after the rest.
//! - The functions collectd actually runs (about 45 KiB with the default
//!   config, 75 KiB with every option; `ci/layout.sh` finds them under
//!   valgrind and writes `ci/layout/hot-functions.txt`) go first, with the
//!   PLT, right after `.init` and `.fini`, instead of spread over 200 KiB. A pattern that
//!   matches nothing (another compiler, renamed code) only costs memory.

use std::env;
use std::fs;
use std::path::PathBuf;

/// Functions (input sections) of collectd's paths, hottest tier first.
const HOT: &str = include_str!("ci/layout/hot-functions.txt");

/// Input sections (one per function) of the backtrace printer's crates.
const COLD: &str = "SECTIONS {
  .text.cold : {
    *(.text.*gimli* .text.*addr2line* .text.*rustc_demangle* .text.*backtrace_rs* .text.*miniz_oxide*)
  }
} INSERT AFTER .text;
";

/// The linker script: `.text.hot` (PLT, crt code, the listed functions,
/// also where LLVM made them `.text.unlikely.*`) before `.text`, the cold
/// section after it. The hot block comes first in the script because a
/// section goes to the first rule that matches it, and a few hot patterns
/// (generic code instantiated in the backtrace crates) match the cold rule
/// too. The PLT inside `.text.hot` has no `.plt` section header of its own,
/// so objdump and gdb do not name its `foo@plt` entries.
fn script() -> String {
    // ci/layout.sh builds without it: valgrind reads the symbols of a
    // library's `.text` only, and would see none of the hot functions.
    if env::var_os("TCPCONNS_NO_HOT_LAYOUT").is_some() {
        return COLD.to_string();
    }
    let mut hot =
        String::from("SECTIONS {\n  .text.hot : {\n    *(.plt)\n    *crtbeginS.o(.text .text.*)\n");
    // One `*( ... )` per tier keeps the tiers in order; a `# tier` line
    // starts the next. A group opens at its first pattern: GNU ld rejects
    // an empty one.
    let mut open = false;
    for line in HOT.lines().map(str::trim) {
        if line.starts_with("# tier") {
            if open {
                hot.push_str("    )\n");
            }
            open = false;
        } else if !line.is_empty() && !line.starts_with('#') {
            if !open {
                hot.push_str("    *(\n");
                open = true;
            }
            hot.push_str(&format!("      .text.{line} .text.unlikely.{line}\n"));
        }
    }
    if open {
        hot.push_str("    )\n");
    }
    hot.push_str("  }\n} INSERT BEFORE .text;\n");
    hot + COLD
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=ci/layout/hot-functions.txt");
    println!("cargo:rerun-if-env-changed=TCPCONNS_NO_HOT_LAYOUT");
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os != "linux" || target_env != "gnu" {
        return;
    }
    let Some(out) = env::var_os("OUT_DIR").map(PathBuf::from) else {
        return;
    };
    let path = out.join("layout.ld");
    if fs::write(&path, script()).is_ok() {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-T,{}", path.display());
    }
    println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
}
