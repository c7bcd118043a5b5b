//! Kernel-side port filters: an inet_diag bytecode program, attached to the
//! dump request, that lets the kernel skip building a message for every
//! socket the configuration does not report. The kernel still walks its
//! tables, but building one netlink message per socket is most of its cost.
//!
//! Kernel facts this relies on (net/ipv4/inet_diag.c): a program is a list
//! of 4-byte ops `{u8 code, u8 yes, u16 no}`; port comparisons carry the port
//! in the `no` field of a second op. Running it, a true condition jumps
//! `yes` bytes, a false one `no` bytes; a socket matches when the program
//! ends exactly at its last byte and not when it jumps 4 bytes past it. The
//! audit the kernel runs first walks the `yes` jumps and requires every `no`
//! target to be one of the places that walk reaches, or the end, or 4 past
//! it. Jumps only go forward.
//!
//! The ports become ranges of consecutive ports (1,000 listening ports in
//! 20000-20999 are one range), and the ranges of each direction a binary
//! search tree laid out in forward jumps: a socket is decided after about
//! log2(ranges) port comparisons, however many ports are reported.

/// `INET_DIAG_BC_JMP`: always takes its `no` jump.
const JMP: u8 = 1;
/// `INET_DIAG_BC_S_GE`, `S_LE`: source (local) port at least, at most.
const S_GE: u8 = 2;
const S_LE: u8 = 3;
/// `INET_DIAG_BC_D_GE`, `D_LE`: destination (remote) port at least, at most.
const D_GE: u8 = 4;
const D_LE: u8 = 5;
/// `INET_DIAG_REQ_BYTECODE`: the request attribute carrying the program.
pub const REQ_BYTECODE: u16 = 1;

/// Bytes per range: `>= low` and its port, `<= high` and its port, the
/// accepting jump.
pub const PER_RANGE: usize = 20;
/// Most ranges in one program: jumps are 16-bit and the program rides in a
/// netlink attribute whose length is 16-bit too. Past this, no filter.
pub const MAX_RANGES: usize = 3000;

fn op(out: &mut Vec<u8>, code: u8, yes: u8, no: u16) {
    out.push(code);
    out.push(yes);
    out.extend_from_slice(&no.to_ne_bytes());
}

/// Sorts `ports` and returns the ranges of consecutive ports they make, as
/// an iterator of `(low, high)`.
fn ranges(ports: &mut [u16]) -> impl Iterator<Item = (u16, u16)> + '_ {
    ports.sort_unstable();
    let mut rest: &[u16] = ports;
    std::iter::from_fn(move || {
        let (&low, _) = rest.split_first()?;
        let mut high = low;
        let mut taken = 0;
        for &p in rest.iter() {
            if p > high.saturating_add(1) {
                break;
            }
            high = high.max(p);
            taken += 1;
        }
        rest = &rest[taken..];
        Some((low, high))
    })
}

/// Appends to `out` the search tree over `ranges` (sorted, disjoint), one
/// [`PER_RANGE`] node per range: the node for the middle range first,
/// then the tree of the ranges above it, then the tree of those below. A
/// port outside every range jumps to `fail`; inside one, to `accept` (both
/// offsets from the program's start).
fn tree(out: &mut Vec<u8>, ranges: &[(u16, u16)], codes: (u8, u8), fail: usize, accept: usize) {
    if ranges.is_empty() {
        return;
    }
    let mid = ranges.len() / 2;
    let (low, high) = ranges[mid];
    let at = out.len();
    let above = at + PER_RANGE;
    let above_len = (ranges.len() - mid - 1) * PER_RANGE;
    let below = above + above_len;
    let below_target = if mid == 0 { fail } else { below };
    let above_target = if above_len == 0 { fail } else { above };
    // Offsets fit 16 bits: targets lie at most MAX_RANGES * PER_RANGE + 4
    // bytes from the start.
    op(out, codes.0, 8, (below_target - at) as u16);
    op(out, 0, 0, low);
    op(out, codes.1, 8, (above_target - (at + 8)) as u16);
    op(out, 0, 0, high);
    op(out, JMP, 4, (accept - (at + 16)) as u16);
    tree(out, &ranges[mid + 1..], codes, fail, accept);
    tree(out, &ranges[..mid], codes, fail, accept);
}

