//! Other network namespaces: their sockets are read through a netlink socket
//! opened inside them. Only a short-lived thread ever joins a namespace, so
//! collectd's own threads never change theirs.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// What identifies a namespace behind a path such as `/run/netns/web`: its
/// nsfs device and inode. A namespace deleted and made again under the same
/// name has a new identity.
pub type Identity = (u64, u64);

/// The identity of the namespace at `path`, or the error (NotFound when it
/// is gone).
pub fn identity(path: &Path) -> io::Result<Identity> {
    let meta = std::fs::metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}

/// Runs `f` on a new thread that has joined the network namespace at
/// `path`; returns its result and the namespace's identity.
pub fn run_in<T: Send>(path: &Path, f: impl FnOnce() -> T + Send) -> io::Result<(T, Identity)> {
    std::thread::scope(|scope| {
        let thread = scope.spawn(|| {
            let file = File::open(path)?;
            let meta = file.metadata()?;
            // SAFETY: setns on a descriptor that stays open for the call; it
            // changes the namespace of this thread only, which ends below.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok((f(), (meta.dev(), meta.ino())))
        });
        thread
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the namespace thread panicked")))
    })
}
