//! Port lists through `filter::Builder::build`, one builder reused across
//! inputs as the plugin reuses it across reads (so its reuse of an unchanged
//! program is exercised too).
//!
//! Invariants: no panic; there is no program (`build` gives `None`) for
//! no ports or more than `MAX_RANGES` ranges of consecutive ports, otherwise
//! `PER_RANGE` bytes per range; run through a restatement of the kernel's
//! interpreter, it accepts a socket exactly when its local port is in
//! `local` or its remote port is in `remote`, in at most 3 ops per level of
//! a balanced tree.
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use tcpconns::filter::{Builder, MAX_RANGES, PER_RANGE};

/// The kernel's inet_diag bytecode interpreter, for the ops `build` emits
/// (JMP = 1, S_GE = 2, S_LE = 3, D_GE = 4, D_LE = 5); `None` for anything
/// else. Also returns the number of ops run.
fn run(bc: &[u8], sport: u16, dport: u16) -> Option<(bool, usize)> {
    let op = |at: usize| -> Option<(u8, usize, usize)> {
        let b = bc.get(at..at + 4)?;
        Some((
            b[0],
            usize::from(b[1]),
            usize::from(u16::from_ne_bytes([b[2], b[3]])),
        ))
    };
    let mut len = bc.len() as isize;
    let mut at = 0usize;
    let mut ops = 0;
    while len > 0 {
        let (code, yes, no) = op(at)?;
        let taken = match code {
            1 => false,
            2 => usize::from(sport) >= op(at + 4)?.2,
            3 => usize::from(sport) <= op(at + 4)?.2,
            4 => usize::from(dport) >= op(at + 4)?.2,
            5 => usize::from(dport) <= op(at + 4)?.2,
            _ => return None,
        };
        let step = if taken { yes } else { no };
        if step == 0 {
            return None;
        }
        len -= step as isize;
        at += step;
        ops += 1;
    }
    Some((len == 0, ops))
}

/// Ranges of consecutive ports in `ports`, counted the plain way.
fn ranges(ports: &[u16]) -> usize {
    let mut sorted = ports.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    sorted.windows(2).filter(|w| w[1] != w[0] + 1).count() + usize::from(!sorted.is_empty())
}

thread_local! {
    static BUILDER: RefCell<Builder> = RefCell::new(Builder::default());
}

fuzz_target!(|ports: (Vec<u16>, Vec<u16>, u16, u16)| {
    let (local, remote, sport, dport) = ports;
    let (nl, nr) = (ranges(&local), ranges(&remote));
    let n = nl + nr;
    // The builder keeps the last input's program (and reuses it when the
    // ranges are the same): what it returns must be this input's.
    let (mut l, mut r) = (local.clone(), remote.clone());
    let built = BUILDER.with(|b| b.borrow_mut().build(&mut l, &mut r).map(<[u8]>::to_vec));
    assert_eq!(built.is_some(), (1..=MAX_RANGES).contains(&n), "{n} ranges");
    let Some(out) = built else {
        return;
    };
    assert!(!out.is_empty());
    assert_eq!(
        out.len(),
        PER_RANGE * n,
        "{} bytes for {n} ranges",
        out.len()
    );
    let depth = |k: usize| (usize::BITS - k.leading_zeros()) as usize;
    let max_ops = 3 * (depth(nl) + depth(nr));
    for (s, d) in [(sport, dport)]
        .into_iter()
        .chain(local.iter().map(|&p| (p, dport)))
        .chain(remote.iter().map(|&p| (sport, p)))
        .chain(local.iter().map(|&p| (p.wrapping_add(1), dport)))
        .chain(remote.iter().map(|&p| (sport, p.wrapping_sub(1))))
    {
        let want = local.contains(&s) || remote.contains(&d);
        let got = run(&out, s, d);
        assert_eq!(got.map(|g| g.0), Some(want), "{local:?} {remote:?} {s} {d}");
        let ops = got.map_or(0, |g| g.1);
        assert!(ops <= max_ops, "{ops} ops for {nl}+{nr} ranges");
    }
});
