//! Throw-away network namespaces, and waiting for what `ss` shows in them.

use crate::{checked, parse_ss, unique, wait_until, Sock};
use std::fs;
use std::os::fd::AsRawFd;
use std::process::{Command, Output};
use std::time::Duration;

/// A named network namespace (`ip netns add`), deleted on drop.
///
/// Inside it: `lo` is up, `net.ipv4.ip_local_port_range` is `40000 49999`
/// (ephemeral ports never collide with test listener ports below 40000) and
/// `net.ipv4.tcp_tw_reuse` is 0 (a new connect never recycles a TIME_WAIT
/// socket of the population).
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `tcpc-<tag>-<pid>-<counter>` and configures it; panics on failure.
    pub fn new(tag: &str) -> Netns {
        Netns::with_name(format!("tcpc-{tag}-{}-{}", std::process::id(), unique()))
    }

    /// Creates and configures the namespace `name` exactly; panics on failure.
    pub fn with_name(name: String) -> Netns {
        checked(Command::new("ip").args(["netns", "add", &name]));
        // From here on, Drop cleans up even if the setup below panics.
        let ns = Netns { name };
        checked(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]));
        for setting in [
            "net.ipv4.ip_local_port_range=40000 49999",
            "net.ipv4.tcp_tw_reuse=0",
        ] {
            checked(
                Command::new("ip").args(["netns", "exec", &ns.name, "sysctl", "-q", "-w", setting]),
            );
        }
        ns
    }

    /// The namespace name as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `f` on a new thread that has joined this namespace first.
    ///
    /// Sockets created by `f` belong to the namespace and stay there after
    /// the thread ends. A panic inside `f` is propagated.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        enter_netns(&self.name, f)
    }

    /// Runs `ip netns exec NAME cmd args...` and returns its output
    /// (panics only if `ip` cannot be started).
    pub fn exec(&self, cmd: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name, cmd])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run ip netns exec {} {cmd}: {e}", self.name))
    }

    /// All TCP sockets here per `ss -Htan`, plus the raw output.
    pub fn sockets(&self) -> (Vec<Sock>, String) {
        let out = self.exec("ss", &["-Htan"]);
        assert!(
            out.status.success(),
            "ss -Htan in {} failed: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        let raw = String::from_utf8_lossy(&out.stdout).into_owned();
        (parse_ss(&raw), raw)
    }

    /// Waits (at most 10 s) until `done` holds for the sockets `ss` shows
    /// here; panics with `what` and the `ss` output otherwise.
    pub fn wait_sockets(&self, what: &str, done: impl Fn(&[Sock]) -> bool) {
        wait_until(
            what,
            Duration::from_secs(10),
            || done(&self.sockets().0),
            || format!("ss -Htan in {}:\n{}", self.name, self.sockets().1),
        );
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        match Command::new("ip")
            .args(["netns", "del", &self.name])
            .output()
        {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "warning: ip netns del {} failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("warning: cannot run ip netns del {}: {e}", self.name),
        }
    }
}

/// Runs `f` on a new thread that first joins the namespace `/run/netns/<name>`.
pub fn enter_netns<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{name}");
    std::thread::scope(|s| {
        let handle = s.spawn(move || {
            let file = fs::File::open(&path)
                .unwrap_or_else(|e| panic!("open {path} (does the namespace exist?): {e}"));
            // SAFETY: plain syscall on a valid fd; affects only this thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                panic!(
                    "setns({path}, CLONE_NEWNET) failed: {}",
                    std::io::Error::last_os_error()
                );
            }
            drop(file);
            f()
        });
        match handle.join() {
            Ok(v) => v,
            Err(payload) => std::panic::resume_unwind(payload),
        }
    })
}
