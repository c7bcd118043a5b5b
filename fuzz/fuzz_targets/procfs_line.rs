//! One `/proc/net/tcp{,6}` line through `procfs::parse_line`, with and
//! without addresses, and with health (every socket's queues).
//!
//! Invariants: no panic; with and without addresses the parser accepts and
//! refuses the same lines and agrees on ports, state and queue; a line
//! accepted with health is accepted without and gives the same ports and
//! state; what they return was read from the line's own fields (ports from
//! fields 2 and 3 after the colon, state from field 4, queues from field 5,
//! all hex).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tcpconns::procfs::parse_line;
use tcpconns::socket::Fields;

const PORTS: Fields = Fields::PORTS;
const ADDRESSES: Fields = Fields::ADDRESSES;
const HEALTH: Fields = Fields::HEALTH;

/// LISTEN, the only state whose line carries a queue that is read.
const LISTEN: u8 = 10;

fn hex(field: &[u8]) -> u32 {
    let text = std::str::from_utf8(field).expect("a parsed hex field is ASCII");
    u32::from_str_radix(text, 16).expect("a parsed hex field is hex")
}

/// The hex text after the first colon of `HEXADDR:HEXPORT`.
fn after_colon(field: &[u8]) -> &[u8] {
    let colon = field.iter().position(|&b| b == b':').expect("a colon");
    &field[colon + 1..]
}

fuzz_target!(|line: &[u8]| {
    let plain = parse_line(line, PORTS);
    let full = parse_line(line, ADDRESSES);
    if let Ok(Some(h)) = parse_line(line, HEALTH) {
        let p = plain.as_ref().ok().and_then(|p| p.as_ref());
        assert_eq!(
            p.map(|p| (p.local, p.remote, p.state)),
            Some((h.local, h.remote, h.state)),
            "health accepted {line:?}"
        );
        let fields: Vec<&[u8]> = line
            .split(|b| b.is_ascii_whitespace())
            .filter(|f| !f.is_empty())
            .collect();
        let queues = fields[4];
        let colon = queues.iter().position(|&b| b == b':').expect("a colon");
        assert_eq!(hex(&queues[colon + 1..]), h.rqueue);
        if h.state != LISTEN {
            assert_eq!(Some(hex(&queues[..colon])), h.wqueue);
        }
    }
    assert_eq!(
        plain.is_ok(),
        full.is_ok(),
        "the two parsers disagree on {line:?}: {plain:?} vs {full:?}"
    );
    let (Ok(plain), Ok(full)) = (plain, full) else {
        return;
    };
    assert_eq!(plain.is_some(), full.is_some());
    let (Some(s), Some(f)) = (plain, full) else {
        return;
    };
    assert_eq!(
        (s.local, s.remote, s.state, s.rqueue, s.wqueue),
        (f.local, f.remote, f.state, f.rqueue, f.wqueue)
    );
    assert_eq!(s.local_addr, [0; 16], "no address unless asked");
    assert_eq!(s.remote_addr, [0; 16], "no address unless asked");
    assert_eq!(s.wqueue, None, "procfs does not show the limit");

    let fields: Vec<&[u8]> = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty())
        .collect();
    assert!(fields.len() >= 4, "a socket from fewer than 4 fields");
    assert_eq!(hex(after_colon(fields[1])), u32::from(s.local));
    assert_eq!(hex(after_colon(fields[2])), u32::from(s.remote));
    assert_eq!(hex(fields[3]), u32::from(s.state));
    if s.state == LISTEN {
        assert_eq!(hex(after_colon(fields[4])), s.rqueue);
    } else {
        assert_eq!(s.rqueue, 0, "a queue for a socket that is not listening");
    }
});
