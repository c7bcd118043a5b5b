//! A drop-in replacement for collectd's `tcpconns` plugin: TCP connections
//! per port and state, from netlink `sock_diag` with a `/proc/net/tcp{,6}`
//! fallback.
//!
//! config (options -> [`config::Config`]) -> sources (netlink, procfs: socket
//! triples) -> [`table::PortTable`] (counts) -> `plugin` (collectd glue).

pub mod caps;
pub mod cgroup;
pub mod config;
pub mod discover;
pub mod filter;
pub mod netlink;
pub mod netns;
pub mod network;
pub mod procfs;
pub mod socket;
pub mod source;
pub mod state;
pub mod table;

// The glue references collectd's own symbols, which exist only inside the
// collectd process; unit tests link without it.
#[cfg(not(test))]
mod plugin;
