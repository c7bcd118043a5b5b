//! End-to-end test harness for the tcpconns plugin.
//!
//! Use from an integration test with `mod common;`. It provides:
//! - [`Netns`]: a throw-away network namespace (needs root and `ip`).
//! - [`Population`]: a known set of TCP sockets inside a namespace, with the
//!   `(local port, remote port, state)` triples they should show ([`Sock`]).
//! - [`run_collectd`] / [`run_collectd_opts`] / [`run_collectd_config`]: run
//!   the real collectd with the csv writer and read back what the tcpconns
//!   plugin dispatched.
//! - [`plugin_dir`]: a release build of this crate's `tcpconns.so`.
//! - [`no_netlink_shim`]: the LD_PRELOAD shim from `tests/shim/no_netlink.c`.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Read;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Linux TCP state numbers (as in `/proc/net/tcp` and sock_diag).
pub const TCP_ESTABLISHED: u8 = 1;
/// See [`TCP_ESTABLISHED`].
pub const TCP_SYN_SENT: u8 = 2;
/// See [`TCP_ESTABLISHED`].
pub const TCP_SYN_RECV: u8 = 3;
/// See [`TCP_ESTABLISHED`].
pub const TCP_FIN_WAIT1: u8 = 4;
/// See [`TCP_ESTABLISHED`].
pub const TCP_FIN_WAIT2: u8 = 5;
/// See [`TCP_ESTABLISHED`].
pub const TCP_TIME_WAIT: u8 = 6;
/// See [`TCP_ESTABLISHED`].
pub const TCP_CLOSE: u8 = 7;
/// See [`TCP_ESTABLISHED`].
pub const TCP_CLOSE_WAIT: u8 = 8;
/// See [`TCP_ESTABLISHED`].
pub const TCP_LAST_ACK: u8 = 9;
/// See [`TCP_ESTABLISHED`].
pub const TCP_LISTEN: u8 = 10;
/// See [`TCP_ESTABLISHED`].
pub const TCP_CLOSING: u8 = 11;

/// collectd's type_instance names for states 1..=11 (index = state number,
/// index 0 unused), exactly as the C plugin spells them.
pub const STATE_NAMES: [&str; 12] = [
    "",
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSED",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
];

/// collectd's type_instance name for a Linux TCP state number.
pub fn state_name(state: u8) -> &'static str {
    STATE_NAMES
        .get(state as usize)
        .copied()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| panic!("no TCP state number {state}"))
}

static UNIQUE: AtomicUsize = AtomicUsize::new(0);

/// A process-wide unique number (for names of namespaces and temp dirs).
fn unique() -> usize {
    UNIQUE.fetch_add(1, Ordering::Relaxed)
}

/// Runs a command, panicking with its output if it cannot start or fails.
fn run_checked(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{what}: {cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

// ---------------------------------------------------------------------------
// Network namespaces
// ---------------------------------------------------------------------------

/// A named network namespace (`ip netns add`), deleted on drop.
///
/// Inside it: `lo` is up, `net.ipv4.ip_local_port_range` is `40000 49999`
/// (ephemeral ports never collide with test listener ports below 40000) and
/// `net.ipv4.tcp_tw_reuse` is 0 (a new connect never recycles a TIME_WAIT
/// socket of the population).
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `tcpc-<tag>-<pid>-<counter>` and configures it; panics on failure.
    pub fn new(tag: &str) -> Netns {
        Netns::with_name(format!("tcpc-{tag}-{}-{}", std::process::id(), unique()))
    }

    /// Creates and configures the namespace `name` exactly; panics on failure.
    pub fn with_name(name: String) -> Netns {
        run_checked(
            Command::new("ip").args(["netns", "add", &name]),
            "create network namespace",
        );
        // From here on, Drop cleans up even if the setup below panics.
        let ns = Netns { name };
        run_checked(
            Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]),
            "bring lo up in namespace",
        );
        for setting in [
            "net.ipv4.ip_local_port_range=40000 49999",
            "net.ipv4.tcp_tw_reuse=0",
        ] {
            run_checked(
                Command::new("ip").args(["netns", "exec", &ns.name, "sysctl", "-q", "-w", setting]),
                "set sysctl in namespace",
            );
        }
        ns
    }

    /// The namespace name as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `f` on a new thread that has joined this namespace first.
    ///
    /// Sockets created by `f` belong to the namespace and stay there after
    /// the thread ends. A panic inside `f` is propagated.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        enter_netns(&self.name, f)
    }

    /// Runs `ip netns exec NAME cmd args...` and returns its output
    /// (panics only if `ip` cannot be started).
    pub fn exec(&self, cmd: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name, cmd])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run ip netns exec {} {cmd}: {e}", self.name))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        match Command::new("ip")
            .args(["netns", "del", &self.name])
            .output()
        {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "warning: ip netns del {} failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("warning: cannot run ip netns del {}: {e}", self.name),
        }
    }
}

/// Runs `f` on a new thread that first joins the namespace `/run/netns/<name>`.
pub fn enter_netns<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{name}");
    std::thread::scope(|s| {
        let handle = s.spawn(move || {
            let file = fs::File::open(&path)
                .unwrap_or_else(|e| panic!("open {path} (does the namespace exist?): {e}"));
            // SAFETY: plain syscall on a valid fd; affects only this thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                panic!(
                    "setns({path}, CLONE_NEWNET) failed: {}",
                    std::io::Error::last_os_error()
                );
            }
            drop(file);
            f()
        });
        match handle.join() {
            Ok(v) => v,
            Err(payload) => std::panic::resume_unwind(payload),
        }
    })
}

