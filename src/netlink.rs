//! The netlink `sock_diag` source: one legacy `TCPDIAG_GETSOCK` dump returns
//! IPv4 and IPv6 TCP sockets in a single walk of the kernel's tables (the
//! kernel treats the legacy request as family `AF_UNSPEC`). The reply parser
//! is a pure function over received bytes; [`Netlink`] owns the socket and a
//! receive buffer reused across reads.

use std::fmt;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use netlink_packet_core::{
    NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_sock_diag::{inet::RESPONSE_LEN, AF_INET, SOCK_DIAG_BY_FAMILY};
use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket as NlSocket};

use crate::caps;
use crate::filter::REQ_BYTECODE;
use crate::netns;
use crate::network::mapped;
use crate::socket::{Fields, Socket, TcpInfo};
use crate::state::TcpState;

/// Legacy inet_diag request type for TCP (linux/inet_diag.h); the crate
/// only names the newer per-family `SOCK_DIAG_BY_FAMILY`.
pub const TCPDIAG_GETSOCK: u16 = 18;
/// `struct nlmsghdr`: length, type, flags, sequence number, port id.
const HEADER_LEN: usize = 16;
const NLMSG_LEN_AT: usize = 0;
const NLMSG_TYPE_AT: usize = 4;
const NLMSG_FLAGS_AT: usize = 6;
const NLMSG_SEQ_AT: usize = 8;
/// The first field of an `NLMSG_DONE` or `NLMSG_ERROR` payload: a status
/// (an `int`).
const STATUS_AT: usize = 0;
const STATUS_LEN: usize = 4;

// `struct inet_diag_msg`: family, state, timer, retrans, then the 48-byte
// `inet_diag_sockid` (sport and dport in network order, then the source
// and destination addresses, 16 bytes each with IPv4 in the first 4),
// then expires, rqueue, wqueue (for a listener: the accept queue and its
// limit), uid, inode.
const MSG_FAMILY_AT: usize = 0;
const MSG_STATE_AT: usize = 1;
const MSG_SPORT_AT: usize = 4;
const MSG_DPORT_AT: usize = 6;
const MSG_SRC_AT: usize = 8;
const MSG_DST_AT: usize = 24;
const MSG_RQUEUE_AT: usize = 56;
const MSG_WQUEUE_AT: usize = 60;

/// `INET_DIAG_INFO`: the attribute that carries `struct tcp_info`, asked for
/// with bit `INET_DIAG_INFO - 1` of the request's `idiag_ext`.
const INET_DIAG_INFO: u16 = 2;
/// `INET_DIAG_CGROUP_ID`: the id of the cgroup (v2) that made the socket, a
/// u64 the kernel sends unasked with every full socket (Linux 5.9+).
const INET_DIAG_CGROUP_ID: u16 = 21;
/// `struct rtattr`: length (including itself), then the type.
const RTA_HEADER_LEN: usize = 4;
const RTA_LEN_AT: usize = 0;
const RTA_TYPE_AT: usize = 2;
// `struct tcp_info`: the two fields read, and the length that holds both.
const TCPI_RETRANS_AT: usize = 36;
const TCPI_RTT_AT: usize = 68;
const TCPI_MIN_LEN: usize = 72;
/// Legacy `struct inet_diag_req`: family, src_len, dst_len, ext, a 48-byte
/// `inet_diag_sockid`, then `idiag_states` and `idiag_dbs`.
const LEGACY_REQ_LEN: usize = 60;
/// Size of one request message.
pub const REQUEST_LEN: usize = HEADER_LEN + LEGACY_REQ_LEN;
/// The kernel sizes a dump's datagrams to the largest buffer a receive has
/// offered (capped near 32 KiB), so this is also the datagram size: large
/// enough that a dump costs no more system calls than it must
/// (docs/benchmark.md has the sizes measured).
pub const RECV_BUFFER: usize = 16 * 1024;
/// A dump that stalls longer than this fails the read instead of hanging it.
const RECV_TIMEOUT_SECS: libc::time_t = 5;

/// Something that stopped a dump.
#[derive(Debug)]
pub enum NetlinkError {
    /// A system call on the netlink socket failed.
    Io { call: &'static str, err: io::Error },
    /// The kernel answered with an error (`NLMSG_ERROR`, or a negative status
    /// in `NLMSG_DONE`); the number is a positive errno.
    Kernel { errno: i32 },
    /// The reply did not have the shape netlink promises.
    Malformed(String),
    /// The network namespace to read could not be entered.
    Namespace { path: PathBuf, err: io::Error },
}

impl fmt::Display for NetlinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetlinkError::Io { call, err } => {
                write!(f, "{call} on the sock_diag socket failed: {err}")
            }
            NetlinkError::Kernel { errno } => write!(
                f,
                "the kernel refused the inet_diag dump: {}",
                io::Error::from_raw_os_error(*errno)
            ),
            NetlinkError::Malformed(what) => write!(f, "malformed netlink reply: {what}"),
            NetlinkError::Namespace { path, err } => {
                write!(
                    f,
                    "cannot enter network namespace {}: {err}",
                    path.display()
                )
            }
        }
    }
}

