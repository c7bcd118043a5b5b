//! Per-cgroup series (`Cgroup`, `CgroupDepth`) and `Namespace "all"` in the
//! real collectd, on sockets made from cgroups the tests create in the
//! cgroup v2 hierarchy, checked against what the tests made and against
//! `ss -tan --cgroup`.
//!
//! A socket belongs to the cgroup of the process that made it, so the test
//! process moves itself between its cgroups while it builds a population;
//! the tests of this file take one lock so that no other test makes sockets
//! meanwhile. collectd runs through `nsenter --net`, not `ip netns exec`,
//! which would hide /sys/fs/cgroup behind a sysfs of the namespace's own.

use harness::*;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The cgroup v2 mount, or a skip line and `None`.
fn cgroup2() -> Option<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mount = tcpconns::cgroup::v2_mount(&mountinfo);
    if mount.is_none() {
        skip("no cgroup v2 hierarchy mounted here");
    }
    mount
}

/// A cgroup the test made; removed on drop, once no process is left in it.
struct Cgroup {
    dir: PathBuf,
    /// Its path in the hierarchy: `/tcpc-123-a`.
    path: String,
    /// Made by the test, so removed on drop.
    made: bool,
}

impl Cgroup {
    fn new(mount: &Path, path: &str) -> Cgroup {
        let dir = mount.join(path.trim_start_matches('/'));
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        Cgroup {
            dir,
            path: path.to_string(),
            made: true,
        }
    }

    /// Moves process `pid` (all its threads) here.
    fn add(&self, pid: u32) {
        let procs = self.dir.join("cgroup.procs");
        fs::write(&procs, pid.to_string())
            .unwrap_or_else(|e| panic!("write {pid} to {}: {e}", procs.display()));
    }

    /// The last component of its path: the name of its series.
    fn leaf(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or_default()
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if !self.made {
            return;
        }
        // A killed process leaves its cgroup a moment after the signal.
        for _ in 0..100 {
            if fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("warning: cannot remove {}", self.dir.display());
    }
}

/// The test process's own cgroup, to come back to (never removed).
fn home(mount: &Path) -> Cgroup {
    let text = fs::read_to_string("/proc/self/cgroup").expect("read /proc/self/cgroup");
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("a cgroup v2 line in /proc/self/cgroup");
    Cgroup {
        dir: mount.join(path.trim_start_matches('/')),
        path: path.to_string(),
        made: false,
    }
}

/// Runs `f` with the test process in `cg`, then moves it back to `home`
/// (also when `f` panics).
fn inside<T>(cg: &Cgroup, home: &Cgroup, f: impl FnOnce() -> T) -> T {
    struct Back<'a>(&'a Cgroup);
    impl Drop for Back<'_> {
        fn drop(&mut self) {
            self.0.add(std::process::id());
        }
    }
    cg.add(std::process::id());
    let _back = Back(home);
    f()
}

/// `ss -Htan --cgroup` in `ns`: (local, remote, state, cgroup path or "").
fn ss_cgroups(ns: &Netns) -> Vec<(u16, u16, String, String)> {
    let out = ns.exec("ss", &["-Htan", "--cgroup"]);
    assert!(out.status.success(), "ss --cgroup: {}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let port = |a: &str| ss_port(a).unwrap_or_else(|| panic!("ss --cgroup line: {l}"));
            let cgroup = w
                .get(5)
                .and_then(|c| c.strip_prefix("cgroup:"))
                .unwrap_or("");
            (port(w[3]), port(w[4]), w[0].to_string(), cgroup.to_string())
        })
        .collect()
}

/// 11 values of a series from `(state, n)` pairs, the others 0.
fn series(instance: &str, pairs: &[(&str, f64)]) -> BTreeMap<(String, String), f64> {
    STATE_NAMES[1..]
        .iter()
        .map(|s| {
            let n = pairs.iter().find(|(p, _)| p == s).map_or(0.0, |(_, n)| *n);
            ((instance.to_string(), s.to_string()), n)
        })
        .collect()
}