// ---------------------------------------------------------------------------
// Socket populations
// ---------------------------------------------------------------------------

/// One socket as tcpconns sees it: local port, remote port (0 for a
/// listener) and Linux TCP state number (see the `TCP_*` constants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sock {
    /// Local port.
    pub local: u16,
    /// Remote port (0 for listeners).
    pub remote: u16,
    /// Linux TCP state number.
    pub state: u8,
}

/// What address a listener is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenKind {
    /// `127.0.0.1:port` (AF_INET).
    V4,
    /// `[::1]:port` (AF_INET6, accepts only IPv6).
    V6,
    /// `[::]:port` dual-stack (AF_INET6, accepts IPv4 as `::ffff:a.b.c.d`).
    Dual,
}

/// Address family of the connections made by [`Population::established`] & co.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// From 127.0.0.1 to 127.0.0.1 (listener: `listen_v4`, else `listen_dual`).
    V4,
    /// From ::1 to ::1 (listener: `listen_v6`, else `listen_dual`).
    V6,
    /// From 127.0.0.1 to a dual-stack `listen_dual` listener: the accepted
    /// socket is AF_INET6 with an IPv4-mapped address.
    Mapped,
}

/// A listening socket of a [`Population`].
#[derive(Debug)]
pub struct Listener {
    /// Bound port.
    pub port: u16,
    /// Bound address kind.
    pub kind: ListenKind,
    /// The socket (non-blocking).
    pub socket: TcpListener,
}

/// A set of sockets inside one namespace, kept open, plus the entries
/// ([`Sock`]) that `ss -tan` should show for them.
///
/// Builder methods run inside the namespace and return `&mut Self` for
/// chaining: `pop.listen_v4(22).established(22, 3, Family::V4);`.
/// Connections are made one at a time (connect, then accept), so the
/// result is deterministic.
#[derive(Debug)]
pub struct Population {
    /// Namespace the sockets live in.
    pub netns: String,
    /// Listening sockets.
    pub listeners: Vec<Listener>,
    /// Connected sockets (both ends), kept open.
    pub streams: Vec<TcpStream>,
    /// Expected `(local, remote, state)` entries, one per kernel socket.
    pub expected: Vec<Sock>,
}

const ACCEPT_TIMEOUT: Duration = Duration::from_secs(5);

impl Population {
    /// An empty population in `ns`.
    pub fn new(ns: &Netns) -> Population {
        Population {
            netns: ns.name().to_string(),
            listeners: Vec::new(),
            streams: Vec::new(),
            expected: Vec::new(),
        }
    }

    fn listen(&mut self, kind: ListenKind, port: u16) -> &mut Self {
        assert_ne!(port, 0, "listener port must be fixed (not 0)");
        let addr: SocketAddr = match kind {
            ListenKind::V4 => format!("127.0.0.1:{port}"),
            ListenKind::V6 => format!("[::1]:{port}"),
            ListenKind::Dual => format!("[::]:{port}"),
        }
        .parse()
        .expect("listener address parses");
        let socket = enter_netns(&self.netns, || {
            let l = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
            l.set_nonblocking(true)
                .unwrap_or_else(|e| panic!("set_nonblocking on {addr}: {e}"));
            l
        });
        let port = socket.local_addr().expect("listener local_addr").port();
        self.listeners.push(Listener { port, kind, socket });
        self.expected.push(Sock {
            local: port,
            remote: 0,
            state: TCP_LISTEN,
        });
        self
    }

    /// Adds a LISTEN socket on `127.0.0.1:port`.
    pub fn listen_v4(&mut self, port: u16) -> &mut Self {
        self.listen(ListenKind::V4, port)
    }

    /// Adds a LISTEN socket on `[::1]:port` (IPv6 only, by its address).
    pub fn listen_v6(&mut self, port: u16) -> &mut Self {
        self.listen(ListenKind::V6, port)
    }

    /// Adds a dual-stack LISTEN socket on `[::]:port` (Linux default V6ONLY=0).
    pub fn listen_dual(&mut self, port: u16) -> &mut Self {
        self.listen(ListenKind::Dual, port)
    }

    /// Index of a listener on `port` that accepts connections of `family`.
    fn listener_for(&self, port: u16, family: Family) -> usize {
        let wanted: &[ListenKind] = match family {
            Family::V4 => &[ListenKind::V4, ListenKind::Dual],
            Family::V6 => &[ListenKind::V6, ListenKind::Dual],
            Family::Mapped => &[ListenKind::Dual],
        };
        for kind in wanted {
            if let Some(i) = self
                .listeners
                .iter()
                .position(|l| l.port == port && l.kind == *kind)
            {
                return i;
            }
        }
        panic!(
            "no listener on port {port} accepts {family:?} connections; \
             create one with listen_v4/listen_v6/listen_dual first"
        );
    }

