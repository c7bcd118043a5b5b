//! What the plugin must dispatch, worked out from the contract on its own
//! (not from the plugin's code), and an exact comparison.

use crate::{state_name, Sock, TCP_LISTEN};
use std::collections::BTreeMap;

/// A tcpconns selection, as the tests' own statement of what each option
/// means (written from the contract, independently of the plugin's code).
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Report every port with a LISTEN socket (`<port>-local`).
    pub listening: bool,
    /// Report `all`.
    pub summary: bool,
    /// `LocalPort`s.
    pub local: Vec<u16>,
    /// `RemotePort`s.
    pub remote: Vec<u16>,
}

/// Every (plugin_instance, type_instance) -> value the plugin must dispatch
/// for `socks` under `sel`: 11 states per series, zeros included.
pub fn expected_values(socks: &[Sock], sel: &Selection) -> BTreeMap<(String, String), f64> {
    let mut series: BTreeMap<String, Vec<&Sock>> = BTreeMap::new();
    if sel.summary {
        series.insert("all".into(), socks.iter().collect());
    }
    let listening = socks
        .iter()
        .filter(|s| sel.listening && s.state == TCP_LISTEN)
        .map(|s| s.local);
    for port in sel.local.iter().copied().chain(listening) {
        series.insert(
            format!("{port}-local"),
            socks.iter().filter(|s| s.local == port).collect(),
        );
    }
    for &port in &sel.remote {
        series.insert(
            format!("{port}-remote"),
            socks.iter().filter(|s| s.remote == port).collect(),
        );
    }
    let mut out = BTreeMap::new();
    for (instance, members) in series {
        for state in 1..=11u8 {
            let n = members.iter().filter(|s| s.state == state).count();
            out.insert((instance.clone(), state_name(state).to_string()), n as f64);
        }
    }
    out
}

/// Panics with a readable diff unless `got` equals `want` exactly.
pub fn assert_values(
    what: &str,
    got: &BTreeMap<(String, String), f64>,
    want: &BTreeMap<(String, String), f64>,
    log: &str,
) {
    let mut diff = String::new();
    for (k, v) in want {
        match got.get(k) {
            Some(g) if g == v => {}
            g => diff += &format!("  {}/{}: want {v}, got {g:?}\n", k.0, k.1),
        }
    }
    for (k, v) in got {
        if !want.contains_key(k) {
            diff += &format!("  {}/{}: not expected, got {v}\n", k.0, k.1);
        }
    }
    assert!(
        diff.is_empty(),
        "{what}: values differ:\n{diff}collectd log:\n{log}"
    );
}
