//! Kernel-side port filters: an inet_diag bytecode program, attached to the
//! dump request, that lets the kernel skip building a message for every
//! socket the configuration does not report. The kernel still walks its
//! tables, but building one netlink message per socket is most of its cost.
//!
//! Kernel facts this relies on (net/ipv4/inet_diag.c): a program is a list
//! of 4-byte ops `{u8 code, u8 yes, u16 no}`; port comparisons carry the port
//! in the `no` field of a second op. Running it, a true condition jumps
//! `yes` bytes, a false one `no` bytes; a socket matches when the program
//! ends exactly at its last byte and not when it jumps past it. The audit
//! the kernel runs first walks the `yes` jumps and requires every `no`
//! target to be one of the places that walk reaches.

/// `INET_DIAG_BC_JMP`: always takes its `no` jump.
const JMP: u8 = 1;
/// `INET_DIAG_BC_S_EQ`: source (local) port equals.
const S_EQ: u8 = 11;
/// `INET_DIAG_BC_D_EQ`: destination (remote) port equals.
const D_EQ: u8 = 12;
/// `INET_DIAG_REQ_BYTECODE`: the request attribute carrying the program.
pub const REQ_BYTECODE: u16 = 1;

/// Bytes per tested port: the comparison, its port, and the accepting jump.
const PER_PORT: usize = 12;
/// Above this many ports a linear program costs the kernel more per socket
/// than building the messages it saves (and `no` jumps are 16-bit).
pub const MAX_PORTS: usize = 64;

fn op(out: &mut Vec<u8>, code: u8, yes: u8, no: u16) {
    out.push(code);
    out.push(yes);
    out.extend_from_slice(&no.to_ne_bytes());
}

