//! Known sets of TCP sockets inside a namespace, made one at a time so the
//! result is deterministic, with the entries `ss` must show for them.

use crate::{enter_netns, multiset, multiset_diff, wait_until, Netns, Sock};
use crate::{TCP_CLOSE_WAIT, TCP_ESTABLISHED, TCP_FIN_WAIT2, TCP_LISTEN, TCP_TIME_WAIT};
use std::io::Read;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// What address a listener is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListenKind {
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
    pub(crate) kind: ListenKind,
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
    /// Path of the namespace the sockets live in (see [`Netns::path`]).
    pub(crate) netns: String,
    /// Listening sockets.
    pub listeners: Vec<Listener>,
    /// Connected sockets (both ends), kept open.
    pub(crate) streams: Vec<TcpStream>,
    /// Expected `(local, remote, state)` entries, one per kernel socket.
    pub expected: Vec<Sock>,
    /// Listeners that accept nothing (see [`Population::queued`]).
    pub(crate) unaccepting: Vec<OwnedFd>,
}

const ACCEPT_TIMEOUT: Duration = Duration::from_secs(5);

impl Population {
    /// An empty population in `ns`.
    pub fn new(ns: &Netns) -> Population {
        Population {
            netns: ns.path().to_string(),
            listeners: Vec::new(),
            streams: Vec::new(),
            expected: Vec::new(),
            unaccepting: Vec::new(),
        }
    }

    /// Adds a listener on `127.0.0.1:port` with exactly `backlog` and `n`
    /// connections to it that nobody accepts: they wait in its accept
    /// queue (a backlog of `b` holds `b + 1`).
    pub fn queued(&mut self, port: u16, backlog: i32, n: usize) -> &mut Self {
        let listener = bound_listener(&self.netns, port, backlog);
        self.expected.push(Sock {
            local: port,
            remote: 0,
            state: TCP_LISTEN,
        });
        let clients: Vec<TcpStream> = enter_netns(&self.netns, || {
            (0..n)
                .map(|_| TcpStream::connect(("127.0.0.1", port)).expect("connect"))
                .collect()
        });
        for c in clients {
            let eph = c.local_addr().expect("client local_addr").port();
            self.expect_pair(eph, port, TCP_ESTABLISHED, TCP_ESTABLISHED);
            self.streams.push(c);
        }
        self.unaccepting.push(listener);
        self
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
            self.keep(client, server, TCP_ESTABLISHED, TCP_ESTABLISHED);
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
            client
                .shutdown(Shutdown::Write)
                .expect("shutdown(Write) on client");
            wait_eof(&mut server);
            self.keep(client, server, TCP_FIN_WAIT2, TCP_CLOSE_WAIT);
        }
        self
    }

    /// Keeps both ends of a connection open, expecting the client in
    /// `client_state` and the server in `server_state`.
    fn keep(&mut self, client: TcpStream, server: TcpStream, client_state: u8, server_state: u8) {
        let c = client.local_addr().expect("client local_addr").port();
        let s = server.local_addr().expect("server local_addr").port();
        self.expect_pair(c, s, client_state, server_state);
        self.streams.push(client);
        self.streams.push(server);
    }

    /// The two entries of one connection: the client's (`client` ->
    /// `server` port) and the server's (the other way).
    fn expect_pair(&mut self, client: u16, server: u16, client_state: u8, server_state: u8) {
        for (local, remote, state) in [
            (client, server, client_state),
            (server, client, server_state),
        ] {
            self.expected.push(Sock {
                local,
                remote,
                state,
            });
        }
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
        wait_until(
            "settled population",
            Duration::from_secs(10),
            || multiset(&ns.sockets().0) == want,
            || {
                let (got, raw) = ns.sockets();
                format!(
                    "sockets in {} differ:\n{}ss -Htan:\n{raw}",
                    ns.name(),
                    multiset_diff(&want, &multiset(&got))
                )
            },
        );
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

/// A listener on 127.0.0.1:`port` with exactly `backlog`, made with libc
/// because std picks its own backlog.
fn bound_listener(netns: &str, port: u16, backlog: i32) -> OwnedFd {
    enter_netns(netns, || {
        let fd = ipv4_socket([127, 0, 0, 1], port);
        // SAFETY: listen on a socket descriptor we own.
        let rc = unsafe { libc::listen(fd.as_raw_fd(), backlog) };
        assert_eq!(rc, 0, "listen: {}", std::io::Error::last_os_error());
        fd
    })
}

/// A TCP socket bound to `ip`:`port` (port 0: any), made with libc because
/// std cannot bind a socket that then connects; in the caller's namespace.
pub fn ipv4_socket(ip: [u8; 4], port: u16) -> OwnedFd {
    // SAFETY: socket() has no preconditions; its result is checked before
    // it is owned.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: fd is a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    ipv4_call(&fd, ip, port, libc::bind, "bind");
    fd
}

/// Connects `fd` (from [`ipv4_socket`]) to `ip`:`port`.
pub fn ipv4_connect(fd: &OwnedFd, ip: [u8; 4], port: u16) {
    ipv4_call(fd, ip, port, libc::connect, "connect");
}

/// A call that takes a socket address: `bind` or `connect` (named `what`);
/// panics with the error if it fails.
fn ipv4_call(
    fd: &OwnedFd,
    ip: [u8; 4],
    port: u16,
    call: unsafe extern "C" fn(libc::c_int, *const libc::sockaddr, libc::socklen_t) -> libc::c_int,
    what: &str,
) {
    let addr = sockaddr_v4(ip, port);
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `call` is libc's bind or connect (the only two callers pass
    // them), given a descriptor we own and a fully initialised sockaddr_in
    // of the length given.
    let rc = unsafe {
        call(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_in).cast(),
            len,
        )
    };
    assert_eq!(rc, 0, "{what}: {}", std::io::Error::last_os_error());
}

/// `ip`:`port` as a `sockaddr_in`.
fn sockaddr_v4(ip: [u8; 4], port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(ip),
        },
        sin_zero: [0; 8],
    }
}
