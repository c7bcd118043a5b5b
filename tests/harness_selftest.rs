//! Self-test of the integration-test harness (`tests/harness`), run against
//! Debian's STOCK C tcpconns plugin only, so it works even while this crate's
//! plugin does not build. Needs collectd-core; all but `ss_parsing` and
//! `stock_config_error_exits` need root, `ip` and `ss`.

use harness::*;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

/// Entries of `expected` whose local port is `port`, counted by state.
fn local_counts(expected: &[Sock], port: u16) -> HashMap<u8, usize> {
    let mut m = HashMap::new();
    for s in expected.iter().filter(|s| s.local == port) {
        *m.entry(s.state).or_insert(0) += 1;
    }
    m
}

/// Every state of every listening port as (plugin_instance, type_instance)
/// -> count, computed from the population the way the C plugin's default
/// configuration (no ports configured: all listening ports, local side)
/// counts it.
fn expected_default(expected: &[Sock]) -> Vec<((String, String), f64)> {
    let listening: BTreeSet<u16> = expected
        .iter()
        .filter(|s| s.state == TCP_LISTEN)
        .map(|s| s.local)
        .collect();
    let mut out = Vec::new();
    for port in listening {
        let counts = local_counts(expected, port);
        for state in 1..=11u8 {
            out.push((
                (format!("{port}-local"), state_name(state).to_string()),
                counts.get(&state).copied().unwrap_or(0) as f64,
            ));
        }
    }
    out
}

/// A mixed population: IPv4, IPv6 and dual-stack listeners, established
/// connections of each family, TIME_WAIT and FIN_WAIT2/CLOSE_WAIT pairs.
fn selftest_population(ns: &Netns) -> Population {
    let mut pop = Population::new(ns);
    pop.listen_v4(2222)
        .established(2222, 3, Family::V4)
        .listen_v6(2222) // same port, other family: a second LISTEN entry
        .established(2222, 1, Family::V6)
        .listen_v6(3333)
        .established(3333, 2, Family::V6)
        .listen_dual(4444)
        .established(4444, 2, Family::Mapped)
        .established(4444, 1, Family::V6)
        .time_wait(2222, 2)
        .close_wait_pairs(3333, 1)
        .close_wait_pairs(4444, 2);
    pop.settle(ns);
    pop
}

fn assert_matches_population(run: &Run, pop: &Population) {
    let want = expected_default(&pop.expected);
    let mut problems = String::new();
    for ((pinst, tinst), v) in &want {
        match run.get(pinst, tinst) {
            Some(got) if got == *v => {}
            got => problems += &format!("  {pinst}/{tinst}: want {v}, got {got:?}\n"),
        }
    }
    let want_keys: BTreeSet<_> = want.iter().map(|(k, _)| k.clone()).collect();
    for k in run.values.keys() {
        if !want_keys.contains(k) {
            problems += &format!("  unexpected value {k:?} = {}\n", run.values[k]);
        }
    }
    assert!(
        problems.is_empty(),
        "collectd values differ from the population:\n{problems}\nexpected sockets: {:?}\nlog:\n{}",
        pop.expected,
        run.log
    );
}

