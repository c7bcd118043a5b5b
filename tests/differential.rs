//! The stock C `tcpconns.so` (Debian's collectd-core) and ours, on the same
//! population with the same configuration, must dispatch the same
//! identifiers and values; both must also match the population.

use harness::*;

fn same_as_stock(tag: &str, block: &str, sel: Selection) {
    require_root!();
    let ns = Netns::new(tag);
    let pop = mixed_population(&ns);
    let stock = run_collectd(&ns, Plugin::Stock, block, &[]);
    let ours = run_collectd(&ns, Plugin::Ours, block, &[]);
    assert!(
        !stock.values.is_empty(),
        "stock plugin dispatched nothing:\n{}",
        stock.log
    );
    assert_values(
        &format!("{tag}: ours vs stock"),
        &ours.values,
        &stock.values,
        &ours.log,
    );
    let want = expected_values(&pop.expected, &sel);
    assert_values(
        &format!("{tag}: stock vs population"),
        &stock.values,
        &want,
        &stock.log,
    );
}

#[test]
fn default_config() {
    same_as_stock(
        "d-default",
        "",
        Selection {
            listening: true,
            ..Selection::default()
        },
    );
}

#[test]
fn all_ports_summary_alone() {
    same_as_stock(
        "d-summary",
        "<Plugin tcpconns>\n  AllPortsSummary true\n</Plugin>",
        Selection {
            summary: true,
            ..Selection::default()
        },
    );
}

#[test]
fn local_and_remote_ports_without_listening() {
    same_as_stock(
        "d-ports",
        "<Plugin tcpconns>\n  ListeningPorts false\n  LocalPort 22\n  LocalPort \"8080\"\n  \
         LocalPort 9999\n  RemotePort 80\n  RemotePort \"22\"\n</Plugin>",
        Selection {
            local: vec![22, 8080, 9999],
            remote: vec![22, 80],
            ..Selection::default()
        },
    );
}

#[test]
fn everything_together() {
    same_as_stock(
        "d-all",
        "<Plugin tcpconns>\n  ListeningPorts true\n  AllPortsSummary true\n  LocalPort 8080\n  \
         LocalPort 9999\n  RemotePort 22\n  RemotePort 80\n  LocalPort 22\n</Plugin>",
        Selection {
            listening: true,
            summary: true,
            local: vec![22, 8080, 9999],
            remote: vec![22, 80],
        },
    );
}

#[test]
fn listening_ports_false_alone() {
    same_as_stock(
        "d-lpfalse",
        "<Plugin tcpconns>\n  ListeningPorts false\n</Plugin>",
        Selection {
            listening: true,
            ..Selection::default()
        },
    );
}
