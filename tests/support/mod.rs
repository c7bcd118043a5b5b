//! Helpers for `tests/install.rs` and `tests/network.rs` (kept out of
//! `tests/common`): running collectd on a config of our own making (the
//! installed one included from it, or a sender/receiver pair), reading every
//! csv file it wrote with its full identifier, snapshots of system
//! directories, and a lock for tests that change the real host.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

static UNIQUE: AtomicUsize = AtomicUsize::new(0);

/// A new empty scratch directory (removed by [`TempDir`]'s drop unless
/// `KEEP_TMP` is set).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "tcpc-{tag}-{}-{}",
            std::process::id(),
            UNIQUE.fetch_add(1, Ordering::Relaxed)
        ));
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
        } else {
            let _ = fs::remove_dir_all(&self.0);
        }
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

// ---------------------------------------------------------------------------
// collectd's own answers
// ---------------------------------------------------------------------------

/// (`Config file`, `Plugin directory`) as `collectd -h` prints them.
pub fn collectd_defaults() -> (String, String) {
    let out = output(Command::new("/usr/sbin/collectd").arg("-h"));
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
pub fn plugindir_lines(conf: &str) -> Vec<String> {
    conf.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("PluginDir"))
        .map(|v| v.trim().trim_matches('"').to_string())
        .collect()
}

// ---------------------------------------------------------------------------
// Running collectd
// ---------------------------------------------------------------------------

/// A collectd started with `-f -C <dir>/collectd.conf`, logging to
/// `<dir>/collectd.log` (if the config says so) and writing csv under
/// `<dir>/csv` (likewise); its stdout and stderr go to files in `dir`.
pub struct Daemon {
    pub dir: PathBuf,
    child: Option<Child>,
    status: Option<ExitStatus>,
}

/// The head of a config for a test collectd in `dir`: host name, interval,
/// its own BaseDir and PID file, the log file. Add plugins after it.
pub fn config_head(dir: &Path, hostname: &str, interval: u32) -> String {
    let d = dir.display();
    format!(
        "Hostname \"{hostname}\"\nFQDNLookup false\nInterval {interval}\n\
         WriteThreads 1\nBaseDir \"{d}\"\nPIDFile \"{d}/collectd.pid\"\n\n\
         LoadPlugin logfile\n<Plugin logfile>\n  LogLevel \"info\"\n  \
         File \"{d}/collectd.log\"\n  Timestamp false\n  PrintSeverity true\n</Plugin>\n\n"
    )
}

/// A csv writer block writing to `<dir>/csv` (gauges as read).
pub fn csv_block(dir: &Path) -> String {
    format!(
        "LoadPlugin csv\n<Plugin csv>\n  DataDir \"{}/csv\"\n  StoreRates false\n</Plugin>\n",
        dir.display()
    )
}

impl Daemon {
    /// Writes `conf` to `<dir>/collectd.conf` and starts collectd on it,
    /// inside network namespace `netns` if given. Each path of `tmpfs` is
    /// covered by an empty tmpfs first, in a mount namespace of collectd's
    /// own (for configs that write to system directories, like the stock
    /// one's rrdtool to /var/lib/collectd: the host never sees it).
    pub fn start(dir: &Path, conf: &str, netns: Option<&str>, tmpfs: &[&str]) -> Daemon {
        let conf_path = dir.join("collectd.conf");
        fs::write(&conf_path, conf)
            .unwrap_or_else(|e| panic!("write {}: {e}", conf_path.display()));
        let mut argv: Vec<String> = Vec::new();
        if !tmpfs.is_empty() {
            // unshare -m execs sh, which mounts and execs the rest: the
            // child's PID stays collectd's.
            let mut script = String::new();
            for (i, _) in tmpfs.iter().enumerate() {
                script += &format!("mount -t tmpfs tcpconns-test \"${}\" || exit 99; ", i + 1);
            }
            script += &format!("shift {}; exec \"$@\"", tmpfs.len());
            argv.extend(
                ["unshare", "-m", "--propagation", "private", "sh", "-c"].map(String::from),
            );
            argv.push(script);
            argv.push("sh".into());
            argv.extend(tmpfs.iter().map(|s| s.to_string()));
        }
        if let Some(ns) = netns {
            argv.extend(["ip", "netns", "exec", ns].map(String::from));
        }
        argv.push("/usr/sbin/collectd".into());
        argv.extend(["-f".into(), "-C".into(), conf_path.display().to_string()]);
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        cmd.stdin(Stdio::null())
            .stdout(fs::File::create(dir.join("stdout")).expect("create stdout file"))
            .stderr(fs::File::create(dir.join("stderr")).expect("create stderr file"));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {argv:?}: {e}"));
        Daemon {
            dir: dir.to_path_buf(),
            child: Some(child),
            status: None,
        }
    }

    /// The log file, then stderr and stdout.
    pub fn log(&self) -> String {
        let mut log = fs::read_to_string(self.dir.join("collectd.log")).unwrap_or_default();
        for name in ["stderr", "stdout"] {
            let s = fs::read_to_string(self.dir.join(name)).unwrap_or_default();
            if !s.is_empty() {
                log += &format!("--- {name} ---\n{s}");
            }
        }
        log
    }

