//! What hosts do to a plugin over months, each made to happen for real:
//! bad configuration, netlink refused or failing mid-run, procfs tables
//! missing or unreadable, socket churn during reads, odd kernel lines, and
//! panics. collectd must never go down, and values must never lie.

use harness::*;
use std::collections::BTreeMap;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// A read plugin of collectd's own, as a witness that reads happen while
/// tcpconns dispatches nothing.
const WITNESS: &str = "LoadPlugin load";

/// Waits until the witness plugin has read 3 times.
fn three_witness_reads(c: &mut Collectd) {
    c.wait_for("3 reads of the load plugin", WAIT, |csv| {
        csv.reads("load") >= 3
    });
}

fn tcpconns_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("tcpconns plugin:"))
        .collect()
}

#[test]
fn bad_configs_stop_collectd_with_one_line_naming_key_value_and_range() {
    require_collectd!();
    let range = "expected a whole number from 1 to 65535";
    let cases: &[(&str, &str)] = &[
        ("LocalPort 0", "LocalPort: invalid port \"0.000000\""),
        ("LocalPort -1", "LocalPort: invalid port \"-1.000000\""),
        (
            "RemotePort 65536",
            "RemotePort: invalid port \"65536.000000\"",
        ),
        (
            "LocalPort 70000",
            "LocalPort: invalid port \"70000.000000\"",
        ),
        ("LocalPort \"abc\"", "LocalPort: invalid port \"abc\""),
        ("RemotePort \"22abc\"", "RemotePort: invalid port \"22abc\""),
        ("LocalPort 22.5", "LocalPort: invalid port \"22.500000\""),
        ("LocalPort \"\"", "LocalPort: no port given (value \"\")"),
        ("LocalPort true", "LocalPort: invalid port \"true\""),
        ("LocalPort 22 25x", "LocalPort: invalid port \"25x\""),
        (
            "Foo 1",
            "unknown option \"Foo\" (value \"1.000000\"): expected one of ListeningPorts, \
             LocalPort, RemotePort, AllPortsSummary",
        ),
        (
            "<Ports>\n  LocalPort 22\n  </Ports>",
            "<Ports> block: <Plugin tcpconns> takes only the options",
        ),
    ];
    for (option, message) in cases {
        let block = format!("<Plugin tcpconns>\n  {option}\n</Plugin>");
        let run = run_collectd_config(None, Plugin::Ours, &block, &[], WAIT);
        let code = run.status.and_then(|s| s.code());
        assert_eq!(
            code,
            Some(1),
            "{option}: collectd did not refuse to start:\n{}",
            run.log
        );
        assert!(
            run.log.contains("Error: Parsing the config file failed!"),
            "{option}:\n{}",
            run.log
        );
        let ours = tcpconns_lines(&run.log);
        assert_eq!(ours.len(), 1, "{option}: want one line, got {ours:#?}");
        assert!(
            ours[0].contains("[error] tcpconns plugin: "),
            "{option}: {}",
            ours[0]
        );
        assert!(ours[0].contains(message), "{option}: {}", ours[0]);
        if message.contains("port") && !message.starts_with('<') && !message.starts_with("unknown")
        {
            assert!(ours[0].ends_with(range), "{option}: {}", ours[0]);
        }
    }
}

