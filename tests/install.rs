//! `ci/install.sh` and the Debian package, end to end.
//!
//! On the real host (`script_on_this_host`, `debian_package_on_this_host`,
//! run only by ci/test.sh): both put ours in place of collectd-core's C
//! plugin with a diversion, so an unedited `LoadPlugin tcpconns` loads it;
//! removal puts the C plugin back byte for byte; an upgrade of
//! collectd-core keeps ours. They hold one lock and undo the install even
//! when they fail. The others install side by side into scratch directories
//! (`--prefix`, `--config`), which covers the layouts this host does not
//! have: no main config (collectd-core alone), a main config without the
//! Include, a file in the way, an update over an edited snippet.
//! Needs root, iproute2, collectd-core, and for the package cargo-deb and
//! dpkg-dev (ci/setup.sh installs them; the package test installs cargo-deb
//! itself if it is missing).

use harness::*;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const PREFIX: &str = "/usr/local/lib/collectd-tcpconns";
const SNIPPET: &str = "/etc/collectd/collectd.conf.d/tcpconns.conf";
const PACKAGE: &str = "collectd-tcpconns";

/// What the tests compare before and after: every file of the
/// distribution's collectd, and what sits in /usr/local/lib.
const WATCHED: &[(&str, bool)] = &[
    ("/etc/collectd", true),
    ("/usr/lib/collectd", true),
    ("/usr/share/collectd", true),
    ("/usr/sbin/collectd", false),
    ("/etc/default/collectd", false),
    ("/lib/systemd/system/collectd.service", false),
    ("/usr/local/lib", false),
    (PREFIX, true),
];

/// The seed's selection, as collectd.d/tcpconns.conf configures it.
fn seed_selection() -> Selection {
    Selection {
        listening: false,
        summary: false,
        local: vec![22, 25, 8080, 8181],
        remote: vec![2251, 3513, 3504],
    }
}

/// A population for the seed's ports: sshd with 2 sessions, a web server on
/// 8080 (IPv4-mapped clients), 2 connections to a server on 3513, and an
/// idle listener on 9999 that the seed's config must not report.
fn seed_population(ns: &Netns) -> Population {
    let mut pop = Population::new(ns);
    pop.listen_v4(22)
        .established(22, 2, Family::V4)
        .listen_dual(8080)
        .established(8080, 3, Family::Mapped)
        .listen_v4(3513)
        .established(3513, 2, Family::V4)
        .listen_v4(9999)
        .time_wait(8080, 1);
    pop.settle(ns);
    pop
}

/// Starts collectd in `ns` on `block` (an Include, or a whole config
/// part), with csv loaded after it, and waits until `series` tcpconns
/// series reached csv (one read); returns collectd, still running, and
/// that csv. With `tmpfs`, a tmpfs covers /var/lib/collectd, where a stock
/// main config's rrdtool would write.
fn one_read(ns: &Netns, block: &str, tag: &str, series: usize, tmpfs: bool) -> (Collectd, Csv) {
    let dir = TempDir::new(tag);
    let conf = Conf::new(dir.path(), "tcpc-install", 3600.0)
        .block(block)
        .csv();
    let tmpfs: &[&str] = if tmpfs && Path::new("/var/lib/collectd").is_dir() {
        &["/var/lib/collectd"]
    } else {
        &[]
    };
    let launch = Launch {
        netns: Some(ns.name()),
        tmpfs,
        ..Launch::default()
    };
    let mut cd = Collectd::start(dir, &conf, &launch);
    let csv = cd.wait_for(
        &format!("one read of {series} series"),
        Duration::from_secs(20),
        |c| c.tcpconns_values().len() >= series,
    );
    (cd, csv)
}

/// collectd on a config that includes `include` (the host's main config, or
/// a snippet directory) and loads csv after it: csv comes from the plugin
/// directory the installed PluginDir switch went back to. Returns the csv
/// after one read, and the log.
fn run_installed(ns: &Netns, include: &Path, tag: &str) -> (Csv, String) {
    let want = expected_values(&[], &seed_selection()).len();
    let (mut cd, csv) = one_read(ns, &include_line(include), tag, want, true);
    cd.stop();
    (csv, cd.log())
}