/// The values of the series whose plugin instance is `instance`.
fn values_of(csv: &Csv, instance: &str) -> BTreeMap<(String, String), f64> {
    csv.tcpconns_values()
        .into_iter()
        .filter(|((i, _), _)| i == instance)
        .collect()
}

/// What ss says per cgroup: for each (series, cgroup path) the sockets of
/// the cgroup and those below it, per state.
fn ss_series(
    ss: &[(u16, u16, String, String)],
    named: &[(&str, &str)],
) -> BTreeMap<(String, String), f64> {
    let mut out = BTreeMap::new();
    for (instance, path) in named {
        out.extend(series(instance, &[]));
        for (_, _, state, cgroup) in ss {
            if cgroup == path || cgroup.starts_with(&format!("{path}/")) {
                let state = ss_state(state).map_or("?", state_name);
                *out.entry((instance.to_string(), state.to_string()))
                    .or_insert(0.0) += 1.0;
            }
        }
    }
    out
}

/// Reads of `instance` that reached csv (rows of its LISTEN file).
fn rows(csv: &Csv, instance: &str) -> usize {
    csv.tcpconns_rows()
        .get(&(instance.to_string(), "LISTEN".to_string()))
        .map_or(0, Vec::len)
}

/// What a test that makes cgroups needs: root (else a skip line), the
/// cgroup v2 mount (else a skip line), this file's lock, and the test
/// process's own cgroup to come back to.
struct CgroupTest {
    mount: PathBuf,
    home: Cgroup,
    _one: std::sync::MutexGuard<'static, ()>,
}

fn cgroup_test() -> Option<CgroupTest> {
    if !root_or_skip("make cgroups and network namespaces and run collectd") {
        return None;
    }
    let mount = cgroup2()?;
    let one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    Some(CgroupTest {
        home: home(&mount),
        mount,
        _one: one,
    })
}

fn start(dir_tag: &str, ns: &Netns, block: &str, interval: f64, env: &[(&str, &str)]) -> Collectd {
    let dir = TempDir::new(dir_tag);
    let conf = Conf::new(dir.path(), "test", interval)
        .csv()
        .tcpconns(Plugin::Ours)
        .block(block);
    let launch = Launch {
        netns: Some(ns.path()),
        env,
        ..Launch::default()
    };
    Collectd::start(dir, &conf, &launch)
}

#[test]
fn named_cgroups_count_their_sockets_and_those_below_exactly() {
    let Some(t) = cgroup_test() else { return };
    let (mount, home) = (&t.mount, &t.home);
    let tag = format!("tcpc-{}", std::process::id());
    let a = Cgroup::new(mount, &format!("/{tag}-a"));
    let w = Cgroup::new(mount, &format!("/{tag}-a/worker"));
    let b = Cgroup::new(mount, &format!("/{tag}-b"));
    let ns = Netns::new("cgroups");
    let mut pop = Population::new(&ns);
    inside(&a, home, || pop.listen_v4(8080));
    inside(&w, home, || pop.listen_v6(9090));
    inside(&b, home, || {
        pop.listen_v4(7070)
            // Clients in b; the accepted ends belong to the listener's cgroup.
            .established(8080, 2, Family::V4)
            .established(9090, 1, Family::V6)
            // A TIME_WAIT is no full socket: no cgroup.
            .time_wait(8080, 1)
    });
    inside(&a, home, || pop.established(7070, 1, Family::V4));
    pop.settle(&ns);

    // What the test made, per cgroup (a counts its worker too).
    let mut want = series("a-cgroup", &[("LISTEN", 2.0), ("ESTABLISHED", 4.0)]);
    want.extend(series("w-cgroup", &[("LISTEN", 1.0), ("ESTABLISHED", 1.0)]));
    let b_series = format!("{}-cgroup", b.leaf());
    want.extend(series(&b_series, &[("LISTEN", 1.0), ("ESTABLISHED", 4.0)]));
    // ss agrees, socket by socket.
    let ss = ss_cgroups(&ns);
    let from_ss = ss_series(
        &ss,
        &[
            ("a-cgroup", &a.path),
            ("w-cgroup", &w.path),
            (&b_series, &b.path),
        ],
    );
    assert_eq!(from_ss, want, "ss --cgroup:\n{ss:#?}");
    assert!(ss.iter().any(|s| s.2 == "TIME-WAIT" && s.3.is_empty()));

    let block = format!(
        "<Plugin tcpconns>\n  LocalPort 8080\n  Cgroup \"{}\" \"a\"\n  Cgroup \"{}\" \"w\"\n  \
         Cgroup \"{}\"\n</Plugin>\n",
        a.path, w.path, b.path
    );
    let mut collectd = start("cgroups", &ns, &block, 3600.0, &[]);
    let csv = collectd.wait_for("the cgroup series", Duration::from_secs(20), |csv| {
        csv.tcpconns_values().len() == 44
    });
    let log = collectd.log();
    let mut got = values_of(&csv, "a-cgroup");
    got.extend(values_of(&csv, "w-cgroup"));
    got.extend(values_of(&csv, &b_series));
    assert_eq!(got, want, "log:\n{log}");
    // The port series is there as without the option.
    let port = values_of(&csv, "8080-local");
    assert_eq!(
        port,
        series("8080-local", &[("LISTEN", 1.0), ("ESTABLISHED", 2.0)]),
        "log:\n{log}"
    );
    assert!(
        log.contains("per-cgroup series from the cgroup v2 hierarchy at"),
        "{log}"
    );
}

