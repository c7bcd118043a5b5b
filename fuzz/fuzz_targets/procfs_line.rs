//! One `/proc/net/tcp{,6}` line through `procfs::parse_line` and
//! `procfs::parse_line_with_addresses`.
//!
//! Invariants: no panic; both parsers accept and refuse the same lines and
//! agree on ports, state and queue; what they return was read from the
//! line's own fields (ports from fields 2 and 3 after the colon, state from
//! field 4, all hex).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tcpconns::procfs::{parse_line, parse_line_with_addresses};

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
    let plain = parse_line(line);
    let full = parse_line_with_addresses(line);
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
        (s.local, s.remote, s.state, s.queue, s.queue_limit),
        (f.local, f.remote, f.state, f.queue, f.queue_limit)
    );
    assert_eq!(s.local_addr, [0; 16], "no address unless asked");
    assert_eq!(s.remote_addr, [0; 16], "no address unless asked");
    assert_eq!(s.queue_limit, None, "procfs does not show the limit");

    let fields: Vec<&[u8]> = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty())
        .collect();
    assert!(fields.len() >= 4, "a socket from fewer than 4 fields");
    assert_eq!(hex(after_colon(fields[1])), u32::from(s.local));
    assert_eq!(hex(after_colon(fields[2])), u32::from(s.remote));
    assert_eq!(hex(fields[3]), u32::from(s.state));
    if s.state == LISTEN {
        assert_eq!(hex(after_colon(fields[4])), s.queue);
    } else {
        assert_eq!(s.queue, 0, "a queue for a socket that is not listening");
    }
});
