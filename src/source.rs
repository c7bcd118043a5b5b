//! Choosing where counts come from: netlink first, `/proc/net/tcp{,6}` when
//! netlink fails, in the same read, so no interval is lost. Each change of
//! source is logged once; netlink is retried after 1, 2, 4 ... 64 reads.

use std::fmt;

use log::{info, warn};

use crate::filter;
use crate::netlink::{Netlink, NetlinkError};
use crate::procfs::{ProcError, Procfs};
use crate::socket::Socket;
use crate::state::TcpState;
use crate::table::PortTable;

/// Every state the plugin reports, as an inet_diag state mask.
const ALL_STATES: u32 = 0xffe;
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
    pub procfs: ProcError,
}

impl fmt::Display for GatherError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.netlink {
            Some(nl) => write!(f, "netlink failed ({nl}) and {}", self.procfs),
            None => write!(f, "{}", self.procfs),
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
}

/// Fills a [`PortTable`] once per read from the best source available.
pub struct Gatherer {
    netlink: Netlink,
    procfs: Procfs,
    mode: Mode,
    warned_bad_lines: bool,
    warned_interrupted: bool,
    /// Off once the kernel has refused a filter program.
    filtering: bool,
    local_ports: Vec<u16>,
    remote_ports: Vec<u16>,
    program: Vec<u8>,
}

impl Gatherer {
    pub fn new(procfs: Procfs) -> Gatherer {
        Gatherer {
            netlink: Netlink::default(),
            procfs,
            mode: Mode::Unknown,
            warned_bad_lines: false,
            warned_interrupted: false,
            filtering: true,
            local_ports: Vec::new(),
            remote_ports: Vec::new(),
            program: Vec::new(),
        }
    }

    /// Fills `table` with this read's sockets.
    pub fn read(&mut self, table: &mut PortTable) -> Result<Source, GatherError> {
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
                        Mode::Netlink => {}
                    }
                    self.mode = Mode::Netlink;
                    return Ok(Source::Netlink);
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
            Ok(()) => Ok(Source::Procfs),
            Err(procfs) => Err(GatherError {
                netlink: netlink_error,
                procfs,
            }),
        }
    }

    fn gather_netlink(&mut self, table: &mut PortTable) -> Result<(), NetlinkError> {
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
            let program: &[u8] = if self.filtering
                && some_ports
                && filter::build(&mut self.program, &self.local_ports, &self.remote_ports)
            {
                &self.program
            } else {
                &[]
            };
            let progress = match self.netlink.dump(ALL_STATES, program, &mut |s: &Socket| {
                table.count(s.local, s.remote, s.state)
            }) {
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
        let mut bad = None;
        if table.wants_listeners() {
            bad = self.procfs.dump(true, &mut |s: &Socket| {
                if s.state == TcpState::Listen as u8 {
                    table.add_listener(s)
                }
            })?;
        }
        let all = self.procfs.dump(false, &mut |s: &Socket| {
            table.count(s.local, s.remote, s.state)
        })?;
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
