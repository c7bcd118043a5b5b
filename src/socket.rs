//! What a source reports of one socket: the unit every source produces and
//! the port table counts.

use crate::network::Addr;

/// What a source reads of each socket beyond its ports and state. Fixed by
/// the configuration at init, so a read parses only what is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fields {
    /// Both addresses (only networks need them).
    pub addresses: bool,
    /// Every socket's queues, and from netlink `tcp_info`
    /// (`ConnectionHealth`).
    pub health: bool,
    /// The cgroup (v2) id of full sockets, from netlink (`Cgroup`,
    /// `CgroupDepth`).
    pub cgroup: bool,
}

impl Fields {
    /// Ports, state and the queue fields only: what the C plugin's
    /// selection needs (the default).
    pub const PORTS: Fields = Fields {
        addresses: false,
        health: false,
        cgroup: false,
    };
    /// Also both addresses.
    pub const ADDRESSES: Fields = Fields {
        addresses: true,
        ..Fields::PORTS
    };
    /// Also every socket's queues and `tcp_info`.
    pub const HEALTH: Fields = Fields {
        health: true,
        ..Fields::PORTS
    };
    /// Also the cgroup id.
    pub const CGROUP: Fields = Fields {
        cgroup: true,
        ..Fields::PORTS
    };
}

/// One TCP socket as read from netlink or procfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Socket {
    pub local: u16,
    pub remote: u16,
    /// The kernel's state number; only 1..=11 are reported.
    pub state: u8,
    /// The receive queue. For a LISTEN socket: connections waiting to be
    /// accepted; for any other: bytes arrived and not yet read.
    pub rqueue: u32,
    /// The send queue. For a LISTEN socket: the accept queue's limit (the
    /// listen backlog); for any other: bytes written and not yet
    /// acknowledged. `None` where the source does not show it (procfs
    /// listeners).
    pub wqueue: Option<u32>,
    /// Addresses in IPv6 form (IPv4 as `::ffff:a.b.c.d`), filled only when
    /// [`Fields::addresses`] asks for them.
    pub local_addr: Addr,
    pub remote_addr: Addr,
    /// From `tcp_info`, when [`Fields::health`] asks for it and the kernel
    /// sends it (full sockets only: not TIME_WAIT, not SYN_RECV).
    pub info: Option<TcpInfo>,
    /// The id of the cgroup (v2) whose process made the socket, when
    /// [`Fields::cgroup`] asks for it and the kernel sends it (full sockets
    /// only: a TIME_WAIT or SYN_RECV entry has none).
    pub cgroup: Option<u64>,
}

/// The two fields of the kernel's `struct tcp_info` the plugin reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpInfo {
    /// Smoothed round-trip time, µs (`tcpi_rtt`).
    pub rtt_us: u32,
    /// Segments retransmitted and not yet acknowledged (`tcpi_retrans`).
    pub retrans: u32,
}

impl Socket {
    /// A socket with only ports and state known.
    pub fn new(local: u16, remote: u16, state: u8) -> Socket {
        Socket {
            local,
            remote,
            state,
            ..Socket::default()
        }
    }
}
