//! Opt-in extras beyond the C plugin, checked in real collectd on
//! populations the tests make: accept-queue depth of listeners.

use harness::*;
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::time::Duration;

fn queue_run(tag: &str, env: &[(&str, &str)]) -> Run {
    let ns = Netns::new(tag);
    let mut pop = Population::new(&ns);
    // 7002 listens with nothing waiting; 7003 is configured but has no listener.
    pop.queued(7000, 7, 5)
        .queued(7001, 3, 3)
        .queued(7002, 16, 0);
    pop.settle(&ns);
    let block =
        "<Plugin tcpconns>\n  AcceptQueue true\n  ListeningPorts true\n  LocalPort 7003\n</Plugin>";
    let run = run_collectd(&ns, Plugin::Ours, block, env);
    for port in [7000, 7001, 7002] {
        assert_eq!(
            run.get(&format!("{port}-local"), "LISTEN"),
            Some(1.0),
            "{}",
            run.log
        );
    }
    assert_eq!(
        run.get("7000-local", "ESTABLISHED"),
        Some(5.0),
        "{}",
        run.log
    );
    assert_eq!(
        run.get("7003-local", "ESTABLISHED"),
        Some(0.0),
        "{}",
        run.log
    );
    run
}

fn queue(run: &Run, port: u16, which: &str) -> Option<f64> {
    run.values
        .get(&(format!("{port}-local"), format!("queue_length-{which}")))
        .copied()
}

#[test]
fn accept_queue_depth_and_limit_from_netlink() {
    require_root!();
    let run = queue_run("aq-nl", &[]);
    assert_eq!(queue(&run, 7000, "accept"), Some(5.0), "{}", run.log);
    assert_eq!(queue(&run, 7000, "accept_limit"), Some(7.0), "{}", run.log);
    assert_eq!(queue(&run, 7001, "accept"), Some(3.0), "{}", run.log);
    assert_eq!(queue(&run, 7001, "accept_limit"), Some(3.0), "{}", run.log);
    assert_eq!(queue(&run, 7002, "accept"), Some(0.0), "{}", run.log);
    assert_eq!(queue(&run, 7002, "accept_limit"), Some(16.0), "{}", run.log);
    assert_eq!(queue(&run, 7003, "accept"), None, "no listener, no queue");
}

#[test]
fn accept_queue_depth_from_procfs_without_a_made_up_limit() {
    require_root!();
    let shim = no_netlink_shim();
    let run = queue_run("aq-proc", &[("LD_PRELOAD", shim.to_str().unwrap())]);
    assert!(run.log.contains("reading /proc/net/tcp"), "{}", run.log);
    assert_eq!(queue(&run, 7000, "accept"), Some(5.0), "{}", run.log);
    assert_eq!(queue(&run, 7001, "accept"), Some(3.0), "{}", run.log);
    assert_eq!(queue(&run, 7002, "accept"), Some(0.0), "{}", run.log);
    for port in [7000, 7001, 7002] {
        assert_eq!(
            queue(&run, port, "accept_limit"),
            None,
            "procfs shows no limit"
        );
    }
}

/// `want` with every plugin instance put behind `prefix-`.
fn prefixed(
    prefix: &str,
    want: std::collections::BTreeMap<(String, String), f64>,
) -> Vec<((String, String), f64)> {
    want.into_iter()
        .map(|((pi, ti), v)| ((format!("{prefix}-{pi}"), ti), v))
        .collect()
}