#[test]
fn depth_mode_follows_cgroups_as_they_come_and_go_within_the_limit() {
    let Some(t) = cgroup_test() else { return };
    let (mount, home) = (&t.mount, &t.home);
    let tag = format!("tcpc-{}-d", std::process::id());
    let parent = Cgroup::new(mount, &format!("/{tag}"));
    let s1 = Cgroup::new(mount, &format!("/{tag}/s1"));
    let s2 = Cgroup::new(mount, &format!("/{tag}/s2"));
    let s3 = Cgroup::new(mount, &format!("/{tag}/s3"));
    let ns = Netns::new("cgdepth");
    // 7, 5 and 3 sockets: a listener and 3, 2, 1 connections (both ends).
    let mut pops = Vec::new();
    for (cg, port, conns) in [(&s1, 7001, 3), (&s2, 7002, 2), (&s3, 7003, 1)] {
        let mut pop = Population::new(&ns);
        inside(cg, home, || {
            pop.listen_v4(port).established(port, conns, Family::V4)
        });
        pops.push(pop);
    }
    let all: Vec<Sock> = pops.iter().flat_map(|p| p.expected.clone()).collect();
    ns.wait_sockets("the three populations", |socks| {
        multiset(socks) == multiset(&all)
    });
    let block = "<Plugin tcpconns>\n  CgroupDepth 2\n  CgroupLimit 2\n</Plugin>\n";
    let mut collectd = start("cgdepth", &ns, block, 0.5, &[]);
    let csv = collectd.wait_for("3 reads", Duration::from_secs(20), |csv| {
        csv.tcpconns_reads() >= 3
    });
    // The two busiest; s3 is left out by the limit, and that is logged once.
    let mut want = series("s1-cgroup", &[("LISTEN", 1.0), ("ESTABLISHED", 6.0)]);
    want.extend(series(
        "s2-cgroup",
        &[("LISTEN", 1.0), ("ESTABLISHED", 4.0)],
    ));
    assert_eq!(csv.tcpconns_values(), want, "log:\n{}", collectd.log());
    let over = "CgroupDepth 2: 3 cgroups hold connections, more than CgroupLimit 2; \
                reporting the 2 with the most connections";
    assert_eq!(
        collectd.log().matches(over).count(),
        1,
        "{}",
        collectd.log()
    );

    // s1 goes: its sockets close, the cgroup is removed.
    let gone = pops.remove(0);
    drop(gone);
    drop(s1);
    let at_removal = collectd.csv();
    let s1_rows = rows(&at_removal, "s1-cgroup");
    let s2_rows = rows(&at_removal, "s2-cgroup");
    let csv = collectd.wait_for("s3 reported, s1 no more", Duration::from_secs(30), |csv| {
        let s3 = values_of(csv, "s3-cgroup");
        s3.get(&("s3-cgroup".into(), "ESTABLISHED".into())) == Some(&2.0)
            && rows(csv, "s2-cgroup") >= s2_rows + 6
    });
    let log = collectd.log();
    // s1's series stopped (at most the read running at the removal and
    // one for its closing sockets came after), s2 went on every read.
    assert!(rows(&csv, "s1-cgroup") <= s1_rows + 2, "{log}");
    let last_s1 = rows(&csv, "s1-cgroup");
    let csv = collectd.wait_for("3 more reads", Duration::from_secs(20), |c| {
        rows(c, "s2-cgroup") >= rows(&csv, "s2-cgroup") + 3
    });
    assert_eq!(
        rows(&csv, "s1-cgroup"),
        last_s1,
        "s1 reported after it went:\n{log}"
    );
    assert_eq!(
        values_of(&csv, "s2-cgroup"),
        series("s2-cgroup", &[("LISTEN", 1.0), ("ESTABLISHED", 4.0)])
    );
    assert_eq!(
        values_of(&csv, "s3-cgroup"),
        series("s3-cgroup", &[("LISTEN", 1.0), ("ESTABLISHED", 2.0)])
    );
    let log = collectd.log();
    assert_eq!(log.matches(over).count(), 1, "{log}");
    assert_eq!(
        log.matches("CgroupDepth 2: the cgroups with connections fit CgroupLimit 2 again")
            .count(),
        1,
        "{log}"
    );
    drop(collectd);
    drop(pops);
    drop((s2, s3, parent));
}