#[test]
fn ss_parsing() {
    let text = "LISTEN     0 128        127.0.0.1:2222        0.0.0.0:*\n\
                LISTEN     0 128            [::1]:2222           [::]:*\n\
                LISTEN     0 128                *:4444              *:*\n\
                ESTAB      0 0          127.0.0.1:40001     127.0.0.1:2222\n\
                ESTAB      0 0   [::ffff:127.0.0.1]:4444 [::ffff:127.0.0.1]:40003\n\
                TIME-WAIT  0 0          127.0.0.1:40002     127.0.0.1:2222\n\
                FIN-WAIT-2 0 0              [::1]:40004         [::1]:3333\n\
                CLOSE-WAIT 1 0              [::1]:3333          [::1]:40004\n\
                UNCONN     0 0    127.0.0.53%lo:53          0.0.0.0:*\n";
    let got = parse_ss(text);
    let want = vec![
        Sock {
            local: 2222,
            remote: 0,
            state: TCP_LISTEN,
        },
        Sock {
            local: 2222,
            remote: 0,
            state: TCP_LISTEN,
        },
        Sock {
            local: 4444,
            remote: 0,
            state: TCP_LISTEN,
        },
        Sock {
            local: 40001,
            remote: 2222,
            state: TCP_ESTABLISHED,
        },
        Sock {
            local: 4444,
            remote: 40003,
            state: TCP_ESTABLISHED,
        },
        Sock {
            local: 40002,
            remote: 2222,
            state: TCP_TIME_WAIT,
        },
        Sock {
            local: 40004,
            remote: 3333,
            state: TCP_FIN_WAIT2,
        },
        Sock {
            local: 3333,
            remote: 40004,
            state: TCP_CLOSE_WAIT,
        },
        Sock {
            local: 53,
            remote: 0,
            state: TCP_CLOSE,
        },
    ];
    assert_eq!(got, want);
}

#[test]
fn stock_default_config_counts_listening_ports() {
    require_root!();
    let ns = Netns::new("self");
    let pop = selftest_population(&ns);
    let run = run_collectd(&ns, Plugin::Stock, "", &[]);
    eprintln!(
        "stock run: {} values, status {:?}",
        run.values.len(),
        run.status
    );
    assert!(
        !run.values.is_empty(),
        "no values reached csv; log:\n{}",
        run.log
    );
    assert_matches_population(&run, &pop);
    // The population is unchanged by the run.
    pop.settle(&ns);
}

#[test]
fn stock_without_netlink_falls_back_to_proc() {
    require_root!();
    let ns = Netns::new("shim");
    let pop = selftest_population(&ns);
    let shim = no_netlink_shim();
    let shim = shim.to_str().expect("shim path is UTF-8");
    // The C plugin dispatches nothing on the read where netlink first fails
    // and reads /proc from the next read on: a short interval is needed.
    let opts = RunOptions {
        interval: 1.0,
        min_rows: 1,
        ..RunOptions::default()
    };
    let run = run_collectd_opts(&ns, Plugin::Stock, "", &[("LD_PRELOAD", shim)], &opts);
    assert!(
        run.log.contains("Permission denied") && run.log.contains("read from /proc"),
        "the shim did not make the netlink socket fail; log:\n{}",
        run.log
    );
    assert_matches_population(&run, &pop);
}

#[test]
fn stock_config_error_exits() {
    require_collectd!();
    let block = "<Plugin tcpconns>\n  NoSuchOption 1\n</Plugin>";
    let run = run_collectd_config(None, Plugin::Stock, block, &[], Duration::from_secs(10));
    let status = run.status.expect("collectd should have exited on its own");
    assert_eq!(status.code(), Some(1), "log:\n{}", run.log);
    assert!(
        run.log.contains("Parsing the config file failed"),
        "log:\n{}",
        run.log
    );
}

/// A collectd whose test fails is stopped by its handle's drop, and its
/// scratch directory goes with it: no collectd outlives a failed assertion.
#[test]
fn a_failing_test_leaves_no_collectd_running() {
    require_root!();
    let ns = Netns::new("drop");
    let (tx, rx) = std::sync::mpsc::channel();
    let inner = std::thread::scope(|s| {
        s.spawn(|| {
            let mut c = Collectd::tcpconns(Some(&ns), Plugin::Stock, "", &[], 3600.0);
            c.wait_log("the read loop", Duration::from_secs(20), |log| {
                log.contains("Initialization complete")
            });
            tx.send((c.pid(), c.dir().to_path_buf())).unwrap();
            panic!("a failed assertion while collectd runs");
        })
        .join()
    });
    let payload = inner.expect_err("the inner test did not fail");
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
    assert_eq!(message, Some("a failed assertion while collectd runs"));
    let (pid, dir) = rx.try_recv().expect("collectd was started");
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert_ne!(comm.trim(), "collectd", "collectd {pid} still runs");
    if std::env::var_os("KEEP_TMP").is_none() {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}
