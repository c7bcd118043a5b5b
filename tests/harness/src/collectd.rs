//! The real collectd: one config writer ([`Conf`]), one runner
//! ([`Collectd`], stopped when dropped), and the one-read runs most tests
//! want ([`run_collectd`] & co., giving a [`Run`]).

use crate::{fault_plugin_dir, plugin_dir, Csv, Netns, Plugin, TempDir, STOCK_PLUGIN_DIR};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A collectd.conf for a test collectd whose state lives in `dir`.
#[derive(Debug, Clone)]
pub struct Conf {
    dir: PathBuf,
    text: String,
}

impl Conf {
    /// The head: host name, interval (seconds; fractions work), one read
    /// and one write thread, BaseDir and PID file in `dir`, the log (info)
    /// in `<dir>/collectd.log`. Add plugins after it.
    pub fn new(dir: &Path, hostname: &str, interval: f64) -> Conf {
        let d = dir.to_str().expect("scratch dir path is UTF-8");
        let mut text = format!(
            "Hostname {}\nFQDNLookup false\nInterval {interval}\nWriteThreads 1\nReadThreads 1\n",
            quote(hostname)
        );
        text += &format!(
            "BaseDir {}\nPIDFile {}\n\n",
            quote(d),
            quote(&format!("{d}/collectd.pid"))
        );
        text += "LoadPlugin logfile\n<Plugin logfile>\n  LogLevel \"info\"\n";
        text += &format!("  File {}\n", quote(&format!("{d}/collectd.log")));
        text += "  Timestamp false\n  PrintSeverity true\n</Plugin>\n\n";
        Conf {
            dir: dir.to_path_buf(),
            text,
        }
    }

    /// The csv writer, to `<dir>/csv`, gauges as read.
    pub fn csv(self) -> Conf {
        let datadir = quote(&format!("{}/csv", self.dir.display()));
        self.block(&format!(
            "LoadPlugin csv\n<Plugin csv>\n  DataDir {datadir}\n  StoreRates false\n</Plugin>\n"
        ))
    }

    /// Loads `plugin`'s tcpconns.so: ours from its own directory (PluginDir
    /// switched back to Debian's for whatever is loaded after it).
    pub fn tcpconns(self, plugin: Plugin) -> Conf {
        match plugin {
            Plugin::Ours => self.tcpconns_from(&plugin_dir()),
            Plugin::Faulty => self.tcpconns_from(&fault_plugin_dir()),
            Plugin::Stock => self.block("LoadPlugin tcpconns\n"),
        }
    }

    /// Loads the tcpconns.so found in `plugin_dir`.
    pub fn tcpconns_from(self, plugin_dir: &Path) -> Conf {
        let pd = quote(plugin_dir.to_str().expect("plugin dir is UTF-8"));
        self.block(&format!(
            "PluginDir {pd}\nLoadPlugin tcpconns\nPluginDir {}\n",
            quote(STOCK_PLUGIN_DIR)
        ))
    }

    /// `text` verbatim, then a blank line.
    pub fn block(mut self, text: &str) -> Conf {
        self.text += text;
        self.text += "\n";
        self
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}

/// How to start collectd, beyond its config.
#[derive(Debug, Default, Clone)]
pub struct Launch<'a> {
    /// The network namespace to run in: a name is entered with `ip netns
    /// exec` (which mounts a sysfs of the namespace's own over /sys), a path
    /// (`/run/netns/NAME`, `/proc/PID/ns/net`) with `nsenter --net`, which
    /// leaves mounts alone (the cgroup hierarchy under /sys stays visible).
    pub netns: Option<&'a str>,
    /// Extra environment, e.g. `LD_PRELOAD`.
    pub env: &'a [(&'a str, &'a str)],
    /// Paths covered by an empty tmpfs first, in a mount namespace of
    /// collectd's own (for configs that write to system directories, like
    /// the stock one's rrdtool to /var/lib/collectd: the host never sees it).
    pub tmpfs: &'a [&'a str],
    /// Run as this uid and gid, no supplementary groups (`setpriv`); the
    /// scratch directory is handed to it first.
    pub user: Option<u32>,
}

/// A collectd started with `-f -C <dir>/collectd.conf`, its stdout and
/// stderr in files of its scratch directory. Dropping it stops it (SIGTERM,
/// SIGKILL after 5 s), so none outlives its test, even a failed one; then
/// the directory goes (see [`TempDir`]).
#[derive(Debug)]
pub struct Collectd {
    child: Child,
    status: Option<ExitStatus>,
    dir: TempDir,
}

