//! The real transport of the blog post's setup: a collectd with our plugin
//! sends through the `network` plugin (the ready snippet
//! `collectd.d/network.conf`, loaded verbatim: UDP to 127.0.0.1:25826) to a
//! second collectd that receives with `network` and writes csv. Both run in
//! one network namespace of the test's own. Every row the receiver wrote must
//! be a row the sender wrote (same host, plugin, plugin instance, type, type
//! instance, time and value), for every series, over several reads.
//! Needs root, iproute2 and collectd-core.

use harness::*;
use std::collections::BTreeSet;
use std::time::Duration;

/// Waits until something in `ns` listens on UDP 127.0.0.1:`port`.
fn wait_udp_listener(ns: &Netns, port: u16, receiver: &Collectd) {
    let listening = || {
        let out = ns.exec("ss", &["-Hlun"]);
        String::from_utf8_lossy(&out.stdout).contains(&format!("127.0.0.1:{port}"))
    };
    wait_until(
        &format!("UDP listener on {port}"),
        Duration::from_secs(10),
        listening,
        || receiver.log(),
    );
}

#[test]
fn values_cross_the_network_plugin_intact() {
    require_root!();
    let ns = Netns::new("net");
    let pop = mixed_population(&ns);

    // The receiver: network plugin listening, csv writer.
    let rdir = TempDir::new("net-receiver");
    let rconf = Conf::new(rdir.path(), "receiver", 3600.0)
        .block("LoadPlugin network\n<Plugin network>\n  Listen \"127.0.0.1\" \"25826\"\n</Plugin>")
        .csv();
    let in_ns = Launch {
        netns: Some(ns.name()),
        ..Launch::default()
    };
    let mut receiver = Collectd::start(rdir, &rconf, &in_ns);
    wait_udp_listener(&ns, 25826, &receiver);

    // The sender: our plugin read every second, its own csv as the record
    // of what it dispatched, and the ready network snippet as it ships.
    let sdir = TempDir::new("net-sender");
    let sconf = Conf::new(sdir.path(), "sender", 1.0)
        .tcpconns(Plugin::Ours)
        .block(
            "<Plugin tcpconns>\n  ListeningPorts true\n  AllPortsSummary true\n  \
             RemotePort 22\n  LocalPort 9999\n</Plugin>",
        )
        .csv()
        .block(&format!(
            "Include \"{}\"",
            repo().join("collectd.d/network.conf").display()
        ));
    let mut sender = Collectd::start(sdir, &sconf, &in_ns);

    let sel = Selection {
        listening: true,
        summary: true,
        remote: vec![22],
        local: vec![9999],
    };
    let want = expected_values(&pop.expected, &sel);
    let sent = sender.wait_for("the first read", Duration::from_secs(15), |c| {
        c.tcpconns_values().len() >= want.len()
    });
    let idents: BTreeSet<Ident> = sent.plugin("tcpconns").map(|(k, _)| k.clone()).collect();

    // Three reads of every series at the receiver (the snippet flushes at
    // least every 10 s).
    let reads = 3;
    let received = receiver.wait_for(
        "3 reads of every series at the receiver",
        Duration::from_secs(40),
        |c| {
            idents
                .iter()
                .all(|k| c.series.get(k).is_some_and(|rows| rows.len() >= reads))
        },
    );
    sender.stop();
    receiver.stop();
    let sent = sender.csv();
    let rlog = receiver.log();
    let slog = sender.log();

    // The same series, under the sender's host name.
    let got: BTreeSet<Ident> = received
        .plugin("tcpconns")
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(got, idents, "series differ\nreceiver log:\n{rlog}");
    assert!(got.iter().all(|k| k.host == "sender"));
    assert_eq!(
        got.len(),
        want.len(),
        "series: {:?}",
        got.iter()
            .map(|k| (&k.plugin_instance, &k.type_instance))
            .collect::<Vec<_>>()
    );
    // Every received row is a row the sender wrote: time and value intact.
    let mut rows = 0;
    for (k, rrows) in received.plugin("tcpconns") {
        let srows: BTreeSet<&String> = sent.series[k].iter().collect();
        for r in rrows {
            assert!(
                srows.contains(r),
                "{k:?}: received row {r:?} was never sent (sent: {srows:?})\n\
                 receiver log:\n{rlog}\nsender log:\n{slog}"
            );
            rows += 1;
        }
        // No row twice.
        let distinct: BTreeSet<&String> = rrows.iter().collect();
        assert_eq!(
            distinct.len(),
            rrows.len(),
            "{k:?}: duplicated rows {rrows:?}"
        );
    }
    assert!(rows >= reads * want.len(), "only {rows} rows");
    // And the values are the population's.
    assert_values("received", &received.tcpconns_values(), &want, &rlog);
    eprintln!(
        "{} series, {rows} rows received; e.g. {:?}",
        got.len(),
        received
            .series
            .iter()
            .find(|(k, _)| k.plugin_instance == "22-local" && k.type_instance == "ESTABLISHED")
    );
}
