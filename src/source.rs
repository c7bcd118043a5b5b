//! Where a read's sockets come from. collectd's own namespace
//! ([`HostGatherer`]): netlink first, `/proc/net/tcp{,6}` when netlink
//! fails, in the same read, so no interval is lost; netlink is retried
//! after 1, 2, 4 ... 64 reads. Another namespace ([`NamespaceGatherer`]):
//! netlink only, skipped while the namespace is missing. Both log each
//! change of state once, never once per read.

use std::fmt;
use std::path::PathBuf;

use log::{error, info, warn};

use crate::config::Namespace;
use crate::filter;
use crate::netlink::{Netlink, NetlinkError};
use crate::netns::{identity, Identity};
use crate::procfs::{ProcError, Procfs};
use crate::socket::{Fields, Socket};
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

/// Both sources of collectd's own namespace failed: nothing is dispatched
/// for this read.
#[derive(Debug)]
pub struct GatherError {
    /// `None` when netlink was not tried in this read (waiting to retry).
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

impl std::error::Error for GatherError {
    /// The procfs error: the last thing tried.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.procfs)
    }
}

/// The netlink part of a read, the same for every namespace: the listening
/// sockets first (when the table reports listening ports), then every
/// socket of a reported port, filtered in the kernel; a dump the kernel
/// flags as interrupted is done again.
struct NetlinkStep {
    netlink: Netlink,
    /// Off once the kernel has refused a filter program.
    filtering: bool,
    warned_interrupted: bool,
    local_ports: Vec<u16>,
    remote_ports: Vec<u16>,
    filter: filter::Builder,
}

impl NetlinkStep {
    fn new(netlink: Netlink) -> NetlinkStep {
        NetlinkStep {
            netlink,
            filtering: true,
            warned_interrupted: false,
            local_ports: Vec::new(),
            remote_ports: Vec::new(),
            filter: filter::Builder::default(),
        }
    }

    fn gather(&mut self, table: &mut PortTable) -> Result<(), NetlinkError> {
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
}

/// Where [`HostGatherer`] reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostMode {
    /// No read yet.
    Starting,
    Netlink,
    /// On procfs; netlink is tried again when `wait` reads have passed.
    Procfs {
        wait: u32,
        next_wait: u32,
    },
}

/// Fills a [`PortTable`] with the sockets of collectd's own namespace, once
/// per read, from the best source available.
pub struct HostGatherer {
    step: NetlinkStep,
    procfs: Procfs,
    mode: HostMode,
    warned_bad_lines: bool,
    /// The last read failed in both sources (said once, until one works).
    failing: bool,
}

impl HostGatherer {
    /// Both sources read of each socket what `fields` asks for.
    pub fn new(fields: Fields) -> HostGatherer {
        HostGatherer {
            step: NetlinkStep::new(Netlink::new(None, fields)),
            procfs: Procfs::new(std::path::Path::new("/proc/net"), fields),
            mode: HostMode::Starting,
            warned_bad_lines: false,
            failing: false,
        }
    }

    /// Fills `table` with this read's sockets. When both sources fail,
    /// that is logged once, and again only after one has worked; collectd
    /// itself logs each failed read as it suspends the plugin.
    pub fn read(&mut self, table: &mut PortTable) -> Result<Source, GatherError> {
        let result = self.read_sources(table);
        match (&result, self.failing) {
            (Err(err), false) => error!(
                "reading sockets failed, nothing dispatched until a source works again: {err}"
            ),
            // Back on netlink says so itself ("netlink works again").
            (Ok(Source::Procfs), true) => {
                info!("reading sockets works again, from /proc/net/tcp and /proc/net/tcp6")
            }
            _ => {}
        }
        self.failing = result.is_err();
        result
    }

