//! The shipped file itself: the release `tcpconns.so` (built through the
//! harness, as every end-to-end test loads it) shows collectd exactly one
//! entry point, needs nothing but the C library at load time, and really
//! dispatches. Needs no root.

use harness::*;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

fn shipped() -> PathBuf {
    plugin_dir().join("tcpconns.so")
}

/// Only `module_register`: everything else stays inside the .so, so it
/// cannot clash with collectd's or another plugin's symbols.
#[test]
fn exports_only_module_register() {
    let defined = dynamic_symbols(&shipped(), true);
    assert_eq!(defined, [('T', "module_register".to_string())]);
}

/// Loadable wherever collectd-core is: libc and the dynamic loader only
/// (libgcc_eh is linked in statically, so no libgcc_s.so.1). The loader is
/// there for `__tls_get_addr`, which thread-locals in a shared object call
/// and which glibc's loader defines; collectd has it loaded anyway.
#[test]
fn needs_only_libc() {
    let dynamic = checked(Command::new("readelf").arg("-d").arg(shipped()));
    let needed: BTreeSet<&str> = dynamic
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split_once("Shared library: [")?.1.strip_suffix(']'))
        .collect();
    let loader = needed.iter().find(|n| n.starts_with("ld-linux-"));
    let mut want = BTreeSet::from(["libc.so.6"]);
    want.extend(
        loader
            .copied()
            .filter(|l| l.ends_with(".so.2") || l.ends_with(".so.1")),
    );
    assert_eq!(needed, want, "readelf -d:\n{dynamic}");
}

/// Imports collectd's `plugin_dispatch_values`: a build with the
/// collectd-plugin `stub` feature has its own do-nothing copy and drops
/// every value.
#[test]
fn dispatches_through_collectd() {
    let symbols = dynamic_symbols(&shipped(), false);
    assert!(
        symbols.contains(&('U', "plugin_dispatch_values".to_string())),
        "{symbols:?}"
    );
}
