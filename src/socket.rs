//! What a source reports of one socket: the unit every source produces and
//! the port table counts.

use crate::network::Addr;

/// One TCP socket as read from netlink or procfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Socket {
    pub local: u16,
    pub remote: u16,
    /// The kernel's state number; only 1..=11 are reported.
    pub state: u8,
    /// For a LISTEN socket: connections waiting to be accepted.
    pub queue: u32,
    /// For a LISTEN socket: the accept queue's limit (the listen backlog);
    /// `None` where the source does not show it (procfs).
    pub queue_limit: Option<u32>,
    /// Addresses in IPv6 form (IPv4 as `::ffff:a.b.c.d`); procfs fills them
    /// only when networks are configured.
    pub local_addr: Addr,
    pub remote_addr: Addr,
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
