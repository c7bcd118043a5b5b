//! The `/proc/net/tcp` and `/proc/net/tcp6` source, used when netlink is not
//! available. Lines are parsed in place from one buffer reused across reads;
//! only the two ports and the state are read, and what [`Fields`] asks for.
//!
//! ```text
//!   sl  local_address rem_address   st tx_queue rx_queue ...
//!    0: 0100007F:0016 00000000:0000 0A 00000000:00000000 ...
//! ```

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::network::{mapped, Addr};
use crate::socket::{Fields, Socket};
use crate::state::TcpState;

/// Enough for hundreds of lines per system call; lines are ~150 bytes.
const BUFFER: usize = 64 * 1024;

/// Why one line could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError(pub &'static str);

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// Parses one line into a [`Socket`]: the two ports, the state and, for a
/// listener, its accept queue (`rx_queue`; procfs does not show the limit);
/// with `fields`, the addresses, and every socket's queues (`tx_queue` is
/// the send queue, `rx_queue` the receive queue). The header line and blank
/// lines give `Ok(None)`.
pub fn parse_line(line: &[u8], fields: Fields) -> Result<Option<Socket>, LineError> {
    let Fields {
        addresses, health, ..
    } = fields;
    let mut columns = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    let Some(slot) = columns.next() else {
        return Ok(None);
    };
    if slot == b"sl" {
        return Ok(None);
    }
    if slot.last() != Some(&b':') {
        return Err(LineError("first field is not a slot number like \"0:\""));
    }
    let local = columns.next().ok_or(LineError("no local address"))?;
    let remote = columns.next().ok_or(LineError("no remote address"))?;
    let state = columns.next().ok_or(LineError("no state"))?;
    let local_at = local;
    let remote_at = remote;
    let local = port_of(local).ok_or(LineError("local address is not HEXADDR:HEXPORT"))?;
    let remote = port_of(remote).ok_or(LineError("remote address is not HEXADDR:HEXPORT"))?;
    // Bounded by hex(_, 2).
    let state = hex(state, 2).ok_or(LineError("state is not a hex byte"))? as u8;
    let mut socket = Socket::new(local, remote, state);
    if addresses {
        // port_of accepted both fields, so their addresses are 8 or 32 hex
        // digits before the colon.
        socket.local_addr = addr_of(local_at).ok_or(LineError("local address is not hex"))?;
        socket.remote_addr = addr_of(remote_at).ok_or(LineError("remote address is not hex"))?;
    }
    let listener = state == TcpState::Listen as u8;
    if listener || health {
        let queues = columns.next().ok_or(LineError("no tx_queue:rx_queue"))?;
        let (tx, rx) = queues_of(queues).ok_or(LineError("tx_queue:rx_queue is not HEX:HEX"))?;
        socket.rqueue = rx;
        // A listener's tx_queue is no limit: procfs does not show one.
        socket.wqueue = (!listener).then_some(tx);
    }
    Ok(Some(socket))
}

/// `tx_queue:rx_queue`, 8 hex digits at most each.
fn queues_of(field: &[u8]) -> Option<(u32, u32)> {
    let colon = field.iter().position(|&b| b == b':')?;
    Some((hex(&field[..colon], 8)?, hex(&field[colon + 1..], 8)?))
}

/// The port of `HEXADDR:HEXPORT` (8 hex digits of address for IPv4, 32 for
/// IPv6).
fn port_of(field: &[u8]) -> Option<u16> {
    let colon = field.iter().position(|&b| b == b':')?;
    let (addr, port) = (&field[..colon], &field[colon + 1..]);
    if !(addr.len() == 8 || addr.len() == 32) || !addr.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    // Bounded by hex(_, 4).
    hex(port, 4).map(|p| p as u16)
}

/// The address of `HEXADDR:HEXPORT` in IPv6 form. The kernel prints each
/// 32-bit word of the address as a host-order number, so each word's bytes
/// are that number's native-endian bytes.
fn addr_of(field: &[u8]) -> Option<Addr> {
    let colon = field.iter().position(|&b| b == b':')?;
    let word = |i: usize| hex(field.get(i * 8..i * 8 + 8)?, 8).map(u32::to_ne_bytes);
    match colon {
        8 => Some(mapped(word(0)?)),
        32 => {
            let mut a = [0u8; 16];
            for i in 0..4 {
                a[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(a)
        }
        _ => None,
    }
}

/// A hex number of 1 to `max_digits` digits.
fn hex(digits: &[u8], max_digits: usize) -> Option<u32> {
    if digits.is_empty() || digits.len() > max_digits {
        return None;
    }
    digits.iter().try_fold(0u32, |acc, &b| {
        let d = (b as char).to_digit(16)?;
        Some(acc << 4 | d)
    })
}

/// A read of the tables that failed as a whole.
#[derive(Debug)]
pub struct ProcError {
    pub path: PathBuf,
    pub err: io::Error,
}

impl fmt::Display for ProcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot read {}: {}", self.path.display(), self.err)
    }
}