#[test]
fn namespace_all_finds_unnamed_namespaces_by_cgroup_and_forgets_gone_ones() {
    let Some(t) = cgroup_test() else { return };
    let mount = &t.mount;
    let tag = format!("tcpc-{}-ns", std::process::id());
    // Made first, removed last: after the processes in them have ended.
    let c1 = Cgroup::new(mount, &format!("/{tag}1"));
    let c2 = Cgroup::new(mount, &format!("/{tag}2"));
    let own = Netns::new("nsall");
    let named = Netns::new("nsall-named");
    let u1 = Netns::unnamed("u1");
    let u2 = Netns::unnamed("u2");
    c1.add(u1.holder_pid().expect("holder"));
    c2.add(u2.holder_pid().expect("holder"));

    let mut pops = Vec::new();
    for (ns, port, conns) in [
        (&own, 5000, 1),
        (&u1, 5001, 2),
        (&u2, 5002, 1),
        (&named, 5004, 3),
    ] {
        let mut pop = Population::new(ns);
        pop.listen_v4(port).established(port, conns, Family::V4);
        pop.settle(ns);
        pops.push(pop);
    }
    let block = "<Plugin tcpconns>\n  Namespace \"all\"\n  NamespaceLimit 4096\n</Plugin>\n";
    let mut collectd = start("nsall", &own, block, 0.5, &[]);
    let n1 = format!("{}-5001-local", c1.leaf());
    let n2 = format!("{}-5002-local", c2.leaf());
    let n4 = format!("{}-5004-local", named.name());
    let csv = collectd.wait_for(
        "the discovered namespaces",
        Duration::from_secs(20),
        |csv| {
            let v = csv.tcpconns_values();
            [&n1, &n2, &n4]
                .iter()
                .all(|n| v.contains_key(&(n.to_string(), "LISTEN".into())))
        },
    );
    let log = collectd.log();
    let mut got = values_of(&csv, "5000-local");
    for n in [&n1, &n2, &n4] {
        got.extend(values_of(&csv, n));
    }
    let mut want = series("5000-local", &[("LISTEN", 1.0), ("ESTABLISHED", 1.0)]);
    want.extend(series(&n1, &[("LISTEN", 1.0), ("ESTABLISHED", 2.0)]));
    want.extend(series(&n2, &[("LISTEN", 1.0), ("ESTABLISHED", 1.0)]));
    want.extend(series(&n4, &[("LISTEN", 1.0), ("ESTABLISHED", 3.0)]));
    assert_eq!(got, want, "log:\n{log}");
    // collectd's own namespace only as itself, never again under a name.
    let instances: Vec<String> = csv.tcpconns_values().into_keys().map(|k| k.0).collect();
    assert!(
        instances.iter().all(|i| !i.ends_with("-5000-local")),
        "{instances:?}"
    );
    assert!(
        log.contains(&format!("found namespace {} ({})", c1.leaf(), u1.path())),
        "{log}"
    );

    // u2's process ends and its sockets close: the namespace goes.
    drop(pops.remove(2));
    drop(u2);
    collectd.wait_log("u2 gone", Duration::from_secs(20), |log| {
        log.contains(&format!("namespace {}: gone; no longer read", c2.leaf()))
    });
    let stopped = rows(&collectd.csv(), &n2);
    let before = rows(&collectd.csv(), &n1);
    let csv = collectd.wait_for("4 more reads", Duration::from_secs(20), |c| {
        rows(c, &n1) >= before + 4
    });
    assert_eq!(rows(&csv, &n2), stopped, "{}", collectd.log());
    // Its whole life in the log: found, gone (its process ending before the
    // scan noticed is no line of its own).
    let log = collectd.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&format!("namespace {}", c2.leaf())))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines[0].contains("found namespace") && lines[1].contains("gone"),
        "{lines:#?}"
    );
    assert_eq!(
        values_of(&csv, &n1),
        series(&n1, &[("LISTEN", 1.0), ("ESTABLISHED", 2.0)])
    );
    drop(collectd);
    drop(pops);
}

