//! The builds the tests load: this crate's release `tcpconns.so`, a debug
//! one with fault injection, and the LD_PRELOAD shims of `tests/shim`.

use crate::{checked, repo};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Which `tcpconns.so` collectd loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plugin {
    /// This crate's release build (from [`plugin_dir`]).
    Ours,
    /// Debian's C plugin, `/usr/lib/collectd/tcpconns.so`.
    Stock,
    /// A debug build of ours with the `fault-injection` feature (from
    /// [`fault_plugin_dir`]): `TCPCONNS_FAULT` makes it panic on purpose.
    Faulty,
}

/// Debian's plugin directory.
pub(crate) const STOCK_PLUGIN_DIR: &str = "/usr/lib/collectd";

/// The cargo target directory of the running test binary
/// (`<target>/<profile>/deps/<test>-<hash>`).
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            let deps = exe.ancestors().find(|p| p.ends_with("deps"))?;
            Some(deps.parent()?.parent()?.to_path_buf())
        })
        .unwrap_or_else(|| repo().join("target"))
}

/// Copies `from` to `to` through a temporary name, so a concurrently
/// running test binary never loads a half-written file.
fn install_atomically(from: &Path, to: &Path) {
    let tmp = to.with_extension(format!("tmp-{}", std::process::id()));
    fs::copy(from, &tmp)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), tmp.display()));
    fs::rename(&tmp, to)
        .unwrap_or_else(|e| panic!("rename {} to {}: {e}", tmp.display(), to.display()));
}

/// Directory holding this crate's `tcpconns.so` (a copy of the release
/// `libtcpconns.so`). Built once per process with `cargo build --release
/// --lib`; panics if the build fails or the library does not import
/// `plugin_dispatch_values` (a `stub` build, which drops every value).
pub fn plugin_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(build_plugin).clone()
}

fn build_plugin() -> PathBuf {
    let out = Command::new(env!("CARGO"))
        .current_dir(repo())
        .args([
            "build",
            "--release",
            "--lib",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::piped())
        .output()
        .expect("cannot run cargo build --release --lib");
    if !out.status.success() {
        panic!(
            "cargo build --release --lib failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Find the artifact path in the JSON messages (no serde here).
    let stdout = String::from_utf8_lossy(&out.stdout);
    let needle = "libtcpconns.so\"";
    let built = stdout
        .lines()
        .filter(|l| l.contains("\"compiler-artifact\""))
        .find_map(|l| {
            let end = l.find(needle)? + needle.len() - 1;
            let start = l[..end].rfind('"')? + 1;
            Some(PathBuf::from(&l[start..end]))
        })
        .unwrap_or_else(|| repo().join("target/release/libtcpconns.so"));
    assert!(
        built.is_file(),
        "cargo build did not produce {}",
        built.display()
    );

    // <target>/release/libtcpconns.so -> <target>/e2e-plugins/tcpconns.so
    let target = built
        .parent()
        .and_then(Path::parent)
        .expect("artifact path has a target directory");
    let dir = target.join("e2e-plugins");
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let dest = dir.join("tcpconns.so");
    install_atomically(&built, &dest);
    assert!(
        dynamic_symbols(&dest, false).contains(&('U', "plugin_dispatch_values".into())),
        "{} does not import plugin_dispatch_values (built with the collectd-plugin `stub` \
         feature?); nm -D:\n{}",
        dest.display(),
        checked(Command::new("nm").arg("-D").arg(&dest))
    );
    dir
}

/// `(type, name)` of each dynamic symbol of `lib` per `nm -D` (with
/// `--defined-only` if `defined_only`), e.g. `('T', "module_register")`,
/// `('U', "plugin_dispatch_values")`.
pub fn dynamic_symbols(lib: &Path, defined_only: bool) -> Vec<(char, String)> {
    let mut nm = Command::new("nm");
    nm.arg("-D");
    if defined_only {
        nm.arg("--defined-only");
    }
    checked(nm.arg(lib))
        .lines()
        .filter_map(|l| {
            // "[address] TYPE NAME": an undefined symbol has no address.
            let mut f = l.split_whitespace().rev();
            let name = f.next()?;
            let kind = f.next()?.chars().next()?;
            Some((kind, name.to_string()))
        })
        .collect()
}

/// Directory holding a debug `tcpconns.so` built with the `fault-injection`
/// feature, in its own target directory so it never replaces the release
/// build the other tests load. Built once per process.
pub(crate) fn fault_plugin_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let target = target_dir().join("fault-injection");
        checked(
            Command::new(env!("CARGO"))
                .current_dir(repo())
                .args(["build", "--lib", "--features", "fault-injection"])
                .arg("--target-dir")
                .arg(&target),
        );
        let dir = target.join("plugins");
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        install_atomically(
            &target.join("debug/libtcpconns.so"),
            &dir.join("tcpconns.so"),
        );
        dir
    })
    .clone()
}