impl Collectd {
    /// Writes `conf` into `dir` and starts collectd on it.
    pub fn start(dir: TempDir, conf: &Conf, launch: &Launch) -> Collectd {
        let conf_path = dir.path().join("collectd.conf");
        fs::write(&conf_path, conf.text())
            .unwrap_or_else(|e| panic!("write {}: {e}", conf_path.display()));
        let mut argv: Vec<String> = Vec::new();
        if !launch.tmpfs.is_empty() {
            // unshare -m execs sh, which mounts and execs the rest: the
            // child's PID stays collectd's.
            let mut script = String::new();
            for i in 1..=launch.tmpfs.len() {
                script += &format!("mount -t tmpfs tcpconns-test \"${i}\" || exit 99; ");
            }
            script += &format!("shift {}; exec \"$@\"", launch.tmpfs.len());
            argv.extend(
                ["unshare", "-m", "--propagation", "private", "sh", "-c"].map(String::from),
            );
            argv.push(script);
            argv.push("sh".into());
            argv.extend(launch.tmpfs.iter().map(|s| s.to_string()));
        }
        match launch.netns {
            Some(path) if path.starts_with('/') => {
                argv.extend(["nsenter".into(), format!("--net={path}")])
            }
            Some(ns) => argv.extend(["ip", "netns", "exec", ns].map(String::from)),
            None => {}
        }
        if let Some(id) = launch.user {
            crate::checked(
                Command::new("chown")
                    .arg("-R")
                    .arg(format!("{id}:{id}"))
                    .arg(dir.path()),
            );
            argv.push("setpriv".into());
            argv.push(format!("--reuid={id}"));
            argv.push(format!("--regid={id}"));
            argv.push("--clear-groups".into());
        }
        argv.push(crate::COLLECTD.into());
        argv.extend(["-f".into(), "-C".into(), conf_path.display().to_string()]);
        let file = |name: &str| {
            fs::File::create(dir.path().join(name))
                .unwrap_or_else(|e| panic!("create {name} in {}: {e}", dir.path().display()))
        };
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .envs(launch.env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file("stdout"))
            .stderr(file("stderr"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {argv:?}: {e}"));
        Collectd {
            child,
            status: None,
            dir,
        }
    }

    /// Starts collectd with `plugin` and `plugin_block` (verbatim, e.g.
    /// `"<Plugin tcpconns>\n  LocalPort 22\n</Plugin>"`, or `""`), the csv
    /// writer and the usual head (host "test"), inside `ns` (or the test's
    /// own namespace for `None`), with extra environment `env`.
    pub fn tcpconns(
        ns: Option<&Netns>,
        plugin: Plugin,
        plugin_block: &str,
        env: &[(&str, &str)],
        interval: f64,
    ) -> Collectd {
        let dir = TempDir::new("run");
        let conf = Conf::new(dir.path(), "test", interval)
            .csv()
            .tcpconns(plugin)
            .block(plugin_block);
        let launch = Launch {
            netns: ns.map(Netns::name),
            env,
            ..Launch::default()
        };
        Collectd::start(dir, &conf, &launch)
    }

    /// The scratch directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// collectd's PID (`ip netns exec`, `setpriv` and the tmpfs `sh` exec
    /// it in place).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The csv written so far.
    pub fn csv(&self) -> Csv {
        Csv::read(&self.dir().join("csv"))
    }

    /// Reads of tcpconns that reached csv so far.
    pub fn reads(&self) -> usize {
        self.csv().tcpconns_reads()
    }

    /// The log file, then stderr and stdout (when not empty).
    pub fn log(&self) -> String {
        let mut log = fs::read_to_string(self.dir().join("collectd.log")).unwrap_or_default();
        if !log.is_empty() && !log.ends_with('\n') {
            log.push('\n');
        }
        for name in ["stderr", "stdout"] {
            let s = fs::read_to_string(self.dir().join(name)).unwrap_or_default();
            if !s.is_empty() {
                log += &format!("--- {name} ---\n{s}");
            }
        }
        log
    }

    /// Whether collectd has exited (and then how).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            match self.child.try_wait() {
                Ok(st) => self.status = st,
                Err(e) => panic!("waiting for collectd: {e}"),
            }
        }
        self.status
    }

    /// Polls every 50 ms until `done` holds; panics with the log if
    /// collectd exits first or `timeout` passes.
    fn wait(&mut self, what: &str, timeout: Duration, mut done: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + timeout;
        while !done(self) {
            if let Some(st) = self.exited() {
                panic!("collectd exited ({st}) before {what}:\n{}", self.log());
            }
            if Instant::now() > deadline {
                panic!(
                    "no {what} after {timeout:?}; csv so far: {:?}\nlog:\n{}",
                    self.csv().series.keys().collect::<Vec<_>>(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `done` holds for the csv; returns that csv.
    pub fn wait_for(&mut self, what: &str, timeout: Duration, done: impl Fn(&Csv) -> bool) -> Csv {
        let mut csv = Csv::default();
        self.wait(what, timeout, |c| {
            csv = c.csv();
            done(&csv)
        });
        csv
    }

    /// Waits until `n` reads of tcpconns reached csv.
    pub fn wait_reads(&mut self, n: usize, timeout: Duration) {
        self.wait(&format!("{n} reads"), timeout, |c| c.reads() >= n);
    }

    /// Waits until `done` holds for the log; returns that log.
    pub fn wait_log(
        &mut self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&str) -> bool,
    ) -> String {
        let mut log = String::new();
        self.wait(what, timeout, |c| {
            log = c.log();
            done(&log)
        });
        log
    }

    /// Waits until collectd exits, at most `timeout`; `None` if it still runs.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while self.exited().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.exited()
    }

    /// SIGTERM, then SIGKILL after 5 s; returns the exit status. First
    /// waits (at most 2 s) until csv has been still for 100 ms: collectd
    /// drops what its write queue still holds when it stops ("value lists
    /// were left after shutting down the write threads"), so stopping just
    /// as a read is written would cut that read short.
    pub fn stop(&mut self) -> ExitStatus {
        if let Some(st) = self.exited() {
            return st;
        }
        self.settle(Duration::from_millis(100), Duration::from_secs(2));
        let status = crate::terminate(&mut self.child, "collectd", Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("stopping collectd: {e}"));
        self.status = Some(status);
        status
    }

    /// Waits until the tcpconns csv has not changed for `still`, or
    /// `timeout` has passed.
    fn settle(&mut self, still: Duration, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut last = self.csv().progress();
        let mut since = Instant::now();
        while since.elapsed() < still && Instant::now() < deadline && self.exited().is_none() {
            std::thread::sleep(Duration::from_millis(20));
            let now = self.csv().progress();
            if now != last {
                last = now;
                since = Instant::now();
            }
        }
    }

    /// Stops collectd and returns what it wrote; `status` is `None` when it
    /// was still running (it did not exit on its own).
    pub fn finish(mut self) -> Run {
        let status = self.exited();
        self.stop();
        let csv = self.csv();
        Run {
            values: csv.tcpconns_values(),
            rows: csv.tcpconns_rows(),
            log: self.log(),
            status,
        }
    }
}

impl Drop for Collectd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Outcome of one collectd run.
#[derive(Debug)]
pub struct Run {
    /// Last value of each tcpconns series, keyed by (plugin_instance,
    /// type_instance), e.g. `("22-local", "LISTEN") -> 1.0` (see
    /// [`crate::Ident::key`]).
    pub values: BTreeMap<(String, String), f64>,
    /// Every row of each series, oldest first: (epoch seconds, value).
    /// More than one row only when collectd read more than once.
    pub rows: BTreeMap<(String, String), Vec<(f64, f64)>>,
    /// collectd's log file, then its stderr (and stdout if any).
    pub log: String,
    /// Exit status; `None` if collectd was still running and was stopped.
    pub status: Option<ExitStatus>,
}

impl Run {
    /// Value for (plugin_instance, type_instance), if dispatched.
    pub fn get(&self, plugin_instance: &str, type_instance: &str) -> Option<f64> {
        self.values
            .get(&(plugin_instance.to_string(), type_instance.to_string()))
            .copied()
    }

    /// Sorted, de-duplicated plugin instances that were dispatched.
    pub fn plugin_instances(&self) -> Vec<String> {
        let mut v: Vec<String> = self.values.keys().map(|(p, _)| p.clone()).collect();
        v.dedup();
        v
    }

    /// Reads that reached csv: the most rows in any series.
    pub fn reads(&self) -> usize {
        self.rows.values().map(Vec::len).max().unwrap_or(0)
    }

    /// At least `min_reads` reads, each of which dispatched every series
    /// with exactly its value in `want`, and (if `max_gap` is given) less
    /// than that many seconds between two reads: none lost, none wrong.
    pub fn assert_each_read(
        &self,
        want: &BTreeMap<(String, String), f64>,
        min_reads: usize,
        max_gap: Option<f64>,
    ) {
        let log = &self.log;
        let reads = self.reads();
        assert!(reads >= min_reads, "{reads} reads:\n{log}");
        for (key, rows) in &self.rows {
            assert_eq!(rows.len(), reads, "{key:?} missed a read:\n{log}");
            for pair in rows.windows(2) {
                let gap = pair[1].0 - pair[0].0;
                let too_long = max_gap.is_some_and(|max| gap >= max);
                assert!(!too_long, "{key:?}: {gap} s between reads:\n{log}");
            }
            for (t, v) in rows {
                assert_eq!(Some(v), want.get(key), "{key:?} at {t}:\n{log}");
            }
        }
    }
}

/// Options for [`run_collectd_opts`].
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Global `Interval` in seconds. 3600 (the default) means exactly one
    /// read, at start.
    pub interval: f64,
    /// With a short interval: stop once some tcpconns series has at least
    /// this many rows (reads that dispatched), and csv has been quiet for
    /// 300 ms (so collectd is between two reads).
    pub min_rows: usize,
    /// Give up waiting after this long and return what there is.
    pub timeout: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            interval: 3600.0,
            min_rows: 1,
            timeout: Duration::from_secs(15),
        }
    }
}