impl std::error::Error for NetlinkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NetlinkError::Io { err, .. } | NetlinkError::Namespace { err, .. } => Some(err),
            NetlinkError::Kernel { .. } | NetlinkError::Malformed(_) => None,
        }
    }
}

/// How far a dump got after one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// `NLMSG_DONE` was seen: the dump is complete.
    pub done: bool,
    /// The kernel flagged the dump as interrupted (`NLM_F_DUMP_INTR`): its
    /// tables changed during the walk, so the result may be inconsistent.
    pub interrupted: bool,
}

/// Writes into `out` one legacy dump request for the sockets in `states` (a
/// mask of `1 << state`), with a kernel-side filter program when `filter` is
/// not empty (see [`crate::filter`]), and `tcp_info` for each full socket
/// with `info`.
pub fn request(out: &mut Vec<u8>, seq: u32, states: u32, filter: &[u8], info: bool) {
    let attr_len = if filter.is_empty() {
        0
    } else {
        RTA_HEADER_LEN + filter.len()
    };
    let len = REQUEST_LEN + attr_len;
    out.clear();
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&TCPDIAG_GETSOCK.to_ne_bytes());
    out.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    // nlmsg_pid 0: the kernel.
    out.extend_from_slice(&0u32.to_ne_bytes());
    // struct inet_diag_req. The family is ignored for legacy dumps (both
    // families are walked); AF_INET is what the C plugin sends. Then
    // src_len, dst_len, ext, and a zero inet_diag_sockid.
    let ext = if info { 1 << (INET_DIAG_INFO - 1) } else { 0 };
    out.extend_from_slice(&[AF_INET, 0, 0, ext]);
    out.extend_from_slice(&[0; 48]);
    out.extend_from_slice(&states.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    if !filter.is_empty() {
        // struct nlattr: length including itself, then the type.
        out.extend_from_slice(&(attr_len as u16).to_ne_bytes());
        out.extend_from_slice(&REQ_BYTECODE.to_ne_bytes());
        out.extend_from_slice(filter);
    }
}