#[test]
fn on_the_procfs_fallback_cgroup_series_stop_with_one_line_and_come_back() {
    let Some(t) = cgroup_test() else { return };
    let (mount, home) = (&t.mount, &t.home);
    let a = Cgroup::new(mount, &format!("/tcpc-{}-fb", std::process::id()));
    let ns = Netns::new("cgfallback");
    let mut pop = Population::new(&ns);
    inside(&a, home, || {
        pop.listen_v4(8080).established(8080, 2, Family::V4)
    });
    pop.settle(&ns);
    let netlink = NetlinkSwitch::new(false, &[]);
    let block = format!(
        "<Plugin tcpconns>\n  LocalPort 8080\n  Cgroup \"{}\" \"a\"\n</Plugin>\n",
        a.path
    );
    let mut c = start("cgfallback", &ns, &block, 0.5, &netlink.env());
    c.wait_for(
        "2 reads with the cgroup series",
        Duration::from_secs(20),
        |csv| rows(csv, "a-cgroup") >= 2,
    );
    netlink.refuse(true);
    c.wait_log("the switch to /proc", Duration::from_secs(20), |log| {
        log.contains("reading /proc, which has no cgroup ids")
    });
    let off = c.csv();
    let csv = c.wait_for("4 reads on /proc", Duration::from_secs(20), |csv| {
        rows(csv, "8080-local") >= rows(&off, "8080-local") + 4
    });
    // No cgroup series from /proc (at most the read running at the switch).
    assert!(
        rows(&csv, "a-cgroup") <= rows(&off, "a-cgroup") + 1,
        "{}",
        c.log()
    );
    assert_eq!(
        values_of(&csv, "8080-local"),
        series("8080-local", &[("LISTEN", 1.0), ("ESTABLISHED", 2.0)])
    );
    netlink.refuse(false);
    let back = rows(&c.csv(), "a-cgroup");
    let csv = c.wait_for("the cgroup series back", Duration::from_secs(30), |csv| {
        rows(csv, "a-cgroup") >= back + 2
    });
    // Both ends of each connection were made in a.
    assert_eq!(
        values_of(&csv, "a-cgroup"),
        series("a-cgroup", &[("LISTEN", 1.0), ("ESTABLISHED", 4.0)])
    );
    let log = c.log();
    assert_eq!(log.matches("which has no cgroup ids").count(), 1, "{log}");
    assert_eq!(
        log.matches("per-cgroup series are back").count(),
        1,
        "{log}"
    );
    drop(c);
    drop(pop);
}