#[test]
fn good_config_variants_start_and_count() {
    require_root!();
    let ns = Netns::new("goodcfg");
    let pop = mixed_population(&ns);
    let thousand: String = (1..=1000).map(|p| format!("  LocalPort {p}\n")).collect();
    let cases: Vec<(String, Selection)> = vec![
        (
            "<Plugin tcpconns>\n  LocalPort \"22\"\n</Plugin>".into(),
            Selection { local: vec![22], ..Selection::default() },
        ),
        (
            "<Plugin tcpconns>\n  localport 22\n  REMOTEPORT \"8080\"\n</Plugin>".into(),
            Selection { local: vec![22], remote: vec![8080], ..Selection::default() },
        ),
        (
            "<Plugin tcpconns>\n  ListeningPorts \"yes\"\n  AllPortsSummary \"On\"\n</Plugin>".into(),
            Selection { listening: true, summary: true, ..Selection::default() },
        ),
        (
            "<Plugin tcpconns>\n  LocalPort 80\n</Plugin>\n<Plugin tcpconns>\n  RemotePort 22\n</Plugin>".into(),
            Selection { local: vec![80], remote: vec![22], ..Selection::default() },
        ),
        (
            format!("<Plugin tcpconns>\n{thousand}</Plugin>"),
            Selection { local: (1..=1000).collect(), ..Selection::default() },
        ),
    ];
    for (block, sel) in cases {
        let run = run_collectd(&ns, Plugin::Ours, &block, &[]);
        let want = expected_values(&pop.expected, &sel);
        assert_values(&block[..block.len().min(80)], &run.values, &want, &run.log);
    }
}

#[test]
fn a_panic_in_a_read_is_logged_and_collectd_keeps_reading() {
    require_root!();
    let ns = Netns::new("panic");
    let pop = mixed_population(&ns);
    let mut c = Collectd::tcpconns(
        Some(&ns),
        Plugin::Faulty,
        "",
        &[("TCPCONNS_FAULT", "read-once")],
        1.0,
    );
    c.wait_reads(2, WAIT);
    let run = c.finish();
    assert!(run.status.is_none(), "collectd exited:\n{}", run.log);
    assert!(
        run.log
            .contains("[error] tcpconns plugin: internal error in read: injected fault at read"),
        "{}",
        run.log
    );
    let want = expected_values(
        &pop.expected,
        &Selection {
            listening: true,
            ..Selection::default()
        },
    );
    assert_values("after the panic", &run.values, &want, &run.log);
}

#[test]
fn a_panic_in_config_or_init_never_takes_collectd_down() {
    require_root!();
    let block = "<Plugin tcpconns>\n  LocalPort 22\n</Plugin>";
    let run = run_collectd_config(
        None,
        Plugin::Faulty,
        block,
        &[("TCPCONNS_FAULT", "config")],
        WAIT,
    );
    assert_eq!(run.status.and_then(|s| s.code()), Some(1), "{}", run.log);
    assert!(
        run.log
            .contains("internal error in config: injected fault at config"),
        "{}",
        run.log
    );

    let ns = Netns::new("initpanic");
    let block = format!("{block}\n{WITNESS}");
    let env = [("TCPCONNS_FAULT", "init")];
    let mut c = Collectd::tcpconns(Some(&ns), Plugin::Faulty, &block, &env, 1.0);
    three_witness_reads(&mut c);
    let log = c.log();
    let run = c.finish();
    assert!(run.status.is_none(), "collectd exited:\n{}", run.log);
    assert!(
        log.contains("internal error in init: injected fault at init"),
        "{log}"
    );
    assert!(
        run.values.is_empty(),
        "values after a failed init: {:?}",
        run.values
    );
}

#[test]
fn netlink_failing_mid_run_switches_to_procfs_and_back_without_losing_a_read() {
    require_root!();
    let ns = Netns::new("flap");
    let pop = mixed_population(&ns);
    let netlink = NetlinkSwitch::new(false, &[]);
    let block = "<Plugin tcpconns>\n  ListeningPorts true\n  RemotePort 22\n</Plugin>";
    let mut c = Collectd::tcpconns(Some(&ns), Plugin::Ours, block, &netlink.env(), 1.0);
    c.wait_reads(2, WAIT);
    netlink.refuse(true);
    let off = c.reads();
    c.wait_reads(off + 3, WAIT);
    netlink.refuse(false);
    let on = c.reads();
    c.wait_reads(on + 5, WAIT);
    let log = c.log();
    let run = c.finish();
    assert_eq!(
        log.matches("netlink failed: send on the sock_diag socket failed")
            .count(),
        1,
        "{log}"
    );
    assert_eq!(log.matches("netlink works again").count(), 1, "{log}");
    assert!(!log.contains("nothing dispatched"), "{log}");
    let want = listening_and_remote_22(&pop);
    run.assert_each_read(&want, on + 5, Some(1.6));
}