fn u16_ne(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_ne(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A status the kernel puts in `NLMSG_DONE` or `NLMSG_ERROR`: 0, or a
/// negated errno. Anything else (positive, or `i32::MIN`, which has no
/// positive counterpart) is no errno and means the reply is malformed.
fn kernel_status(what: &str, status: i32) -> Result<(), NetlinkError> {
    match status {
        0 => Ok(()),
        s if s < 0 && s > i32::MIN => Err(NetlinkError::Kernel { errno: -s }),
        s => Err(NetlinkError::Malformed(format!(
            "{what} status {s} is not a negated errno"
        ))),
    }
}

/// What [`attributes`] found among a message's attributes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Attributes {
    info: Option<TcpInfo>,
    cgroup: Option<u64>,
}

/// The `tcp_info` fields of an `INET_DIAG_INFO` attribute and the id of an
/// `INET_DIAG_CGROUP_ID` attribute among `attrs` (what follows the
/// `inet_diag_msg`), each only if `fields` asks for it and it is there.
fn attributes(mut attrs: &[u8], fields: Fields) -> Result<Attributes, NetlinkError> {
    let mut found = Attributes::default();
    while attrs.len() >= RTA_HEADER_LEN {
        let len = usize::from(u16_ne(attrs, RTA_LEN_AT));
        if len < RTA_HEADER_LEN || len > attrs.len() {
            return Err(NetlinkError::Malformed(format!(
                "attribute length {len} with {} bytes left in the message",
                attrs.len()
            )));
        }
        let value = &attrs[RTA_HEADER_LEN..len];
        match u16_ne(attrs, RTA_TYPE_AT) {
            INET_DIAG_INFO if fields.health => {
                if value.len() < TCPI_MIN_LEN {
                    return Err(NetlinkError::Malformed(format!(
                        "tcp_info of {} bytes, expected at least {TCPI_MIN_LEN}",
                        value.len()
                    )));
                }
                found.info = Some(TcpInfo {
                    rtt_us: u32_ne(value, TCPI_RTT_AT),
                    retrans: u32_ne(value, TCPI_RETRANS_AT),
                });
            }
            INET_DIAG_CGROUP_ID if fields.cgroup => {
                let id: [u8; 8] = value.try_into().map_err(|_| {
                    NetlinkError::Malformed(format!(
                        "cgroup id of {} bytes, expected 8",
                        value.len()
                    ))
                })?;
                found.cgroup = Some(u64::from_ne_bytes(id));
            }
            _ => {}
        }
        attrs = &attrs[len.next_multiple_of(4).min(attrs.len())..];
    }
    Ok(found)
}

/// Parses one received datagram of a dump with sequence number `seq`,
/// feeding every socket to `sink`. Messages with another sequence number
/// (left from an earlier dump) are skipped. Reads the state, the two ports
/// and the queue fields of each socket, and what `fields` asks for: the
/// addresses (otherwise they stay zero), `tcp_info` (otherwise `None`).
pub fn parse_datagram(
    datagram: &[u8],
    seq: u32,
    fields: Fields,
    sink: &mut impl FnMut(&Socket),
) -> Result<Progress, NetlinkError> {
    let mut progress = Progress::default();
    let mut rest = datagram;
    while !rest.is_empty() {
        if rest.len() < HEADER_LEN {
            return Err(NetlinkError::Malformed(format!(
                "{} trailing bytes, shorter than a message header",
                rest.len()
            )));
        }
        let len = u32_ne(rest, NLMSG_LEN_AT) as usize;
        if len < HEADER_LEN || len > rest.len() {
            return Err(NetlinkError::Malformed(format!(
                "message length {len} with {} bytes left in the datagram",
                rest.len()
            )));
        }
        let kind = u16_ne(rest, NLMSG_TYPE_AT);
        let flags = u16_ne(rest, NLMSG_FLAGS_AT);
        let msg_seq = u32_ne(rest, NLMSG_SEQ_AT);
        let payload = &rest[HEADER_LEN..len];
        // Messages are padded to 4 bytes; the last one may omit its padding.
        rest = &rest[len.next_multiple_of(4).min(rest.len())..];
        if msg_seq != seq {
            continue;
        }
        if flags & NLM_F_DUMP_INTR != 0 {
            progress.interrupted = true;
        }
        match kind {
            TCPDIAG_GETSOCK | SOCK_DIAG_BY_FAMILY => {
                if payload.len() < RESPONSE_LEN {
                    return Err(NetlinkError::Malformed(format!(
                        "inet_diag message of {} bytes, expected at least {RESPONSE_LEN}",
                        payload.len()
                    )));
                }
                let addr = |at: usize| -> [u8; 16] {
                    let mut a = [0u8; 16];
                    if !fields.addresses {
                        return a;
                    }
                    a.copy_from_slice(&payload[at..at + 16]);
                    if payload[MSG_FAMILY_AT] == AF_INET {
                        mapped([a[0], a[1], a[2], a[3]])
                    } else {
                        a
                    }
                };
                let port = |at: usize| u16::from_be_bytes([payload[at], payload[at + 1]]);
                let attrs = if fields.health || fields.cgroup {
                    attributes(&payload[RESPONSE_LEN..], fields)?
                } else {
                    Attributes::default()
                };
                sink(&Socket {
                    local: port(MSG_SPORT_AT),
                    remote: port(MSG_DPORT_AT),
                    state: payload[MSG_STATE_AT],
                    rqueue: u32_ne(payload, MSG_RQUEUE_AT),
                    wqueue: Some(u32_ne(payload, MSG_WQUEUE_AT)),
                    local_addr: addr(MSG_SRC_AT),
                    remote_addr: addr(MSG_DST_AT),
                    info: attrs.info,
                    cgroup: attrs.cgroup,
                });
            }
            NLMSG_DONE => {
                // The kernel puts the dump's final status here.
                if payload.len() >= STATUS_AT + STATUS_LEN {
                    kernel_status("NLMSG_DONE", u32_ne(payload, STATUS_AT) as i32)?;
                }
                progress.done = true;
                return Ok(progress);
            }
            NLMSG_ERROR => {
                if payload.len() < STATUS_AT + STATUS_LEN {
                    return Err(NetlinkError::Malformed(
                        "NLMSG_ERROR without an error code".into(),
                    ));
                }
                // 0 is an acknowledgement, not an error.
                kernel_status("NLMSG_ERROR", u32_ne(payload, STATUS_AT) as i32)?;
            }
            NLMSG_OVERRUN => {
                return Err(NetlinkError::Malformed(
                    "NLMSG_OVERRUN: data was lost".into(),
                ));
            }
            NLMSG_NOOP => {}
            other => {
                return Err(NetlinkError::Malformed(format!(
                    "unexpected message type {other}"
                )));
            }
        }
    }
    Ok(progress)
}

/// A sock_diag socket, opened at the first dump and kept across reads, and
/// its receive buffer.
pub struct Netlink {
    socket: Option<NlSocket>,
    buf: Vec<u8>,
    req: Vec<u8>,
    seq: u32,
    /// Another network namespace to open the socket in.
    namespace: Option<PathBuf>,
    fields: Fields,
}

impl Default for Netlink {
    /// Reads collectd's own namespace, ports and states only.
    fn default() -> Self {
        Netlink::new(None, Fields::default())
    }
}

impl Netlink {
    /// Reads the namespace at `namespace` (e.g. `/run/netns/web`), or the
    /// caller's own for `None`, reading of each socket what `fields` asks
    /// for.
    pub fn new(namespace: Option<PathBuf>, fields: Fields) -> Netlink {
        Netlink {
            socket: None,
            buf: Vec::with_capacity(RECV_BUFFER),
            req: Vec::with_capacity(REQUEST_LEN),
            seq: 0,
            namespace,
            fields,
        }
    }

    /// Closes the socket: the next dump opens a new one (in the namespace
    /// as it is then).
    pub fn close(&mut self) {
        self.socket = None;
    }

    /// Reads through `namespace` from the next dump on, on a new socket.
    pub fn set_namespace(&mut self, namespace: PathBuf) {
        self.close();
        self.namespace = Some(namespace);
    }

    /// Dumps the TCP sockets whose state is in `states` (a mask of
    /// `1 << state`) and that pass `filter` (a program from
    /// [`crate::filter::build`]; empty for all) into `sink`. After any error
    /// the socket is closed, so the next dump starts clean on a new one.
    pub fn dump(
        &mut self,
        states: u32,
        filter: &[u8],
        sink: &mut impl FnMut(&Socket),
    ) -> Result<Progress, NetlinkError> {
        let result = self.try_dump(states, filter, sink);
        if result.is_err() {
            self.socket = None;
        }
        result
    }

    fn try_dump(
        &mut self,
        states: u32,
        filter: &[u8],
        sink: &mut impl FnMut(&Socket),
    ) -> Result<Progress, NetlinkError> {
        let socket = match self.socket.take() {
            Some(socket) => socket,
            None => open(self.namespace.as_deref())?,
        };
        let socket = &*self.socket.insert(socket);
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        // tcp_info is read of connections only: a dump of listeners alone
        // does not ask the kernel to copy it.
        let info = self.fields.health && states & !TcpState::Listen.mask() != 0;
        request(&mut self.req, seq, states, filter, info);
        // No destination address (an unconnected netlink socket sends to
        // the kernel): with one, the kernel would judge the dump by the
        // reader's capabilities instead of the socket's (crate::caps).
        socket
            .send(&self.req, 0)
            .map_err(|err| NetlinkError::Io { call: "send", err })?;
        let mut progress = Progress::default();
        loop {
            self.buf.clear();
            let len = match socket.recv(&mut self.buf, libc::MSG_TRUNC) {
                Ok(len) => len,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(NetlinkError::Io { call: "recv", err }),
            };
            if len > self.buf.len() {
                return Err(NetlinkError::Malformed(format!(
                    "datagram of {len} bytes does not fit the {}-byte buffer",
                    self.buf.len()
                )));
            }
            if len == 0 {
                return Err(NetlinkError::Malformed("empty datagram".into()));
            }
            let step = parse_datagram(&self.buf[..len], seq, self.fields, sink)?;
            progress.interrupted |= step.interrupted;
            if step.done {
                progress.done = true;
                return Ok(progress);
            }
        }
    }
}

/// Opens a sock_diag socket on a short-lived thread of its own: inside
/// `namespace` if given, and without `CAP_NET_ADMIN` (crate::caps), so that
/// no collectd thread ever changes its namespace or credentials.
fn open(namespace: Option<&Path>) -> Result<NlSocket, NetlinkError> {
    let opened = netns::on_own_thread(namespace, || {
        caps::drop_net_admin();
        NlSocket::new(NETLINK_SOCK_DIAG)
    });
    let socket = match (opened, namespace) {
        (Ok(socket), _) => socket.map_err(|err| NetlinkError::Io {
            call: "socket(AF_NETLINK, NETLINK_SOCK_DIAG)",
            err,
        })?,
        (Err(err), Some(path)) => {
            return Err(NetlinkError::Namespace {
                path: path.to_path_buf(),
                err,
            })
        }
        (Err(err), None) => {
            return Err(NetlinkError::Io {
                call: "socket(AF_NETLINK, NETLINK_SOCK_DIAG)",
                err,
            })
        }
    };
    let timeout = libc::timeval {
        tv_sec: RECV_TIMEOUT_SECS,
        tv_usec: 0,
    };
    // SAFETY: the fd is open for the lifetime of `socket`; the option value
    // points to a live timeval and its exact size is passed.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&timeout as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(NetlinkError::Io {
            call: "setsockopt(SO_RCVTIMEO)",
            err: io::Error::last_os_error(),
        });
    }
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_sock_diag::inet::{InetResponseBuffer, InetResponseHeader};
    use netlink_packet_utils::traits::Parseable;

    const DUMP_ALL: &[u8] = include_bytes!("../tests/fixtures/netlink_dump_all.bin");
    const DUMP_LISTEN: &[u8] = include_bytes!("../tests/fixtures/netlink_dump_listen.bin");
    const EXPECTED_ALL: &str = include_str!("../tests/fixtures/expected_all.txt");
    const EXPECTED_LISTEN: &str = include_str!("../tests/fixtures/expected_listen.txt");

    /// The datagrams of a fixture: each is a u32 LE length, then the bytes.
    fn datagrams(mut file: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        while !file.is_empty() {
            let len = u32::from_le_bytes(file[..4].try_into().unwrap()) as usize;
            out.push(&file[4..4 + len]);
            file = &file[4 + len..];
        }
        out
    }

    fn expected(text: &str) -> Vec<(u16, u16, u8)> {
        let mut v: Vec<_> = text
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (
                    f[0].parse().unwrap(),
                    f[1].parse().unwrap(),
                    f[2].parse().unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    }

    fn parse_dump(file: &[u8], seq: u32) -> (Vec<(u16, u16, u8)>, Progress) {
        let mut got = Vec::new();
        let mut last = Progress::default();
        for d in datagrams(file) {
            assert!(!last.done, "data after NLMSG_DONE");
            last = parse_datagram(d, seq, Fields::default(), &mut |s: &Socket| {
                got.push((s.local, s.remote, s.state))
            })
            .unwrap();
        }
        got.sort();
        (got, last)
    }

    fn message(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((HEADER_LEN + payload.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(payload);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    fn socket_msg(seq: u32, flags: u16, local: u16, remote: u16, state: u8) -> Vec<u8> {
        let mut p = vec![0u8; RESPONSE_LEN];
        p[MSG_FAMILY_AT] = AF_INET;
        p[MSG_STATE_AT] = state;
        p[MSG_SPORT_AT..MSG_SPORT_AT + 2].copy_from_slice(&local.to_be_bytes());
        p[MSG_DPORT_AT..MSG_DPORT_AT + 2].copy_from_slice(&remote.to_be_bytes());
        message(TCPDIAG_GETSOCK, flags, seq, &p)
    }

    type Triples = Vec<(u16, u16, u8)>;

    fn collect(d: &[u8], seq: u32) -> Result<(Triples, Progress), NetlinkError> {
        let mut got = Vec::new();
        let p = parse_datagram(d, seq, Fields::default(), &mut |s: &Socket| {
            got.push((s.local, s.remote, s.state))
        })?;
        Ok((got, p))
    }

    #[test]
    fn tcp_info_is_asked_for_in_ext_only_with_health() {
        let mut req = Vec::new();
        request(&mut req, 1, 0xffe, &[], true);
        assert_eq!(req[HEADER_LEN + 3], 1 << (INET_DIAG_INFO - 1));
        request(&mut req, 1, 0xffe, &[], false);
        assert_eq!(req[HEADER_LEN + 3], 0);
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn request_matches_the_captured_bytes() {
        let mut want = hex_bytes("4c000000 1200 0103 07000000 00000000 02000000");
        want.extend_from_slice(&[0; 48]);
        want.extend(hex_bytes("ff0f0000 00000000"));
        let mut got = Vec::new();
        request(&mut got, 7, 0xfff, &[], false);
        assert_eq!(got, want);
    }

    #[test]
    fn a_filter_rides_in_a_bytecode_attribute() {
        let mut bc = Vec::new();
        assert!(crate::filter::build(&mut bc, &[22], &[]));
        let mut got = Vec::new();
        request(&mut got, 1, 0xffe, &bc, false);
        assert_eq!(got.len(), REQUEST_LEN + RTA_HEADER_LEN + bc.len());
        assert_eq!(u32_ne(&got, NLMSG_LEN_AT) as usize, got.len());
        let attr = &got[REQUEST_LEN..];
        assert_eq!(u16_ne(attr, RTA_LEN_AT) as usize, RTA_HEADER_LEN + bc.len());
        assert_eq!(u16_ne(attr, RTA_TYPE_AT), REQ_BYTECODE);
        assert_eq!(&attr[RTA_HEADER_LEN..], &bc[..]);
    }

    fn hex_bytes(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn captured_dump_gives_every_socket_of_both_families() {
        let (got, last) = parse_dump(DUMP_ALL, 7);
        assert_eq!(got, expected(EXPECTED_ALL));
        assert!(last.done && !last.interrupted);
    }

    #[test]
    fn captured_listener_dump() {
        let (got, last) = parse_dump(DUMP_LISTEN, 8);
        assert_eq!(got, expected(EXPECTED_LISTEN));
        assert!(last.done);
    }

    #[test]
    fn agrees_with_netlink_packet_sock_diag_on_every_message() {
        let mut checked = 0;
        for d in datagrams(DUMP_ALL) {
            let mut rest = d;
            while !rest.is_empty() {
                let len = u32_ne(rest, NLMSG_LEN_AT) as usize;
                if u16_ne(rest, NLMSG_TYPE_AT) == TCPDIAG_GETSOCK {
                    let payload = &rest[HEADER_LEN..len];
                    let theirs =
                        InetResponseHeader::parse(&InetResponseBuffer::new(&payload)).unwrap();
                    let (ours, _) = collect(&rest[..len], 7).unwrap();
                    assert_eq!(
                        ours,
                        vec![(
                            theirs.socket_id.source_port,
                            theirs.socket_id.destination_port,
                            theirs.state
                        )]
                    );
                    // Addresses only when asked, in IPv6 form.
                    let six = |ip: std::net::IpAddr| match ip {
                        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
                        std::net::IpAddr::V6(v6) => v6.octets(),
                    };
                    for addresses in [true, false] {
                        let mut seen = Vec::new();
                        let fields = Fields {
                            addresses,
                            ..Fields::default()
                        };
                        parse_datagram(&rest[..len], 7, fields, &mut |s: &Socket| {
                            seen.push((s.local_addr, s.remote_addr))
                        })
                        .unwrap();
                        let want = if addresses {
                            (
                                six(theirs.socket_id.source_address),
                                six(theirs.socket_id.destination_address),
                            )
                        } else {
                            ([0; 16], [0; 16])
                        };
                        assert_eq!(seen, vec![want], "addresses {addresses}");
                    }
                    checked += 1;
                }
                rest = &rest[len.next_multiple_of(4).min(rest.len())..];
            }
        }
        assert_eq!(checked, expected(EXPECTED_ALL).len());
    }

    /// `netlink_dump_info.bin`: a dump with `INET_DIAG_INFO` asked for, of a
    /// listener, an idle connection, 1,000 bytes unread by the server, a
    /// server whose client reads nothing (its send queue full), and a
    /// TIME_WAIT socket (tests/fixtures/capture_info.py; `ss_Htani.txt` is
    /// `ss -tani` at the same moment).
    const DUMP_INFO: &[u8] = include_bytes!("../tests/fixtures/netlink_dump_info.bin");

    fn health_dump() -> Vec<Socket> {
        let fields = Fields::HEALTH;
        let mut got = Vec::new();
        for d in datagrams(DUMP_INFO) {
            parse_datagram(d, 9, fields, &mut |s: &Socket| got.push(*s)).unwrap();
        }
        got.sort_by_key(|s| (s.local, s.remote));
        got
    }

    #[test]
    fn tcp_info_and_queues_agree_with_ss() {
        let got = health_dump();
        let row = |local, remote| {
            got.iter()
                .find(|s| (s.local, s.remote) == (local, remote))
                .unwrap_or_else(|| panic!("no socket {local} -> {remote}"))
        };
        // ss: "ESTAB 1000 0 127.0.0.1:8080 127.0.0.1:55420 ... rtt:0.009/0.004"
        let s = row(8080, 55420);
        assert_eq!((s.rqueue, s.wqueue), (1000, Some(0)));
        assert_eq!(s.info.map(|i| i.rtt_us), Some(9));
        // ss: "ESTAB 0 3782144 127.0.0.1:8080 127.0.0.1:55432 ... rtt:4.717/9.393
        // ... retrans:0/1"
        let s = row(8080, 55432);
        assert_eq!((s.rqueue, s.wqueue), (0, Some(3_782_144)));
        assert_eq!(
            s.info,
            Some(TcpInfo {
                rtt_us: 4717,
                retrans: 0
            })
        );
        // ss: "ESTAB 128512 0 127.0.0.1:55432 127.0.0.1:8080"
        assert_eq!(row(55432, 8080).rqueue, 128_512);
        // A TIME_WAIT socket carries no tcp_info.
        let tw = got.iter().find(|s| s.state == 6).unwrap();
        assert_eq!(tw.info, None);
        assert_eq!(got.len(), 8);
        // Not asked for: none.
        for d in datagrams(DUMP_INFO) {
            parse_datagram(d, 9, Fields::default(), &mut |s: &Socket| {
                assert_eq!(s.info, None)
            })
            .unwrap();
        }
    }

    /// `netlink_dump_cgroup.bin`: a dump with no extension asked (as with
    /// `Cgroup`), of sockets made from two cgroups and a sub-cgroup by
    /// `capture_cgroup.py`; `ss_Htan_cgroup.txt` shows the same sockets
    /// with `ss --cgroup`, `cgroup_ids.txt` each cgroup's id (its inode).
    const DUMP_CGROUP: &[u8] = include_bytes!("../tests/fixtures/netlink_dump_cgroup.bin");

    #[test]
    fn cgroup_ids_agree_with_ss() {
        let ids: std::collections::HashMap<u64, &str> =
            include_str!("../tests/fixtures/cgroup_ids.txt")
                .lines()
                .map(|l| {
                    let (id, path) = l.split_once(' ').unwrap();
                    (id.parse().unwrap(), path)
                })
                .collect();
        let fields = Fields::CGROUP;
        let mut got = Vec::new();
        for d in datagrams(DUMP_CGROUP) {
            parse_datagram(d, 5, fields, &mut |s: &Socket| {
                let path = s.cgroup.map(|id| ids.get(&id).copied().unwrap_or("?"));
                got.push((s.local, s.remote, path.unwrap_or("")));
            })
            .unwrap();
        }
        got.sort();
        let port = |a: &str| a.rsplit(':').next().unwrap().parse::<u16>().unwrap_or(0);
        let mut want: Vec<(u16, u16, &str)> = include_str!("../tests/fixtures/ss_Htan_cgroup.txt")
            .lines()
            .map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                let cgroup = w.get(5).and_then(|c| c.strip_prefix("cgroup:"));
                (port(w[3]), port(w[4]), cgroup.unwrap_or(""))
            })
            .collect();
        want.sort();
        assert_eq!(got, want);
        // The TIME_WAIT entry has no id; full sockets all have one.
        assert_eq!(got.iter().filter(|s| s.2.is_empty()).count(), 1);
        // Not asked for: not read.
        for d in datagrams(DUMP_CGROUP) {
            parse_datagram(d, 5, Fields::default(), &mut |s: &Socket| {
                assert_eq!(s.cgroup, None)
            })
            .unwrap();
        }
    }

    #[test]
    fn a_cgroup_id_of_the_wrong_size_is_malformed() {
        // inet_diag_msg, then a CGROUP_ID attribute with a 4-byte value.
        let mut payload = vec![0u8; RESPONSE_LEN];
        payload[MSG_STATE_AT] = 1;
        payload.extend_from_slice(&((RTA_HEADER_LEN + 4) as u16).to_ne_bytes());
        payload.extend_from_slice(&INET_DIAG_CGROUP_ID.to_ne_bytes());
        payload.extend_from_slice(&[1, 2, 3, 4]);
        let msg = message(TCPDIAG_GETSOCK, 0, 3, &payload);
        let fields = Fields::CGROUP;
        let err = parse_datagram(&msg, 3, fields, &mut |_: &Socket| {}).unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed netlink reply: cgroup id of 4 bytes, expected 8"
        );
        // Without the field asked for, the attribute is not looked at.
        assert!(parse_datagram(&msg, 3, Fields::default(), &mut |_: &Socket| {}).is_ok());
    }

    #[test]
    fn tcp_info_agrees_with_netlink_packet_sock_diag() {
        use netlink_packet_sock_diag::inet::nlas::Nla;
        use netlink_packet_sock_diag::inet::{InetResponse, InetResponseBuffer};
        let ours = health_dump();
        let mut checked = 0;
        for d in datagrams(DUMP_INFO) {
            let mut rest = d;
            while !rest.is_empty() {
                let len = u32_ne(rest, NLMSG_LEN_AT) as usize;
                if u16_ne(rest, NLMSG_TYPE_AT) == TCPDIAG_GETSOCK {
                    let payload = &rest[HEADER_LEN..len];
                    let theirs = InetResponse::parse(&InetResponseBuffer::new(&payload)).unwrap();
                    let info = theirs.nlas.iter().find_map(|nla| match nla {
                        Nla::TcpInfo(i) => Some(TcpInfo {
                            rtt_us: i.rtt,
                            retrans: i.retrans,
                        }),
                        _ => None,
                    });
                    let id = &theirs.header.socket_id;
                    let s = ours
                        .iter()
                        .find(|s| (s.local, s.remote) == (id.source_port, id.destination_port))
                        .unwrap();
                    assert_eq!(s.info, info, "{s:?}");
                    assert_eq!(s.rqueue, theirs.header.recv_queue);
                    assert_eq!(s.wqueue, Some(theirs.header.send_queue));
                    checked += 1;
                }
                rest = &rest[len.next_multiple_of(4).min(rest.len())..];
            }
        }
        assert_eq!(checked, ours.len());
    }

    #[test]
    fn a_malformed_attribute_is_an_error_not_a_panic() {
        let health = Fields::HEALTH;
        let mut p = vec![0u8; RESPONSE_LEN];
        p[MSG_STATE_AT] = 1;
        for attrs in [
            // Length past the end.
            vec![40, 0, 2, 0, 0, 0, 0, 0],
            // Length below its own header.
            vec![2, 0, 2, 0],
            // A tcp_info too short to hold tcpi_rtt.
            vec![8, 0, 2, 0, 1, 2, 3, 4],
        ] {
            let mut payload = p.clone();
            payload.extend(&attrs);
            let d = message(TCPDIAG_GETSOCK, 2, 1, &payload);
            let err = parse_datagram(&d, 1, health, &mut |_: &Socket| {}).unwrap_err();
            assert!(
                matches!(err, NetlinkError::Malformed(_)),
                "{attrs:?}: {err}"
            );
            // Attributes are not looked at unless asked for.
            assert!(parse_datagram(&d, 1, Fields::default(), &mut |_: &Socket| {}).is_ok());
        }
    }

    #[test]
    fn several_messages_per_datagram_and_done_in_the_same_one() {
        let mut d = socket_msg(3, 2, 22, 0, 10);
        d.extend(socket_msg(3, 2, 22, 40000, 1));
        d.extend(socket_msg(3, 2, 40000, 22, 1));
        d.extend(message(NLMSG_DONE, 2, 3, &0i32.to_ne_bytes()));
        let (got, p) = collect(&d, 3).unwrap();
        assert_eq!(got, vec![(22, 0, 10), (22, 40000, 1), (40000, 22, 1)]);
        assert_eq!(
            p,
            Progress {
                done: true,
                interrupted: false
            }
        );
    }

    #[test]
    fn messages_of_another_dump_are_skipped() {
        let mut d = socket_msg(2, 2, 1, 1, 1);
        d.extend(socket_msg(3, 2, 22, 0, 10));
        d.extend(message(NLMSG_DONE, 2, 2, &0i32.to_ne_bytes()));
        let (got, p) = collect(&d, 3).unwrap();
        assert_eq!(got, vec![(22, 0, 10)]);
        assert!(!p.done, "the DONE of another dump does not end ours");
    }

    #[test]
    fn nlmsg_error_names_the_errno_and_ack_is_not_an_error() {
        let mut payload = (-libc::EACCES).to_ne_bytes().to_vec();
        let mut req = Vec::new();
        request(&mut req, 5, 0xfff, &[], false);
        payload.extend_from_slice(&req[..HEADER_LEN]);
        let err = collect(&message(NLMSG_ERROR, 0, 5, &payload), 5).unwrap_err();
        assert!(matches!(err, NetlinkError::Kernel { errno } if errno == libc::EACCES));
        assert!(err.to_string().contains("Permission denied"), "{err}");

        let mut ack = 0i32.to_ne_bytes().to_vec();
        ack.extend_from_slice(&req[..HEADER_LEN]);
        let (got, p) = collect(&message(NLMSG_ERROR, 0, 5, &ack), 5).unwrap();
        assert!(got.is_empty() && !p.done);
    }

    #[test]
    fn a_failed_dump_reports_its_status_from_nlmsg_done() {
        let d = message(NLMSG_DONE, 2, 9, &(-libc::ENOBUFS).to_ne_bytes());
        let err = collect(&d, 9).unwrap_err();
        assert!(matches!(err, NetlinkError::Kernel { errno } if errno == libc::ENOBUFS));
    }

    #[test]
    fn an_interrupted_dump_is_flagged() {
        let mut d = socket_msg(4, 2 | NLM_F_DUMP_INTR, 22, 0, 10);
        d.extend(message(
            NLMSG_DONE,
            2 | NLM_F_DUMP_INTR,
            4,
            &0i32.to_ne_bytes(),
        ));
        let (got, p) = collect(&d, 4).unwrap();
        assert_eq!(got.len(), 1);
        assert!(p.done && p.interrupted);
    }

    #[test]
    fn states_outside_the_range_are_passed_on_for_the_table_to_ignore() {
        let (got, _) = collect(&socket_msg(1, 2, 5, 6, 12), 1).unwrap();
        assert_eq!(got, vec![(5, 6, 12)]);
    }

    #[test]
    fn malformed_replies_are_errors_not_panics() {
        let good = socket_msg(1, 2, 22, 0, 10);
        let mut cases: Vec<(&str, Vec<u8>)> = vec![
            ("short header", good[..10].to_vec()),
            ("length past the end", good[..40].to_vec()),
            (
                "short inet_diag message",
                message(TCPDIAG_GETSOCK, 2, 1, &[0; 8]),
            ),
            ("unknown type", message(99, 0, 1, &[0; 4])),
            ("overrun", message(NLMSG_OVERRUN, 0, 1, &[])),
            ("error without code", message(NLMSG_ERROR, 0, 1, &[])),
        ];
        let mut tiny = good.clone();
        tiny[0..4].copy_from_slice(&8u32.to_ne_bytes());
        cases.push(("length below the header", tiny));
        for (what, bytes) in cases {
            let err = collect(&bytes, 1).unwrap_err();
            assert!(matches!(err, NetlinkError::Malformed(_)), "{what}: {err:?}");
        }
    }

    /// Found by the fuzzer (fuzz/regressions/netlink_datagram/): an
    /// `NLMSG_DONE` status of `i32::MIN` overflowed the negation (a panic in
    /// debug builds), and a positive `NLMSG_ERROR` status became a negative
    /// errno. Both are no errno: malformed replies.
    #[test]
    fn statuses_that_are_no_errno_are_malformed() {
        for name in ["done-status-i32-min", "error-positive-status"] {
            let path = format!(
                "{}/fuzz/regressions/netlink_datagram/{name}",
                env!("CARGO_MANIFEST_DIR")
            );
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            let err = collect(&bytes, 7).unwrap_err();
            assert!(
                matches!(&err, NetlinkError::Malformed(m) if m.contains("not a negated errno")),
                "{name}: {err:?}"
            );
        }
        for status in [1, i32::MAX, i32::MIN] {
            for kind in [NLMSG_DONE, NLMSG_ERROR] {
                let d = message(kind, 2, 3, &status.to_ne_bytes());
                assert!(
                    matches!(collect(&d, 3), Err(NetlinkError::Malformed(_))),
                    "type {kind} status {status}"
                );
            }
        }
        let d = message(NLMSG_DONE, 2, 3, &(-(i32::MAX)).to_ne_bytes());
        assert!(matches!(
            collect(&d, 3),
            Err(NetlinkError::Kernel { errno: i32::MAX })
        ));
    }

    #[test]
    fn every_prefix_of_a_real_datagram_parses_or_errors() {
        let d = datagrams(DUMP_ALL)[0];
        for cut in 0..d.len() {
            let _ = collect(&d[..cut], 7);
        }
    }
}