/// Builds port filters for a [`crate::source`] read after read: it owns the
/// program and scratch, so building allocates nothing once they have grown,
/// and it writes the program again only when the ranges change (configured
/// ports never do, listening ports seldom).
#[derive(Debug, Default)]
pub struct Builder {
    /// The program for `local` and `remote`; empty when they are.
    program: Vec<u8>,
    local: Vec<(u16, u16)>,
    remote: Vec<(u16, u16)>,
    next_local: Vec<(u16, u16)>,
    next_remote: Vec<(u16, u16)>,
}

impl Builder {
    /// A program matching sockets whose local port is in `local` or whose
    /// remote port is in `remote` (both sorted here, in place); `None` when
    /// there are no ports, or more than [`MAX_RANGES`] ranges of them.
    pub fn build(&mut self, local: &mut [u16], remote: &mut [u16]) -> Option<&[u8]> {
        self.next_local.clear();
        self.next_local.extend(ranges(local));
        self.next_remote.clear();
        self.next_remote.extend(ranges(remote));
        let n = self.next_local.len() + self.next_remote.len();
        if n == 0 || n > MAX_RANGES {
            self.program.clear();
            self.local.clear();
            self.remote.clear();
            return None;
        }
        if self.next_local != self.local || self.next_remote != self.remote {
            std::mem::swap(&mut self.local, &mut self.next_local);
            std::mem::swap(&mut self.remote, &mut self.next_remote);
            self.write(n);
        }
        Some(&self.program)
    }

    /// Writes the program for `self.local` and `self.remote`, `n` ranges.
    fn write(&mut self, n: usize) {
        let out = &mut self.program;
        out.clear();
        let accept = n * PER_RANGE;
        // Past the end by 4: the kernel's "no match".
        let reject = accept + 4;
        let local_fail = if self.remote.is_empty() {
            reject
        } else {
            // The remote tree starts after the local one.
            self.local.len() * PER_RANGE
        };
        tree(out, &self.local, (S_GE, S_LE), local_fail, accept);
        tree(out, &self.remote, (D_GE, D_LE), reject, accept);
    }
}