    /// Connects once to listener `idx` (inside the namespace) and accepts;
    /// returns (client, server).
    fn connect_pair(&self, idx: usize, family: Family) -> (TcpStream, TcpStream) {
        let l = &self.listeners[idx];
        let target: SocketAddr = match family {
            Family::V4 | Family::Mapped => format!("127.0.0.1:{}", l.port),
            Family::V6 => format!("[::1]:{}", l.port),
        }
        .parse()
        .expect("target address parses");
        let listener = &l.socket;
        enter_netns(&self.netns, || {
            let client =
                TcpStream::connect(target).unwrap_or_else(|e| panic!("connect to {target}: {e}"));
            let client_port = client.local_addr().expect("client local_addr").port();
            let deadline = Instant::now() + ACCEPT_TIMEOUT;
            let server = loop {
                match listener.accept() {
                    Ok((s, peer)) => {
                        assert_eq!(
                            peer.port(),
                            client_port,
                            "accepted a connection that is not the one just made"
                        );
                        break s;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if Instant::now() > deadline {
                            panic!("accept on port {} timed out", l.port);
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => panic!("accept on port {}: {e}", l.port),
                }
            };
            server
                .set_nonblocking(false)
                .expect("set accepted socket blocking");
            (client, server)
        })
    }

    /// Makes `n` connections of `family` to the listener on `listener_port`
    /// and keeps both ends: 2n ESTABLISHED entries (client: ephemeral ->
    /// listener port; server: listener port -> ephemeral).
    pub fn established(&mut self, listener_port: u16, n: usize, family: Family) -> &mut Self {
        let idx = self.listener_for(listener_port, family);
        for _ in 0..n {
            let (client, server) = self.connect_pair(idx, family);
            let c = client.local_addr().expect("client local_addr").port();
            let s = server.local_addr().expect("server local_addr").port();
            self.expected.push(Sock {
                local: c,
                remote: s,
                state: TCP_ESTABLISHED,
            });
            self.expected.push(Sock {
                local: s,
                remote: c,
                state: TCP_ESTABLISHED,
            });
            self.streams.push(client);
            self.streams.push(server);
        }
        self
    }

    /// Makes `n` IPv4 connections (IPv6 if the port only has a `listen_v6`
    /// listener) that end with the client in TIME_WAIT: the client closes
    /// first, the server waits for the FIN, then closes. Only the client
    /// entry (ephemeral -> listener port, state 6) remains; it lasts 60 s.
    pub fn time_wait(&mut self, listener_port: u16, n: usize) -> &mut Self {
        let family = self.any_family(listener_port);
        let idx = self.listener_for(listener_port, family);
        for _ in 0..n {
            let (client, mut server) = self.connect_pair(idx, family);
            let c = client.local_addr().expect("client local_addr").port();
            let s = server.local_addr().expect("server local_addr").port();
            drop(client);
            wait_eof(&mut server);
            drop(server);
            self.expected.push(Sock {
                local: c,
                remote: s,
                state: TCP_TIME_WAIT,
            });
        }
        self
    }

    /// Makes `n` connections where the client half-closes (`shutdown(Write)`)
    /// and both ends stay open: client FIN_WAIT2 (5), server CLOSE_WAIT (8).
    pub fn close_wait_pairs(&mut self, listener_port: u16, n: usize) -> &mut Self {
        let family = self.any_family(listener_port);
        let idx = self.listener_for(listener_port, family);
        for _ in 0..n {
            let (client, mut server) = self.connect_pair(idx, family);
            let c = client.local_addr().expect("client local_addr").port();
            let s = server.local_addr().expect("server local_addr").port();
            client
                .shutdown(Shutdown::Write)
                .expect("shutdown(Write) on client");
            wait_eof(&mut server);
            self.expected.push(Sock {
                local: c,
                remote: s,
                state: TCP_FIN_WAIT2,
            });
            self.expected.push(Sock {
                local: s,
                remote: c,
                state: TCP_CLOSE_WAIT,
            });
            self.streams.push(client);
            self.streams.push(server);
        }
        self
    }

    /// A family some listener on `port` accepts (IPv4 preferred).
    fn any_family(&self, port: u16) -> Family {
        let kinds: Vec<ListenKind> = self
            .listeners
            .iter()
            .filter(|l| l.port == port)
            .map(|l| l.kind)
            .collect();
        if kinds.contains(&ListenKind::V4) || kinds.contains(&ListenKind::Dual) {
            Family::V4
        } else if kinds.contains(&ListenKind::V6) {
            Family::V6
        } else {
            panic!("no listener on port {port}; create one with listen_* first")
        }
    }

    /// Waits (at most 10 s) until `ss -Htan` in `ns` shows exactly the
    /// multiset `expected`; panics with a diff otherwise.
    pub fn settle(&self, ns: &Netns) {
        let want = multiset(&self.expected);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (got_list, raw) = ss_snapshot(ns);
            let got = multiset(&got_list);
            if got == want {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "sockets in {} did not settle within 10 s\n{}\nss -Htan:\n{raw}",
                    ns.name(),
                    multiset_diff(&want, &got)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Reads from `s` until EOF (the peer's FIN arrived); panics after 5 s.
fn wait_eof(s: &mut TcpStream) {
    s.set_read_timeout(Some(ACCEPT_TIMEOUT))
        .expect("set_read_timeout");
    let mut buf = [0u8; 64];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("waiting for the peer's FIN: {e}"),
        }
    }
}

/// Counts each entry of `socks`.
pub fn multiset(socks: &[Sock]) -> BTreeMap<Sock, usize> {
    let mut m = BTreeMap::new();
    for s in socks {
        *m.entry(*s).or_insert(0) += 1;
    }
    m
}

/// Human-readable difference between two multisets ("missing"/"unexpected").
pub fn multiset_diff(want: &BTreeMap<Sock, usize>, got: &BTreeMap<Sock, usize>) -> String {
    let mut out = String::new();
    for (s, &w) in want {
        let g = got.get(s).copied().unwrap_or(0);
        if g < w {
            out += &format!(
                "  missing    {}x {:?} ({})\n",
                w - g,
                s,
                state_name(s.state)
            );
        }
    }
    for (s, &g) in got {
        let w = want.get(s).copied().unwrap_or(0);
        if g > w {
            out += &format!(
                "  unexpected {}x {:?} ({})\n",
                g - w,
                s,
                state_name(s.state)
            );
        }
    }
    out
}

/// Linux TCP state number for an `ss` state name.
pub fn ss_state(name: &str) -> Option<u8> {
    Some(match name {
        "ESTAB" => TCP_ESTABLISHED,
        "SYN-SENT" => TCP_SYN_SENT,
        "SYN-RECV" => TCP_SYN_RECV,
        "FIN-WAIT-1" => TCP_FIN_WAIT1,
        "FIN-WAIT-2" => TCP_FIN_WAIT2,
        "TIME-WAIT" => TCP_TIME_WAIT,
        "UNCONN" | "CLOSE" => TCP_CLOSE,
        "CLOSE-WAIT" => TCP_CLOSE_WAIT,
        "LAST-ACK" => TCP_LAST_ACK,
        "LISTEN" => TCP_LISTEN,
        "CLOSING" => TCP_CLOSING,
        _ => return None,
    })
}

/// Port of an `ss` address (`127.0.0.1:80`, `[::1]:80`, `*:80`, `0.0.0.0:*`);
/// `*` gives 0.
pub fn ss_port(addr: &str) -> Option<u16> {
    let (_, port) = addr.rsplit_once(':')?;
    if port == "*" {
        Some(0)
    } else {
        port.parse().ok()
    }
}

/// Parses `ss -Htan` output into entries; panics on a line it cannot read.
pub fn parse_ss(text: &str) -> Vec<Sock> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let parsed = (|| {
                let state = ss_state(f.first()?)?;
                let local = ss_port(f.get(3)?)?;
                let remote = ss_port(f.get(4)?)?;
                Some(Sock {
                    local,
                    remote,
                    state,
                })
            })();
            parsed.unwrap_or_else(|| panic!("cannot parse ss line: {line:?}"))
        })
        .collect()
}

/// All TCP sockets in `ns` per `ss -Htan`, plus the raw output.
pub fn ss_snapshot(ns: &Netns) -> (Vec<Sock>, String) {
    let out = ns.exec("ss", &["-Htan"]);
    assert!(
        out.status.success(),
        "ss -Htan in {} failed: {}",
        ns.name(),
        String::from_utf8_lossy(&out.stderr)
    );
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    (parse_ss(&raw), raw)
}

// ---------------------------------------------------------------------------
// Plugin builds
// ---------------------------------------------------------------------------

/// Which `tcpconns.so` collectd loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plugin {
    /// This crate's release build (from [`plugin_dir`]).
    Ours,
    /// Debian's C plugin, `/usr/lib/collectd/tcpconns.so`.
    Stock,
    /// A debug build of ours with the `fault-injection` feature (from
    /// [`fault_plugin_dir`]): `TCPCONNS_FAULT` makes it panic on purpose.
    Faulty,
}

