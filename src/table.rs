//! Per-port counting. Sources feed `(local_port, remote_port, state)` triples;
//! the table keeps counts only for ports that will be reported, found through
//! a flat port index, so a triple costs two array lookups whatever the number
//! of ports, and the result does not depend on the order of the triples.

use crate::cgroup::CgroupCounts;
use crate::config::Config;
use crate::network::Network;
use crate::socket::{Fields, Socket};
use crate::state::{TcpState, STATE_COUNT};

/// Connections per state, indexed by [`TcpState::index`].
pub type Counts = [u32; STATE_COUNT];

/// How a series' connections are doing (`ConnectionHealth`), over its
/// sockets that are not listening (a listener's queues are its accept
/// queue, which `AcceptQueue` reports).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Health {
    /// Bytes written and not yet acknowledged by the peer.
    pub send_queue: u64,
    /// Bytes arrived and not yet read by the application.
    pub receive_queue: u64,
    /// ESTABLISHED connections with a round-trip time (`tcp_info`).
    pub rtt_count: u32,
    /// Their smoothed round-trip times, summed, in µs.
    pub rtt_sum_us: u64,
    /// The largest of them, in µs.
    pub rtt_max_us: u32,
    /// Connections with segments retransmitted and not yet acknowledged.
    pub retransmitting: u32,
    /// Those segments, summed.
    pub retrans_segments: u64,
}

impl Health {
    /// Adds one socket that is not listening.
    fn add(&mut self, s: &Socket) {
        self.receive_queue += u64::from(s.rqueue);
        self.send_queue += u64::from(s.wqueue.unwrap_or(0));
        let Some(info) = s.info else {
            return;
        };
        if s.state == TcpState::Established as u8 {
            self.rtt_count += 1;
            self.rtt_sum_us += u64::from(info.rtt_us);
            self.rtt_max_us = self.rtt_max_us.max(info.rtt_us);
        }
        if info.retrans > 0 {
            self.retransmitting += 1;
            self.retrans_segments += u64::from(info.retrans);
        }
    }

    /// The mean round-trip time in µs; `None` without ESTABLISHED
    /// connections that have one.
    pub fn rtt_mean_us(&self) -> Option<f64> {
        (self.rtt_count > 0).then(|| self.rtt_sum_us as f64 / f64::from(self.rtt_count))
    }
}

/// Which series a set of counts belongs to; it is the plugin instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Instance {
    /// `all`: every socket the read saw.
    All,
    /// `<port>-local`: sockets whose local port is this one.
    Local(u16),
    /// `<port>-remote`: sockets whose remote port is this one.
    Remote(u16),
    /// `<net>_<prefix>-local`: sockets whose local address is in the network.
    LocalNet(Network),
    /// `<net>_<prefix>-remote`: sockets whose remote address is in it.
    RemoteNet(Network),
}

impl std::fmt::Display for Instance {
    /// The plugin instance: `all`, `22-local`, `443-remote`,
    /// `10.0.0.0_8-local` (a `/` would make a directory in csv and rrd
    /// paths).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Instance::All => f.write_str("all"),
            Instance::Local(port) => write!(f, "{port}-local"),
            Instance::Remote(port) => write!(f, "{port}-remote"),
            Instance::LocalNet(net) => write!(f, "{}-local", net.display('_')),
            Instance::RemoteNet(net) => write!(f, "{}-remote", net.display('_')),
        }
    }
}

#[derive(Debug, Clone)]
struct PortEntry {
    port: u16,
    local: Counts,
    remote: Counts,
    local_health: Health,
    remote_health: Health,
    /// Configured with `LocalPort`.
    local_wanted: bool,
    /// Configured with `RemotePort`.
    remote_wanted: bool,
    /// LISTEN sockets on this port in this read (from the listener pass).
    listeners: u32,
    /// Their accept queues, summed.
    queue: u32,
    /// Their accept queue limits, summed; `None` if a source did not say.
    queue_limit: Option<u32>,
}