/// collectd's `Include` of a file, or of the `*.conf` files of a directory.
fn include_line(path: &Path) -> String {
    if path.is_dir() {
        format!(
            "<Include \"{}\">\n  Filter \"*.conf\"\n</Include>",
            path.display()
        )
    } else {
        format!("Include \"{}\"", path.display())
    }
}

/// The values of a run from the installed config are exactly the seed
/// selection's on `pop`, and they came from our plugin, not the C one.
fn check_installed_run(pop: &Population, csv: &Csv, log: &str) {
    let want = expected_values(&pop.expected, &seed_selection());
    assert_values("installed config", &csv.tcpconns_values(), &want, log);
    assert!(
        log.contains("tcpconns plugin: reading sockets from netlink (sock_diag)"),
        "our plugin's source line is missing (the C plugin loaded?):\n{log}"
    );
    assert!(
        !log.contains("Reading from netlink succeeded"),
        "the C plugin was loaded:\n{log}"
    );
}

/// Manifest lines (kind, path) of an install.
fn manifest(prefix: &Path) -> Vec<(char, PathBuf)> {
    let text = fs::read_to_string(prefix.join("install-manifest")).expect("read install-manifest");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 3, "manifest line {l:?}");
            (f[0].chars().next().unwrap(), PathBuf::from(f[2]))
        })
        .collect()
}

/// Tree of `root` as (relative path, kind, sha256) for scratch-directory
/// scenarios.
fn tree(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let r = root.to_str().unwrap();
    snapshot(&[(r, true)])
}

// ---------------------------------------------------------------------------
// collectd's own answers, snapshots of system paths, one test at a time on
// the real host
// ---------------------------------------------------------------------------

/// (`Config file`, `Plugin directory`) as `collectd -h` prints them.
fn collectd_defaults() -> (String, String) {
    let out = output(Command::new(COLLECTD).arg("-h"));
    let help = text(&out);
    let field = |name: &str| {
        help.lines()
            .find_map(|l| {
                l.trim_start()
                    .strip_prefix(name)
                    .map(|v| v.trim().to_string())
            })
            .unwrap_or_else(|| panic!("collectd -h has no {name:?}:\n{help}"))
    };
    (field("Config file"), field("Plugin directory"))
}

/// The directories of the `PluginDir` lines of a config file, in order.
fn plugindir_lines(conf: &str) -> Vec<String> {
    conf.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("PluginDir"))
        .map(|v| v.trim().trim_matches('"').to_string())
        .collect()
}

/// What a path is: kind, mode, owner, and for files the sha256 and mtime
/// (directory mtimes are left out: adding and removing a file changes them).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    pub kind: char,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime_ns: Option<(i64, i64)>,
    pub sha256: Option<String>,
    pub link: Option<PathBuf>,
}

