//! Choosing where counts come from: netlink first, `/proc/net/tcp{,6}` when
//! netlink fails, in the same read, so no interval is lost. Each change of
//! source is logged once; netlink is retried after 1, 2, 4 ... 64 reads.

use std::fmt;

use log::{info, warn};

use crate::config::Namespace;
use crate::filter;
use crate::netlink::{Netlink, NetlinkError, Presence};
use crate::procfs::{ProcError, Procfs};
use crate::socket::Socket;
use crate::state::TcpState;
use crate::table::PortTable;

/// Every state the plugin reports, as an inet_diag state mask.
pub const ALL_STATES: u32 = 0xffe;
/// A dump the kernel flags as interrupted is tried again this many times.
const INTERRUPTED_RETRIES: u32 = 2;
/// Longest wait, in reads, between two netlink retries.
const MAX_RETRY_READS: u32 = 64;

/// The source that served a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Netlink,
    Procfs,
}

/// Both sources failed: nothing is dispatched for this read.
#[derive(Debug)]
pub struct GatherError {
    pub netlink: Option<NetlinkError>,
    /// `None` for another namespace, which has no procfs fallback.
    pub procfs: Option<ProcError>,
}

impl fmt::Display for GatherError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.netlink, &self.procfs) {
            (Some(nl), Some(pe)) => write!(f, "netlink failed ({nl}) and {pe}"),
            (Some(nl), None) => write!(f, "netlink failed: {nl}"),
            (None, Some(pe)) => write!(f, "{pe}"),
            (None, None) => write!(f, "no source"),
        }
    }
}

impl std::error::Error for GatherError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// No read yet.
    Unknown,
    Netlink,
    /// On procfs; netlink is tried again when `wait` reads have passed.
    Procfs {
        wait: u32,
        next_wait: u32,
    },
    /// Another namespace whose netlink fails (it has no procfs); tried every
    /// read.
    Failing,
}

/// Fills a [`PortTable`] once per read from the best source available.
pub struct Gatherer {
    netlink: Netlink,
    /// `None` for another namespace: its sockets come from netlink only.
    procfs: Option<Procfs>,
    /// Names the namespace in log lines; empty for collectd's own.
    label: String,
    /// The namespace was missing at the last read.
    gone: bool,
    mode: Mode,
    warned_bad_lines: bool,
    warned_interrupted: bool,
    /// Off once the kernel has refused a filter program.
    filtering: bool,
    local_ports: Vec<u16>,
    remote_ports: Vec<u16>,
    filter: filter::Builder,
}

impl Gatherer {
    pub fn new(procfs: Procfs) -> Gatherer {
        Gatherer::with(Netlink::default(), Some(procfs), String::new())
    }

    /// Reads another network namespace, through netlink only (procfs shows
    /// collectd's own namespace).
    pub fn for_namespace(ns: &Namespace) -> Gatherer {
        Gatherer::with(
            Netlink::in_namespace(ns.path.clone()),
            None,
            format!("namespace {} ({}): ", ns.name, ns.path.display()),
        )
    }

    fn with(netlink: Netlink, procfs: Option<Procfs>, label: String) -> Gatherer {
        Gatherer {
            netlink,
            procfs,
            label,
            gone: false,
            mode: Mode::Unknown,
            warned_bad_lines: false,
            warned_interrupted: false,
            filtering: true,
            local_ports: Vec::new(),
            remote_ports: Vec::new(),
            filter: filter::Builder::default(),
        }
    }

    /// Fills `table` with this read's sockets. `Ok(None)`: another namespace
    /// that is not there now; nothing to dispatch for it.
    pub fn read(&mut self, table: &mut PortTable) -> Result<Option<Source>, GatherError> {
        if self.procfs.is_none() {
            return self.read_namespace(table);
        }
        let netlink_error = match self.mode {
            Mode::Procfs { wait, next_wait } if wait > 0 => {
                self.mode = Mode::Procfs {
                    wait: wait - 1,
                    next_wait,
                };
                None
            }
            _ => match self.gather_netlink(table) {
                Ok(()) => {
                    match self.mode {
                        Mode::Unknown => info!("reading sockets from netlink (sock_diag)"),
                        Mode::Procfs { .. } => {
                            info!("netlink works again; reading sockets from netlink from now on")
                        }
                        Mode::Netlink | Mode::Failing => {}
                    }
                    self.mode = Mode::Netlink;
                    return Ok(Some(Source::Netlink));
                }
                Err(err) => Some(err),
            },
        };
        if let Some(err) = &netlink_error {
            self.mode = match self.mode {
                Mode::Procfs { next_wait, .. } => Mode::Procfs {
                    wait: next_wait,
                    next_wait: (next_wait * 2).min(MAX_RETRY_READS),
                },
                _ => {
                    info!(
                        "netlink failed: {err}; reading /proc/net/tcp and /proc/net/tcp6 \
                         instead, netlink will be retried"
                    );
                    Mode::Procfs {
                        wait: 1,
                        next_wait: 2,
                    }
                }
            };
        }
        match self.gather_procfs(table) {
            Ok(()) => Ok(Some(Source::Procfs)),
            Err(procfs) => Err(GatherError {
                netlink: netlink_error,
                procfs: Some(procfs),
            }),
        }
    }