/// Compiles `tests/shim/NAME.c` into `NAME.so` in `<target>/tmp`.
fn build_shim(name: &str) -> PathBuf {
    let src = repo().join(format!("tests/shim/{name}.c"));
    let dir = target_dir().join("tmp");
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let tmp = dir.join(format!("{name}.so.tmp-{}", std::process::id()));
    let dest = dir.join(format!("{name}.so"));
    checked(
        Command::new("cc")
            .args(["-shared", "-fPIC", "-O2", "-Wall", "-o"])
            .arg(&tmp)
            .arg(&src)
            .arg("-ldl"),
    );
    fs::rename(&tmp, &dest)
        .unwrap_or_else(|e| panic!("rename {} to {}: {e}", tmp.display(), dest.display()));
    dest
}

/// The LD_PRELOAD shim built from `tests/shim/proc_faults.c` (see there):
/// `PROC_FAULTS` makes chosen files fail to open, or opens others instead.
pub fn proc_faults_shim() -> PathBuf {
    static SHIM: OnceLock<PathBuf> = OnceLock::new();
    SHIM.get_or_init(|| build_shim("proc_faults")).clone()
}

/// The LD_PRELOAD shim built from `tests/shim/no_netlink.c` (once per
/// process, with `cc`). See the C file for what it does; use it as
/// `env: &[("LD_PRELOAD", path), ("NO_NETLINK_FLAG", flag)]`.
pub fn no_netlink_shim() -> PathBuf {
    static SHIM: OnceLock<PathBuf> = OnceLock::new();
    SHIM.get_or_init(|| build_shim("no_netlink")).clone()
}

/// Netlink refused or given back mid-run: a flag file for the no_netlink
/// shim (while it exists, netlink is refused), in a scratch directory
/// removed on drop. `env` gives collectd the shim and the flag.
pub struct NetlinkSwitch {
    _dir: crate::TempDir,
    flag: PathBuf,
    preload: String,
}

impl NetlinkSwitch {
    /// Starts with netlink `refused` or not; `also` is preloaded with the
    /// shim (e.g. [`proc_faults_shim`]).
    pub fn new(refused: bool, also: &[PathBuf]) -> NetlinkSwitch {
        let dir = crate::TempDir::new("netlink-switch");
        let flag = dir.path().join("no-netlink");
        let mut preload = no_netlink_shim().display().to_string();
        for shim in also {
            preload = format!("{preload} {}", shim.display());
        }
        let switch = NetlinkSwitch {
            _dir: dir,
            flag,
            preload,
        };
        switch.refuse(refused);
        switch
    }

    /// Refuses netlink from now on, or gives it back.
    pub fn refuse(&self, refused: bool) {
        let done = if refused {
            fs::write(&self.flag, "")
        } else {
            fs::remove_file(&self.flag).or_else(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Ok(()),
                _ => Err(e),
            })
        };
        done.unwrap_or_else(|e| panic!("netlink switch {}: {e}", self.flag.display()));
    }

    /// `LD_PRELOAD` and `NO_NETLINK_FLAG` for collectd's environment.
    pub fn env(&self) -> [(&str, &str); 2] {
        [
            ("LD_PRELOAD", self.preload.as_str()),
            ("NO_NETLINK_FLAG", self.flag.to_str().unwrap_or_default()),
        ]
    }
}

/// The LD_PRELOAD shim built from `tests/shim/kill_on_capset.c`: a seccomp
/// filter, installed before collectd's `main`, that kills the process on
/// `capset`.
pub fn kill_on_capset_shim() -> PathBuf {
    static SHIM: OnceLock<PathBuf> = OnceLock::new();
    SHIM.get_or_init(|| build_shim("kill_on_capset")).clone()
}
