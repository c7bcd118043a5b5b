//! The netlink `sock_diag` source: one legacy `TCPDIAG_GETSOCK` dump returns
//! IPv4 and IPv6 TCP sockets in a single walk of the kernel's tables (the
//! kernel treats the legacy request as family `AF_UNSPEC`). The reply parser
//! is a pure function over received bytes; [`Netlink`] owns the socket and a
//! receive buffer reused across reads.

use std::fmt;
use std::io;
use std::os::fd::AsRawFd;

use netlink_packet_core::{
    NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_sock_diag::{inet::RESPONSE_LEN, AF_INET, SOCK_DIAG_BY_FAMILY};
use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket, SocketAddr};

/// Legacy inet_diag request type for TCP (linux/inet_diag.h); the crate
/// only names the newer per-family `SOCK_DIAG_BY_FAMILY`.
pub const TCPDIAG_GETSOCK: u16 = 18;
/// `struct nlmsghdr`.
const HEADER_LEN: usize = 16;
/// Legacy `struct inet_diag_req`: family, src_len, dst_len, ext, a 48-byte
/// `inet_diag_sockid`, then `idiag_states` and `idiag_dbs`.
const LEGACY_REQ_LEN: usize = 60;
/// Size of one request message.
pub const REQUEST_LEN: usize = HEADER_LEN + LEGACY_REQ_LEN;
/// The kernel caps a dump datagram near 32 KiB; a larger buffer gains nothing.
pub const RECV_BUFFER: usize = 32 * 1024;
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
        }
    }
}

impl std::error::Error for NetlinkError {}

/// How far a dump got after one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// `NLMSG_DONE` was seen: the dump is complete.
    pub done: bool,
    /// The kernel flagged the dump as interrupted (`NLM_F_DUMP_INTR`): its
    /// tables changed during the walk, so the result may be inconsistent.
    pub interrupted: bool,
}

/// The bytes of one legacy dump request for the sockets in `states` (a mask
/// of `1 << state`).
pub fn request(seq: u32, states: u32) -> [u8; REQUEST_LEN] {
    let mut msg = [0u8; REQUEST_LEN];
    msg[0..4].copy_from_slice(&(REQUEST_LEN as u32).to_ne_bytes());
    msg[4..6].copy_from_slice(&TCPDIAG_GETSOCK.to_ne_bytes());
    msg[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    msg[8..12].copy_from_slice(&seq.to_ne_bytes());
    // nlmsg_pid 0: the kernel. The family is ignored for legacy dumps (both
    // families are walked); AF_INET is what the C plugin sends.
    msg[HEADER_LEN] = AF_INET;
    let states_at = HEADER_LEN + 4 + 48;
    msg[states_at..states_at + 4].copy_from_slice(&states.to_ne_bytes());
    msg
}

fn u16_ne(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_ne(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses one received datagram of a dump with sequence number `seq`,
/// feeding `(local_port, remote_port, state)` of every socket to `sink`.
/// Messages with another sequence number (left from an earlier dump) are
/// skipped. Reads only the state and the two ports of each socket.
pub fn parse_datagram(
    datagram: &[u8],
    seq: u32,
    sink: &mut impl FnMut(u16, u16, u8),
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
        let len = u32_ne(rest, 0) as usize;
        if len < HEADER_LEN || len > rest.len() {
            return Err(NetlinkError::Malformed(format!(
                "message length {len} with {} bytes left in the datagram",
                rest.len()
            )));
        }
        let kind = u16_ne(rest, 4);
        let flags = u16_ne(rest, 6);
        let msg_seq = u32_ne(rest, 8);
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
                // inet_diag_msg: family, state, timer, retrans, then the
                // socket id starting with sport and dport in network order.
                let state = payload[1];
                let local = u16::from_be_bytes([payload[4], payload[5]]);
                let remote = u16::from_be_bytes([payload[6], payload[7]]);
                sink(local, remote, state);
            }
            NLMSG_DONE => {
                // The kernel puts the dump's final status here.
                if payload.len() >= 4 {
                    let status = u32_ne(payload, 0) as i32;
                    if status < 0 {
                        return Err(NetlinkError::Kernel { errno: -status });
                    }
                }
                progress.done = true;
                return Ok(progress);
            }
            NLMSG_ERROR => {
                if payload.len() < 4 {
                    return Err(NetlinkError::Malformed(
                        "NLMSG_ERROR without an error code".into(),
                    ));
                }
                let status = u32_ne(payload, 0) as i32;
                if status != 0 {
                    return Err(NetlinkError::Kernel {
                        errno: status.saturating_neg(),
                    });
                }
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

/// An open sock_diag socket, kept across reads, and its receive buffer.
pub struct Netlink {
    socket: Option<Socket>,
    buf: Vec<u8>,
    seq: u32,
}

impl Default for Netlink {
    fn default() -> Self {
        Netlink {
            socket: None,
            buf: Vec::with_capacity(RECV_BUFFER),
            seq: 0,
        }
    }
}

impl Netlink {
    /// Dumps the TCP sockets whose state is in `states` (a mask of
    /// `1 << state`) into `sink`. After any error the socket is closed, so
    /// the next dump starts clean on a new one.
    pub fn dump(
        &mut self,
        states: u32,
        sink: &mut impl FnMut(u16, u16, u8),
    ) -> Result<Progress, NetlinkError> {
        let result = self.try_dump(states, sink);
        if result.is_err() {
            self.socket = None;
        }
        result
    }

    fn try_dump(
        &mut self,
        states: u32,
        sink: &mut impl FnMut(u16, u16, u8),
    ) -> Result<Progress, NetlinkError> {
        if self.socket.is_none() {
            self.socket = Some(open()?);
        }
        let Netlink { socket, buf, seq } = self;
        let Some(socket) = socket.as_ref() else {
            return Err(NetlinkError::Malformed("no socket".into()));
        };
        *seq = seq.wrapping_add(1);
        socket
            .send_to(&request(*seq, states), &SocketAddr::new(0, 0), 0)
            .map_err(|err| NetlinkError::Io {
                call: "sendto",
                err,
            })?;
        let mut progress = Progress::default();
        loop {
            buf.clear();
            let len = match socket.recv(buf, libc::MSG_TRUNC) {
                Ok(len) => len,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(NetlinkError::Io { call: "recv", err }),
            };
            if len > buf.len() {
                return Err(NetlinkError::Malformed(format!(
                    "datagram of {len} bytes does not fit the {}-byte buffer",
                    buf.len()
                )));
            }
            if len == 0 {
                return Err(NetlinkError::Malformed("empty datagram".into()));
            }
            let step = parse_datagram(&buf[..len], *seq, sink)?;
            progress.interrupted |= step.interrupted;
            if step.done {
                progress.done = true;
                return Ok(progress);
            }
        }
    }
}

fn open() -> Result<Socket, NetlinkError> {
    let socket = Socket::new(NETLINK_SOCK_DIAG).map_err(|err| NetlinkError::Io {
        call: "socket(AF_NETLINK, NETLINK_SOCK_DIAG)",
        err,
    })?;
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