#[test]
fn other_namespaces_are_counted_under_their_names_and_a_missing_one_is_skipped() {
    require_root!();
    let host = Netns::new("ns-host");
    let a = Netns::new("ns-a");
    let b = Netns::new("ns-b");
    let mut host_pop = Population::new(&host);
    host_pop.listen_v4(22).established(22, 1, Family::V4);
    host_pop.settle(&host);
    let a_pop = mixed_population(&a);
    let mut b_pop = Population::new(&b);
    b_pop
        .listen_dual(443)
        .established(443, 4, Family::Mapped)
        .time_wait(443, 2);
    b_pop.settle(&b);
    let block = format!(
        "<Plugin tcpconns>\n  ListeningPorts true\n  AllPortsSummary true\n  \
         Namespace \"/run/netns/{}\" \"a\"\n  Namespace \"/run/netns/{}\" \"b\"\n  \
         Namespace \"/run/netns/tcpc-never-made\"\n</Plugin>",
        a.name(),
        b.name()
    );
    let run = run_collectd(&host, Plugin::Ours, &block, &[]);
    let sel = Selection {
        listening: true,
        summary: true,
        ..Selection::default()
    };
    let mut want = expected_values(&host_pop.expected, &sel);
    want.extend(prefixed("a", expected_values(&a_pop.expected, &sel)));
    want.extend(prefixed("b", expected_values(&b_pop.expected, &sel)));
    assert_values("namespaces", &run.values, &want, &run.log);
    assert!(
        run.log.contains("namespace tcpc-never-made (/run/netns/tcpc-never-made): not there; skipped until it is"),
        "{}",
        run.log
    );
    assert!(!run.log.contains("[error]"), "{}", run.log);
}

#[test]
fn a_namespace_that_goes_away_and_comes_back_is_read_again() {
    require_root!();
    let host = Netns::new("nsb-host");
    let name = format!("tcpc-nsb-{}", std::process::id());
    let ns = Netns::with_name(name.clone());
    let mut first = Population::new(&ns);
    first.listen_v4(80).established(80, 2, Family::V4);
    first.settle(&ns);
    let block = format!(
        "<Plugin tcpconns>\n  LocalPort 80\n  Namespace \"/run/netns/{name}\" \"web\"\n</Plugin>"
    );
    let mut c = Collectd::tcpconns(Some(&host), Plugin::Ours, &block, &[], 1.0);
    c.wait_reads(2, Duration::from_secs(20));
    drop(first);
    drop(ns);
    let label = format!("namespace web (/run/netns/{name}): ");
    let gone = format!("{label}not there; skipped until it is");
    c.wait_log("the namespace missed", Duration::from_secs(20), |log| {
        log.contains(&gone)
    });
    let ns = Netns::with_name(name.clone());
    let mut second = Population::new(&ns);
    second
        .listen_v4(80)
        .established(80, 5, Family::V4)
        .close_wait_pairs(80, 1);
    second.settle(&ns);
    let before = c.reads();
    c.wait_reads(before + 3, Duration::from_secs(20));
    let run = c.finish();
    assert_eq!(
        run.log.matches(&format!("{label}not there")).count(),
        1,
        "{}",
        run.log
    );
    assert_eq!(
        run.log
            .matches(&format!("{label}there (again); reading it"))
            .count(),
        1,
        "{}",
        run.log
    );
    let sel = Selection {
        local: vec![80],
        ..Selection::default()
    };
    let mut want = expected_values(&[], &sel);
    want.extend(prefixed("web", expected_values(&second.expected, &sel)));
    assert_values(
        "after the namespace came back",
        &run.values,
        &want,
        &run.log,
    );
}

/// A connection to 127.0.0.1:`port` from `src`:0, accepted by `listener`;
/// both ends are returned so they stay open.
fn connect_from(
    ns: &Netns,
    src: [u8; 4],
    port: u16,
    listener: &std::net::TcpListener,
) -> (OwnedFd, TcpStream) {
    ns.enter(|| {
        let client = ipv4_socket(src, 0);
        ipv4_connect(&client, [127, 0, 0, 1], port);
        listener.set_nonblocking(false).expect("blocking accept");
        let (server, _) = listener.accept().expect("accept");
        (client, server)
    })
}

fn networks_run(tag: &str, env: &[(&str, &str)]) -> Run {
    let ns = Netns::new(tag);
    let mut pop = Population::new(&ns);
    pop.listen_v4(6000)
        .listen_v6(6001)
        .established(6001, 2, Family::V6);
    pop.settle(&ns);
    let listener = &pop.listeners[0].socket;
    let mut conns = Vec::new();
    for src in [
        [127, 0, 0, 1],
        [127, 0, 0, 2],
        [127, 0, 0, 2],
        [127, 0, 0, 3],
        [127, 0, 0, 3],
        [127, 0, 0, 3],
    ] {
        conns.push(connect_from(&ns, src, 6000, listener));
    }
    ns.wait_sockets("6 connections to 6000, both ends", |socks| {
        let est = socks.iter().filter(|s| s.state == TCP_ESTABLISHED);
        est.filter(|s| s.local == 6000 || s.remote == 6000).count() == 12
    });
    let block = "<Plugin tcpconns>\n  RemoteNetwork \"127.0.0.2/32\" \"127.0.0.0/30\"\n  \
                 RemoteNetwork \"::1\"\n  LocalNetwork \"127.0.0.0/8\"\n  LocalPort 6000\n</Plugin>";
    run_collectd(&ns, Plugin::Ours, block, env)
}