/// The accept queue of a reported port that has listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptQueue {
    pub port: u16,
    /// Connections waiting to be accepted, all listeners on the port together.
    pub queue: u32,
    /// The sum of the listeners' limits, where the source shows them.
    pub limit: Option<u32>,
}

/// The counts of one read, and what to report from them.
#[derive(Debug, Clone)]
pub struct PortTable {
    /// Port -> entry position + 1; 0 means the port is not tracked. Port 0 is
    /// never tracked, so positions fit in u16.
    slot_of: Box<[u16]>,
    entries: Vec<PortEntry>,
    /// Entries before this index come from the configuration and stay; the
    /// rest are listening ports found in the current read.
    configured: usize,
    total: Counts,
    total_health: Health,
    listening_ports: bool,
    all_ports_summary: bool,
    accept_queue: bool,
    /// `ConnectionHealth`: [`Health`] per series.
    health: bool,
    /// `LocalNetwork`s then `RemoteNetwork`s, with this read's counts.
    networks: Vec<(Instance, Network, Counts, Health)>,
    /// `Cgroup`/`CgroupDepth`: this read's connections per cgroup id.
    cgroups: Option<CgroupCounts>,
    /// Whether this read was handed any socket.
    saw_sockets: bool,
    ignored: u32,
}

impl PortTable {
    pub fn new(config: &Config) -> PortTable {
        let mut table = PortTable {
            slot_of: vec![0u16; 1 << 16].into_boxed_slice(),
            entries: Vec::new(),
            configured: 0,
            total: [0; STATE_COUNT],
            total_health: Health::default(),
            listening_ports: config.listening_ports,
            all_ports_summary: config.all_ports_summary,
            accept_queue: config.accept_queue,
            health: config.connection_health,
            networks: config
                .local_networks
                .iter()
                .map(|&n| (Instance::LocalNet(n), n))
                .chain(
                    config
                        .remote_networks
                        .iter()
                        .map(|&n| (Instance::RemoteNet(n), n)),
                )
                .map(|(i, n)| (i, n, [0; STATE_COUNT], Health::default()))
                .collect(),
            cgroups: config.cgroups.any().then(CgroupCounts::default),
            saw_sockets: false,
            ignored: 0,
        };
        for &port in &config.local_ports {
            table.entry(port).local_wanted = true;
        }
        for &port in &config.remote_ports {
            table.entry(port).remote_wanted = true;
        }
        table.configured = table.entries.len();
        table
    }

    /// Whether a read must first find the listening sockets.
    pub fn wants_listeners(&self) -> bool {
        self.listening_ports || self.accept_queue
    }

    /// Starts a read: counts to zero, last read's listening ports forgotten.
    pub fn begin_read(&mut self) {
        for entry in self.entries.drain(self.configured..) {
            self.slot_of[usize::from(entry.port)] = 0;
        }
        for entry in &mut self.entries {
            entry.local = [0; STATE_COUNT];
            entry.remote = [0; STATE_COUNT];
            entry.local_health = Health::default();
            entry.remote_health = Health::default();
            entry.listeners = 0;
            entry.queue = 0;
            entry.queue_limit = Some(0);
        }
        self.total = [0; STATE_COUNT];
        self.total_health = Health::default();
        for (_, _, counts, health) in &mut self.networks {
            *counts = [0; STATE_COUNT];
            *health = Health::default();
        }
        if let Some(cgroups) = &mut self.cgroups {
            cgroups.clear();
        }
        self.saw_sockets = false;
        self.ignored = 0;
    }