/// Debian's plugin directory.
pub const STOCK_PLUGIN_DIR: &str = "/usr/lib/collectd";

/// Directory holding this crate's `tcpconns.so` (a copy of the release
/// `libtcpconns.so`). Built once per process with `cargo build --release
/// --lib`; panics if the build fails or the library does not import
/// `plugin_dispatch_values` (a `stub` build, which drops every value).
pub fn plugin_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(build_plugin).clone()
}

fn build_plugin() -> PathBuf {
    let manifest_dir = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(env!("CARGO"))
        .current_dir(manifest_dir)
        .args([
            "build",
            "--release",
            "--lib",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::piped())
        .output()
        .expect("cannot run cargo build --release --lib");
    if !out.status.success() {
        panic!(
            "cargo build --release --lib failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Find the artifact path in the JSON messages (no serde here).
    let stdout = String::from_utf8_lossy(&out.stdout);
    let needle = "libtcpconns.so\"";
    let built = stdout
        .lines()
        .filter(|l| l.contains("\"compiler-artifact\""))
        .find_map(|l| {
            let end = l.find(needle)? + needle.len() - 1;
            let start = l[..end].rfind('"')? + 1;
            Some(PathBuf::from(&l[start..end]))
        })
        .unwrap_or_else(|| Path::new(manifest_dir).join("target/release/libtcpconns.so"));
    assert!(
        built.is_file(),
        "cargo build did not produce {}",
        built.display()
    );

    // <target>/release/libtcpconns.so -> <target>/e2e-plugins/tcpconns.so
    let target = built
        .parent()
        .and_then(Path::parent)
        .expect("artifact path has a target directory");
    let dir = target.join("e2e-plugins");
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    // Copy then rename, so a concurrently running test binary never loads a
    // half-written file.
    let tmp = dir.join(format!("tcpconns.so.tmp-{}", std::process::id()));
    let dest = dir.join("tcpconns.so");
    fs::copy(&built, &tmp)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", built.display(), tmp.display()));
    fs::rename(&tmp, &dest)
        .unwrap_or_else(|e| panic!("rename {} to {}: {e}", tmp.display(), dest.display()));

    let nm = run_checked(
        Command::new("nm").arg("-D").arg(&dest),
        "nm -D on the plugin",
    );
    let syms = String::from_utf8_lossy(&nm.stdout);
    let imports_dispatch = syms.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f == ["U", "plugin_dispatch_values"]
    });
    assert!(
        imports_dispatch,
        "{} does not import plugin_dispatch_values (built with the collectd-plugin `stub` \
         feature?); nm -D:\n{syms}",
        dest.display()
    );
    dir
}

/// The LD_PRELOAD shim built from `tests/shim/proc_faults.c` (see there):
/// `PROC_FAULTS` makes chosen files fail to open, or opens others instead.
pub fn proc_faults_shim() -> PathBuf {
    static SHIM: OnceLock<PathBuf> = OnceLock::new();
    SHIM.get_or_init(|| build_shim("proc_faults")).clone()
}

/// Compiles `tests/shim/NAME.c` into `NAME.so` in the test target directory
/// (through a temporary name, so a concurrent test never loads half a file).
fn build_shim(name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/shim/{name}.c"));
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let tmp = dir.join(format!("{name}.so.tmp-{}", std::process::id()));
    let dest = dir.join(format!("{name}.so"));
    run_checked(
        Command::new("cc")
            .args(["-shared", "-fPIC", "-O2", "-Wall", "-o"])
            .arg(&tmp)
            .arg(&src)
            .arg("-ldl"),
        &format!("compile the {name} shim"),
    );
    fs::rename(&tmp, &dest)
        .unwrap_or_else(|e| panic!("rename {} to {}: {e}", tmp.display(), dest.display()));
    dest
}

/// Directory holding a debug `tcpconns.so` built with the `fault-injection`
/// feature, in its own target directory so it never replaces the release
/// build the other tests load. Built once per process.
pub fn fault_plugin_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = manifest_dir.join("target/fault-injection");
        run_checked(
            Command::new(env!("CARGO"))
                .current_dir(manifest_dir)
                .args([
                    "build",
                    "--lib",
                    "--features",
                    "fault-injection",
                    "--target-dir",
                ])
                .arg(&target),
            "build the fault-injection plugin",
        );
        let dir = target.join("plugins");
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        fs::copy(target.join("debug/libtcpconns.so"), dir.join("tcpconns.so"))
            .expect("copy the fault-injection plugin");
        dir
    })
    .clone()
}

