//! `ConnectionHealth` in the real collectd, on connections the tests make
//! in a namespace of their own, checked against `ss -tni` there: queued
//! bytes (netlink and the procfs fallback), round-trip time on a link
//! slowed down with a `tbf` qdisc, and retransmissions on a port whose
//! packets a `tc` filter sends to a class that lets none through.

use harness::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// One line of `ss -Htni`: a socket and what `tcp_info` says of it.
#[derive(Debug, Clone, PartialEq)]
struct SsInfo {
    state: u8,
    local: u16,
    remote: u16,
    recv_q: u64,
    send_q: u64,
    /// `rtt:<ms>/<var>`, in µs.
    rtt_us: Option<u64>,
    /// `retrans:<unacked>/<total>`: the first number.
    retrans: u64,
}

/// `ss -Htni` in `ns`: a line per socket, then its info on the next line.
fn ss_info(ns: &Netns) -> Vec<SsInfo> {
    let out = ns.exec("ss", &["-Htni"]);
    assert!(out.status.success(), "ss -Htni: {}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut got = Vec::new();
    let mut lines = stdout.lines().filter(|l| !l.trim().is_empty()).peekable();
    while let Some(line) = lines.next() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let parsed = (|| {
            Some(SsInfo {
                state: ss_state(f.first()?)?,
                recv_q: f.get(1)?.parse().ok()?,
                send_q: f.get(2)?.parse().ok()?,
                local: ss_port(f.get(3)?)?,
                remote: ss_port(f.get(4)?)?,
                rtt_us: None,
                retrans: 0,
            })
        })();
        let mut s = parsed.unwrap_or_else(|| panic!("cannot parse ss line {line:?}"));
        // The info line starts with whitespace; a TIME-WAIT socket has none.
        if let Some(info) = lines.next_if(|l| l.starts_with(char::is_whitespace)) {
            for field in info.split_whitespace() {
                if let Some(rtt) = field.strip_prefix("rtt:") {
                    let ms: f64 = rtt.split('/').next().unwrap_or("").parse().unwrap();
                    s.rtt_us = Some((ms * 1000.0).round() as u64);
                }
                if let Some(r) = field.strip_prefix("retrans:") {
                    s.retrans = r.split('/').next().unwrap_or("").parse().unwrap();
                }
            }
        }
        got.push(s);
    }
    got
}

/// `ss -Htni`, once two snapshots 300 ms apart are the same: nothing moves.
fn ss_settled(ns: &Netns, what: &str) -> Vec<SsInfo> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = ss_info(ns);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = ss_info(ns);
        if now == last {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: sockets still changing after 20 s:\n{now:#?}"
        );
        last = now;
    }
}

/// What the plugin must report for the sockets of `ss` whose port on
/// `side` is `port`: (send queue, receive queue) over those not listening,
/// RTT mean and max (s) over those ESTABLISHED, and the retransmitting
/// connections and their segments.
struct Want {
    send_queue: u64,
    receive_queue: u64,
    rtt: Option<(f64, f64)>,
    retrans_connections: u64,
    retrans_segments: u64,
}

fn want(ss: &[SsInfo], port: u16, local: bool) -> Want {
    let mine: Vec<&SsInfo> = ss
        .iter()
        .filter(|s| {
            if local {
                s.local == port
            } else {
                s.remote == port
            }
        })
        .filter(|s| s.state != TCP_LISTEN)
        .collect();
    let rtts: Vec<u64> = mine
        .iter()
        .filter(|s| s.state == TCP_ESTABLISHED)
        .filter_map(|s| s.rtt_us)
        .collect();
    let rtt = (!rtts.is_empty()).then(|| {
        let mean = rtts.iter().sum::<u64>() as f64 / rtts.len() as f64;
        let max = *rtts.iter().max().unwrap_or(&0);
        (mean / 1e6, max as f64 / 1e6)
    });
    Want {
        send_queue: mine.iter().map(|s| s.send_q).sum(),
        receive_queue: mine.iter().map(|s| s.recv_q).sum(),
        rtt,
        retrans_connections: mine.iter().filter(|s| s.retrans > 0).count() as u64,
        retrans_segments: mine.iter().map(|s| s.retrans).sum(),
    }
}

/// A listener on 127.0.0.1:`port` in `ns` and `n` connections to it:
/// (listener, clients, accepted servers).
fn connections(ns: &Netns, port: u16, n: usize) -> (TcpListener, Vec<TcpStream>, Vec<TcpStream>) {
    ns.enter(|| {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
        let mut clients = Vec::new();
        let mut servers = Vec::new();
        for _ in 0..n {
            clients.push(TcpStream::connect(("127.0.0.1", port)).expect("connect"));
            servers.push(listener.accept().expect("accept").0);
        }
        (listener, clients, servers)
    })
}

