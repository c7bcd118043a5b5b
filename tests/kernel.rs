//! The netlink source against the running kernel, in a namespace of the
//! test's own: the filter programs the kernel accepts, the one it refuses,
//! and that a filtered dump gives exactly the sockets of the chosen ports.

use harness::*;
use tcpconns::filter;
use tcpconns::netlink::{Netlink, NetlinkError};
use tcpconns::socket::Socket;
use tcpconns::source::ALL_STATES;

fn dump(ns: &Netns, program: &[u8]) -> Result<Vec<Sock>, NetlinkError> {
    ns.enter(|| {
        let mut nl = Netlink::default();
        let mut got = Vec::new();
        let progress = nl.dump(ALL_STATES, program, &mut |s: &Socket| {
            got.push(Sock {
                local: s.local,
                remote: s.remote,
                state: s.state,
            })
        })?;
        assert!(progress.done);
        got.sort();
        Ok(got)
    })
}

#[test]
fn unfiltered_dump_sees_both_families_exactly() {
    require_root!("make a network namespace and dump its sockets");
    let ns = Netns::new("k-all");
    let pop = mixed_population(&ns);
    let mut want = pop.expected.clone();
    want.sort();
    assert_eq!(dump(&ns, &[]).unwrap(), want);
}

#[test]
fn filtered_dump_gives_only_the_chosen_ports() {
    require_root!("make a network namespace and dump its sockets");
    let ns = Netns::new("k-filter");
    let pop = mixed_population(&ns);
    let mut program = Vec::new();
    // Ranges and search trees: 1,000 consecutive ports around 8080, and
    // 500 scattered ports that include 22 and 80 (the ephemeral client ports
    // fall between them).
    let block: Vec<u16> = (7600..8600).collect();
    let scattered: Vec<u16> = (0..500u16).map(|i| 22 + i * 58).chain([80]).collect();
    for (local, remote) in [
        (&[22u16][..], &[][..]),
        (&[8080, 25], &[80]),
        (&[], &[22, 8080]),
        (&block[..], &[22]),
        (&scattered[..], &[]),
        (&[25], &scattered[..]),
    ] {
        assert!(filter::build(&mut program, local, remote));
        let mut want: Vec<Sock> = pop
            .expected
            .iter()
            .filter(|s| local.contains(&s.local) || remote.contains(&s.remote))
            .copied()
            .collect();
        want.sort();
        assert!(!want.is_empty());
        assert_eq!(dump(&ns, &program).unwrap(), want, "{local:?} {remote:?}");
    }
}

#[test]
fn the_kernel_refuses_a_malformed_program_with_einval() {
    require_root!("make a network namespace and dump its sockets");
    let ns = Netns::new("k-einval");
    let _pop = mixed_population(&ns);
    let mut program = Vec::new();
    assert!(filter::build(&mut program, &[22, 80], &[]));
    program[2] = 6; // a `no` jump that lands inside an op
    match dump(&ns, &program) {
        Err(NetlinkError::Kernel { errno }) => assert_eq!(errno, libc::EINVAL),
        other => panic!("expected EINVAL, got {other:?}"),
    }
}