/// The LD_PRELOAD shim built from `tests/shim/no_netlink.c` (once per
/// process, with `cc`). See the C file for what it does; use it as
/// `env: &[("LD_PRELOAD", path), ("NO_NETLINK_FLAG", flag)]`.
pub fn no_netlink_shim() -> PathBuf {
    static SHIM: OnceLock<PathBuf> = OnceLock::new();
    SHIM.get_or_init(|| build_shim("no_netlink")).clone()
}

/// The LD_PRELOAD shim built from `tests/shim/kill_on_capset.c`: a seccomp
/// filter, installed before collectd's `main`, that kills the process on
/// `capset`.
pub fn kill_on_capset_shim() -> PathBuf {
    static SHIM: OnceLock<PathBuf> = OnceLock::new();
    SHIM.get_or_init(|| build_shim("kill_on_capset")).clone()
}

// ---------------------------------------------------------------------------
// Running collectd
// ---------------------------------------------------------------------------

/// Outcome of one collectd run.
#[derive(Debug)]
pub struct Run {
    /// Last value of each csv file, keyed by (plugin_instance,
    /// type_instance), e.g. `("22-local", "LISTEN") -> 1.0`.
    pub values: BTreeMap<(String, String), f64>,
    /// Every row of each csv file, oldest first: (epoch seconds, value).
    /// More than one row only when collectd read more than once.
    pub rows: BTreeMap<(String, String), Vec<(f64, f64)>>,
    /// collectd's log file, then its stderr (and stdout if any).
    pub log: String,
    /// Exit status; `None` if collectd was still running and got killed.
    pub status: Option<ExitStatus>,
}

impl Run {
    /// Value for (plugin_instance, type_instance), if dispatched.
    pub fn get(&self, plugin_instance: &str, type_instance: &str) -> Option<f64> {
        self.values
            .get(&(plugin_instance.to_string(), type_instance.to_string()))
            .copied()
    }

    /// Sorted, de-duplicated plugin instances that were dispatched.
    pub fn plugin_instances(&self) -> Vec<String> {
        let mut v: Vec<String> = self.values.keys().map(|(p, _)| p.clone()).collect();
        v.dedup();
        v
    }
}

