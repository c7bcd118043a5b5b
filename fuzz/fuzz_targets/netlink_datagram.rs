//! One received netlink datagram through `netlink::parse_datagram`.
//!
//! The whole input is the datagram; the dump's sequence number is the one in
//! the first message's header (so its messages are read, and later messages
//! may carry another number and be skipped).
//!
//! Invariants: no panic; the sockets fed to the sink are, in order, the
//! `inet_diag` messages with that sequence number, walked by `nlmsg_len`
//! aligned to 4 (a plain re-statement of the format); a kernel error carries
//! a positive errno (as `NetlinkError::Kernel` documents).
//!
//! Past findings, now regression tests in `src/netlink.rs` (inputs in
//! `fuzz/regressions/netlink_datagram/`): an `NLMSG_DONE` status of
//! `i32::MIN` panicked (negate overflow) and a positive `NLMSG_ERROR` status
//! gave a negative errno.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tcpconns::netlink::{parse_datagram, NetlinkError, TCPDIAG_GETSOCK};
use tcpconns::socket::{Fields, Socket};

const HEADER: usize = 16;
/// `SOCK_DIAG_BY_FAMILY`.
const BY_FAMILY: u16 = 20;
/// `NLMSG_DONE`.
const DONE: u16 = 3;
/// `struct inet_diag_msg`.
const MSG: usize = 72;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
}

/// The `(local, remote, state)` of the socket messages for `seq`, up to the
/// first `NLMSG_DONE` or the first message that is not well formed.
fn expected(datagram: &[u8], seq: u32) -> Vec<(u16, u16, u8)> {
    let mut out = Vec::new();
    let mut at = 0;
    while datagram.len() - at >= HEADER {
        let len = u32_at(datagram, at) as usize;
        if len < HEADER || len > datagram.len() - at {
            break;
        }
        let payload = &datagram[at + HEADER..at + len];
        let (kind, msg_seq) = (u16_at(datagram, at + 4), u32_at(datagram, at + 8));
        at = (at + len.next_multiple_of(4)).min(datagram.len());
        if msg_seq != seq {
            continue;
        }
        match kind {
            TCPDIAG_GETSOCK | BY_FAMILY if payload.len() >= MSG => out.push((
                u16::from_be_bytes([payload[4], payload[5]]),
                u16::from_be_bytes([payload[6], payload[7]]),
                payload[1],
            )),
            DONE => break,
            _ => {}
        }
    }
    out
}

fuzz_target!(|datagram: &[u8]| {
    let seq = if datagram.len() >= 12 {
        u32_at(datagram, 8)
    } else {
        0
    };
    let want = expected(datagram, seq);
    // Addresses, tcp_info and cgroup ids read or not: the same sockets
    // either way (or a malformed attribute stops the parse), and zero or
    // none when not.
    let fields = Fields {
        addresses: seq & 1 == 1,
        health: seq & 2 == 2,
        cgroup: seq & 4 == 4,
    };
    let mut got = Vec::new();
    let result = parse_datagram(datagram, seq, fields, &mut |s: &Socket| {
        assert!(s.wqueue.is_some(), "netlink shows the send queue");
        if !fields.addresses {
            assert_eq!((s.local_addr, s.remote_addr), ([0; 16], [0; 16]));
        }
        if !fields.health {
            assert_eq!(s.info, None, "tcp_info not asked for");
        }
        if !fields.cgroup {
            assert_eq!(s.cgroup, None, "cgroup id not asked for");
        }
        got.push((s.local, s.remote, s.state))
    });
    match result {
        // Every socket message for `seq` was read.
        Ok(_) => assert_eq!(got, want),
        // Stopped early: what was read is a prefix of them.
        Err(err) => {
            assert!(got.len() <= want.len() && got[..] == want[..got.len()]);
            if let NetlinkError::Kernel { errno } = err {
                assert!(errno > 0, "kernel error with errno {errno}");
            }
            let _ = err.to_string();
        }
    }
});
