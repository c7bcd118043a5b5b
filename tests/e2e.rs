//! Our `tcpconns.so` in the real collectd, on a population the test makes in
//! its own network namespace: every dispatched value is checked exactly.
//! Needs root, iproute2 and collectd-core.

use harness::*;

fn check(tag: &str, block: &str, sel: Selection) {
    require_root!();
    let ns = Netns::new(tag);
    let pop = mixed_population(&ns);
    let run = run_collectd(&ns, Plugin::Ours, block, &[]);
    let want = expected_values(&pop.expected, &sel);
    assert_values(tag, &run.values, &want, &run.log);
    assert!(
        run.log
            .contains("tcpconns plugin: reading sockets from netlink (sock_diag)"),
        "source not logged:\n{}",
        run.log
    );
}

#[test]
fn default_config_reports_listening_ports() {
    check(
        "default",
        "",
        Selection {
            listening: true,
            ..Selection::default()
        },
    );
}

#[test]
fn all_ports_summary_alone() {
    check(
        "summary",
        "<Plugin tcpconns>\n  AllPortsSummary true\n</Plugin>",
        Selection {
            summary: true,
            ..Selection::default()
        },
    );
}

#[test]
fn local_and_remote_ports_several_per_line_and_quoted() {
    check(
        "ports",
        "<Plugin tcpconns>\n  ListeningPorts false\n  LocalPort 22 \"8080\"\n  \
         LocalPort 9999\n  RemotePort \"80\"\n</Plugin>\n\
         <Plugin TCPConns>\n  remoteport 22.0\n</Plugin>",
        Selection {
            local: vec![22, 8080, 9999],
            remote: vec![22, 80],
            ..Selection::default()
        },
    );
}

#[test]
fn everything_together() {
    check(
        "all",
        "<Plugin tcpconns>\n  ListeningPorts yes\n  AllPortsSummary on\n  \
         LocalPort 8080\n  LocalPort 9999\n  RemotePort 22\n  RemotePort 80\n</Plugin>",
        Selection {
            listening: true,
            summary: true,
            local: vec![8080, 9999],
            remote: vec![22, 80],
        },
    );
}

#[test]
fn listening_ports_false_alone_still_reports_listeners_like_the_c_plugin() {
    check(
        "lpfalse",
        "<Plugin tcpconns>\n  ListeningPorts false\n</Plugin>",
        Selection {
            listening: true,
            ..Selection::default()
        },
    );
}

/// With netlink refused from the start, procfs serves the very first read
/// (the C plugin loses that interval) and every read after, with the same
/// counts; the switch is logged once.
#[test]
fn procfs_fallback_serves_every_read_from_the_first() {
    require_root!();
    let ns = Netns::new("procfs");
    let pop = mixed_population(&ns);
    let shim = no_netlink_shim();
    let shim = shim.to_str().expect("shim path is UTF-8");
    let block = "<Plugin tcpconns>\n  ListeningPorts true\n  AllPortsSummary true\n  \
                 RemotePort 22\n</Plugin>";
    let run = run_collectd_opts(
        &ns,
        Plugin::Ours,
        block,
        &[("LD_PRELOAD", shim)],
        &RunOptions {
            interval: 1.0,
            min_rows: 3,
            ..RunOptions::default()
        },
    );
    let want = expected_values(
        &pop.expected,
        &Selection {
            listening: true,
            summary: true,
            remote: vec![22],
            ..Selection::default()
        },
    );
    assert_values("procfs", &run.values, &want, &run.log);
    run.assert_each_read(&want, 3, None);
    let switches = run
        .log
        .matches("reading /proc/net/tcp and /proc/net/tcp6 instead")
        .count();
    assert_eq!(switches, 1, "log:\n{}", run.log);
    assert!(
        run.log.contains("netlink failed: socket(AF_NETLINK, NETLINK_SOCK_DIAG) on the sock_diag socket failed: Permission denied"),
        "log:\n{}",
        run.log
    );
    assert!(!run.log.contains("from netlink"), "log:\n{}", run.log);
}
