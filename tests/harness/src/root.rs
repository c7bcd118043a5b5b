//! Which tests can run here: most need root to make network namespaces and
//! run collectd in them; without it they skip, and say so where `cargo test`
//! shows it.

use std::io::Write;

/// Linux capability numbers (linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;

/// Whether this process can do what the namespace tests do: effective uid
/// 0 (collectd's files, `/run/netns`) and CAP_SYS_ADMIN + CAP_NET_ADMIN in
/// its effective set (`ip netns add`, `setns`, bringing `lo` up). Root in a
/// container without those capabilities does not count.
pub(crate) fn have_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    euid == 0
        && effective_caps().is_some_and(|caps| {
            [CAP_SYS_ADMIN, CAP_NET_ADMIN]
                .iter()
                .all(|cap| caps & (1u64 << cap) != 0)
        })
}

/// `CapEff` of /proc/self/status.
fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// [`have_root`], and if not, a line `skipped <test>: needs root (<why>)`
/// written straight to the stderr descriptor: libtest captures `eprintln!`
/// of a passing test, not this.
pub fn root_or_skip(why: &str) -> bool {
    if have_root() {
        return true;
    }
    skip(&format!(
        "needs root (euid 0 with CAP_SYS_ADMIN and CAP_NET_ADMIN) to {why}"
    ));
    false
}

/// Writes `skipped <test>: <reason>` straight to the stderr descriptor
/// (libtest keeps `eprintln!` of a passing test to itself).
pub fn skip(reason: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("this test");
    let line = format!("skipped {test}: {reason}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Returns from the calling test, with a visible skip line, unless it runs
/// with root (see [`have_root`]). `require_root!()` gives the usual reason;
/// `require_root!("why")` a reason of its own.
#[macro_export]
macro_rules! require_root {
    () => {
        $crate::require_root!("make network namespaces and run collectd in them")
    };
    ($why:expr) => {
        if !$crate::root_or_skip($why) {
            return;
        }
    };
}

/// Debian's collectd, which every end-to-end test starts.
pub const COLLECTD: &str = "/usr/sbin/collectd";

/// Whether collectd can be started here; if not, a skip line like
/// [`root_or_skip`]'s. Only without root: `ci/test.sh` installs collectd
/// as root, and a root run that skipped for want of it would prove nothing,
/// so there the test goes on and fails saying collectd cannot start.
pub fn collectd_or_skip() -> bool {
    if have_root() || std::path::Path::new(COLLECTD).exists() {
        return true;
    }
    skip(&format!("needs {COLLECTD} (Debian package collectd-core)"));
    false
}

/// Returns from the calling test, with a visible skip line, when collectd
/// is not installed and the test does not run as root (see
/// [`collectd_or_skip`]).
#[macro_export]
macro_rules! require_collectd {
    () => {
        if !$crate::collectd_or_skip() {
            return;
        }
    };
}