impl std::error::Error for ProcError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.err)
    }
}

/// The first line of a read that could not be parsed, and how many there were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLines {
    pub count: u32,
    pub first: String,
}

/// Reads the TCP tables of the calling thread's network namespace.
pub struct Procfs {
    tcp: PathBuf,
    tcp6: PathBuf,
    /// Allocated at the first dump: on a host where netlink works, procfs is
    /// never read and its buffer would only add to collectd's memory.
    buf: Vec<u8>,
    fields: Fields,
}

impl Procfs {
    /// Reads `tcp` and `tcp6` under `dir` (`/proc/net`: the calling thread's
    /// namespace), reading of each socket what `fields` asks for.
    pub fn new(dir: &Path, fields: Fields) -> Procfs {
        Procfs {
            tcp: dir.join("tcp"),
            tcp6: dir.join("tcp6"),
            buf: Vec::new(),
            fields,
        }
    }

    /// Feeds every socket to `sink`. With `listeners_only`, feeds LISTEN
    /// sockets and stops each file at its first other socket: the kernel
    /// prints its listening table before the others. A missing `tcp6` means
    /// IPv6 is off and counts as empty. Lines that do not parse are skipped
    /// and reported in the returned [`BadLines`].
    pub fn dump(
        &mut self,
        listeners_only: bool,
        sink: &mut impl FnMut(&Socket),
    ) -> Result<Option<BadLines>, ProcError> {
        let mut bad = None;
        if self.buf.len() < BUFFER {
            self.buf = vec![0; BUFFER];
        }
        let Procfs {
            tcp,
            tcp6,
            buf,
            fields,
        } = self;
        for (path, required) in [(&*tcp, true), (&*tcp6, false)] {
            let file = match File::open(path) {
                Ok(file) => file,
                Err(err) if !required && err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => {
                    return Err(ProcError {
                        path: path.clone(),
                        err,
                    })
                }
            };
            read_table(
                file,
                buf,
                *fields,
                listeners_only,
                sink,
                &mut |line_no, line, why| {
                    let b = bad.get_or_insert_with(|| BadLines {
                        count: 0,
                        first: format!(
                            "{}:{line_no}: {why}: \"{}\"",
                            path.display(),
                            String::from_utf8_lossy(&line[..line.len().min(200)])
                        ),
                    });
                    b.count = b.count.saturating_add(1);
                },
            )
            .map_err(|err| ProcError {
                path: path.clone(),
                err,
            })?;
        }
        Ok(bad)
    }
}

