//! Whole tables through `procfs::Procfs::dump`, which streams files through
//! its buffer (the streaming reader itself is private, so the bytes go to a
//! `tcp` and a `tcp6` file in a scratch directory).
//!
//! Input: one byte of flags (bit 0 listeners only, bit 1 addresses, bit 2 no
//! `tcp6` file, bit 3 health), then the `tcp` bytes and the `tcp6` bytes separated by the
//! first NUL (no NUL: all `tcp`, `tcp6` empty).
//!
//! Invariants: no panic; `dump` gives exactly the sockets, in order, and the
//! count of bad lines that parsing the same bytes line by line with
//! `parse_line` gives (stopping a file at its first non-LISTEN socket when
//! listeners only); it fails only for a line that does not fit its 64 KiB
//! buffer.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tcpconns::procfs::{parse_line, Procfs};
use tcpconns::socket::{Fields, Socket};

/// `procfs::BUFFER`: a line this long or longer cannot be read.
const BUFFER: usize = 64 * 1024;
const LISTEN: u8 = 10;

/// A scratch directory of this process, in memory where there is one.
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = std::path::Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("tcpconns-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        dir
    })
}

type Model = (Vec<Socket>, u32, bool);

/// What `dump` should give for one file: sockets, bad lines, and whether a
/// line too long for the buffer stops it.
fn model(
    bytes: &[u8],
    fields: Fields,
    listeners_only: bool,
    (sockets, bad, _): &mut Model,
) -> bool {
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    if bytes.last() == Some(&b'\n') || bytes.is_empty() {
        lines.pop();
    }
    for line in lines {
        if line.len() >= BUFFER {
            return false;
        }
        match parse_line(line, fields) {
            Ok(Some(s)) => {
                if listeners_only && s.state != LISTEN {
                    return true;
                }
                sockets.push(s);
            }
            Ok(None) => {}
            Err(_) => *bad += 1,
        }
    }
    true
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let listeners_only = flags & 1 != 0;
    let fields = Fields {
        addresses: flags & 2 != 0,
        health: flags & 8 != 0,
        // /proc has no cgroup ids: never asked of it.
        cgroup: false,
    };
    let with_tcp6 = flags & 4 == 0;
    let (tcp, tcp6) = match rest.iter().position(|&b| b == 0) {
        Some(nul) => (&rest[..nul], &rest[nul + 1..]),
        None => (rest, &[][..]),
    };

    let dir = dir();
    std::fs::write(dir.join("tcp"), tcp).unwrap();
    if with_tcp6 {
        std::fs::write(dir.join("tcp6"), tcp6).unwrap();
    } else {
        match std::fs::remove_file(dir.join("tcp6")) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("{e}"),
        }
    }

    let mut want: Model = (Vec::new(), 0, true);
    want.2 = model(tcp, fields, listeners_only, &mut want)
        && (!with_tcp6 || model(tcp6, fields, listeners_only, &mut want));

    let mut procfs = Procfs::new(dir, fields);
    let mut got = Vec::new();
    let result = procfs.dump(listeners_only, &mut |s: &Socket| {
        if listeners_only {
            assert_eq!(s.state, LISTEN, "a listeners-only dump fed {s:?}");
        }
        got.push(*s)
    });
    match result {
        Ok(bad) => {
            assert!(want.2, "dump read a line longer than its buffer");
            assert_eq!(got, want.0, "sockets differ from line-by-line parsing");
            assert_eq!(bad.map_or(0, |b| b.count), want.1, "bad line count");
        }
        Err(err) => {
            assert!(!want.2, "dump failed on lines that fit: {err}");
            assert!(err.to_string().contains("longer than"), "{err}");
        }
    }
});