#[test]
fn without_a_cgroup_v2_hierarchy_one_line_at_init_and_the_rest_as_before() {
    require_root!("make network namespaces and run collectd");
    let ns = Netns::new("cgnone");
    let mut pop = Population::new(&ns);
    pop.listen_v4(8080).established(8080, 2, Family::V4);
    pop.settle(&ns);
    // `ip netns exec` mounts a sysfs of the namespace's own over /sys: no
    // cgroup hierarchy under it, no cgroup2 line in collectd's mountinfo.
    let block = "<Plugin tcpconns>\n  LocalPort 8080\n  CgroupDepth 1\n  \
                 Cgroup \"/system.slice\"\n</Plugin>\n";
    let mut c = Collectd::tcpconns(Some(&ns), Plugin::Ours, block, &[], 0.5);
    let csv = c.wait_for("3 reads", Duration::from_secs(20), |csv| {
        csv.tcpconns_reads() >= 3
    });
    let log = c.log();
    assert_eq!(
        csv.tcpconns_values(),
        series("8080-local", &[("LISTEN", 1.0), ("ESTABLISHED", 2.0)]),
        "{log}"
    );
    assert_eq!(
        log.matches(
            "Cgroup/CgroupDepth: no cgroup v2 hierarchy is mounted (no cgroup2 in \
             /proc/self/mountinfo); no per-cgroup series"
        )
        .count(),
        1,
        "{log}"
    );
    assert!(!log.contains("error"), "{log}");
}

#[test]
fn the_shipped_cgroups_snippet_reports_each_service() {
    let Some(t) = cgroup_test() else { return };
    let (mount, home) = (&t.mount, &t.home);
    let slice = Cgroup::new(
        mount,
        &format!("/tcpc-{}-snippet.slice", std::process::id()),
    );
    let web = Cgroup::new(mount, &format!("{}/web.service", slice.path));
    let db = Cgroup::new(mount, &format!("{}/db.service", slice.path));
    let ns = Netns::new("cgsnippet");
    let mut pop = Population::new(&ns);
    inside(&db, home, || pop.listen_v4(5432));
    // web listens on 443 and is a client of db twice; clients of web come
    // from outside any depth-2 cgroup (the test's own).
    inside(&web, home, || {
        pop.listen_v4(443).established(5432, 2, Family::V4)
    });
    pop.established(443, 3, Family::V4);
    pop.settle(&ns);
    let text = fs::read_to_string(repo().join("collectd.d/tcpconns-cgroups.conf"))
        .expect("read collectd.d/tcpconns-cgroups.conf");
    // The <Plugin tcpconns> block as shipped (our plugin is loaded by Conf).
    let block: String = text
        .lines()
        .skip_while(|l| !l.starts_with("<Plugin tcpconns>"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(block.contains("CgroupDepth 2"), "{block}");
    let mut c = start("cgsnippet", &ns, &block, 3600.0, &[]);
    let csv = c.wait_for("all and two services", Duration::from_secs(20), |csv| {
        csv.tcpconns_values().len() == 33
    });
    let mut want = series("all", &[("LISTEN", 2.0), ("ESTABLISHED", 10.0)]);
    // web: its listener, its 3 accepted ends, its 2 client ends.
    want.extend(series(
        "web.service-cgroup",
        &[("LISTEN", 1.0), ("ESTABLISHED", 5.0)],
    ));
    // db: its listener and the 2 ends it accepted.
    want.extend(series(
        "db.service-cgroup",
        &[("LISTEN", 1.0), ("ESTABLISHED", 2.0)],
    ));
    assert_eq!(csv.tcpconns_values(), want, "{}", c.log());
    drop(c);
    drop(pop);
    drop((web, db, slice));
}