/// path -> entry for `roots` (`(path, recursive)`); a missing root is
/// simply absent. Files are hashed with sha256sum.
fn snapshot(roots: &[(&str, bool)]) -> BTreeMap<PathBuf, Entry> {
    fn walk(p: &Path, recursive: bool, depth: usize, out: &mut BTreeMap<PathBuf, Entry>) {
        let Ok(md) = fs::symlink_metadata(p) else {
            return;
        };
        let ft = md.file_type();
        let kind = if ft.is_symlink() {
            'l'
        } else if ft.is_dir() {
            'd'
        } else if ft.is_file() {
            'f'
        } else {
            'o'
        };
        out.insert(
            p.to_path_buf(),
            Entry {
                kind,
                mode: md.mode(),
                uid: md.uid(),
                gid: md.gid(),
                mtime_ns: (kind == 'f').then(|| (md.mtime(), md.mtime_nsec())),
                sha256: None,
                link: fs::read_link(p).ok(),
            },
        );
        if kind == 'd' && (recursive || depth == 0) {
            let mut children: Vec<PathBuf> = fs::read_dir(p)
                .map(|rd| rd.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            children.sort();
            for c in children {
                walk(&c, recursive, depth + 1, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    for (root, recursive) in roots {
        walk(Path::new(root), *recursive, 0, &mut out);
    }
    let files: Vec<PathBuf> = out
        .iter()
        .filter(|(_, e)| e.kind == 'f')
        .map(|(p, _)| p.clone())
        .collect();
    for chunk in files.chunks(200) {
        let out_sums = checked(Command::new("sha256sum").arg("--").args(chunk));
        for line in out_sums.lines() {
            if let Some((sum, path)) = line.split_once("  ") {
                if let Some(e) = out.get_mut(Path::new(path)) {
                    e.sha256 = Some(sum.to_string());
                }
            }
        }
    }
    out
}

/// Human-readable differences: `+ path` added, `- path` removed, `~ path`
/// changed (with the fields that differ).
fn snapshot_diff(
    before: &BTreeMap<PathBuf, Entry>,
    after: &BTreeMap<PathBuf, Entry>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (p, a) in after {
        match before.get(p) {
            None => out.push(format!("+ {}", p.display())),
            Some(b) if b != a => out.push(format!("~ {} ({b:?} -> {a:?})", p.display())),
            _ => {}
        }
    }
    for p in before.keys() {
        if !after.contains_key(p) {
            out.push(format!("- {}", p.display()));
        }
    }
    out
}

/// Held while a test changes the real /etc and /usr/local: a mutex for the
/// tests of this process and an flock for other processes.
struct HostLock {
    _guard: std::sync::MutexGuard<'static, ()>,
    _file: fs::File,
}

fn host_lock() -> HostLock {
    static MUTEX: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = MUTEX.lock().unwrap_or_else(|p| p.into_inner());
    let path = "/run/lock/collectd-tcpconns-host-tests.lock";
    let _ = fs::create_dir_all("/run/lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {path}: {e}"));
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own; released when the file closes.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock {path}: {}", std::io::Error::last_os_error());
    HostLock {
        _guard: guard,
        _file: file,
    }
}

// ---------------------------------------------------------------------------
// The real host: in place of the C plugin
// ---------------------------------------------------------------------------

/// collectd-core's C plugin and where the diversion keeps it.
const PLUGIN: &str = "/usr/lib/collectd/tcpconns.so";
const DIVERTED: &str = "/usr/lib/collectd/tcpconns.so.distrib";

/// The stock `collectd.conf`'s tcpconns lines, uncommented, as a user who
/// runs the C plugin has them: our plugin must be loaded by them unedited.
const HOST_BLOCK: &str = "LoadPlugin tcpconns\n<Plugin tcpconns>\n  ListeningPorts false\n  \
                          LocalPort \"25\"\n  RemotePort \"25\"\n</Plugin>\n";

fn host_selection() -> Selection {
    Selection {
        local: vec![25],
        remote: vec![25],
        ..Selection::default()
    }
}

/// A mail server on 25 with 3 sessions (local and remote sides of 25),
/// a connection in TIME_WAIT, and an idle listener on 587 that the block
/// must not report.
fn host_population(ns: &Netns) -> Population {
    let mut pop = Population::new(ns);
    pop.listen_v4(25)
        .established(25, 3, Family::V4)
        .time_wait(25, 1)
        .listen_v4(587);
    pop.settle(ns);
    pop
}

fn sha256(path: &str) -> String {
    let out = checked(Command::new("sha256sum").arg(path));
    out.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// `dpkg-divert --list` for tcpconns.so: empty when there is no diversion.
fn diversions() -> String {
    checked(Command::new("dpkg-divert").args(["--list", "*tcpconns*"]))
        .trim()
        .to_string()
}

/// The config with [`HOST_BLOCK`], run in `ns` until one read reached csv:
/// which tcpconns.so collectd mapped (its sha256), the values, the log.
fn run_host_config(ns: &Netns, tag: &str) -> (String, Csv, String) {
    let want = expected_values(&[], &host_selection()).len();
    let (mut cd, csv) = one_read(ns, HOST_BLOCK, tag, want, false);
    let maps = fs::read_to_string(format!("/proc/{}/maps", cd.pid())).unwrap_or_default();
    let mapped: Vec<&str> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.contains("tcpconns"))
        .collect();
    assert!(
        !mapped.is_empty() && mapped.iter().all(|p| *p == PLUGIN),
        "collectd mapped {mapped:?}, not {PLUGIN}"
    );
    // The bytes behind that path while it is mapped.
    let sum = sha256(PLUGIN);
    cd.stop();
    (sum, csv, cd.log())
}

/// Installed in place of the C plugin: a config with `LoadPlugin tcpconns`
/// loads ours, exact on a population.
fn check_ours_loaded(ns: &Netns, pop: &Population, ours: &str, tag: &str) {
    let (sum, csv, log) = run_host_config(ns, tag);
    assert_eq!(sum, ours, "collectd did not load our tcpconns.so:\n{log}");
    let want = expected_values(&pop.expected, &host_selection());
    assert_values(tag, &csv.tcpconns_values(), &want, &log);
    assert!(
        log.contains("tcpconns plugin: reading sockets from netlink (sock_diag)"),
        "our plugin's first line is missing:\n{log}"
    );
}

/// Removed: the C plugin is back byte for byte, no diversion is left, and
/// the same config loads it.
fn check_c_plugin_back(ns: &Netns, pop: &Population, c_plugin: &str, tag: &str) {
    assert_eq!(sha256(PLUGIN), c_plugin, "{PLUGIN} is not the C plugin");
    assert!(!Path::new(DIVERTED).exists(), "{DIVERTED} left behind");
    assert_eq!(diversions(), "", "a diversion is left");
    let (sum, csv, log) = run_host_config(ns, tag);
    assert_eq!(sum, c_plugin);
    assert!(
        log.contains("Reading from netlink succeeded"),
        "not the C plugin's log:\n{log}"
    );
    let want = expected_values(&pop.expected, &host_selection());
    assert_values(tag, &csv.tcpconns_values(), &want, &log);
}

/// `apt-get install --reinstall collectd-core`: an upgrade of the package
/// whose file is diverted.
fn reinstall_collectd_core() {
    let out = checked(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--reinstall", "collectd-core"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    );
    eprintln!("apt-get install --reinstall collectd-core:\n{out}");
}

/// Undoes an install when dropped (also when the test fails), unless
/// disarmed.
enum Cleanup {
    Script,
    Package,
}

impl Cleanup {
    /// The install was undone by the test itself.
    fn disarm(self) {
        std::mem::forget(self);
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let mut undo = match self {
            Cleanup::Script => install_sh(),
            Cleanup::Package => Command::new("dpkg"),
        };
        match self {
            Cleanup::Script => undo.args(["uninstall", "--force"]),
            Cleanup::Package => undo.args(["-P", PACKAGE]),
        };
        eprintln!("cleanup: {undo:?}");
        let _ = undo.status();
    }
}

fn install_sh() -> Command {
    let mut cmd = Command::new(repo().join("ci/install.sh"));
    cmd.current_dir(repo());
    cmd
}

fn dpkg_status() -> Option<String> {
    let out = output(Command::new("dpkg-query").args(["-W", "-f=${Status}", PACKAGE]));
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        .filter(|s| !s.is_empty() && s != "unknown ok not-installed")
}

fn assert_host_clean() {
    assert!(
        !Path::new(PREFIX).exists() && !Path::new(SNIPPET).exists(),
        "{PREFIX} or {SNIPPET} exists before the test: this host has collectd-tcpconns \
         installed (ci/install.sh uninstall, or dpkg -P {PACKAGE}), and the test will not \
         touch it"
    );
    assert_eq!(dpkg_status(), None, "{PACKAGE} is known to dpkg");
    assert_eq!(diversions(), "", "tcpconns.so is diverted before the test");
}

/// The whole drop-in promise for one way of installing: `install` puts ours
/// in place of the C plugin, `remove` puts the C plugin back; the host
/// changes only where it must, and an upgrade of collectd-core keeps ours.
/// `diversion` is what `dpkg-divert --list` must show meanwhile.
fn drop_in_on_this_host(
    install: &dyn Fn() -> String,
    remove: &dyn Fn() -> String,
    diversion: &str,
) {
    let c_plugin = sha256(PLUGIN);
    let ours = sha256(
        &repo()
            .join("target/release/libtcpconns.so")
            .display()
            .to_string(),
    );
    let before = snapshot(WATCHED);
    let ns = Netns::new("inst-host");
    let pop = host_population(&ns);

    let out = install();
    eprintln!("install:\n{out}");
    assert_eq!(sha256(PLUGIN), ours, "{PLUGIN} is not ours");
    assert_eq!(sha256(DIVERTED), c_plugin, "{DIVERTED} is not the C plugin");
    assert_eq!(diversions(), diversion);
    // Nothing else of the distribution changed; the snippet is comments.
    for line in snapshot_diff(&before, &snapshot(WATCHED)) {
        assert!(
            line.starts_with("+ ") || line.starts_with(&format!("~ {PLUGIN} ")),
            "install changed {line}"
        );
    }
    let snippet = fs::read_to_string(SNIPPET).unwrap();
    assert!(
        snippet
            .lines()
            .all(|l| l.trim().is_empty() || l.starts_with('#')),
        "the snippet is not all comments:\n{snippet}"
    );
    check_ours_loaded(&ns, &pop, &ours, "installed");

    let out = remove();
    eprintln!("remove:\n{out}");
    check_c_plugin_back(&ns, &pop, &c_plugin, "removed");
    let diff = snapshot_diff(&before, &snapshot(WATCHED));
    assert!(diff.is_empty(), "removal left:\n{}", diff.join("\n"));

    // An upgrade of collectd-core while ours is in place keeps ours; the C
    // plugin it unpacks goes to the diverted name.
    install();
    reinstall_collectd_core();
    assert_eq!(sha256(PLUGIN), ours, "the reinstall replaced ours");
    assert_eq!(sha256(DIVERTED), c_plugin);
    check_ours_loaded(&ns, &pop, &ours, "after-reinstall");
    remove();
    check_c_plugin_back(&ns, &pop, &c_plugin, "removed-after-reinstall");
}

#[test]
#[ignore = "changes the host (diverts /usr/lib/collectd/tcpconns.so, /etc/collectd, \
            apt-get --reinstall collectd-core): run by ci/test.sh"]
fn script_on_this_host() {
    require_root!();
    let _lock = host_lock();
    assert_host_clean();
    let cleanup = Cleanup::Script;
    drop_in_on_this_host(
        &|| checked(&mut install_sh()),
        &|| {
            let out = checked(install_sh().arg("uninstall"));
            assert!(out.contains("uninstalled"), "{out}");
            out
        },
        &format!("local diversion of {PLUGIN} to {DIVERTED}"),
    );
    let out = checked(install_sh().arg("uninstall"));
    assert!(out.contains("nothing to uninstall"), "{out}");
    cleanup.disarm();
}

/// cargo-deb, installed if missing (pinned, as ci/setup.sh does).
fn ensure_cargo_deb() {
    let cargo = env!("CARGO");
    let ok = Command::new(cargo)
        .args(["deb", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("cargo-deb missing: cargo install --locked cargo-deb --version 3.8.0");
        checked(Command::new(cargo).args([
            "install",
            "--locked",
            "--quiet",
            "cargo-deb",
            "--version",
            "3.8.0",
        ]));
    }
}

#[test]
#[ignore = "changes the host (dpkg -i of the package, its diversion, /etc/collectd, \
            apt-get --reinstall collectd-core): run by ci/test.sh"]
fn debian_package_on_this_host() {
    require_root!();
    ensure_cargo_deb();
    // Build the package (cargo deb builds the release .so itself).
    let out = checked(
        Command::new(env!("CARGO"))
            .current_dir(repo())
            .args(["deb", "--quiet"]),
    );
    let deb = PathBuf::from(
        out.lines()
            .rev()
            .find(|l| l.ends_with(".deb"))
            .unwrap_or_else(|| panic!("cargo deb printed no .deb path:\n{out}"))
            .trim(),
    );
    assert!(deb.is_file(), "{} missing", deb.display());

    // Its metadata: depends on collectd-core, the snippet is a conffile, its
    // files where Debian policy puts them (nothing under /usr/local).
    let depends = checked(Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Depends"));
    assert!(
        depends.contains("collectd-core (>= 5.12)"),
        "Depends: {depends}"
    );
    let ctl = TempDir::new("deb-control");
    checked(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(ctl.path()));
    let conffiles = fs::read_to_string(ctl.path().join("conffiles")).unwrap_or_default();
    assert_eq!(
        conffiles.lines().collect::<Vec<_>>(),
        [SNIPPET],
        "conffiles"
    );
    let listing = checked(Command::new("dpkg-deb").arg("-c").arg(&deb));
    assert!(listing.contains(&format!(".{PLUGIN}")), "{listing}");
    assert!(
        listing.contains("./usr/share/doc/collectd-tcpconns/"),
        "{listing}"
    );
    assert!(!listing.contains("/usr/local"), "{listing}");

    let _lock = host_lock();
    assert_host_clean();
    let cleanup = Cleanup::Package;

    // The package and the script refuse to install over each other.
    {
        let script = Cleanup::Script;
        checked(install_sh().arg("--no-build"));
        let out = output(Command::new("dpkg").arg("-i").arg(&deb));
        assert!(
            !out.status.success(),
            "dpkg -i over a script install:\n{}",
            text(&out)
        );
        assert!(
            text(&out).contains("ci/install.sh installed this plugin already"),
            "{}",
            text(&out)
        );
        checked(install_sh().arg("uninstall"));
        script.disarm();
    }
    assert_eq!(diversions(), "", "the refused dpkg -i left a diversion");
    checked(Command::new("dpkg").arg("-i").arg(&deb));
    let out = output(install_sh().arg("--no-build"));
    assert!(
        !out.status.success()
            && text(&out).contains("the Debian package collectd-tcpconns is installed"),
        "install.sh over the package:\n{}",
        text(&out)
    );
    checked(Command::new("dpkg").args(["-P", PACKAGE]));

    let deb = deb.display().to_string();
    drop_in_on_this_host(
        &|| {
            let out = checked(Command::new("dpkg").arg("-i").arg(&deb));
            assert_eq!(dpkg_status().as_deref(), Some("install ok installed"));
            out
        },
        &|| {
            // -r keeps the conffile, -P removes it: the C plugin is back
            // after the first, nothing is left after the second.
            let out = checked(Command::new("dpkg").args(["-r", PACKAGE]));
            assert_eq!(dpkg_status().as_deref(), Some("deinstall ok config-files"));
            assert_eq!(diversions(), "", "dpkg -r left the diversion");
            out + &checked(Command::new("dpkg").args(["-P", PACKAGE]))
        },
        &format!("diversion of {PLUGIN} to {DIVERTED} by {PACKAGE}"),
    );
    assert_eq!(dpkg_status(), None, "{PACKAGE} still known to dpkg");
    cleanup.disarm();
}

// ---------------------------------------------------------------------------
// Other layouts, in scratch directories
// ---------------------------------------------------------------------------

/// A scratch "host": `<root>/etc/collectd/...` and `<root>/lib/ct`.
struct Scratch {
    dir: TempDir,
}

impl Scratch {
    fn new(tag: &str) -> Scratch {
        // Built once per test process (as the other tests do), so the
        // scenarios can pass --no-build.
        let _ = plugin_dir();
        let dir = TempDir::new(tag);
        fs::create_dir_all(dir.path().join("etc/collectd")).unwrap();
        Scratch { dir }
    }
    fn root(&self) -> &Path {
        self.dir.path()
    }
    fn prefix(&self) -> PathBuf {
        self.root().join("lib/ct")
    }
    fn config(&self) -> PathBuf {
        self.root().join("etc/collectd/collectd.conf")
    }
    fn confdir(&self) -> PathBuf {
        self.root().join("etc/collectd/collectd.conf.d")
    }
    /// Side by side: the default layout would divert the host's real
    /// tcpconns.so, whatever the prefix.
    fn install(&self, extra: &[&str]) -> std::process::Output {
        output(
            install_sh()
                .arg("--side-by-side")
                .arg("--no-build")
                .arg("--prefix")
                .arg(self.prefix())
                .arg("--config")
                .arg(self.config())
                .args(extra),
        )
    }
    fn uninstall(&self, extra: &[&str]) -> std::process::Output {
        output(
            install_sh()
                .arg("uninstall")
                .arg("--prefix")
                .arg(self.prefix())
                .args(extra),
        )
    }
    /// Asserts every file of the scratch host is as in `before`.
    fn assert_as(&self, before: &BTreeMap<PathBuf, Entry>, what: &str) {
        let diff = snapshot_diff(before, &tree(self.root()));
        assert!(diff.is_empty(), "{what}:\n{}", diff.join("\n"));
    }
    /// Uninstalls (with `extra`) and asserts it leaves the host as `before`.
    fn uninstall_to(&self, before: &BTreeMap<PathBuf, Entry>, extra: &[&str]) {
        let out = self.uninstall(extra);
        assert!(out.status.success(), "{}", text(&out));
        self.assert_as(before, "left behind");
    }
}

/// collectd-core alone: no main config. The script creates a minimal one
/// that reads the snippet directory, collectd started from it reports the
/// seed's ports, and uninstall leaves nothing behind.
#[test]
fn script_without_main_config_creates_one() {
    require_root!();
    let s = Scratch::new("inst-nomain");
    let before = tree(s.root());
    let out = s.install(&[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("did not exist: created a minimal one"),
        "{}",
        text(&out)
    );
    let main = fs::read_to_string(s.config()).unwrap();
    assert!(
        main.contains(&format!("<Include \"{}\">", s.confdir().display())),
        "{main}"
    );
    let snippet = fs::read_to_string(s.confdir().join("tcpconns.conf")).unwrap();
    assert!(
        snippet.contains(&format!("Include \"{}/load.conf\"", s.prefix().display())),
        "{snippet}"
    );
    // Everything it made is in the manifest.
    let listed = manifest(&s.prefix());
    for p in [
        s.prefix().join("tcpconns.so"),
        s.prefix().join("load.conf"),
        s.confdir().join("tcpconns.conf"),
        s.config(),
    ] {
        assert!(
            listed.contains(&('f', p.clone())),
            "{} not listed",
            p.display()
        );
    }
    for d in [s.prefix(), s.confdir(), s.root().join("lib")] {
        assert!(
            listed.contains(&('d', d.clone())),
            "{} not listed",
            d.display()
        );
    }

    let ns = Netns::new("inst-nomain");
    let pop = seed_population(&ns);
    let (csv, log) = run_installed(&ns, &s.config(), "inst-nomain-run");
    check_installed_run(&pop, &csv, &log);

    s.uninstall_to(&before, &[]);
}

/// A main config that does not include the snippet directory is left
/// alone: the script installs, says what line to add, and uninstalls.
#[test]
fn script_leaves_a_main_config_without_include_alone() {
    require_root!();
    let s = Scratch::new("inst-noinc");
    fs::write(s.config(), "LoadPlugin cpu\n").unwrap();
    let before = tree(s.root());
    let out = s.install(&[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("does not include"), "{t}");
    assert!(
        t.contains(&format!("<Include \"{}\">", s.confdir().display())),
        "{t}"
    );
    assert_eq!(fs::read_to_string(s.config()).unwrap(), "LoadPlugin cpu\n");
    assert!(s.confdir().join("tcpconns.conf").is_file());
    s.uninstall_to(&before, &[]);
}

/// A file in the way that the script did not create: it stops before
/// changing anything.
#[test]
fn script_refuses_to_overwrite_a_file_it_did_not_create() {
    require_root!();
    let s = Scratch::new("inst-foreign");
    fs::create_dir_all(s.confdir()).unwrap();
    fs::write(s.confdir().join("tcpconns.conf"), "# mine\n").unwrap();
    fs::write(
        s.config(),
        format!("Include \"{}\"\n", s.confdir().display()),
    )
    .unwrap();
    let before = tree(s.root());
    let out = s.install(&[]);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains("exists and was not installed by this script"),
        "{t}"
    );
    s.assert_as(&before, "changed");
}

/// Installing again updates the plugin but keeps a snippet the user edited;
/// uninstall keeps it too (and says so) until --force.
#[test]
fn script_update_and_uninstall_keep_an_edited_snippet() {
    require_root!();
    let s = Scratch::new("inst-update");
    fs::create_dir_all(s.confdir()).unwrap();
    fs::write(
        s.config(),
        format!(
            "<Include \"{}\">\n  Filter \"*.conf\"\n</Include>\n",
            s.confdir().display()
        ),
    )
    .unwrap();
    let before = tree(s.root());
    let out = s.install(&[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("does not include"), "{}", text(&out));
    let snippet = s.confdir().join("tcpconns.conf");
    let mut edited = fs::read_to_string(&snippet).unwrap();
    edited += "<Plugin tcpconns>\n  LocalPort 443\n</Plugin>\n";
    fs::write(&snippet, &edited).unwrap();

    let out = s.install(&["--snippet", "tcpconns.conf", "--snippet", "network.conf"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains(&format!("kept {}", snippet.display())), "{t}");
    assert_eq!(fs::read_to_string(&snippet).unwrap(), edited);
    assert!(s.confdir().join("network.conf").is_file());

    let out = s.uninstall(&[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains(&format!("kept {}", snippet.display())), "{t}");
    assert_eq!(fs::read_to_string(&snippet).unwrap(), edited);
    assert!(!s.confdir().join("network.conf").exists());
    assert!(!s.prefix().join("tcpconns.so").exists());

    s.uninstall_to(&before, &["--force"]);
}

/// The back-switch goes to the main config's own PluginDir when it sets
/// one, else to collectd -h's; a LoadPlugin tcpconns in the main config
/// (which would load the C plugin first) gets a warning.
#[test]
fn script_switches_back_to_the_main_configs_plugindir() {
    require_root!();
    let s = Scratch::new("inst-plugindir");
    fs::write(
        s.config(),
        "#PluginDir \"/commented/out\"\nPluginDir \"/opt/collectd/lib\"\nLoadPlugin tcpconns\n",
    )
    .unwrap();
    let out = s.install(&[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("loads tcpconns itself"), "{t}");
    let load = fs::read_to_string(s.prefix().join("load.conf")).unwrap();
    assert_eq!(
        plugindir_lines(&load),
        [s.prefix().display().to_string(), "/opt/collectd/lib".into()]
    );
    assert!(s.uninstall(&[]).status.success());

    let s = Scratch::new("inst-plugindir2");
    assert!(s.install(&[]).status.success());
    let load = fs::read_to_string(s.prefix().join("load.conf")).unwrap();
    let (_, plugindir) = collectd_defaults();
    assert_eq!(
        plugindir_lines(&load),
        [s.prefix().display().to_string(), plugindir]
    );
    assert!(s.uninstall(&[]).status.success());
}

/// The ready snippets tcpconns.conf and tcpconns-summary.conf, installed
/// together, in a real collectd: both include load.conf (the second
/// LoadPlugin does nothing) and their blocks add up.
#[test]
fn ready_snippets_load_together() {
    require_root!();
    let s = Scratch::new("inst-snippets");
    let out = s.install(&[
        "--snippet",
        "tcpconns.conf",
        "--snippet",
        "tcpconns-summary.conf",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let ns = Netns::new("inst-snip");
    let pop = seed_population(&ns);
    let mut sel = seed_selection();
    sel.summary = true;
    let want = expected_values(&pop.expected, &sel);
    let include = include_line(&s.confdir());
    let (mut cd, csv) = one_read(&ns, &include, "inst-snippets-run", want.len(), false);
    cd.stop();
    let log = cd.log();
    assert_values("two snippets", &csv.tcpconns_values(), &want, &log);
    assert_eq!(
        log.matches("plugin \"tcpconns\" successfully loaded")
            .count(),
        1,
        "{log}"
    );
    assert!(s.uninstall(&[]).status.success());
}