/// Runs collectd (Interval 3600: one read at start) inside `ns` with
/// `plugin`, `plugin_block` and extra environment `env` (see
/// [`Collectd::tcpconns`]).
///
/// Waits until tcpconns csv output exists and has not changed for 1.5 s
/// (the read is written out; at most 15 s: a run where the plugin
/// dispatches nothing takes the full 15 s), or until collectd exits; then
/// stops it and returns the values, the log and the exit status.
pub fn run_collectd(ns: &Netns, plugin: Plugin, plugin_block: &str, env: &[(&str, &str)]) -> Run {
    run_collectd_opts(ns, plugin, plugin_block, env, &RunOptions::default())
}

/// [`run_collectd`] with a chosen interval / stop rule (see [`RunOptions`]),
/// for tests that need several reads (e.g. the C plugin dispatches nothing
/// on the read where netlink first fails, and reads /proc from the next one).
pub fn run_collectd_opts(
    ns: &Netns,
    plugin: Plugin,
    plugin_block: &str,
    env: &[(&str, &str)],
    opts: &RunOptions,
) -> Run {
    let mut c = Collectd::tcpconns(Some(ns), plugin, plugin_block, env, opts.interval);
    let single_read = opts.interval >= 3600.0;
    let quiet = Duration::from_millis(if single_read { 1500 } else { 300 });
    let deadline = Instant::now() + opts.timeout;
    let mut last = (0, 0, 0);
    let mut last_change = Instant::now();
    while c.exited().is_none() {
        let now = c.csv().progress();
        let (series, _, reads) = now;
        if now != last {
            last = now;
            last_change = Instant::now();
        } else if series > 0
            && (single_read || reads >= opts.min_rows)
            && last_change.elapsed() >= quiet
        {
            break;
        }
        if Instant::now() >= deadline {
            eprintln!(
                "run_collectd: gave up waiting for csv output after {:?} (series, rows, reads) = {last:?}",
                opts.timeout
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    c.finish()
}

/// For config-error tests: starts collectd (inside `ns`, or in the test's
/// own namespace for `None`) with extra environment `env` and waits until it
/// exits or `wait` elapses. `status` is `None` if it was still running and
/// had to be stopped. `values` holds whatever reached csv.
pub fn run_collectd_config(
    ns: Option<&Netns>,
    plugin: Plugin,
    plugin_block: &str,
    env: &[(&str, &str)],
    wait: Duration,
) -> Run {
    let mut c = Collectd::tcpconns(ns, plugin, plugin_block, env, 3600.0);
    c.wait_exit(wait);
    c.finish()
}