    /// For another namespace, at init: opens its netlink socket now (on a
    /// short-lived thread inside it), or notes that it is not there.
    pub fn prepare(&mut self) {
        if self.procfs.is_some() {
            return;
        }
        if self.netlink.check_namespace() == Presence::Gone {
            info!("{}not there; skipped until it is", self.label);
            self.gone = true;
        } else if let Err(err) = self.netlink.connect() {
            warn!(
                "{}netlink failed: {err}; nothing dispatched for it until it works",
                self.label
            );
            self.mode = Mode::Failing;
        }
    }

    /// Another namespace: skipped while it is missing, its socket reopened
    /// when it comes back; each change logged once.
    fn read_namespace(&mut self, table: &mut PortTable) -> Result<Option<Source>, GatherError> {
        let label = self.label.clone();
        match self.netlink.check_namespace() {
            Presence::Gone => {
                if !self.gone {
                    info!("{label}not there; skipped until it is");
                    self.gone = true;
                }
                return Ok(None);
            }
            Presence::New if self.gone || self.mode != Mode::Unknown => {
                info!("{label}there (again); reading it");
                self.mode = Mode::Unknown;
            }
            _ => {}
        }
        self.gone = false;
        match self.gather_netlink(table) {
            Ok(()) => {
                if self.mode != Mode::Netlink {
                    info!("{label}reading sockets from netlink (sock_diag)");
                    self.mode = Mode::Netlink;
                }
                Ok(Some(Source::Netlink))
            }
            Err(err) => {
                if self.mode != Mode::Failing {
                    warn!("{label}netlink failed: {err}; nothing dispatched for it until it works");
                    self.mode = Mode::Failing;
                }
                Err(GatherError {
                    netlink: Some(err),
                    procfs: None,
                })
            }
        }
    }

    fn gather_netlink(&mut self, table: &mut PortTable) -> Result<(), NetlinkError> {
        self.netlink.addresses = table.wants_addresses();
        let mut attempt = 0;
        loop {
            table.begin_read();
            let mut interrupted = false;
            if table.wants_listeners() {
                let progress =
                    self.netlink
                        .dump(TcpState::Listen.mask(), &[], &mut |s: &Socket| {
                            if s.state == TcpState::Listen as u8 {
                                table.add_listener(s)
                            }
                        })?;
                interrupted |= progress.interrupted;
            }
            let some_ports = table.reported_ports(&mut self.local_ports, &mut self.remote_ports);
            if some_ports && self.local_ports.is_empty() && self.remote_ports.is_empty() {
                // Nothing to report (no listener, no port): no need to ask.
                return Ok(());
            }
            let program: &[u8] = if self.filtering && some_ports {
                self.filter
                    .build(&mut self.local_ports, &mut self.remote_ports)
                    .unwrap_or(&[])
            } else {
                &[]
            };
            let progress = match self
                .netlink
                .dump(ALL_STATES, program, &mut |s: &Socket| table.count_socket(s))
            {
                Err(NetlinkError::Kernel { errno })
                    if errno == libc::EINVAL && !program.is_empty() =>
                {
                    warn!(
                        "the kernel refused the port filter (EINVAL); asking it for all \
                             sockets from now on"
                    );
                    self.filtering = false;
                    continue;
                }
                result => result?,
            };
            interrupted |= progress.interrupted;
            if !interrupted {
                return Ok(());
            }
            if attempt == INTERRUPTED_RETRIES {
                if !self.warned_interrupted {
                    warn!(
                        "the kernel interrupted {} dumps in a row while sockets changed; \
                         using the last one",
                        attempt + 1
                    );
                    self.warned_interrupted = true;
                }
                return Ok(());
            }
            attempt += 1;
        }
    }

    fn gather_procfs(&mut self, table: &mut PortTable) -> Result<(), ProcError> {
        table.begin_read();
        let Some(procfs) = self.procfs.as_mut() else {
            return Ok(());
        };
        procfs.addresses = table.wants_addresses();
        let mut bad = None;
        if table.wants_listeners() {
            bad = procfs.dump(true, &mut |s: &Socket| {
                if s.state == TcpState::Listen as u8 {
                    table.add_listener(s)
                }
            })?;
        }
        let all = procfs.dump(false, &mut |s: &Socket| table.count_socket(s))?;
        match all.or(bad) {
            Some(bad) if !self.warned_bad_lines => {
                warn!(
                    "skipped {} malformed lines, first: {}",
                    bad.count, bad.first
                );
                self.warned_bad_lines = true;
            }
            Some(_) => {}
            None => self.warned_bad_lines = false,
        }
        Ok(())
    }
}