/// A started collectd with its scratch directory.
struct Started {
    dir: PathBuf,
    child: Child,
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Writes collectd.conf into `dir` and returns its path.
fn write_config(dir: &Path, plugin: Plugin, plugin_block: &str, interval_secs: u32) -> PathBuf {
    let d = dir.to_str().expect("temp dir path is UTF-8");
    let mut c = String::new();
    c += "Hostname \"test\"\nFQDNLookup false\n";
    c += &format!("Interval {interval_secs}\n");
    c += "WriteThreads 1\nReadThreads 1\n";
    c += &format!(
        "BaseDir {}\nPIDFile {}\n",
        quote(d),
        quote(&format!("{d}/collectd.pid"))
    );
    c += "TypesDB \"/usr/share/collectd/types.db\"\n";
    c += &format!("PluginDir {}\n\n", quote(STOCK_PLUGIN_DIR));
    c += "LoadPlugin logfile\n<Plugin logfile>\n  LogLevel \"info\"\n";
    c += &format!("  File {}\n", quote(&format!("{d}/collectd.log")));
    c += "  Timestamp false\n  PrintSeverity true\n</Plugin>\n\n";
    c += "LoadPlugin csv\n<Plugin csv>\n";
    c += &format!("  DataDir {}\n", quote(&format!("{d}/csv")));
    c += "  StoreRates false\n</Plugin>\n\n";
    match plugin {
        Plugin::Ours | Plugin::Faulty => {
            let pd = match plugin {
                Plugin::Faulty => fault_plugin_dir(),
                _ => plugin_dir(),
            };
            c += &format!(
                "PluginDir {}\nLoadPlugin tcpconns\nPluginDir {}\n\n",
                quote(pd.to_str().expect("plugin dir is UTF-8")),
                quote(STOCK_PLUGIN_DIR)
            );
        }
        Plugin::Stock => c += "LoadPlugin tcpconns\n\n",
    }
    c += plugin_block;
    c += "\n";
    let conf = dir.join("collectd.conf");
    fs::write(&conf, c).unwrap_or_else(|e| panic!("write {}: {e}", conf.display()));
    conf
}

fn start_collectd(
    ns: Option<&Netns>,
    plugin: Plugin,
    plugin_block: &str,
    env: &[(&str, &str)],
    interval_secs: u32,
) -> Started {
    let dir = std::env::temp_dir().join(format!(
        "tcpc-run-{}-{}-{}",
        std::process::id(),
        unique(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let conf = write_config(&dir, plugin, plugin_block, interval_secs);

    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns.name(), "/usr/sbin/collectd"]);
            c
        }
        None => Command::new("/usr/sbin/collectd"),
    };
    cmd.arg("-f").arg("-C").arg(&conf);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let stdout = fs::File::create(dir.join("stdout")).expect("create collectd stdout file");
    let stderr = fs::File::create(dir.join("stderr")).expect("create collectd stderr file");
    cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start collectd ({cmd:?}): {e}"));
    Started { dir, child }
}

/// SIGTERM, wait up to 5 s, then SIGKILL. Returns the exit status.
fn stop(child: &mut Child) -> ExitStatus {
    if let Ok(Some(st)) = child.try_wait() {
        return st;
    }
    // `ip netns exec` execs collectd in place, so this PID is collectd's.
    // SAFETY: sending a signal to our own child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(st)) => return st,
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("waiting for collectd: {e}"),
        }
    }
    eprintln!("collectd did not stop within 5 s of SIGTERM; killing it");
    let _ = child.kill();
    child.wait().expect("wait for killed collectd")
}

/// Every tcpconns csv file: (plugin_instance, type_instance, path), sorted;
/// for types other than tcp_connections the second item is "type-instance".
fn tcpconns_files(dir: &Path) -> Vec<(String, String, PathBuf)> {
    let host = dir.join("csv").join("test");
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(&host) else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pinst) = name.strip_prefix("tcpconns-") else {
            continue;
        };
        let Ok(files) = fs::read_dir(e.path()) else {
            continue;
        };
        for f in files.flatten() {
            let fname = f.file_name().to_string_lossy().into_owned();
            // tcp_connections files are keyed by state alone; other types
            // (queue_length) by "type-type_instance".
            let rest = fname.strip_prefix("tcp_connections-").unwrap_or(&fname);
            // Strip the "-YYYY-MM-DD" date suffix the csv plugin appends.
            if rest.len() < 11 || !rest.is_char_boundary(rest.len() - 11) {
                continue;
            }
            let (tinst, date) = rest.split_at(rest.len() - 11);
            let date_ok = date.len() == 11
                && date.starts_with('-')
                && date[1..].chars().enumerate().all(|(i, ch)| {
                    if i == 4 || i == 7 {
                        ch == '-'
                    } else {
                        ch.is_ascii_digit()
                    }
                });
            if date_ok {
                out.push((pinst.to_string(), tinst.to_string(), f.path()));
            }
        }
    }
    out.sort();
    out
}

/// Data rows of one csv file: (epoch seconds, value). Skips the
/// "epoch,value" header; panics on a row it cannot parse.
fn csv_rows(path: &Path) -> Vec<(f64, f64)> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    // The last line may be half-written while collectd runs: only complete
    // (newline-terminated) lines count.
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    complete
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with("epoch"))
        .map(|l| {
            let mut f = l.split(',');
            let t = f.next().and_then(|s| s.trim().parse::<f64>().ok());
            let v = f.next().and_then(|s| s.trim().parse::<f64>().ok());
            match (t, v) {
                (Some(t), Some(v)) => (t, v),
                _ => panic!("bad csv row {l:?} in {}", path.display()),
            }
        })
        .collect()
}

/// (number of tcpconns files, total data rows, most data rows in one file).
fn csv_progress(dir: &Path) -> (usize, usize, usize) {
    let files = tcpconns_files(dir);
    let counts: Vec<usize> = files.iter().map(|(_, _, p)| csv_rows(p).len()).collect();
    (
        files.len(),
        counts.iter().sum(),
        counts.iter().copied().max().unwrap_or(0),
    )
}

/// Last value and all rows of each tcpconns csv file. If a run spans
/// midnight, the files of both dates are concatenated in date order.
#[allow(clippy::type_complexity)]
fn read_values(
    dir: &Path,
) -> (
    BTreeMap<(String, String), f64>,
    BTreeMap<(String, String), Vec<(f64, f64)>>,
) {
    let mut rows: BTreeMap<(String, String), Vec<(f64, f64)>> = BTreeMap::new();
    for (pinst, tinst, path) in tcpconns_files(dir) {
        rows.entry((pinst, tinst))
            .or_default()
            .extend(csv_rows(&path));
    }
    let values = rows
        .iter()
        .filter_map(|(k, r)| r.last().map(|&(_, v)| (k.clone(), v)))
        .collect();
    (values, rows)
}