/// Writes until the kernel takes no more (the peer does not read): the
/// peer's receive queue and this socket's send queue fill up.
fn fill(stream: &TcpStream) {
    stream.set_nonblocking(true).expect("nonblocking");
    let chunk = [0x5au8; 65536];
    let mut s = stream;
    loop {
        match s.write(&chunk) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) => panic!("write: {e}"),
        }
    }
}

const QUEUES_BLOCK: &str = "<Plugin tcpconns>\n  ConnectionHealth true\n  LocalPort 7100\n  \
                            RemotePort 7100\n  LocalPort 7101\n</Plugin>";

/// Two connections to 7100: one whose server never reads the 5,000 bytes
/// its client sent, one whose client never reads while its server writes
/// until its buffers are full. 7101 listens with no connection.
fn queue_run(tag: &str, env: &[(&str, &str)]) -> (Run, Vec<SsInfo>) {
    let ns = Netns::new(tag);
    let (_l, clients, servers) = connections(&ns, 7100, 2);
    let (_idle, _, _) = connections(&ns, 7101, 0);
    (&clients[0]).write_all(&[1u8; 5000]).expect("write");
    fill(&servers[1]);
    let ss = ss_settled(&ns, "queues");
    let run = run_collectd(&ns, Plugin::Ours, QUEUES_BLOCK, env);
    // Still what it was when the plugin read.
    assert_eq!(ss_info(&ns), ss, "the queues moved during the read");
    (run, ss)
}

fn check_queues(run: &Run, ss: &[SsInfo]) {
    // The server that does not read holds exactly what its client sent.
    assert!(
        ss.iter()
            .any(|s| s.local == 7100 && s.state == TCP_ESTABLISHED && s.recv_q == 5000),
        "{ss:#?}"
    );
    for (series, port, local) in [
        ("7100-local", 7100, true),
        ("7100-remote", 7100, false),
        ("7101-local", 7101, true),
    ] {
        let w = want(ss, port, local);
        assert_eq!(
            run.get(series, "bytes-send_queue"),
            Some(w.send_queue as f64),
            "{series}:\n{}",
            run.log
        );
        assert_eq!(
            run.get(series, "bytes-receive_queue"),
            Some(w.receive_queue as f64),
            "{series}:\n{}",
            run.log
        );
    }
    let local = want(ss, 7100, true);
    let remote = want(ss, 7100, false);
    assert!(
        local.send_queue > 0 && local.receive_queue == 5000,
        "{ss:#?}"
    );
    assert!(remote.receive_queue > 0, "{ss:#?}");
    // The listener's accept queue is never counted as bytes: 7101 has only
    // a listener, and reports 0.
    assert_eq!(run.get("7101-local", "bytes-receive_queue"), Some(0.0));
}

#[test]
fn queued_bytes_equal_ss_from_netlink() {
    require_root!();
    let (run, ss) = queue_run("h-queues-nl", &[]);
    check_queues(&run, &ss);
    // Netlink has tcp_info: RTT for the series with ESTABLISHED
    // connections, none for 7101, and retransmission gauges.
    assert!(
        run.get("7100-local", "latency-rtt_mean").is_some(),
        "{}",
        run.log
    );
    assert_eq!(run.get("7101-local", "latency-rtt_mean"), None);
    assert_eq!(run.get("7101-local", "latency-rtt_max"), None);
    assert_eq!(
        run.get("7101-local", "count-retrans_connections"),
        Some(0.0)
    );
}

#[test]
fn queued_bytes_equal_ss_from_procfs_without_rtt() {
    require_root!();
    let shim = no_netlink_shim();
    let (run, ss) = queue_run("h-queues-proc", &[("LD_PRELOAD", shim.to_str().unwrap())]);
    assert!(run.log.contains("reading /proc/net/tcp"), "{}", run.log);
    check_queues(&run, &ss);
    // /proc has no tcp_info: left out, not made up.
    for what in [
        "latency-rtt_mean",
        "latency-rtt_max",
        "count-retrans_connections",
        "count-retrans_segments",
    ] {
        assert_eq!(run.get("7100-local", what), None, "{what}");
    }
}

