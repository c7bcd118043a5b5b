//! Opening the sock_diag socket without `CAP_NET_ADMIN`. The kernel decides
//! per socket, from the credentials it was opened with, whether a dump shows
//! what only `CAP_NET_ADMIN` may see (socket marks, MD5 and ULP details), as
//! long as the request is sent without a destination address (with one, it
//! judges the sending thread instead). The plugin counts none of it, and
//! without it the kernel does less for every socket: bare dumps of 200k
//! sockets (3 x 21 each, with and without the capability) were 116 bytes per
//! socket instead of 124, and their minimum CPU per dump 152-161 ms instead
//! of 160-169. Capabilities belong to a thread, so lowering this thread's
//! for the `socket()` call changes nothing for collectd's other threads, and
//! it is put back right after. Where the kernel refuses (an LSM that denies
//! `capset`), the socket is opened as before. Under a seccomp filter
//! (systemd's `SystemCallFilter=`, containers) it is not tried at all: a
//! filter may kill the process on `capset`, which the C plugin never calls.

use std::io;

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const VERSION_3: u32 = 0x2008_0522;
/// `CAP_NET_ADMIN`, bit 12 of the first word.
const NET_ADMIN: u32 = 1 << 12;

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct Header {
    version: u32,
    pid: libc::c_int,
}

/// The header of both calls: version 3, pid 0 (the calling thread).
fn header() -> Header {
    Header {
        version: VERSION_3,
        pid: 0,
    }
}

/// `struct __user_cap_data_struct`, one per 32 capabilities.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The calling thread's capability sets.
fn get() -> io::Result<[Data; 2]> {
    let mut header = header();
    let mut data = [Data::default(); 2];
    // SAFETY: capget(2) with version 3 reads one header and writes two data
    // structs; both are live, writable and laid out as the kernel's.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut Header,
            data.as_mut_ptr(),
        )
    };
    if rc == 0 {
        Ok(data)
    } else {
        Err(io::Error::last_os_error())
    }
}

fn set(data: &[Data; 2]) -> io::Result<()> {
    let mut header = header();
    // SAFETY: capset(2) with version 3 reads one header and two data
    // structs; both are live and laid out as the kernel's. pid 0 is the
    // calling thread.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `CAP_NET_ADMIN` out of the calling thread's effective set while this
/// lives (if it was there and the kernel lets us); back in when it drops.
pub struct WithoutNetAdmin {
    saved: Option<[Data; 2]>,
}

/// The `Seccomp:` mode in the text of `/proc/.../status` (0: none, 1:
/// strict, 2: filter). Bytes, not `&str`: the `Name:` line is the thread's
/// name, which need not be UTF-8.
fn seccomp_mode(status: &[u8]) -> Option<u32> {
    let rest = status
        .split(|&b| b == b'\n')
        .find_map(|line| line.strip_prefix(b"Seccomp:"))?;
    std::str::from_utf8(rest).ok()?.trim().parse().ok()
}

/// Whether this thread may be under a seccomp filter: yes unless its status
/// says mode 0. Read into a fixed buffer (the line is in the first 2 KiB):
/// this runs each time a netlink socket is opened, and a smaller reader is
/// less code resident.
fn under_seccomp() -> bool {
    use std::io::Read;
    let file = std::fs::File::open("/proc/thread-self/status")
        .or_else(|_| std::fs::File::open("/proc/self/status"));
    let Ok(mut file) = file else {
        return true;
    };
    let mut buf = [0u8; 4096];
    let mut len = 0;
    while len < buf.len() {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
    seccomp_mode(&buf[..len]) != Some(0)
}

impl WithoutNetAdmin {
    pub fn lower() -> WithoutNetAdmin {
        if under_seccomp() {
            return WithoutNetAdmin { saved: None };
        }
        let saved = get().ok().filter(|d| d[0].effective & NET_ADMIN != 0);
        let saved = saved.filter(|d| {
            let mut lowered = *d;
            lowered[0].effective &= !NET_ADMIN;
            set(&lowered).is_ok()
        });
        WithoutNetAdmin { saved }
    }

    /// Whether `CAP_NET_ADMIN` was lowered.
    pub fn lowered(&self) -> bool {
        self.saved.is_some()
    }
}

impl Drop for WithoutNetAdmin {
    fn drop(&mut self) {
        // Raising an effective capability that is still permitted is always
        // allowed; if it still fails, say so: the thread is collectd's.
        if let Some(saved) = &self.saved {
            if let Err(err) = set(saved) {
                log::error!(
                    "tcpconns plugin: could not give CAP_NET_ADMIN back to this thread: {err}"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seccomp_mode_is_read_from_the_status_text() {
        let status = b"Name:\t\xffcollectd\nNoNewPrivs:\t0\nSeccomp:\t2\nSeccomp_filters:\t1\n";
        assert_eq!(seccomp_mode(status), Some(2));
        assert_eq!(seccomp_mode(b"Seccomp:\t0\n"), Some(0));
        assert_eq!(seccomp_mode(b"Name:\tx\n"), None);
        assert_eq!(seccomp_mode(b"Seccomp:\tzero\n"), None);
        // This process's own status parses.
        let own = std::fs::read("/proc/self/status").unwrap();
        assert!(seccomp_mode(&own).is_some());
    }

    #[test]
    fn net_admin_is_lowered_only_while_the_guard_lives() {
        let before = get().unwrap();
        let had = before[0].effective & NET_ADMIN != 0;
        {
            let guard = WithoutNetAdmin::lower();
            // Not tried under seccomp (a container's profile, say).
            assert_eq!(guard.lowered(), had && !under_seccomp());
            let mut want = before;
            if guard.lowered() {
                want[0].effective &= !NET_ADMIN;
            }
            // Only that bit moves: not the other effective bits, nor the
            // permitted and inheritable sets.
            assert_eq!(get().unwrap(), want);
        }
        assert_eq!(get().unwrap(), before);
    }
}
