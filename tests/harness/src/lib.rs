//! The one harness of the integration tests in `tests/*.rs`.
//!
//! - [`Netns`] and [`Population`]: a throw-away network namespace and a known
//!   set of TCP sockets in it, with what `ss` should show for them ([`Sock`]).
//! - [`Conf`] and [`Collectd`]: one config writer and one runner of the real
//!   collectd, stopped when its handle drops (even on a failed assertion);
//!   [`run_collectd`] & co. for the usual one-read runs, giving a [`Run`].
//! - [`Csv`]: everything the csv writer wrote, by full identifier.
//! - [`Selection`], [`expected_values`], [`assert_values`]: what the plugin
//!   must dispatch, worked out from the contract, and an exact comparison.
//! - [`plugin_dir`] and the LD_PRELOAD shims: the builds the tests load.
//! - [`require_root!`]: skips (visibly) a test that needs root.

mod builds;
mod collectd;
mod csv;
mod expect;
mod namespace;
mod population;
mod root;
mod sockets;

pub use builds::*;
pub use collectd::*;
pub use csv::*;
pub use expect::*;
pub use namespace::*;
pub use population::*;
pub use root::*;
pub use sockets::*;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Stops `child` (named `what` in the message): SIGTERM, then SIGKILL if it
/// has not exited `grace` later; its exit status.
pub fn terminate(child: &mut Child, what: &str, grace: Duration) -> std::io::Result<ExitStatus> {
    if let Some(status) = child.try_wait()? {
        return Ok(status);
    }
    // SAFETY: a signal to a child process of ours, not yet waited for.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("{what} did not stop within {grace:?} of SIGTERM; killing it");
    let _ = child.kill();
    child.wait()
}

/// The plugin crate's root directory (this crate lives in `tests/harness`).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tests/harness has a repository root")
        .to_path_buf()
}

/// A process-wide unique number (for names of namespaces and scratch dirs).
fn unique() -> usize {
    static UNIQUE: AtomicUsize = AtomicUsize::new(0);
    UNIQUE.fetch_add(1, Ordering::Relaxed)
}

/// A new empty scratch directory `tcpc-<tag>-<pid>-<n>` under the temp
/// dir, removed on drop (also when the test fails) unless `KEEP_TMP` is set.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("tcpc-{tag}-{}-{}", std::process::id(), unique()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("KEEP_TMP").is_some() {
            eprintln!("KEEP_TMP: kept {}", self.0.display());
        } else if let Err(e) = fs::remove_dir_all(&self.0) {
            eprintln!("warning: cannot remove {}: {e}", self.0.display());
        }
    }
}

/// Polls `done` every 50 ms until it holds; panics after `timeout` with
/// `what` and whatever `context` says then.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
    context: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
            panic!("no {what} after {timeout:?}\n{}", context());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a command and returns its output (panics only if it cannot start).
pub fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// stdout and stderr of `out`, for messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a command, panicking with its output unless it succeeds; returns
/// stdout and stderr together.
pub fn checked(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}",
        out.status,
        text(&out)
    );
    text(&out)
}