/// Log file contents followed by stderr (and stdout when not empty).
fn read_log(dir: &Path) -> String {
    let mut log = fs::read_to_string(dir.join("collectd.log")).unwrap_or_default();
    if !log.is_empty() && !log.ends_with('\n') {
        log.push('\n');
    }
    let stderr = fs::read_to_string(dir.join("stderr")).unwrap_or_default();
    if !stderr.is_empty() {
        log += "--- stderr ---\n";
        log += &stderr;
    }
    let stdout = fs::read_to_string(dir.join("stdout")).unwrap_or_default();
    if !stdout.is_empty() {
        log += "--- stdout ---\n";
        log += &stdout;
    }
    log
}

/// Removes the run directory unless `KEEP_TMP` is set.
fn cleanup(dir: &Path) {
    if std::env::var_os("KEEP_TMP").is_some() {
        eprintln!("KEEP_TMP: kept collectd run directory {}", dir.display());
    } else if let Err(e) = fs::remove_dir_all(dir) {
        eprintln!("warning: cannot remove {}: {e}", dir.display());
    }
}

/// Options for [`run_collectd_opts`].
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Global `Interval` in seconds. 3600 (the default) means exactly one
    /// read, at start.
    pub interval_secs: u32,
    /// With a short interval: stop once some tcpconns csv file has at least
    /// this many data rows (reads that dispatched), and output has been
    /// quiet for 300 ms (so collectd is between two reads).
    pub min_rows: usize,
    /// Give up waiting after this long and return what there is.
    pub timeout: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            interval_secs: 3600,
            min_rows: 1,
            timeout: Duration::from_secs(15),
        }
    }
}

/// Runs collectd (`-f`, Interval 3600: one read at start) inside `ns` with
/// `plugin` and `plugin_block` (verbatim, e.g. `"<Plugin tcpconns>\n
/// LocalPort 22\n</Plugin>"`, or `""`) and extra environment `env`.
///
/// Waits until tcpconns csv output exists and files/rows have not changed
/// for 1.5 s (at most 15 s: a run where the plugin dispatches nothing takes
/// the full 15 s), or until collectd exits; then stops it (SIGTERM) and
/// returns the values, the log and the exit status.
pub fn run_collectd(ns: &Netns, plugin: Plugin, plugin_block: &str, env: &[(&str, &str)]) -> Run {
    run_collectd_opts(ns, plugin, plugin_block, env, &RunOptions::default())
}

/// [`run_collectd`] with a chosen interval / stop rule (see [`RunOptions`]),
/// for tests that need several reads (e.g. the C plugin dispatches nothing
/// on the read where netlink first fails, and reads /proc from the next one).
pub fn run_collectd_opts(
    ns: &Netns,
    plugin: Plugin,
    plugin_block: &str,
    env: &[(&str, &str)],
    opts: &RunOptions,
) -> Run {
    let Started { dir, mut child } =
        start_collectd(Some(ns), plugin, plugin_block, env, opts.interval_secs);
    let single_read = opts.interval_secs >= 3600;
    let quiet = if single_read {
        Duration::from_millis(1500)
    } else {
        Duration::from_millis(300)
    };
    let start = Instant::now();
    let mut last = (0, 0, 0);
    let mut last_change = Instant::now();
    let mut exited = None;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        match child.try_wait() {
            Ok(Some(st)) => {
                exited = Some(st);
                break;
            }
            Ok(None) => {}
            Err(e) => panic!("waiting for collectd: {e}"),
        }
        let now = csv_progress(&dir);
        let (files, _, max_rows) = now;
        if now != last {
            last = now;
            last_change = Instant::now();
        } else if files > 0
            && (single_read || max_rows >= opts.min_rows)
            && last_change.elapsed() >= quiet
        {
            break;
        }
        if start.elapsed() >= opts.timeout {
            eprintln!(
                "run_collectd: gave up waiting for csv output after {:?} (files, rows, max rows per file) = {last:?}",
                opts.timeout
            );
            break;
        }
    }
    let status = match exited {
        Some(st) => st,
        None => stop(&mut child),
    };
    let (values, rows) = read_values(&dir);
    let run = Run {
        values,
        rows,
        log: read_log(&dir),
        status: Some(status),
    };
    cleanup(&dir);
    run
}

/// A collectd started in the background, for tests that act while it runs.
pub struct Collectd {
    dir: PathBuf,
    child: Child,
}

impl Collectd {
    /// Starts collectd in `ns` with the given global interval.
    pub fn start(
        ns: &Netns,
        plugin: Plugin,
        plugin_block: &str,
        env: &[(&str, &str)],
        interval_secs: u32,
    ) -> Collectd {
        let Started { dir, child } =
            start_collectd(Some(ns), plugin, plugin_block, env, interval_secs);
        Collectd { dir, child }
    }

    /// Reads that reached csv so far (the most rows in any tcpconns file).
    pub fn reads(&self) -> usize {
        csv_progress(&self.dir).2
    }