/// Writes into `out` a program matching sockets whose local port is in
/// `local` or whose remote port is in `remote`. Returns false (and leaves
/// `out` empty) when there are no ports, or too many to be worth it.
pub fn build(out: &mut Vec<u8>, local: &[u16], remote: &[u16]) -> bool {
    out.clear();
    let n = local.len() + remote.len();
    if n == 0 || n > MAX_PORTS {
        return false;
    }
    let total = n * PER_PORT + 4;
    let tests = local
        .iter()
        .map(|&p| (S_EQ, p))
        .chain(remote.iter().map(|&p| (D_EQ, p)));
    for (i, (code, port)) in tests.enumerate() {
        // Equal: step to the accepting jump; not equal: skip it.
        op(out, code, 8, PER_PORT as u16);
        op(out, 0, 0, port);
        // Accept: land exactly on the end of the program. Bounded by
        // MAX_PORTS, so it fits 16 bits.
        let here = i * PER_PORT + 8;
        op(out, JMP, 4, (total - here) as u16);
    }
    // No port matched: jump past the end, which rejects the socket.
    op(out, JMP, 4, 8);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Op {
        code: u8,
        yes: usize,
        no: usize,
    }

    fn op_at(bc: &[u8], at: usize) -> Op {
        Op {
            code: bc[at],
            yes: usize::from(bc[at + 1]),
            no: usize::from(u16::from_ne_bytes([bc[at + 2], bc[at + 3]])),
        }
    }

    /// The kernel's audit, restated from its rules, for the ops we emit.
    fn audit(bc: &[u8]) -> Result<(), String> {
        let mut len = bc.len() as isize;
        let mut at = 0usize;
        while len > 0 {
            if len < 4 {
                return Err(format!("truncated op at {at}"));
            }
            let o = op_at(bc, at);
            let min_len = match o.code {
                S_EQ | D_EQ => 8,
                JMP => 4,
                c => return Err(format!("unknown op {c} at {at}")),
            };
            if len < min_len {
                return Err(format!("port op at {at} without its port"));
            }
            if (o.no as isize) < min_len || o.no as isize > len + 4 || o.no & 3 != 0 {
                return Err(format!("bad no {} at {at}", o.no));
            }
            if (o.no as isize) < len {
                let target = len - o.no as isize;
                let mut l = len;
                let mut a = at;
                let mut ok = false;
                while l >= 0 {
                    if target > l {
                        break;
                    }
                    if target == l {
                        ok = true;
                        break;
                    }
                    if a + 4 > bc.len() {
                        break;
                    }
                    let y = op_at(bc, a).yes as isize;
                    if y < 4 || y & 3 != 0 {
                        break;
                    }
                    l -= y;
                    a += y as usize;
                }
                if !ok {
                    return Err(format!("no-target of op at {at} is not on the yes chain"));
                }
            }
            if (o.yes as isize) < min_len || o.yes as isize > len + 4 || o.yes & 3 != 0 {
                return Err(format!("bad yes {} at {at}", o.yes));
            }
            at += o.yes;
            len -= o.yes as isize;
        }
        if len == 0 {
            Ok(())
        } else {
            Err("program does not end on an op".into())
        }
    }

    /// The kernel's interpreter, restated, for the ops we emit.
    fn matches(bc: &[u8], sport: u16, dport: u16) -> bool {
        let mut len = bc.len() as isize;
        let mut at = 0usize;
        while len > 0 {
            let o = op_at(bc, at);
            let yes = match o.code {
                JMP => false,
                S_EQ => sport == op_at(bc, at + 4).no as u16,
                D_EQ => dport == op_at(bc, at + 4).no as u16,
                _ => unreachable!(),
            };
            let step = if yes { o.yes } else { o.no };
            len -= step as isize;
            at += step;
        }
        len == 0
    }

    #[test]
    fn nothing_to_filter_or_too_much_gives_no_program() {
        let mut bc = vec![1, 2, 3];
        assert!(!build(&mut bc, &[], &[]));
        assert!(bc.is_empty());
        let many: Vec<u16> = (1..=(MAX_PORTS as u16 + 1)).collect();
        assert!(!build(&mut bc, &many, &[]));
        assert!(build(&mut bc, &many[..MAX_PORTS], &[]));
    }

    #[test]
    fn programs_pass_the_audit_and_match_exactly_the_ports() {
        let cases: [(&[u16], &[u16]); 5] = [
            (&[22], &[]),
            (&[], &[5432]),
            (&[22, 80, 443], &[5432, 6379]),
            (&[80], &[80]),
            (&[1, 65535], &[65535]),
        ];
        let mut bc = Vec::new();
        for (local, remote) in cases {
            assert!(build(&mut bc, local, remote));
            assert_eq!(bc.len(), (local.len() + remote.len()) * PER_PORT + 4);
            audit(&bc).unwrap_or_else(|e| panic!("{local:?} {remote:?}: {e}"));
            for sport in [0u16, 1, 22, 80, 443, 5432, 6379, 40000, 65535] {
                for dport in [0u16, 1, 22, 80, 5432, 6379, 65535] {
                    let want = local.contains(&sport) || remote.contains(&dport);
                    assert_eq!(
                        matches(&bc, sport, dport),
                        want,
                        "{local:?} {remote:?} {sport} {dport}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_largest_program_passes_the_audit() {
        let local: Vec<u16> = (1000..1000 + MAX_PORTS as u16 / 2).collect();
        let remote: Vec<u16> = (2000..2000 + MAX_PORTS as u16 / 2).collect();
        let mut bc = Vec::new();
        assert!(build(&mut bc, &local, &remote));
        audit(&bc).unwrap();
        assert!(matches(&bc, 1000 + MAX_PORTS as u16 / 2 - 1, 0));
        assert!(matches(&bc, 0, 2000));
        assert!(!matches(&bc, 999, 1999));
    }

    #[test]
    fn the_audit_catches_a_broken_program() {
        let mut bc = Vec::new();
        build(&mut bc, &[22, 80], &[]);
        let mut bad = bc.clone();
        bad[2] = 6; // S_EQ's `no` lands inside the port op
        assert!(audit(&bad).is_err());
        let mut short = bc.clone();
        short.truncate(bc.len() - 2);
        assert!(audit(&short).is_err());
    }
}
