//! Short-lived threads for what must not touch collectd's own threads:
//! joining another network namespace, and dropping a capability
//! ([`crate::caps`]). Both change only the calling thread, and the thread
//! ends with them.

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

/// Runs `f` on a new thread, which first joins the network namespace at
/// `namespace` if one is given. File descriptors `f` opens stay in the
/// process (and a socket in the namespace it was opened in).
pub fn on_own_thread<T: Send>(
    namespace: Option<&Path>,
    f: impl FnOnce() -> T + Send,
) -> io::Result<T> {
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name("tcpconns".into())
            .spawn_scoped(scope, || {
                if let Some(path) = namespace {
                    let file = File::open(path)?;
                    // SAFETY: setns on a descriptor that stays open for the
                    // call; it changes the namespace of this thread only, which
                    // ends below.
                    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                    if rc != 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(f())
            })?;
        thread
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the plugin's own thread panicked")))
    })
}