    /// Records a LISTEN socket of this read: with `ListeningPorts` its port's
    /// connections are then counted and reported as `<port>-local`, and its
    /// accept queue is added to the port's.
    pub fn add_listener(&mut self, socket: &Socket) {
        self.saw_sockets = true;
        if socket.local == 0 {
            return;
        }
        let entry = if self.listening_ports {
            Some(self.entry(socket.local))
        } else {
            self.tracked(socket.local)
        };
        if let Some(e) = entry {
            e.listeners = e.listeners.saturating_add(1);
            e.queue = e.queue.saturating_add(socket.rqueue);
            e.queue_limit = match (e.queue_limit, socket.wqueue) {
                (Some(sum), Some(limit)) => Some(sum.saturating_add(limit)),
                _ => None,
            };
        }
    }

    /// Counts one socket. Kernel states outside 1..=11 are ignored (and
    /// counted in [`PortTable::ignored`]).
    #[inline]
    pub fn count(&mut self, local: u16, remote: u16, state: u8) {
        self.saw_sockets = true;
        let Some(state) = TcpState::from_kernel(state) else {
            self.ignored = self.ignored.saturating_add(1);
            return;
        };
        let i = state.index();
        self.total[i] = self.total[i].saturating_add(1);
        if let Some(entry) = self.tracked(local) {
            entry.local[i] = entry.local[i].saturating_add(1);
        }
        if let Some(entry) = self.tracked(remote) {
            entry.remote[i] = entry.remote[i].saturating_add(1);
        }
    }

    /// What sources must read of each socket: addresses only for networks,
    /// queues and `tcp_info` only for `ConnectionHealth`.
    pub fn fields(&self) -> Fields {
        Fields {
            addresses: !self.networks.is_empty(),
            health: self.health,
            cgroup: self.cgroups.is_some(),
        }
    }

    /// Counts one socket: by port as [`PortTable::count`], then by network;
    /// with `ConnectionHealth`, adds it to the [`Health`] of its series.
    #[inline]
    pub fn count_socket(&mut self, s: &Socket) {
        self.count(s.local, s.remote, s.state);
        if self.networks.is_empty() && !self.health && self.cgroups.is_none() {
            return;
        }
        let Some(state) = TcpState::from_kernel(s.state) else {
            return;
        };
        if let (Some(cgroups), Some(id)) = (&mut self.cgroups, s.cgroup) {
            cgroups.add(id, state.index());
        }
        let health = self.health && state != TcpState::Listen;
        for (instance, net, counts, net_health) in &mut self.networks {
            let addr = match instance {
                Instance::LocalNet(_) => &s.local_addr,
                _ => &s.remote_addr,
            };
            if net.contains(addr) {
                let c = &mut counts[state.index()];
                *c = c.saturating_add(1);
                if health {
                    net_health.add(s);
                }
            }
        }
        if health {
            self.total_health.add(s);
            if let Some(entry) = self.tracked(s.local) {
                entry.local_health.add(s);
            }
            if let Some(entry) = self.tracked(s.remote) {
                entry.remote_health.add(s);
            }
        }
    }

    /// The ports whose sockets this read reports, for a kernel-side filter:
    /// local ports into `local`, remote ports into `remote`. Returns false
    /// when every socket is needed (`AllPortsSummary`).
    pub fn reported_ports(&self, local: &mut Vec<u16>, remote: &mut Vec<u16>) -> bool {
        local.clear();
        remote.clear();
        if self.all_ports_summary || !self.networks.is_empty() || self.cgroups.is_some() {
            return false;
        }
        for e in &self.entries {
            if self.reports_local(e) {
                local.push(e.port);
            }
            if e.remote_wanted {
                remote.push(e.port);
            }
        }
        true
    }

    /// This read's connections per cgroup id (`Cgroup`, `CgroupDepth`).
    pub fn cgroup_counts(&self) -> Option<&CgroupCounts> {
        self.cgroups.as_ref()
    }

    /// Whether this read saw any socket, whatever its port or state (a
    /// discovered namespace without one is not reported).
    pub fn saw_sockets(&self) -> bool {
        self.saw_sockets
    }

    /// Sockets ignored in this read for a state outside 1..=11.
    pub fn ignored(&self) -> u32 {
        self.ignored
    }

