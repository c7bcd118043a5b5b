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

/// A scratch directory for unit tests, `/tmp/tcpconns-unit-<pid>-<tag>`,
/// made empty and removed when the test ends, passed or failed.
#[cfg(test)]
pub(crate) struct Scratch(std::path::PathBuf);

#[cfg(test)]
impl Scratch {
    pub(crate) fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("tcpconns-unit-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("make a scratch directory");
        Scratch(dir)
    }
}

#[cfg(test)]
impl std::ops::Deref for Scratch {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

#[cfg(test)]
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