#[test]
fn a_seccomp_filter_that_kills_on_capset_does_not_take_collectd_down() {
    require_root!();
    use std::os::unix::process::ExitStatusExt;
    let shim = kill_on_capset_shim();
    // The filter works: a program that calls capset dies of it.
    let control = std::process::Command::new("setpriv")
        .args(["--inh-caps=-all", "true"])
        .env("LD_PRELOAD", &shim)
        .status()
        .expect("run setpriv");
    assert_eq!(control.signal(), Some(libc::SIGSYS), "{control:?}");

    let ns = Netns::new("seccomp");
    let pop = mixed_population(&ns);
    let block = "<Plugin tcpconns>\n  ListeningPorts true\n  RemotePort 22\n</Plugin>";
    let env = [("LD_PRELOAD", shim.to_str().unwrap())];
    let mut c = Collectd::tcpconns(Some(&ns), Plugin::Ours, block, &env, 1.0);
    c.wait_reads(3, WAIT);
    let log = c.log();
    let run = c.finish();
    assert!(
        run.status.is_none(),
        "collectd exited: {:?}\n{}",
        run.status,
        run.log
    );
    assert!(log.contains("reading sockets from netlink"), "{log}");
    let want = listening_and_remote_22(&pop);
    assert_eq!(run.values, want, "{log}");
}

/// What `ListeningPorts true` + `RemotePort 22` must report for `pop`.
fn listening_and_remote_22(pop: &Population) -> BTreeMap<(String, String), f64> {
    expected_values(
        &pop.expected,
        &Selection {
            listening: true,
            remote: vec![22],
            ..Selection::default()
        },
    )
}

/// collectd with netlink refused and `faults` (see tests/shim/proc_faults.c)
/// on a population of IPv4 sockets (and IPv6 ones unless `pop_v4_only`),
/// run `until` a condition holds.
fn with_procfs_faults(
    tag: &str,
    faults: &str,
    pop_v4_only: bool,
    until: fn(&mut Collectd),
) -> (Run, Population) {
    let ns = Netns::new(tag);
    let mut pop = Population::new(&ns);
    pop.listen_v4(22)
        .established(22, 3, Family::V4)
        .time_wait(22, 1);
    if !pop_v4_only {
        pop.listen_v6(8080).established(8080, 2, Family::V6);
    }
    pop.settle(&ns);
    let nl = no_netlink_shim();
    let pf = proc_faults_shim();
    let preload = format!("{} {}", nl.display(), pf.display());
    let block = format!(
        "<Plugin tcpconns>\n  ListeningPorts true\n  AllPortsSummary true\n</Plugin>\n{WITNESS}"
    );
    let env = [("LD_PRELOAD", preload.as_str()), ("PROC_FAULTS", faults)];
    let mut c = Collectd::tcpconns(Some(&ns), Plugin::Ours, &block, &env, 1.0);
    until(&mut c);
    (c.finish(), pop)
}

#[test]
fn missing_tcp6_means_no_ipv6_and_still_counts_ipv4() {
    require_root!();
    let (run, pop) = with_procfs_faults("no6", "/proc/net/tcp6=ENOENT", true, |c| {
        c.wait_reads(2, WAIT)
    });
    assert!(run.status.is_none(), "{}", run.log);
    let want = expected_values(
        &pop.expected,
        &Selection {
            listening: true,
            summary: true,
            ..Selection::default()
        },
    );
    assert_values("tcp6 missing", &run.values, &want, &run.log);
    run.assert_each_read(&want, 2, None);
}

/// collectd's own line for each read of ours that failed (it then
/// suspends the plugin for twice as long as the last time).
const READ_FAILED: &str = "read-function of plugin `tcpconns' failed";

