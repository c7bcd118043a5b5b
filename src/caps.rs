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
//! `capset`), the socket is opened as before.

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

/// `struct __user_cap_data_struct`, one per 32 capabilities.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Data {
    pub effective: u32,
    pub permitted: u32,
    pub inheritable: u32,
}

/// The calling thread's capability sets.
pub fn get() -> io::Result<[Data; 2]> {
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
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
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
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

impl WithoutNetAdmin {
    pub fn lower() -> WithoutNetAdmin {
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
    fn net_admin_is_lowered_only_while_the_guard_lives() {
        let before = get().unwrap();
        let had = before[0].effective & NET_ADMIN != 0;
        {
            let guard = WithoutNetAdmin::lower();
            let during = get().unwrap();
            assert_eq!(during[0].effective & NET_ADMIN, 0);
            assert_eq!(guard.lowered(), had);
            // Nothing else moves: the other effective bits, the permitted and
            // inheritable sets.
            assert_eq!(
                during[0].effective | (before[0].effective & NET_ADMIN),
                before[0].effective
            );
            assert_eq!(during[1], before[1]);
            assert_eq!(
                (during[0].permitted, during[0].inheritable),
                (before[0].permitted, before[0].inheritable)
            );
        }
        assert_eq!(get().unwrap(), before);
    }
}