    /// Whether series carry a [`Health`] (`ConnectionHealth`).
    pub fn reports_health(&self) -> bool {
        self.health
    }

    /// The series to dispatch for this read, `all` first, then per port in
    /// the order ports became known; each with its counts and, with
    /// `ConnectionHealth`, its health (zero otherwise).
    pub fn series(&self) -> impl Iterator<Item = (Instance, &Counts, &Health)> + '_ {
        let all =
            self.all_ports_summary
                .then_some((Instance::All, &self.total, &self.total_health));
        let ports = self.entries.iter().flat_map(move |e| {
            let local = self.reports_local(e).then_some((
                Instance::Local(e.port),
                &e.local,
                &e.local_health,
            ));
            let remote =
                e.remote_wanted
                    .then_some((Instance::Remote(e.port), &e.remote, &e.remote_health));
            local.into_iter().chain(remote)
        });
        let nets = self.networks.iter().map(|(i, _, c, h)| (*i, c, h));
        all.into_iter().chain(ports).chain(nets)
    }

    /// With `AcceptQueue`: the accept queue of every reported local port
    /// that has listeners in this read.
    pub fn accept_queues(&self) -> impl Iterator<Item = AcceptQueue> + '_ {
        self.entries
            .iter()
            .filter(move |e| self.accept_queue && e.listeners > 0 && self.reports_local(e))
            .map(|e| AcceptQueue {
                port: e.port,
                queue: e.queue,
                limit: e.queue_limit,
            })
    }

    fn reports_local(&self, e: &PortEntry) -> bool {
        e.local_wanted || (self.listening_ports && e.listeners > 0)
    }

    fn tracked(&mut self, port: u16) -> Option<&mut PortEntry> {
        match self.slot_of[usize::from(port)] {
            0 => None,
            slot => self.entries.get_mut(usize::from(slot) - 1),
        }
    }

    fn entry(&mut self, port: u16) -> &mut PortEntry {
        let slot = usize::from(self.slot_of[usize::from(port)]);
        let pos = if slot == 0 {
            self.entries.push(PortEntry {
                port,
                local: [0; STATE_COUNT],
                remote: [0; STATE_COUNT],
                local_health: Health::default(),
                remote_health: Health::default(),
                local_wanted: false,
                remote_wanted: false,
                listeners: 0,
                queue: 0,
                queue_limit: Some(0),
            });
            // At most 65535 distinct non-zero ports, so this fits.
            self.slot_of[usize::from(port)] = self.entries.len() as u16;
            self.entries.len() - 1
        } else {
            slot - 1
        };
        &mut self.entries[pos]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use std::collections::BTreeMap;

    const EST: u8 = 1;
    const TW: u8 = 6;
    const LISTEN: u8 = 10;

    fn table(options: &[(&str, &str)]) -> PortTable {
        PortTable::new(&parse(options.iter().copied()).unwrap())
    }

    /// Runs one read the way the gatherer does: listener pass, then all.
    fn read(t: &mut PortTable, triples: &[(u16, u16, u8)]) -> BTreeMap<Instance, Counts> {
        t.begin_read();
        if t.wants_listeners() {
            for &(l, r, s) in triples {
                if s == LISTEN {
                    t.add_listener(&Socket::new(l, r, s));
                }
            }
        }
        for &(l, r, s) in triples {
            t.count(l, r, s);
        }
        t.series().map(|(i, c, _)| (i, *c)).collect()
    }

    fn counts(pairs: &[(u8, u32)]) -> Counts {
        let mut c = [0; STATE_COUNT];
        for &(s, n) in pairs {
            c[usize::from(s) - 1] = n;
        }
        c
    }

    const POPULATION: &[(u16, u16, u8)] = &[
        (22, 0, LISTEN),
        (22, 40001, EST),
        (40001, 22, EST),
        (22, 40002, EST),
        (40002, 22, EST),
        (80, 0, LISTEN),
        (80, 0, LISTEN),
        (40003, 80, TW),
        (41000, 443, EST),
        (80, 443, EST),
    ];

    #[test]
    fn default_reports_listening_ports_local_only() {
        let mut t = table(&[]);
        let got = read(&mut t, POPULATION);
        let want = BTreeMap::from([
            (Instance::Local(22), counts(&[(EST, 2), (LISTEN, 1)])),
            (Instance::Local(80), counts(&[(LISTEN, 2), (EST, 1)])),
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn summary_counts_every_socket_in_range() {
        let mut t = table(&[("AllPortsSummary", "true")]);
        let mut pop = POPULATION.to_vec();
        pop.push((1, 2, 12)); // TCP_NEW_SYN_RECV: ignored
        pop.push((1, 2, 0));
        let got = read(&mut t, &pop);
        let want = BTreeMap::from([(Instance::All, counts(&[(LISTEN, 3), (EST, 6), (TW, 1)]))]);
        assert_eq!(got, want);
        assert_eq!(t.ignored(), 2);
    }

    #[test]
    fn a_socket_counts_once_per_matching_direction() {
        let mut t = table(&[
            ("LocalPort", "80"),
            ("RemotePort", "443"),
            ("RemotePort", "80"),
        ]);
        let got = read(&mut t, POPULATION);
        let want = BTreeMap::from([
            (Instance::Local(80), counts(&[(LISTEN, 2), (EST, 1)])),
            (Instance::Remote(80), counts(&[(TW, 1)])),
            (Instance::Remote(443), counts(&[(EST, 2)])),
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn configured_ports_are_reported_with_zeros() {
        let mut t = table(&[("LocalPort", "9999"), ("RemotePort", "9998")]);
        let got = read(&mut t, POPULATION);
        assert_eq!(got.len(), 2);
        assert!(got.values().all(|c| *c == [0; STATE_COUNT]));
    }

    #[test]
    fn counts_do_not_depend_on_the_order_of_sockets() {
        let mut t = table(&[("ListeningPorts", "true"), ("RemotePort", "22")]);
        let forward = read(&mut t, POPULATION);
        let mut reversed = POPULATION.to_vec();
        reversed.reverse();
        assert_eq!(read(&mut t, &reversed), forward);
        let mut rotated = POPULATION.to_vec();
        rotated.rotate_left(3);
        assert_eq!(read(&mut t, &rotated), forward);
    }

    #[test]
    fn a_port_that_stops_listening_is_dropped_at_the_next_read() {
        let mut t = table(&[]);
        read(&mut t, POPULATION);
        let got = read(&mut t, &[(80, 0, LISTEN), (22, 40001, EST)]);
        assert_eq!(
            got,
            BTreeMap::from([(Instance::Local(80), counts(&[(LISTEN, 1)]))])
        );
    }

    #[test]
    fn a_configured_port_that_also_listens_is_reported_once_and_kept() {
        let mut t = table(&[("LocalPort", "22"), ("ListeningPorts", "yes")]);
        let first = read(&mut t, POPULATION);
        assert_eq!(first.len(), 2);
        let second = read(&mut t, &[]);
        assert_eq!(
            second,
            BTreeMap::from([(Instance::Local(22), [0; STATE_COUNT])])
        );
    }

    #[test]
    fn series_come_in_the_c_plugins_shape() {
        let mut t = table(&[
            ("AllPortsSummary", "on"),
            ("LocalPort", "22"),
            ("RemotePort", "22"),
        ]);
        t.begin_read();
        let order: Vec<Instance> = t.series().map(|(i, _, _)| i).collect();
        assert_eq!(
            order,
            vec![Instance::All, Instance::Local(22), Instance::Remote(22)]
        );
    }

    #[test]
    fn networks_count_by_local_or_remote_address() {
        use crate::network::mapped;
        let mut t = table(&[
            ("LocalNetwork", "127.0.0.0/30"),
            ("RemoteNetwork", "127.0.0.2 ::1"),
        ]);
        assert!(t.fields().addresses);
        let (mut l, mut r) = (Vec::new(), Vec::new());
        assert!(
            !t.reported_ports(&mut l, &mut r),
            "networks need every socket"
        );
        t.begin_read();
        let sock = |la: [u8; 4], ra: [u8; 4], state| Socket {
            local_addr: mapped(la),
            remote_addr: mapped(ra),
            ..Socket::new(1, 2, state)
        };
        t.count_socket(&sock([127, 0, 0, 1], [127, 0, 0, 2], EST));
        t.count_socket(&sock([127, 0, 0, 5], [127, 0, 0, 2], EST));
        t.count_socket(&sock([127, 0, 0, 3], [127, 0, 0, 9], TW));
        t.count_socket(&sock([127, 0, 0, 3], [127, 0, 0, 9], 12));
        let mut v6 = Socket::new(1, 2, EST);
        v6.remote_addr = std::net::Ipv6Addr::LOCALHOST.octets();
        t.count_socket(&v6);
        let got: Vec<(Instance, Counts)> = t.series().map(|(i, c, _)| (i, *c)).collect();
        let net = |s: &str| crate::network::Network::parse(s).unwrap();
        assert_eq!(
            got,
            vec![
                (
                    Instance::LocalNet(net("127.0.0.0/30")),
                    counts(&[(EST, 1), (TW, 1)])
                ),
                (Instance::RemoteNet(net("::1")), counts(&[(EST, 1)])),
                (Instance::RemoteNet(net("127.0.0.2")), counts(&[(EST, 2)])),
            ]
        );
    }

    #[test]
    fn health_sums_queues_and_tcp_info_per_series_without_listeners() {
        use crate::socket::TcpInfo;
        let sock = |l, r, state, rq, wq, info: Option<(u32, u32)>| Socket {
            rqueue: rq,
            wqueue: Some(wq),
            info: info.map(|(rtt_us, retrans)| TcpInfo { rtt_us, retrans }),
            ..Socket::new(l, r, state)
        };
        let mut t = table(&[
            ("ConnectionHealth", "true"),
            ("AllPortsSummary", "true"),
            ("LocalPort", "443"),
            ("RemotePort", "5432"),
            ("LocalPort", "9"),
        ]);
        assert!(t.reports_health() && t.fields().health);
        t.begin_read();
        for s in [
            // A listener's queues are its accept queue: never health.
            sock(443, 0, LISTEN, 5, 128, Some((1, 9))),
            sock(443, 40000, EST, 100, 0, Some((200, 0))),
            sock(443, 40001, EST, 0, 7000, Some((600, 3))),
            // Not ESTABLISHED: queues and retransmissions, no RTT.
            sock(443, 40002, 8, 10, 0, Some((900, 1))),
            // TIME_WAIT: no tcp_info.
            sock(443, 40003, TW, 0, 0, None),
            sock(40010, 5432, EST, 0, 50, Some((1000, 0))),
        ] {
            t.count_socket(&s);
        }
        let got: BTreeMap<Instance, Health> = t.series().map(|(i, _, h)| (i, *h)).collect();
        let port443 = Health {
            send_queue: 7000,
            receive_queue: 110,
            rtt_count: 2,
            rtt_sum_us: 800,
            rtt_max_us: 600,
            retransmitting: 2,
            retrans_segments: 4,
        };
        assert_eq!(got[&Instance::Local(443)], port443);
        assert_eq!(port443.rtt_mean_us(), Some(400.0));
        assert_eq!(
            got[&Instance::Remote(5432)],
            Health {
                send_queue: 50,
                rtt_count: 1,
                rtt_sum_us: 1000,
                rtt_max_us: 1000,
                ..Health::default()
            }
        );
        assert_eq!(got[&Instance::All].send_queue, 7050);
        assert_eq!(got[&Instance::All].rtt_count, 3);
        // A series with no connections: zero, and no RTT to report.
        assert_eq!(got[&Instance::Local(9)], Health::default());
        assert_eq!(got[&Instance::Local(9)].rtt_mean_us(), None);
        // The next read starts from zero.
        t.begin_read();
        assert!(t.series().all(|(_, _, h)| *h == Health::default()));
        // Without the option nothing is summed.
        let mut off = table(&[("LocalPort", "443")]);
        assert!(!off.fields().health);
        off.begin_read();
        off.count_socket(&sock(443, 40000, EST, 100, 5, Some((200, 1))));
        assert!(off.series().all(|(_, _, h)| *h == Health::default()));
    }

    #[test]
    fn accept_queues_sum_the_listeners_of_reported_ports() {
        let listener = |port, queue, limit| Socket {
            rqueue: queue,
            wqueue: limit,
            ..Socket::new(port, 0, LISTEN)
        };
        let mut t = table(&[
            ("AcceptQueue", "true"),
            ("LocalPort", "22"),
            ("LocalPort", "25"),
        ]);
        t.begin_read();
        t.add_listener(&listener(22, 3, Some(128)));
        t.add_listener(&listener(22, 1, Some(4096)));
        t.add_listener(&listener(80, 7, Some(10)));
        let got: Vec<_> = t.accept_queues().collect();
        assert_eq!(
            got,
            vec![AcceptQueue {
                port: 22,
                queue: 4,
                limit: Some(4224)
            }]
        );
        // procfs shows no limit: the sum is unknown, not a lie.
        t.begin_read();
        t.add_listener(&listener(22, 2, None));
        t.add_listener(&listener(22, 1, Some(5)));
        let got: Vec<_> = t.accept_queues().collect();
        assert_eq!((got[0].queue, got[0].limit), (3, None));

        let mut t = table(&[("AcceptQueue", "true")]);
        t.begin_read();
        t.add_listener(&listener(80, 7, Some(10)));
        assert_eq!(t.accept_queues().count(), 1);
        let mut t = table(&[("LocalPort", "22")]);
        t.begin_read();
        t.add_listener(&listener(22, 7, Some(10)));
        assert_eq!(t.accept_queues().count(), 0, "off unless asked");
    }

    #[test]
    fn reported_ports_are_what_the_series_need() {
        let (mut local, mut remote) = (Vec::new(), Vec::new());
        let mut t = table(&[
            ("LocalPort", "22"),
            ("RemotePort", "443"),
            ("RemotePort", "22"),
        ]);
        t.begin_read();
        assert!(t.reported_ports(&mut local, &mut remote));
        assert_eq!((&local[..], &remote[..]), (&[22][..], &[22, 443][..]));

        let mut t = table(&[("RemotePort", "443"), ("ListeningPorts", "true")]);
        t.begin_read();
        t.add_listener(&Socket::new(80, 0, LISTEN));
        t.add_listener(&Socket::new(443, 0, LISTEN));
        assert!(t.reported_ports(&mut local, &mut remote));
        assert_eq!((&local[..], &remote[..]), (&[443, 80][..], &[443][..]));

        let mut t = table(&[("AllPortsSummary", "true"), ("LocalPort", "22")]);
        t.begin_read();
        assert!(!t.reported_ports(&mut local, &mut remote));
    }

    #[test]
    fn many_ports_fit_the_index() {
        let mut t = table(&[]);
        t.begin_read();
        for port in 1..=u16::MAX {
            t.add_listener(&Socket::new(port, 0, LISTEN));
        }
        t.add_listener(&Socket::new(0, 0, LISTEN));
        for port in 1..=u16::MAX {
            t.count(port, 0, LISTEN);
        }
        assert_eq!(t.series().count(), 65535);
        assert!(t.series().all(|(_, c, _)| c[TcpState::Listen.index()] == 1));
    }
}