fn check_networks(run: &Run) {
    let est = |pi: &str| run.get(pi, "ESTABLISHED");
    assert_eq!(est("127.0.0.2_32-remote"), Some(2.0), "{}", run.log);
    // 6 accepted sockets (remote .1 to .3) and 6 clients (remote 127.0.0.1).
    assert_eq!(est("127.0.0.0_30-remote"), Some(12.0), "{}", run.log);
    assert_eq!(est("::1_128-remote"), Some(4.0), "{}", run.log);
    assert_eq!(est("127.0.0.0_8-local"), Some(12.0), "{}", run.log);
    assert_eq!(
        run.get("127.0.0.0_8-local", "LISTEN"),
        Some(1.0),
        "{}",
        run.log
    );
    assert_eq!(
        run.get("::1_128-remote", "LISTEN"),
        Some(0.0),
        "{}",
        run.log
    );
    assert_eq!(est("6000-local"), Some(6.0), "{}", run.log);
    assert_eq!(
        run.plugin_instances().len(),
        5,
        "{:?}",
        run.plugin_instances()
    );
}

#[test]
fn counts_by_network_from_netlink() {
    require_root!();
    check_networks(&networks_run("net-nl", &[]));
}

#[test]
fn counts_by_network_from_procfs() {
    require_root!();
    let shim = no_netlink_shim();
    let run = networks_run("net-proc", &[("LD_PRELOAD", shim.to_str().unwrap())]);
    assert!(run.log.contains("reading /proc/net/tcp"), "{}", run.log);
    check_networks(&run);
}

/// collectd without root (as `nobody`) cannot enter a namespace that is
/// there: that is logged once, never "there (again)" while nothing changes,
/// and the host namespace is still read, exactly, on every read.
#[test]
fn a_namespace_that_cannot_be_entered_is_logged_once_and_the_rest_is_read() {
    require_root!();
    const NOBODY: u32 = 65534;
    // Long enough that a loaded machine does not stretch one interval to
    // the 1.8 that the check below takes for a lost read.
    const INTERVAL: f64 = 0.5;
    let host = Netns::new("unpriv-host");
    let web = Netns::new("unpriv-web");
    let mut pop = Population::new(&host);
    pop.listen_v4(22).established(22, 2, Family::V4);
    pop.settle(&host);
    let _web_pop = mixed_population(&web);

    // nobody must read the plugin: a copy in the scratch dir handed to it.
    let dir = TempDir::new("unpriv");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(
        plugin_dir().join("tcpconns.so"),
        plugins.join("tcpconns.so"),
    )
    .unwrap();
    let path = format!("/run/netns/{}", web.name());
    let conf = Conf::new(dir.path(), "test", INTERVAL)
        .csv()
        .tcpconns_from(&plugins)
        .block(&format!(
            "<Plugin tcpconns>\n  LocalPort 22\n  Namespace \"{path}\" \"web\"\n</Plugin>"
        ));
    let launch = Launch {
        netns: Some(host.name()),
        user: Some(NOBODY),
        ..Launch::default()
    };
    let mut c = Collectd::start(dir, &conf, &launch);
    c.wait_reads(20, Duration::from_secs(30));
    let run = c.finish();

    let label = format!("namespace web ({path}): ");
    let refused = format!(
        "{label}netlink failed: cannot enter network namespace {path}: Operation not permitted"
    );
    assert_eq!(run.log.matches(&refused).count(), 1, "{}", run.log);
    assert_eq!(
        run.log.matches(&format!("{label}there (again)")).count(),
        0,
        "{}",
        run.log
    );
    let want = expected_values(
        &pop.expected,
        &Selection {
            local: vec![22],
            ..Selection::default()
        },
    );
    assert_values("host namespace", &run.values, &want, &run.log);
    run.assert_each_read(&want, 20, Some(1.8 * INTERVAL));
}
