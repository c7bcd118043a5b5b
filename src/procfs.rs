//! The `/proc/net/tcp` and `/proc/net/tcp6` source, used when netlink is not
//! available. Lines are parsed in place from one buffer reused across reads;
//! only the two ports and the state are read.
//!
//! ```text
//!   sl  local_address rem_address   st tx_queue rx_queue ...
//!    0: 0100007F:0016 00000000:0000 0A 00000000:00000000 ...
//! ```

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

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

/// Parses one line into `(local_port, remote_port, state)`. The header line
/// and blank lines give `Ok(None)`.
pub fn parse_line(line: &[u8]) -> Result<Option<(u16, u16, u8)>, LineError> {
    let mut fields = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    let Some(slot) = fields.next() else {
        return Ok(None);
    };
    if slot == b"sl" {
        return Ok(None);
    }
    if slot.last() != Some(&b':') {
        return Err(LineError("first field is not a slot number like \"0:\""));
    }
    let local = fields.next().ok_or(LineError("no local address"))?;
    let remote = fields.next().ok_or(LineError("no remote address"))?;
    let state = fields.next().ok_or(LineError("no state"))?;
    let local = port_of(local).ok_or(LineError("local address is not HEXADDR:HEXPORT"))?;
    let remote = port_of(remote).ok_or(LineError("remote address is not HEXADDR:HEXPORT"))?;
    let state = hex(state, 2).ok_or(LineError("state is not a hex byte"))?;
    // Bounded by hex(_, 2).
    Ok(Some((local, remote, state as u8)))
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

impl std::error::Error for ProcError {}

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
    buf: Vec<u8>,
}

impl Default for Procfs {
    fn default() -> Self {
        Procfs::new(Path::new("/proc/net"))
    }
}

impl Procfs {
    /// Reads `tcp` and `tcp6` under `dir`.
    pub fn new(dir: &Path) -> Procfs {
        Procfs {
            tcp: dir.join("tcp"),
            tcp6: dir.join("tcp6"),
            buf: vec![0; BUFFER],
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
        sink: &mut impl FnMut(u16, u16, u8),
    ) -> Result<Option<BadLines>, ProcError> {
        let mut bad = None;
        let Procfs { tcp, tcp6, buf } = self;
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
    listeners_only: bool,
    sink: &mut impl FnMut(u16, u16, u8),
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
            match parse_line(line) {
                Ok(Some((local, remote, state))) => {
                    if listeners_only && state != listen {
                        return Ok(());
                    }
                    sink(local, remote, state);
                }
                Ok(None) => {}
                Err(why) => bad(line_no, line, why),
            }
        }
        if n == 0 {
            // A last line without a newline.
            if start < end {
                line_no += 1;
                match parse_line(&buf[start..end]) {
                    Ok(Some((l, r, s))) if !listeners_only || s == listen => sink(l, r, s),
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