    /// Waits until `n` reads reached csv; panics with the log after `timeout`.
    pub fn wait_reads(&mut self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.reads() < n {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!(
                    "collectd exited ({st}) before {n} reads:\n{}",
                    read_log(&self.dir)
                );
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} reads after {timeout:?}:\n{}",
                self.reads(),
                read_log(&self.dir)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The log so far.
    pub fn log(&self) -> String {
        read_log(&self.dir)
    }

    /// Stops collectd and returns what it wrote; `status` is `None` when it
    /// was still running (it did not exit on its own).
    pub fn finish(mut self) -> Run {
        let status = match self.child.try_wait() {
            Ok(Some(st)) => Some(st),
            _ => {
                stop(&mut self.child);
                None
            }
        };
        let (values, rows) = read_values(&self.dir);
        let run = Run {
            values,
            rows,
            log: read_log(&self.dir),
            status,
        };
        cleanup(&self.dir);
        run
    }
}

/// For config-error tests: starts collectd (inside `ns_or_none`, or in the
/// test's own namespace for `None`) and waits until it exits or `wait`
/// elapses. `status` is `None` if it was still running and had to be
/// stopped. `values` holds whatever reached csv.
pub fn run_collectd_config(
    ns_or_none: Option<&Netns>,
    plugin: Plugin,
    plugin_block: &str,
    wait: Duration,
) -> Run {
    run_collectd_config_env(ns_or_none, plugin, plugin_block, &[], wait)
}

/// [`run_collectd_config`] with extra environment for collectd.
pub fn run_collectd_config_env(
    ns_or_none: Option<&Netns>,
    plugin: Plugin,
    plugin_block: &str,
    env: &[(&str, &str)],
    wait: Duration,
) -> Run {
    let Started { dir, mut child } = start_collectd(ns_or_none, plugin, plugin_block, env, 3600);
    let deadline = Instant::now() + wait;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) => {}
            Err(e) => panic!("waiting for collectd: {e}"),
        }
        if Instant::now() >= deadline {
            stop(&mut child);
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (values, rows) = read_values(&dir);
    let run = Run {
        values,
        rows,
        log: read_log(&dir),
        status,
    };
    cleanup(&dir);
    run
}

/// Port-keyed helper for tests: entries of `expected` grouped by state for
/// sockets whose local port is `port`.
pub fn local_counts(expected: &[Sock], port: u16) -> HashMap<u8, usize> {
    let mut m = HashMap::new();
    for s in expected.iter().filter(|s| s.local == port) {
        *m.entry(s.state).or_insert(0) += 1;
    }
    m
}

// ---------------------------------------------------------------------------
// What the plugin should dispatch
// ---------------------------------------------------------------------------

/// A tcpconns selection, as the tests' own statement of what each option
/// means (written from the contract, independently of the plugin's code).
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Report every port with a LISTEN socket (`<port>-local`).
    pub listening: bool,
    /// Report `all`.
    pub summary: bool,
    /// `LocalPort`s.
    pub local: Vec<u16>,
    /// `RemotePort`s.
    pub remote: Vec<u16>,
}

/// Every (plugin_instance, type_instance) -> value the plugin must dispatch
/// for `socks` under `sel`: 11 states per series, zeros included.
pub fn expected_values(socks: &[Sock], sel: &Selection) -> BTreeMap<(String, String), f64> {
    let mut series: BTreeMap<String, Vec<&Sock>> = BTreeMap::new();
    if sel.summary {
        series.insert("all".into(), socks.iter().collect());
    }
    let listening = socks
        .iter()
        .filter(|s| sel.listening && s.state == TCP_LISTEN)
        .map(|s| s.local);
    for port in sel.local.iter().copied().chain(listening) {
        series.insert(
            format!("{port}-local"),
            socks.iter().filter(|s| s.local == port).collect(),
        );
    }
    for &port in &sel.remote {
        series.insert(
            format!("{port}-remote"),
            socks.iter().filter(|s| s.remote == port).collect(),
        );
    }
    let mut out = BTreeMap::new();
    for (instance, members) in series {
        for state in 1..=11u8 {
            let n = members.iter().filter(|s| s.state == state).count();
            out.insert((instance.clone(), state_name(state).to_string()), n as f64);
        }
    }
    out
}

/// Panics with a readable diff unless `got` equals `want` exactly.
pub fn assert_values(
    what: &str,
    got: &BTreeMap<(String, String), f64>,
    want: &BTreeMap<(String, String), f64>,
    log: &str,
) {
    let mut diff = String::new();
    for (k, v) in want {
        match got.get(k) {
            Some(g) if g == v => {}
            g => diff += &format!("  {}/{}: want {v}, got {g:?}\n", k.0, k.1),
        }
    }
    for (k, v) in got {
        if !want.contains_key(k) {
            diff += &format!("  {}/{}: not expected, got {v}\n", k.0, k.1);
        }
    }
    assert!(
        diff.is_empty(),
        "{what}: values differ:\n{diff}collectd log:\n{log}"
    );
}

/// The mixed population the end-to-end tests share: listeners of both
/// families (two on port 22, one idle on 25), IPv4, IPv6 and IPv4-mapped
/// connections, TIME_WAIT, and FIN_WAIT2/CLOSE_WAIT pairs.
pub fn mixed_population(ns: &Netns) -> Population {
    let mut pop = Population::new(ns);
    pop.listen_v4(22)
        .listen_v6(22)
        .established(22, 3, Family::V4)
        .established(22, 1, Family::V6)
        .listen_v4(25)
        .listen_dual(80)
        .established(80, 2, Family::Mapped)
        .established(80, 2, Family::V6)
        .listen_v6(8080)
        .established(8080, 4, Family::V6)
        .time_wait(22, 2)
        .time_wait(80, 1)
        .close_wait_pairs(8080, 2)
        .close_wait_pairs(22, 1);
    pop.settle(ns);
    pop
}