#[test]
fn round_trip_time_equals_ss_on_a_slowed_link() {
    require_root!();
    let ns = Netns::new("h-rtt");
    // 4 Mbit/s on lo, with a 1,500-byte MTU: each full segment takes 3 ms
    // on the wire, and segments sent together queue behind each other.
    for (cmd, args) in [
        ("ip", &["link", "set", "lo", "mtu", "1500"][..]),
        (
            "tc",
            &[
                "qdisc", "add", "dev", "lo", "root", "tbf", "rate", "4mbit", "burst", "16kb",
                "latency", "2s",
            ][..],
        ),
    ] {
        let out = ns.exec(cmd, args);
        assert!(out.status.success(), "{cmd} {args:?}: {}", text(&out));
    }
    let (_l, mut clients, servers) = connections(&ns, 7200, 3);
    // Each server sends 200 KB that its client reads: RTT samples taken
    // while segments wait in the qdisc.
    std::thread::scope(|scope| {
        for (server, client) in servers.iter().zip(clients.iter_mut()) {
            scope.spawn(move || {
                let mut s = server;
                s.write_all(&vec![7u8; 200 * 1024]).expect("write");
            });
            scope.spawn(move || {
                let mut buf = vec![0u8; 200 * 1024];
                client.read_exact(&mut buf).expect("read");
            });
        }
    });
    let ss = ss_settled(&ns, "rtt");
    let run = run_collectd(
        &ns,
        Plugin::Ours,
        "<Plugin tcpconns>\n  ConnectionHealth true\n  LocalPort 7200\n</Plugin>",
        &[],
    );
    let (mean, max) = want(&ss, 7200, true).rtt.expect("ss shows RTTs");
    // The floor: loopback alone is about 10 µs; here the link is slow.
    assert!(
        max > 0.001,
        "RTT {max} s is not above the 1 ms floor:\n{ss:#?}"
    );
    let got_mean = run.get("7200-local", "latency-rtt_mean").expect("rtt_mean");
    let got_max = run.get("7200-local", "latency-rtt_max").expect("rtt_max");
    // ss prints milliseconds with 3 decimals: 1 µs apart at most.
    assert!(
        (got_mean - mean).abs() <= 1e-6,
        "mean {got_mean} vs ss {mean}\n{ss:#?}"
    );
    assert!(
        (got_max - max).abs() <= 1e-6,
        "max {got_max} vs ss {max}\n{ss:#?}"
    );
    assert_eq!(ss_info(&ns), ss, "the RTTs moved during the read");
}

#[test]
fn retransmissions_rise_only_for_the_port_whose_packets_are_dropped() {
    require_root!();
    let ns = Netns::new("h-retrans");
    let (_a, clients_a, _servers_a) = connections(&ns, 7300, 2);
    let (_b, clients_b, _servers_b) = connections(&ns, 7301, 2);
    // From here every packet from port 7300 (the servers' ACKs) goes to a
    // class whose queue holds none: all are dropped (this kernel has no
    // netem and no drop action; u32 and htb work). The clients' data
    // arrives but is never acknowledged, so they retransmit it. (Dropping
    // the data itself would be a local drop the sender sees, which TCP
    // does not count as a retransmission.) Everything else passes.
    for args in [
        &[
            "qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "10",
        ][..],
        &[
            "class", "add", "dev", "lo", "parent", "1:", "classid", "1:10", "htb", "rate", "10gbit",
        ][..],
        &[
            "class", "add", "dev", "lo", "parent", "1:", "classid", "1:20", "htb", "rate", "8bit",
            "ceil", "8bit",
        ][..],
        &[
            "qdisc", "add", "dev", "lo", "parent", "1:20", "pfifo", "limit", "0",
        ][..],
        &[
            "filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "u32", "match", "ip",
            "sport", "7300", "0xffff", "flowid", "1:20",
        ][..],
    ] {
        let out = ns.exec("tc", args);
        assert!(out.status.success(), "tc {args:?}: {}", text(&out));
    }
    // Both ports' clients send; only 7300's data is never acknowledged.
    for c in clients_a.iter().chain(&clients_b) {
        let mut c = c;
        c.write_all(&[3u8; 3000]).expect("write");
    }
    let mut ss = Vec::new();
    wait_until(
        "retransmissions on both connections to 7300",
        Duration::from_secs(20),
        || {
            ss = ss_info(&ns);
            ss.iter()
                .filter(|s| s.remote == 7300 && s.retrans > 0)
                .count()
                == 2
        },
        || format!("{:#?}", ss_info(&ns)),
    );
    let run = run_collectd(
        &ns,
        Plugin::Ours,
        "<Plugin tcpconns>\n  ConnectionHealth true\n  RemotePort 7300\n  RemotePort 7301\n\
         </Plugin>",
        &[],
    );
    let after = ss_info(&ns);
    let dropped = want(&ss, 7300, false);
    assert_eq!(dropped.retrans_connections, 2);
    assert_eq!(
        run.get("7300-remote", "count-retrans_connections"),
        Some(2.0),
        "{}",
        run.log
    );
    // Each unacknowledged retransmission is counted; the exact number can
    // only grow between the two ss snapshots around the read.
    let segments = run
        .get("7300-remote", "count-retrans_segments")
        .expect("segments");
    let later = want(&after, 7300, false).retrans_segments as f64;
    assert!(
        (dropped.retrans_segments as f64..=later).contains(&segments),
        "{segments} not in {}..={later}",
        dropped.retrans_segments
    );
    assert_eq!(
        run.get("7301-remote", "count-retrans_connections"),
        Some(0.0)
    );
    assert_eq!(run.get("7301-remote", "count-retrans_segments"), Some(0.0));
    // The unacknowledged data waits in the clients' send queues.
    assert_eq!(run.get("7300-remote", "bytes-send_queue"), Some(6000.0));
    assert_eq!(run.get("7301-remote", "bytes-send_queue"), Some(0.0));
}