/// [`Builder::build`] once, into `out`; returns whether there is a program.
pub fn build(out: &mut Vec<u8>, local: &[u16], remote: &[u16]) -> bool {
    let (mut local, mut remote) = (local.to_vec(), remote.to_vec());
    out.clear();
    match Builder::default().build(&mut local, &mut remote) {
        Some(program) => {
            out.extend_from_slice(program);
            true
        }
        None => false,
    }
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
                S_GE | S_LE | D_GE | D_LE => 8,
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

    /// The kernel's interpreter, restated, for the ops we emit; also counts
    /// the ops it ran.
    fn run(bc: &[u8], sport: u16, dport: u16) -> (bool, usize) {
        let mut len = bc.len() as isize;
        let mut at = 0usize;
        let mut ops = 0;
        while len > 0 {
            let o = op_at(bc, at);
            let port = || op_at(bc, at + 4).no as u16;
            let yes = match o.code {
                JMP => false,
                S_GE => sport >= port(),
                S_LE => sport <= port(),
                D_GE => dport >= port(),
                D_LE => dport <= port(),
                _ => unreachable!(),
            };
            let step = if yes { o.yes } else { o.no };
            len -= step as isize;
            at += step;
            ops += 1;
        }
        (len == 0, ops)
    }

    fn matches(bc: &[u8], sport: u16, dport: u16) -> bool {
        run(bc, sport, dport).0
    }

    /// Checks `bc` against the port lists for every port that could tell a
    /// difference: each listed port, its neighbours, and the extremes.
    fn check(bc: &[u8], local: &[u16], remote: &[u16]) {
        audit(bc).unwrap_or_else(|e| panic!("{local:?} {remote:?}: {e}"));
        let mut probes: Vec<u16> = vec![0, 1, 65534, 65535];
        for &p in local.iter().chain(remote) {
            probes.extend([p.saturating_sub(1), p, p.saturating_add(1)]);
        }
        // Each probe in each direction, against a few of the other's.
        let few: Vec<u16> = probes
            .iter()
            .copied()
            .step_by(probes.len() / 8 + 1)
            .collect();
        let pairs = probes
            .iter()
            .flat_map(|&p| few.iter().flat_map(move |&q| [(p, q), (q, p)]));
        for (sport, dport) in pairs {
            let want = local.contains(&sport) || remote.contains(&dport);
            assert_eq!(
                matches(bc, sport, dport),
                want,
                "{local:?} {remote:?} {sport} {dport}"
            );
        }
    }

    #[test]
    fn nothing_to_filter_or_too_much_gives_no_program() {
        let mut bc = vec![1, 2, 3];
        assert!(!build(&mut bc, &[], &[]));
        assert!(bc.is_empty());
        // Every other port: as many ranges as ports.
        let many: Vec<u16> = (0..=MAX_RANGES as u16).map(|i| 2 * i + 1).collect();
        assert!(!build(&mut bc, &many, &[]));
        assert!(bc.is_empty());
        assert!(build(&mut bc, &many[..MAX_RANGES], &[]));
        assert_eq!(bc.len(), MAX_RANGES * PER_RANGE);
        check(&bc, &many[..MAX_RANGES], &[]);
    }

    #[test]
    fn consecutive_ports_make_one_range_in_any_order_with_duplicates() {
        let mut ports = [20003, 80, 20001, 20000, 20002, 80, 443, 20001];
        let got: Vec<_> = ranges(&mut ports).collect();
        assert_eq!(got, vec![(80, 80), (443, 443), (20000, 20003)]);
        let mut edge = [65535, 65534, 1];
        assert_eq!(
            ranges(&mut edge).collect::<Vec<_>>(),
            vec![(1, 1), (65534, 65535)]
        );
    }

    #[test]
    fn programs_pass_the_audit_and_match_exactly_the_ports() {
        let thousand: Vec<u16> = (20000..21000).chain([80, 443, 5432, 6379]).collect();
        let scattered: Vec<u16> = (1..=300).map(|i| i * 200).collect();
        let cases: [(&[u16], &[u16]); 9] = [
            (&[22], &[]),
            (&[], &[5432]),
            (&[22, 80, 443], &[5432, 6379]),
            (&[80], &[80]),
            (&[1, 65535], &[65535]),
            (&[8080, 8081, 8082, 22], &[1, 2, 3]),
            (&thousand, &[]),
            (&scattered, &[6379]),
            (&[], &scattered),
        ];
        let mut bc = Vec::new();
        for (local, remote) in cases {
            assert!(build(&mut bc, local, remote));
            check(&bc, local, remote);
        }
    }

    #[test]
    fn a_socket_is_decided_in_about_log2_ranges_ops() {
        let scattered: Vec<u16> = (1..=1000).map(|i| i * 60).collect();
        let mut bc = Vec::new();
        assert!(build(&mut bc, &scattered, &[]));
        assert_eq!(bc.len(), 1000 * PER_RANGE);
        // A tree of 1,000 nodes is 10 deep; each node runs at most 3 ops.
        let worst = (0..=u16::MAX).map(|p| run(&bc, p, 0).1).max().unwrap_or(0);
        assert!(worst <= 3 * 10, "{worst} ops");
        // 1,000 consecutive listening ports are one range: 3 ops at most.
        let block: Vec<u16> = (20000..21000).collect();
        assert!(build(&mut bc, &block, &[]));
        assert_eq!(bc.len(), PER_RANGE);
    }

    #[test]
    fn the_builder_reuses_its_scratch_and_sorts_in_place() {
        let mut b = Builder::default();
        let (mut local, mut remote) = (vec![443, 80, 81], vec![6379]);
        let bc = b.build(&mut local, &mut remote).unwrap().to_vec();
        assert_eq!(local, vec![80, 81, 443]);
        check(&bc, &local, &remote);
        // The same ports in another order: the same program.
        let (mut again, mut r) = (vec![81, 443, 80], vec![6379]);
        assert_eq!(b.build(&mut again, &mut r).unwrap(), &bc[..]);
        // Other ports: a new program; none: no program; then the first again.
        let (mut other, mut none): (Vec<u16>, Vec<u16>) = (vec![22], vec![]);
        let bc22 = b.build(&mut other, &mut none).unwrap().to_vec();
        check(&bc22, &[22], &[]);
        let (mut e1, mut e2): (Vec<u16>, Vec<u16>) = (vec![], vec![]);
        assert!(b.build(&mut e1, &mut e2).is_none());
        assert_eq!(b.build(&mut local, &mut remote).unwrap(), &bc[..]);
    }

    #[test]
    fn the_audit_catches_a_broken_program() {
        let mut bc = Vec::new();
        build(&mut bc, &[22, 80], &[]);
        let mut bad = bc.clone();
        bad[2] = 4; // S_GE's `no` lands inside its own port op
        assert!(audit(&bad).is_err());
        let mut short = bc.clone();
        short.truncate(bc.len() - 2);
        assert!(audit(&short).is_err());
    }
}
