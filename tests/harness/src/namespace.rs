//! Throw-away network namespaces, and waiting for what `ss` shows in them.

use crate::{checked, parse_ss, unique, wait_until, Sock};
use std::fs;
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Output, Stdio};
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
    /// `/run/netns/<name>`, or `/proc/<pid>/ns/net` of the holder.
    path: String,
    /// For a namespace without a name: the process that keeps it
    /// (`unshare -n sleep`), killed on drop.
    holder: Option<Child>,
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
        let ns = Netns {
            path: format!("/run/netns/{name}"),
            name,
            holder: None,
        };
        ns.configure();
        ns
    }

    /// A namespace with no `/run/netns` name, kept by a process of its own
    /// (`unshare -n sleep`), as a container runtime makes them; configured
    /// as [`Netns::new`] does. `label` names it in messages.
    pub fn unnamed(label: &str) -> Netns {
        let child = Command::new("unshare")
            .args(["-n", "sleep", "100000"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start unshare -n sleep: {e}"));
        let path = format!("/proc/{}/ns/net", child.id());
        let ns = Netns {
            name: label.to_string(),
            path,
            holder: Some(child),
        };
        let ours = fs::read_link("/proc/self/ns/net").ok();
        wait_until(
            "unshare -n to make its namespace",
            Duration::from_secs(10),
            || {
                fs::read_link(&ns.path)
                    .ok()
                    .is_some_and(|l| Some(l) != ours)
            },
            || format!("{} still leads to ours", ns.path),
        );
        ns.configure();
        ns
    }

    fn configure(&self) {
        checked(
            Command::new("nsenter")
                .arg(format!("--net={}", self.path))
                .args(["ip", "link", "set", "lo", "up"]),
        );
        for setting in [
            "net.ipv4.ip_local_port_range=40000 49999",
            "net.ipv4.tcp_tw_reuse=0",
        ] {
            checked(
                Command::new("nsenter")
                    .arg(format!("--net={}", self.path))
                    .args(["sysctl", "-q", "-w", setting]),
            );
        }
    }

    /// The path that enters it: `/run/netns/<name>` or `/proc/<pid>/ns/net`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The process keeping a namespace made by [`Netns::unnamed`].
    pub fn holder_pid(&self) -> Option<u32> {
        self.holder.as_ref().map(Child::id)
    }

    /// The namespace name as `ip netns` knows it (a label for unnamed ones).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `f` on a new thread that has joined this namespace first.
    ///
    /// Sockets created by `f` belong to the namespace and stay there after
    /// the thread ends. A panic inside `f` is propagated.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        enter_netns(&self.path, f)
    }

    /// Runs `cmd args...` inside (`nsenter --net`, which leaves the mounts
    /// as they are: `ss --cgroup` sees the cgroup hierarchy) and returns its
    /// output (panics only if it cannot be started).
    pub fn exec(&self, cmd: &str, args: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net={}", self.path))
            .arg(cmd)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cmd} in namespace {}: {e}", self.name))
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
        if let Some(holder) = &mut self.holder {
            let _ = holder.kill();
            let _ = holder.wait();
            return;
        }
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

/// Runs `f` on a new thread that first joins the namespace `/run/netns/<name>`
/// (or at `name` itself when it is a path).
pub fn enter_netns<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = match name.starts_with('/') {
        true => name.to_string(),
        false => format!("/run/netns/{name}"),
    };
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