    fn read_sources(&mut self, table: &mut PortTable) -> Result<Source, GatherError> {
        let netlink_error = match self.mode {
            HostMode::Procfs { wait, next_wait } if wait > 0 => {
                self.mode = HostMode::Procfs {
                    wait: wait - 1,
                    next_wait,
                };
                None
            }
            _ => match self.step.gather(table) {
                Ok(()) => {
                    match self.mode {
                        HostMode::Starting => info!("reading sockets from netlink (sock_diag)"),
                        HostMode::Procfs { .. } => {
                            info!("netlink works again; reading sockets from netlink from now on")
                        }
                        HostMode::Netlink => {}
                    }
                    self.mode = HostMode::Netlink;
                    return Ok(Source::Netlink);
                }
                Err(err) => Some(err),
            },
        };
        if let Some(err) = &netlink_error {
            self.mode = match self.mode {
                HostMode::Procfs { next_wait, .. } => HostMode::Procfs {
                    wait: next_wait,
                    next_wait: (next_wait * 2).min(MAX_RETRY_READS),
                },
                HostMode::Starting | HostMode::Netlink => {
                    info!(
                        "netlink failed: {err}; reading /proc/net/tcp and /proc/net/tcp6 \
                         instead, netlink will be retried"
                    );
                    HostMode::Procfs {
                        wait: 1,
                        next_wait: 2,
                    }
                }
            };
        }
        match self.gather_procfs(table) {
            Ok(()) => Ok(Source::Procfs),
            Err(procfs) => {
                // Netlink waits its turn only while procfs serves the
                // reads; with neither working, the next read tries it
                // first (collectd already spaces out failing reads).
                if let HostMode::Procfs { wait, .. } = &mut self.mode {
                    *wait = 0;
                }
                Err(GatherError {
                    netlink: netlink_error,
                    procfs,
                })
            }
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
        let all = self
            .procfs
            .dump(false, &mut |s: &Socket| table.count_socket(s))?;
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

/// What [`NamespaceGatherer`] last saw of its namespace; each change is
/// logged once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NamespaceState {
    /// No read yet.
    Starting,
    /// Not there (deleted, or never made).
    Missing,
    Reading,
    /// There, but netlink fails in it (e.g. collectd may not enter it).
    Failing,
}

/// Fills a [`PortTable`] with the sockets of another network namespace,
/// through a netlink socket opened inside it. While the namespace is
/// missing it is skipped; when it is made again (a new namespace under the
/// same path) the socket is opened anew in it.
pub struct NamespaceGatherer {
    step: NetlinkStep,
    path: PathBuf,
    /// Names the namespace in log lines.
    label: String,
    /// The namespace the socket was opened in, by identity.
    seen: Option<Identity>,
    /// A discovered namespace (`Namespace "all"`) is this one only: a path
    /// that now leads elsewhere (its process ended, the pid was reused)
    /// counts as missing.
    expected: Option<Identity>,
    state: NamespaceState,
}

impl NamespaceGatherer {
    /// Netlink reads of each socket what `fields` asks for.
    pub fn new(ns: &Namespace, fields: Fields) -> NamespaceGatherer {
        NamespaceGatherer {
            step: NetlinkStep::new(Netlink::new(Some(ns.path.clone()), fields)),
            path: ns.path.clone(),
            label: format!("namespace {} ({})", ns.name, ns.path.display()),
            seen: None,
            expected: None,
            state: NamespaceState::Starting,
        }
    }

    /// A namespace found by `Namespace "all"`: read through `ns.path` while
    /// that leads to the namespace `expected`.
    pub fn discovered(ns: &Namespace, expected: Identity, fields: Fields) -> NamespaceGatherer {
        NamespaceGatherer {
            expected: Some(expected),
            ..NamespaceGatherer::new(ns, fields)
        }
    }

    /// Another way into the same namespace (a discovered namespace's first
    /// process ended but others keep it): the socket is opened again there.
    pub fn set_path(&mut self, path: PathBuf) {
        if path != self.path {
            self.step.netlink.set_namespace(path.clone());
            self.path = path;
        }
    }

    /// Fills `table` with this read's sockets; `false` when there is nothing
    /// to dispatch for the namespace in this read (missing, or failing:
    /// logged once when it starts).
    pub fn read(&mut self, table: &mut PortTable) -> bool {
        // A discovered namespace's coming and going is logged by the
        // discovery ("found", "gone"); here only netlink failing and working
        // again.
        let discovered = self.expected.is_some();
        let now = identity(&self.path)
            .ok()
            .filter(|now| self.expected.map_or(true, |e| e == *now));
        let Some(now) = now else {
            self.step.netlink.close();
            self.seen = None;
            if self.moved_to(NamespaceState::Missing).is_some() && !discovered {
                info!("{}: not there; skipped until it is", self.label);
            }
            return false;
        };
        if self.seen != Some(now) {
            // First read, or a namespace made again under the same path.
            if self.seen.is_some() || self.state == NamespaceState::Missing {
                if !discovered {
                    info!("{}: there (again); reading it", self.label);
                }
                self.state = NamespaceState::Starting;
            }
            self.step.netlink.close();
            self.seen = Some(now);
        }
        match self.step.gather(table) {
            Ok(()) => {
                let was = self.moved_to(NamespaceState::Reading);
                if was.is_some_and(|was| !discovered || was == NamespaceState::Failing) {
                    info!("{}: reading sockets from netlink (sock_diag)", self.label);
                }
                true
            }
            Err(err) => {
                if self.moved_to(NamespaceState::Failing).is_some() {
                    warn!(
                        "{}: netlink failed: {err}; nothing dispatched for it until it works",
                        self.label
                    );
                }
                false
            }
        }
    }

    /// Moves to `state`; the state before when that is a change, to be
    /// logged once.
    fn moved_to(&mut self, state: NamespaceState) -> Option<NamespaceState> {
        let was = std::mem::replace(&mut self.state, state);
        (was != state).then_some(was)
    }
}