    /// Whether collectd has exited (and then how).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(st)) = child.try_wait() {
                    self.status = Some(st);
                }
            }
        }
        self.status
    }

    /// Polls every 100 ms until `done(csv)` holds for the csv under
    /// `<dir>/csv` (then once more 300 ms later, so a read in progress is
    /// complete); panics with the log if collectd exits or `timeout` passes.
    pub fn wait_for(&mut self, what: &str, timeout: Duration, done: impl Fn(&Csv) -> bool) -> Csv {
        let deadline = Instant::now() + timeout;
        loop {
            let csv = Csv::read(&self.dir.join("csv"));
            if done(&csv) {
                std::thread::sleep(Duration::from_millis(300));
                return Csv::read(&self.dir.join("csv"));
            }
            if let Some(st) = self.exited() {
                panic!("collectd exited ({st}) before {what}:\n{}", self.log());
            }
            if Instant::now() > deadline {
                panic!(
                    "no {what} after {timeout:?}; csv so far: {:?}\nlog:\n{}",
                    csv.series.keys().collect::<Vec<_>>(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then SIGKILL after 5 s; returns the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        if let Some(st) = self.exited() {
            return st;
        }
        let child = self.child.as_mut().expect("collectd child");
        // SAFETY: a signal to our own child process.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Some(st) = self.exited() {
                return st;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let child = self.child.as_mut().expect("collectd child");
        let _ = child.kill();
        let st = child.wait().expect("wait for collectd");
        self.status = Some(st);
        st
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() && self.status.is_none() {
            self.stop();
        }
    }
}

// ---------------------------------------------------------------------------
// csv output
// ---------------------------------------------------------------------------

/// One csv file's identifier: `DataDir/<host>/<plugin>[-<plugin instance>]/
/// <type>[-<type instance>]-<date>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ident {
    pub host: String,
    pub plugin: String,
    pub plugin_instance: String,
    pub type_: String,
    pub type_instance: String,
}

/// Everything a csv writer wrote: identifier -> data rows as written
/// ("epoch,value" text, header left out), files of several dates joined.
#[derive(Debug, Default, Clone)]
pub struct Csv {
    pub series: BTreeMap<Ident, Vec<String>>,
}

fn split_once_or_all(s: &str) -> (String, String) {
    match s.split_once('-') {
        Some((a, b)) => (a.to_string(), b.to_string()),
        None => (s.to_string(), String::new()),
    }
}

impl Csv {
    /// Reads `datadir` (missing: empty). Only complete lines count.
    pub fn read(datadir: &Path) -> Csv {
        let mut csv = Csv::default();
        let mut files: Vec<(Ident, String, PathBuf)> = Vec::new();
        let Ok(hosts) = fs::read_dir(datadir) else {
            return csv;
        };
        for h in hosts.flatten() {
            let host = h.file_name().to_string_lossy().into_owned();
            let Ok(plugins) = fs::read_dir(h.path()) else {
                continue;
            };
            for p in plugins.flatten() {
                let (plugin, plugin_instance) = split_once_or_all(&p.file_name().to_string_lossy());
                let Ok(entries) = fs::read_dir(p.path()) else {
                    continue;
                };
                for f in entries.flatten() {
                    let name = f.file_name().to_string_lossy().into_owned();
                    // "<type>[-<type instance>]-YYYY-MM-DD"
                    if name.len() < 12 || !name.is_char_boundary(name.len() - 11) {
                        continue;
                    }
                    let (id, date) = name.split_at(name.len() - 11);
                    let (type_, type_instance) = split_once_or_all(id);
                    files.push((
                        Ident {
                            host: host.clone(),
                            plugin: plugin.clone(),
                            plugin_instance: plugin_instance.clone(),
                            type_,
                            type_instance,
                        },
                        date.to_string(),
                        f.path(),
                    ));
                }
            }
        }
        files.sort();
        for (ident, _, path) in files {
            let text = fs::read_to_string(&path).unwrap_or_default();
            let complete = match text.rfind('\n') {
                Some(i) => &text[..=i],
                None => "",
            };
            csv.series.entry(ident).or_default().extend(
                complete
                    .lines()
                    .filter(|l| !l.is_empty() && !l.starts_with("epoch"))
                    .map(String::from),
            );
        }
        csv
    }

    /// The series of one plugin.
    pub fn plugin(&self, plugin: &str) -> impl Iterator<Item = (&Ident, &Vec<String>)> {
        let plugin = plugin.to_string();
        self.series.iter().filter(move |(k, _)| k.plugin == plugin)
    }

    /// Last value of every tcpconns `tcp_connections` series, keyed like
    /// `common::expected_values`: (plugin instance, state).
    pub fn tcpconns_values(&self) -> BTreeMap<(String, String), f64> {
        self.plugin("tcpconns")
            .filter(|(k, _)| k.type_ == "tcp_connections")
            .filter_map(|(k, rows)| {
                let v = rows.last()?.split(',').nth(1)?.trim().parse().ok()?;
                Some(((k.plugin_instance.clone(), k.type_instance.clone()), v))
            })
            .collect()
    }

    /// Most rows in any tcpconns file (reads that reached the writer).
    pub fn tcpconns_reads(&self) -> usize {
        self.plugin("tcpconns")
            .map(|(_, r)| r.len())
            .max()
            .unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------
// Snapshots of system paths
// ---------------------------------------------------------------------------

/// What a path is: kind, mode, owner, and for files the sha256 and mtime
/// (directory mtimes are left out: adding and removing a file changes them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
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
pub fn snapshot(roots: &[(&str, bool)]) -> BTreeMap<PathBuf, Entry> {
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
pub fn snapshot_diff(
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

// ---------------------------------------------------------------------------
// One test at a time on the real host
// ---------------------------------------------------------------------------

/// Held while a test changes the real /etc and /usr/local: a mutex for the
/// tests of this process and an flock for other processes.
pub struct HostLock {
    _guard: std::sync::MutexGuard<'static, ()>,
    _file: fs::File,
}

pub fn host_lock() -> HostLock {
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