/// Waits until collectd has logged three failed reads of ours.
fn three_failed_reads(c: &mut Collectd) {
    c.wait_log("3 failed tcpconns reads", WAIT, |log| {
        log.matches(READ_FAILED).count() >= 3
    });
}

/// Our line when both sources fail, netlink refused by the no_netlink shim.
fn both_failed_line(file: &str) -> String {
    format!(
        "[error] tcpconns plugin: reading sockets failed, nothing dispatched until a source \
         works again: netlink failed (socket(AF_NETLINK, NETLINK_SOCK_DIAG) on the sock_diag \
         socket failed: Permission denied (os error 13)) and cannot read {file}: Permission \
         denied (os error 13)"
    )
}

#[test]
fn an_unreadable_table_dispatches_nothing_rather_than_wrong_counts() {
    require_root!();
    for (tag, faults, file) in [
        ("tcp6acc", "/proc/net/tcp6=EACCES", "/proc/net/tcp6"),
        ("tcpacc", "/proc/net/tcp=EACCES", "/proc/net/tcp"),
    ] {
        let (run, _) = with_procfs_faults(tag, faults, false, three_failed_reads);
        assert!(run.status.is_none(), "{}", run.log);
        assert!(run.values.is_empty(), "{tag}: dispatched {:?}", run.values);
        // Three failed reads, our line once (the one read that netlink
        // was tried in gives the whole reason).
        assert!(run.log.matches(READ_FAILED).count() >= 3, "{}", run.log);
        let line = both_failed_line(file);
        assert_eq!(
            run.log.matches(&line).count(),
            1,
            "{tag}: want {line}\n{}",
            run.log
        );
        assert_eq!(
            run.log.matches("reading sockets failed").count(),
            1,
            "{}",
            run.log
        );
    }
}

/// Both sources failing, then netlink back: one line for each change, and
/// the first read after it dispatches exact values.
#[test]
fn both_sources_failing_is_said_once_and_so_is_their_recovery() {
    require_root!();
    let ns = Netns::new("bothfail");
    let pop = mixed_population(&ns);
    let netlink = NetlinkSwitch::new(true, &[proc_faults_shim()]);
    let [preload, flag] = netlink.env();
    let env = [preload, flag, ("PROC_FAULTS", "/proc/net/tcp=EACCES")];
    let block =
        format!("<Plugin tcpconns>\n  ListeningPorts true\n  RemotePort 22\n</Plugin>\n{WITNESS}");
    let mut c = Collectd::tcpconns(Some(&ns), Plugin::Ours, &block, &env, 0.5);
    three_failed_reads(&mut c);
    netlink.refuse(false);
    c.wait_reads(2, WAIT);
    let run = c.finish();
    assert_eq!(
        run.log.matches(&both_failed_line("/proc/net/tcp")).count(),
        1,
        "{}",
        run.log
    );
    assert_eq!(
        run.log.matches("reading sockets failed").count(),
        1,
        "{}",
        run.log
    );
    assert_eq!(
        run.log.matches("netlink works again").count(),
        1,
        "{}",
        run.log
    );
    run.assert_each_read(&listening_and_remote_22(&pop), 2, None);
}