/// Streams one table through `buf`, line by line.
fn read_table(
    mut file: impl Read,
    buf: &mut [u8],
    fields: Fields,
    listeners_only: bool,
    sink: &mut impl FnMut(&Socket),
    bad: &mut impl FnMut(usize, &[u8], LineError),
) -> io::Result<()> {
    let listen = TcpState::Listen as u8;
    let mut filled = 0;
    let mut line_no = 0;
    loop {
        let n = match file.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        let end = filled + n;
        let mut start = 0;
        while let Some(pos) = buf[start..end].iter().position(|&b| b == b'\n') {
            let line = &buf[start..start + pos];
            start += pos + 1;
            line_no += 1;
            match parse_line(line, fields) {
                Ok(Some(socket)) => {
                    if listeners_only && socket.state != listen {
                        return Ok(());
                    }
                    sink(&socket);
                }
                Ok(None) => {}
                Err(why) => bad(line_no, line, why),
            }
        }
        if n == 0 {
            // A last line without a newline.
            if start < end {
                line_no += 1;
                match parse_line(&buf[start..end], fields) {
                    Ok(Some(s)) if !listeners_only || s.state == listen => sink(&s),
                    Ok(_) => {}
                    Err(why) => bad(line_no, &buf[start..end], why),
                }
            }
            return Ok(());
        }
        buf.copy_within(start..end, 0);
        filled = end - start;
        if filled == buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("line {} is longer than {} bytes", line_no + 1, buf.len()),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scratch;

    const PORTS: Fields = Fields::PORTS;
    const ADDRESSES: Fields = Fields::ADDRESSES;

    const TCP: &str = include_str!("../tests/fixtures/proc_net_tcp.txt");
    const TCP6: &str = include_str!("../tests/fixtures/proc_net_tcp6.txt");

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

    /// A scratch directory holding `tcp` (and `tcp6` when given), removed
    /// when the test ends, passed or failed.
    fn tables(name: &str, tcp: &str, tcp6: Option<&str>) -> Scratch {
        let dir = Scratch::new(name);
        std::fs::write(dir.join("tcp"), tcp).unwrap();
        if let Some(tcp6) = tcp6 {
            std::fs::write(dir.join("tcp6"), tcp6).unwrap();
        }
        dir
    }

    fn dump(dir: &Path, listeners_only: bool) -> (Vec<(u16, u16, u8)>, Option<BadLines>) {
        let mut got = Vec::new();
        let bad = Procfs::new(dir, PORTS)
            .dump(listeners_only, &mut |s: &Socket| {
                got.push((s.local, s.remote, s.state))
            })
            .unwrap();
        got.sort();
        (got, bad)
    }

    #[test]
    fn header_and_blank_lines_are_not_sockets() {
        assert_eq!(
            parse_line(TCP.lines().next().unwrap().as_bytes(), PORTS),
            Ok(None)
        );
        assert_eq!(parse_line(b"", PORTS), Ok(None));
        assert_eq!(parse_line(b"   \t ", PORTS), Ok(None));
    }

    #[test]
    fn a_line_gives_ports_and_state() {
        let line = b"   0: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 6913 1";
        let listener = Socket {
            rqueue: 0,
            ..Socket::new(22, 0, 10)
        };
        assert_eq!(parse_line(line, PORTS), Ok(Some(listener)));
        let mapped = b"   3: 0000000000000000FFFF00000100007F:0050 0000000000000000FFFF00000100007F:ACF2 01 00000000:00000000 00:00000000 00000000     0        0 6920 1";
        assert_eq!(
            parse_line(mapped, PORTS),
            Ok(Some(Socket::new(80, 0xacf2, 1)))
        );
        let backlog = b"   0: 0100007F:0016 00000000:0000 0A 00000000:00000011 00:00000000 00000000     0        0 6913 1";
        assert_eq!(parse_line(backlog, PORTS).unwrap().unwrap().rqueue, 17);
        let no_queue = b"   0: 0100007F:0016 00000000:0000 0A";
        assert!(parse_line(no_queue, PORTS).is_err());
    }

    #[test]
    fn every_sockets_queues_are_read_only_for_health() {
        // tx_queue 0x20 (32 bytes unacknowledged), rx_queue 0x1f4 (500
        // bytes unread), ESTABLISHED.
        let line = b"   4: 0100007F:9C40 0100007F:1F90 01 00000020:000001F4 01:00000014 00000000     0        0 7 1";
        let health = Fields::HEALTH;
        let s = parse_line(line, health).unwrap().unwrap();
        assert_eq!((s.rqueue, s.wqueue), (500, Some(32)));
        assert_eq!(s.info, None, "procfs has no tcp_info");
        let s = parse_line(line, PORTS).unwrap().unwrap();
        assert_eq!((s.rqueue, s.wqueue), (0, None), "not unless asked");
        // A listener's tx_queue is no limit.
        let listener = b"   0: 0100007F:0016 00000000:0000 0A 00000000:00000003 00:00000000 00000000     0        0 1 1";
        let s = parse_line(listener, health).unwrap().unwrap();
        assert_eq!((s.rqueue, s.wqueue), (3, None));
        let bad = b"   4: 0100007F:9C40 0100007F:1F90 01 00000020:1F4X";
        assert!(parse_line(bad, health).is_err());
        assert!(parse_line(bad, PORTS).is_ok(), "queues are not read");
    }

    #[test]
    fn addresses_are_read_in_ipv6_form_when_asked() {
        let v4 = b"   0: 0300007F:0016 0A01A8C0:9C40 01 00000000:00000000 00:00000000 00000000     0        0 1 1";
        let s = parse_line(v4, ADDRESSES).unwrap().unwrap();
        assert_eq!(s.local_addr, mapped([127, 0, 0, 3]));
        assert_eq!(s.remote_addr, mapped([192, 168, 1, 10]));
        assert_eq!(
            parse_line(v4, PORTS).unwrap().unwrap().local_addr,
            [0; 16],
            "not unless asked"
        );
        let line = TCP6.lines().nth(2).unwrap(); // [::1]:8080
        let s = parse_line(line.as_bytes(), ADDRESSES).unwrap().unwrap();
        assert_eq!(
            s.local_addr,
            std::net::Ipv6Addr::LOCALHOST.octets(),
            "{line}"
        );
        let mapped_line = b"   3: 0000000000000000FFFF00000100007F:0050 0000000000000000FFFF00000200007F:ACF2 01 0:0";
        let s = parse_line(mapped_line, ADDRESSES).unwrap().unwrap();
        assert_eq!(s.local_addr, mapped([127, 0, 0, 1]));
        assert_eq!(s.remote_addr, mapped([127, 0, 0, 2]));
    }

    #[test]
    fn real_tables_parse_line_by_line() {
        for (text, want) in [
            (TCP, include_str!("../tests/fixtures/expected_proc_tcp.txt")),
            (
                TCP6,
                include_str!("../tests/fixtures/expected_proc_tcp6.txt"),
            ),
        ] {
            let mut got: Vec<_> = text
                .lines()
                .filter_map(|l| parse_line(l.as_bytes(), PORTS).unwrap())
                .map(|s| (s.local, s.remote, s.state))
                .collect();
            got.sort();
            assert_eq!(got, expected(want));
        }
    }

    #[test]
    fn both_tables_together_match_the_netlink_capture() {
        let dir = tables("both", TCP, Some(TCP6));
        let (got, bad) = dump(&dir, false);
        assert_eq!(
            got,
            expected(include_str!("../tests/fixtures/expected_all.txt"))
        );
        assert_eq!(bad, None);
        let (listeners, _) = dump(&dir, true);
        assert_eq!(
            listeners,
            expected(include_str!("../tests/fixtures/expected_listen.txt"))
        );
    }

    #[test]
    fn missing_tcp6_means_no_ipv6_but_missing_tcp_is_an_error() {
        let dir = tables("no6", TCP, None);
        let (got, _) = dump(&dir, false);
        assert_eq!(
            got,
            expected(include_str!("../tests/fixtures/expected_proc_tcp.txt"))
        );
        std::fs::remove_file(dir.join("tcp")).unwrap();
        let mut sink = |_: &Socket| {};
        let err = Procfs::new(&dir, PORTS).dump(false, &mut sink).unwrap_err();
        assert!(err
            .to_string()
            .starts_with(&format!("cannot read {}", dir.join("tcp").display())));
    }

    #[test]
    fn malformed_lines_are_skipped_and_reported_with_their_place() {
        let mut text = String::from(TCP);
        text.push_str("  99: 0100007F:ZZZZ 00000000:0000 0A 0\n");
        text.push_str("garbage\n");
        text.push_str("  98: 0100007F:0017 00000000:0000\n");
        text.push_str("  97: 0100007F:0018 00000000:0000 0A 0:0"); // no newline at the end
        let dir = tables("bad", &text, None);
        let (got, bad) = dump(&dir, false);
        let mut want = expected(include_str!("../tests/fixtures/expected_proc_tcp.txt"));
        want.push((24, 0, 10));
        want.sort();
        assert_eq!(got, want);
        let bad = bad.unwrap();
        assert_eq!(bad.count, 3);
        let line = TCP.lines().count() + 1;
        assert!(
            bad.first.starts_with(&format!(
                "{}:{line}: local address",
                dir.join("tcp").display()
            )),
            "{}",
            bad.first
        );
    }

    #[test]
    fn odd_fields_are_refused() {
        for line in [
            "0 0100007F:0016 00000000:0000 0A",
            "0: 0100007F0016 00000000:0000 0A",
            "0: 0100007F:00016 00000000:0000 0A",
            "0: 100007F:0016 00000000:0000 0A",
            "0: 0100007F:0016 00000000:0000 100",
            "0: 0100007F:0016 00000000:0000 G1",
            "0: 0100007F:0016 00000000:",
            "0: 0100007F:",
        ] {
            assert!(parse_line(line.as_bytes(), PORTS).is_err(), "{line}");
        }
    }

    /// Hands out at most `step` bytes per read, as a slow file might.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn lines_split_across_reads_and_a_small_buffer_give_the_same_result() {
        let want = {
            let mut v: Vec<_> = TCP6
                .lines()
                .filter_map(|l| parse_line(l.as_bytes(), PORTS).unwrap())
                .map(|s| (s.local, s.remote, s.state))
                .collect();
            v.sort();
            v
        };
        for (buffer, step) in [(400, 1), (400, 7), (200, 199), (BUFFER, BUFFER)] {
            let mut got = Vec::new();
            let mut buf = vec![0; buffer];
            read_table(
                Trickle {
                    data: TCP6.as_bytes(),
                    step,
                },
                &mut buf,
                PORTS,
                false,
                &mut |s: &Socket| got.push((s.local, s.remote, s.state)),
                &mut |n, _, why| panic!("line {n}: {why}"),
            )
            .unwrap();
            got.sort();
            assert_eq!(got, want, "buffer {buffer}, step {step}");
        }
    }

    #[test]
    fn a_line_longer_than_the_buffer_is_an_error() {
        let mut buf = vec![0; 100];
        let err = read_table(
            Trickle {
                data: TCP6.as_bytes(),
                step: 50,
            },
            &mut buf,
            PORTS,
            false,
            &mut |_: &Socket| {},
            &mut |_, _, _| {},
        )
        .unwrap_err();
        assert!(err.to_string().contains("longer than 100 bytes"), "{err}");
    }
}
