//! TCP sockets as tcpconns counts them, and as `ss -Htan` shows them.

use std::collections::BTreeMap;

/// Linux TCP state numbers (as in `/proc/net/tcp` and sock_diag).
pub const TCP_ESTABLISHED: u8 = 1;
/// See [`TCP_ESTABLISHED`].
pub const TCP_SYN_SENT: u8 = 2;
/// See [`TCP_ESTABLISHED`].
pub const TCP_SYN_RECV: u8 = 3;
/// See [`TCP_ESTABLISHED`].
pub const TCP_FIN_WAIT1: u8 = 4;
/// See [`TCP_ESTABLISHED`].
pub const TCP_FIN_WAIT2: u8 = 5;
/// See [`TCP_ESTABLISHED`].
pub const TCP_TIME_WAIT: u8 = 6;
/// See [`TCP_ESTABLISHED`].
pub const TCP_CLOSE: u8 = 7;
/// See [`TCP_ESTABLISHED`].
pub const TCP_CLOSE_WAIT: u8 = 8;
/// See [`TCP_ESTABLISHED`].
pub const TCP_LAST_ACK: u8 = 9;
/// See [`TCP_ESTABLISHED`].
pub const TCP_LISTEN: u8 = 10;
/// See [`TCP_ESTABLISHED`].
pub const TCP_CLOSING: u8 = 11;

/// collectd's type_instance names for states 1..=11 (index = state number,
/// index 0 unused), exactly as the C plugin spells them.
pub const STATE_NAMES: [&str; 12] = [
    "",
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSED",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
];

/// collectd's type_instance name for a Linux TCP state number.
pub fn state_name(state: u8) -> &'static str {
    STATE_NAMES
        .get(state as usize)
        .copied()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| panic!("no TCP state number {state}"))
}

/// One socket as tcpconns sees it: local port, remote port (0 for a
/// listener) and Linux TCP state number (see the `TCP_*` constants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sock {
    /// Local port.
    pub local: u16,
    /// Remote port (0 for listeners).
    pub remote: u16,
    /// Linux TCP state number.
    pub state: u8,
}

/// Counts each entry of `socks`.
pub fn multiset(socks: &[Sock]) -> BTreeMap<Sock, usize> {
    let mut m = BTreeMap::new();
    for s in socks {
        *m.entry(*s).or_insert(0) += 1;
    }
    m
}

/// Human-readable difference between two multisets ("missing"/"unexpected").
pub(crate) fn multiset_diff(want: &BTreeMap<Sock, usize>, got: &BTreeMap<Sock, usize>) -> String {
    let mut out = String::new();
    for (s, &w) in want {
        let g = got.get(s).copied().unwrap_or(0);
        if g < w {
            out += &format!(
                "  missing    {}x {:?} ({})\n",
                w - g,
                s,
                state_name(s.state)
            );
        }
    }
    for (s, &g) in got {
        let w = want.get(s).copied().unwrap_or(0);
        if g > w {
            out += &format!(
                "  unexpected {}x {:?} ({})\n",
                g - w,
                s,
                state_name(s.state)
            );
        }
    }
    out
}

/// Linux TCP state number for an `ss` state name.
pub fn ss_state(name: &str) -> Option<u8> {
    Some(match name {
        "ESTAB" => TCP_ESTABLISHED,
        "SYN-SENT" => TCP_SYN_SENT,
        "SYN-RECV" => TCP_SYN_RECV,
        "FIN-WAIT-1" => TCP_FIN_WAIT1,
        "FIN-WAIT-2" => TCP_FIN_WAIT2,
        "TIME-WAIT" => TCP_TIME_WAIT,
        "UNCONN" | "CLOSE" => TCP_CLOSE,
        "CLOSE-WAIT" => TCP_CLOSE_WAIT,
        "LAST-ACK" => TCP_LAST_ACK,
        "LISTEN" => TCP_LISTEN,
        "CLOSING" => TCP_CLOSING,
        _ => return None,
    })
}

/// Port of an `ss` address (`127.0.0.1:80`, `[::1]:80`, `*:80`, `0.0.0.0:*`);
/// `*` gives 0.
pub fn ss_port(addr: &str) -> Option<u16> {
    let (_, port) = addr.rsplit_once(':')?;
    if port == "*" {
        Some(0)
    } else {
        port.parse().ok()
    }
}

/// Parses `ss -Htan` output into entries; panics on a line it cannot read.
pub fn parse_ss(text: &str) -> Vec<Sock> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let parsed = (|| {
                let state = ss_state(f.first()?)?;
                let local = ss_port(f.get(3)?)?;
                let remote = ss_port(f.get(4)?)?;
                Some(Sock {
                    local,
                    remote,
                    state,
                })
            })();
            parsed.unwrap_or_else(|| panic!("cannot parse ss line: {line:?}"))
        })
        .collect()
}
