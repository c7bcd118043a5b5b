//! Opening the sock_diag socket without `CAP_NET_ADMIN`. The kernel decides
//! per socket, from the credentials it was opened with, whether a dump shows
//! what only `CAP_NET_ADMIN` may see (socket marks, MD5 and ULP details), as
//! long as the request is sent without a destination address (with one, it
//! judges the sending thread instead). The plugin counts none of it, and
//! without it the kernel builds smaller messages (docs/benchmark.md has the
//! measurements).
//!
//! Capabilities belong to a thread. The socket is opened on a short-lived
//! thread of its own ([`crate::netns::on_own_thread`]) that drops the
//! capability for good and then ends: no collectd thread ever has its
//! credentials changed, so there is nothing to put back and nothing that
//! can fail to be put back. Where the kernel refuses (an LSM that denies
//! `capset`), the socket is opened with the capability. Under a seccomp
//! filter (systemd's `SystemCallFilter=`, containers) it is not tried at
//! all: a filter may kill the process on `capset`, which the C plugin never
//! calls.

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
/// says mode 0.
fn under_seccomp() -> bool {
    let status =
        std::fs::read("/proc/thread-self/status").or_else(|_| std::fs::read("/proc/self/status"));
    status.map_or(true, |s| seccomp_mode(&s) != Some(0))
}

/// Takes `CAP_NET_ADMIN` out of the calling thread's effective, permitted
/// and inheritable sets, for good; returns whether it was effective and is
/// gone now. Only for a thread that ends soon after ([`crate::netns::on_own_thread`]):
/// nothing gives the capability back.
pub fn drop_net_admin() -> bool {
    if under_seccomp() {
        return false;
    }
    let Ok(mut data) = get() else {
        return false;
    };
    let had = data[0].effective & NET_ADMIN != 0;
    data[0].effective &= !NET_ADMIN;
    data[0].permitted &= !NET_ADMIN;
    data[0].inheritable &= !NET_ADMIN;
    had && set(&data).is_ok()
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
    fn net_admin_is_dropped_on_its_own_thread_only() {
        let before = get().unwrap();
        let skip = if before[0].effective & NET_ADMIN == 0 {
            Some("this process has no CAP_NET_ADMIN to drop (not root)")
        } else if under_seccomp() {
            Some("this process runs under a seccomp filter, which may refuse capset")
        } else {
            None
        };
        if let Some(why) = skip {
            // Straight to the terminal: libtest hides eprintln! of a passing test.
            use std::io::Write;
            let line =
                format!("caps::net_admin_is_dropped_on_its_own_thread_only: skipped: {why}\n");
            let _ = std::io::stderr().write_all(line.as_bytes());
            return;
        }
        let (dropped, on_thread) =
            crate::netns::on_own_thread(None, || (drop_net_admin(), get().unwrap())).unwrap();
        assert!(dropped);
        // On that thread the bit is gone from all three sets, and nothing
        // else moved.
        let mut want = before;
        want[0].effective &= !NET_ADMIN;
        want[0].permitted &= !NET_ADMIN;
        want[0].inheritable &= !NET_ADMIN;
        assert_eq!(on_thread, want);
        // This thread never changed.
        assert_eq!(get().unwrap(), before);
    }
}