#[test]
fn odd_kernel_lines_are_ignored_never_a_panic() {
    require_root!();
    // A table with a state outside 1..11 (0C), a malformed line, and two
    // good sockets, served in place of /proc/net/tcp.
    let dir = TempDir::new("odd");
    let table = dir.path().join("tcp");
    std::fs::write(
        &table,
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
         0: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 100 1\n   \
         1: 0100007F:0016 0100007F:9C40 0C 00000000:00000000 00:00000000 00000000     0        0 101 1\n   \
         2: 0100007F:ZZZZ 0100007F:9C41 01 00000000:00000000 00:00000000 00000000     0        0 102 1\n   \
         3: 0100007F:0016 0100007F:9C42 01 00000000:00000000 00:00000000 00000000     0        0 103 1\n",
    )
    .unwrap();
    let faults = format!("/proc/net/tcp=@{},/proc/net/tcp6=ENOENT", table.display());
    let (run, _) = with_procfs_faults("odd", &faults, true, |c| c.wait_reads(2, WAIT));
    assert!(run.status.is_none(), "{}", run.log);
    // What the table's two good lines are: every value follows from them.
    let good = [
        Sock {
            local: 22,
            remote: 0,
            state: TCP_LISTEN,
        },
        Sock {
            local: 22,
            remote: 0x9C42,
            state: TCP_ESTABLISHED,
        },
    ];
    let selection = Selection {
        listening: true,
        summary: true,
        ..Selection::default()
    };
    assert_values(
        "odd lines",
        &run.values,
        &expected_values(&good, &selection),
        &run.log,
    );
    assert!(
        run.log
            .contains("ignoring 1 sockets in states outside 1..11"),
        "{}",
        run.log
    );
    assert!(
        run.log
            .contains("skipped 1 malformed lines, first: /proc/net/tcp:4: local address"),
        "{}",
        run.log
    );
}

#[test]
fn socket_churn_during_reads_never_fails_a_read() {
    require_root!();
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let ns = Netns::new("churn");
    let mut pop = Population::new(&ns);
    pop.listen_v4(22)
        .established(22, 5, Family::V4)
        .listen_v4(9000);
    pop.settle(&ns);
    let stop = Arc::new(AtomicBool::new(false));
    let name = ns.name().to_string();
    let listener = pop.listeners.last().unwrap().socket.try_clone().unwrap();
    let churner = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            enter_netns(&name, || {
                listener.set_nonblocking(false).unwrap();
                let mut made = 0;
                while !stop.load(Ordering::Relaxed) && made < 4000 {
                    let mut open = Vec::new();
                    for _ in 0..50 {
                        let c = std::net::TcpStream::connect("127.0.0.1:9000").unwrap();
                        let (a, _) = listener.accept().unwrap();
                        open.push((c, a));
                    }
                    made += 50;
                    drop(open);
                    std::thread::sleep(Duration::from_millis(40));
                }
                made
            })
        })
    };
    let block = "<Plugin tcpconns>\n  AllPortsSummary true\n  LocalPort 22\n</Plugin>";
    let mut c = Collectd::tcpconns(Some(&ns), Plugin::Ours, block, &[], 1.0);
    c.wait_reads(4, WAIT);
    stop.store(true, Ordering::Relaxed);
    let made = churner.join().unwrap();
    let run = c.finish();
    assert!(made >= 500, "only {made} connections churned");
    assert!(!run.log.contains("failed"), "{}", run.log);
    let stable = expected_values(
        &pop.expected,
        &Selection {
            local: vec![22],
            ..Selection::default()
        },
    );
    // Each series the checks below look at is there in every read.
    let reads = run.reads();
    assert!(reads >= 4, "{reads} reads:\n{}", run.log);
    let all = ["LISTEN", "ESTABLISHED", "TIME_WAIT"].map(|s| ("all".to_string(), s.to_string()));
    for key in stable.keys().chain(&all) {
        let rows = run.rows.get(key).map(Vec::len);
        assert_eq!(rows, Some(reads), "{key:?}:\n{}", run.log);
    }
    for (key, rows) in &run.rows {
        for (t, v) in rows {
            if key.0 == "22-local" {
                assert_eq!(Some(v), stable.get(key), "{key:?} at {t}");
            }
            if key.0 == "all" && key.1 == "LISTEN" {
                assert_eq!(*v, 2.0, "at {t}");
            }
            if key.0 == "all" && key.1 == "ESTABLISHED" {
                assert!((10.0..=110.0).contains(v), "ESTABLISHED {v} at {t}");
            }
            if key.0 == "all" && key.1 == "TIME_WAIT" {
                assert!(*v <= made as f64, "TIME_WAIT {v} at {t}");
            }
        }
    }
}
