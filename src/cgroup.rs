//! Connections per cgroup (v2). The kernel tags every full socket with the
//! id of the cgroup whose process made it and sends that id with each
//! socket (`INET_DIAG_CGROUP_ID`); an id is the inode number of the
//! cgroup's directory. A read counts sockets per id ([`CgroupCounts`]);
//! afterwards ids become paths through a cache of the hierarchy
//! ([`Hierarchy`], walked again only when an unknown id shows up), and
//! paths become series ([`CgroupReport`]). TIME_WAIT and SYN_RECV entries
//! are not full sockets and carry no id: they are not attributed.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use log::{info, warn};

use crate::config::{name_from, Cgroups, NamedCgroup, MAX_CGROUP_NAME};
use crate::state::STATE_COUNT;
use crate::table::Counts;

/// Hashes a cgroup id (a small integer) with one multiplication: a socket
/// costs one lookup, and ids come from the kernel, not from an adversary
/// who could pick colliding ones.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// A read's connections per cgroup id. Cleared, not freed, between reads:
/// a read allocates only when it meets more cgroups than any read before.
#[derive(Debug, Clone, Default)]
pub struct CgroupCounts {
    by_id: IdMap<Counts>,
}

impl CgroupCounts {
    pub fn clear(&mut self) {
        self.by_id.clear();
    }

    /// Counts one socket of cgroup `id` in state `index` ([`crate::state::TcpState::index`]).
    #[inline]
    pub fn add(&mut self, id: u64, index: usize) {
        let counts = self.by_id.entry(id).or_insert([0; STATE_COUNT]);
        counts[index] = counts[index].saturating_add(1);
    }

    /// Every cgroup id seen in this read, with its counts.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Counts)> + '_ {
        self.by_id.iter().map(|(&id, c)| (id, c))
    }
}

/// Where the cgroup v2 hierarchy is mounted, from `/proc/self/mountinfo`
/// text: `/sys/fs/cgroup` on unified hosts, `/sys/fs/cgroup/unified` on
/// hybrid ones. The first `cgroup2` mount of the hierarchy's root wins.
pub fn v2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        // id parent major:minor root mount-point options [optional...] - type ...
        let (before, after) = line.split_once(" - ")?;
        if after.split(' ').next()? != "cgroup2" {
            return None;
        }
        let mut fields = before.split(' ');
        let root = fields.nth(3)?;
        let mount = fields.next()?;
        (root == "/").then(|| PathBuf::from(unescape_octal(mount)))
    })
}

/// mountinfo writes space, tab, newline and backslash in paths as `\ooo`.
fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                let v = d.iter().fold(0u32, |v, b| v * 8 + u32::from(b - b'0'));
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Cgroup ids mapped to paths (`/system.slice/nginx.service`, `/` for the
/// root), learned by walking the hierarchy.
#[derive(Debug)]
pub struct Hierarchy {
    mount: PathBuf,
    paths: IdMap<String>,
    /// Ids a walk did not find (a cgroup removed while its sockets live on):
    /// not looked for again, so they cost no walk per read.
    unknown: HashSet<u64, BuildHasherDefault<IdHasher>>,
    /// The directories of the `Cgroup` paths, and whether each is there,
    /// looked at once per read for every target (see [`Hierarchy::look`]).
    named: Vec<PathBuf>,
    named_present: Vec<bool>,
    /// Walks done so far (what the tests look at).
    pub walks: u64,
}

/// Forgotten unknown ids beyond this many are dropped, so the set stays
/// small on a host where cgroups come and go.
const MAX_UNKNOWN: usize = 4096;

impl Hierarchy {
    /// The hierarchy mounted at `mount`, with the `named` cgroups of the
    /// configuration; nothing is read until [`Hierarchy::look`] and
    /// [`Hierarchy::learn`].
    pub fn new(mount: PathBuf, named: &[NamedCgroup]) -> Hierarchy {
        Hierarchy {
            named: named
                .iter()
                .map(|n| mount.join(n.path.trim_start_matches('/')))
                .collect(),
            named_present: vec![true; named.len()],
            mount,
            paths: IdMap::default(),
            unknown: HashSet::default(),
            walks: 0,
        }
    }

    /// This process's cgroup v2 hierarchy, or why there is none.
    pub fn find(named: &[NamedCgroup]) -> Result<Hierarchy, String> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
        let mount = v2_mount(&mountinfo).ok_or_else(|| {
            "no cgroup v2 hierarchy is mounted (no cgroup2 in /proc/self/mountinfo)".to_owned()
        })?;
        Ok(Hierarchy::new(mount, named))
    }

    /// Looks whether each `Cgroup` exists now; once per read.
    pub fn look(&mut self) {
        for (dir, present) in self.named.iter().zip(&mut self.named_present) {
            *present = dir.is_dir();
        }
    }

    /// Whether each `Cgroup` existed at the last [`Hierarchy::look`], in
    /// the order configured.
    pub fn named_present(&self) -> &[bool] {
        &self.named_present
    }

    pub fn mount(&self) -> &Path {
        &self.mount
    }

    /// The path of cgroup `id`, if known.
    pub fn path(&self, id: u64) -> Option<&str> {
        self.paths.get(&id).map(String::as_str)
    }

    /// Makes sure every id in `ids` has been looked for: walks the hierarchy
    /// once if any of them is new.
    pub fn learn(&mut self, ids: impl Iterator<Item = u64>) -> io::Result<()> {
        let mut new = Vec::new();
        for id in ids {
            if !self.paths.contains_key(&id) && !self.unknown.contains(&id) {
                new.push(id);
            }
        }
        if new.is_empty() {
            return Ok(());
        }
        self.paths = walk(&self.mount)?;
        self.walks += 1;
        if self.unknown.len() + new.len() > MAX_UNKNOWN {
            self.unknown.clear();
        }
        self.unknown
            .extend(new.into_iter().filter(|id| !self.paths.contains_key(id)));
        Ok(())
    }
}

/// Every cgroup below `mount` by id (its directory's inode number).
fn walk(mount: &Path) -> io::Result<IdMap<String>> {
    let mut paths = IdMap::default();
    paths.insert(std::fs::metadata(mount)?.ino(), "/".to_owned());
    let mut pending = vec![(mount.to_path_buf(), String::new())];
    while let Some((dir, rel)) = pending.pop() {
        // A cgroup removed during the walk is simply not there.
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if !kind.is_dir() {
                continue;
            }
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            let path = format!("{rel}/{}", entry.file_name().to_string_lossy());
            paths.insert(meta.ino(), path.clone());
            pending.push((entry.path(), path));
        }
    }
    Ok(paths)
}

/// Whether `path` is `parent` or below it.
pub fn within(path: &str, parent: &str) -> bool {
    parent == "/"
        || path == parent
        || (path.starts_with(parent) && path.as_bytes().get(parent.len()) == Some(&b'/'))
}

/// The cgroup `depth` levels below the root that holds `path`
/// (`/a/b/c` at depth 2: `/a/b`), or `None` when `path` is not that deep.
pub fn at_depth(path: &str, depth: u32) -> Option<&str> {
    let depth = usize::try_from(depth).ok()?;
    if depth == 0 {
        return Some("/");
    }
    let mut seen = 0;
    for (i, b) in path.bytes().enumerate().skip(1) {
        if b == b'/' {
            seen += 1;
            if seen == depth {
                return Some(&path[..i]);
            }
        }
    }
    (seen + 1 == depth && path.len() > 1).then_some(path)
}

/// What [`series`] made of a read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Series {
    /// `(name, counts)`: named cgroups in the order configured, then the
    /// depth series by path.
    pub series: Vec<(String, Counts)>,
    /// Cgroups at the depth that held connections but were left out by the
    /// limit.
    pub over_limit: usize,
}

/// The series of one read from the counts per cgroup path. Named cgroups
/// are reported when `present` says they exist (zeros included); at the
/// depth, each cgroup with connections, at most `limit` of them: those with
/// the most connections (ties by path). A depth series is named after the
/// cgroup's last path component; when two share it, both are named by their
/// whole path; one whose name a named cgroup has is left out (the named
/// series wins).
pub fn series(config: &Cgroups, present: &[bool], counts: &[(&str, Counts)]) -> Series {
    let add = |into: &mut Counts, c: &Counts| {
        for (a, b) in into.iter_mut().zip(c) {
            *a = a.saturating_add(*b);
        }
    };
    let mut out = Series::default();
    let named = config.named.iter().zip(present).filter(|(_, &p)| p);
    for (named, _) in named {
        let mut sum = [0; STATE_COUNT];
        for (path, c) in counts {
            if within(path, &named.path) {
                add(&mut sum, c);
            }
        }
        out.series.push((named.name.clone(), sum));
    }
    let Some(depth) = config.depth else {
        return out;
    };
    // Each cgroup's counts under its ancestor at the depth, merged by path.
    let mut deep: Vec<(&str, Counts)> = counts
        .iter()
        .filter_map(|(path, c)| Some((at_depth(path, depth)?, *c)))
        .collect();
    deep.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut merged: Vec<(&str, Counts, u64)> = Vec::with_capacity(deep.len());
    for (path, c) in deep {
        match merged.last_mut() {
            Some((last, sum, _)) if *last == path => add(sum, &c),
            _ => merged.push((path, c, 0)),
        }
    }
    for (_, c, total) in &mut merged {
        *total = c.iter().map(|&n| u64::from(n)).sum();
    }
    merged.retain(|(_, _, total)| *total > 0);
    let limit = usize::try_from(config.limit).unwrap_or(usize::MAX);
    if merged.len() > limit {
        // The busiest, ties by path; then back in path order.
        merged.sort_unstable_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(b.0)));
        out.over_limit = merged.len() - limit;
        merged.truncate(limit);
        merged.sort_unstable_by(|a, b| a.0.cmp(b.0));
    }
    let leaf = |path: &str| {
        let last = path.rsplit('/').next().unwrap_or_default();
        name_from(last, MAX_CGROUP_NAME, "root")
    };
    // Leaf names, and which of them more than one cgroup has.
    let mut names: Vec<String> = merged.iter().map(|(path, _, _)| leaf(path)).collect();
    let mut sorted: Vec<&str> = names.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    let shared: Vec<String> = sorted
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0].to_owned())
        .collect();
    for ((path, c, _), name) in merged.into_iter().zip(&mut names) {
        if shared.contains(name) {
            *name = name_from(path.trim_start_matches('/'), MAX_CGROUP_NAME, "root");
        }
        if out.series.iter().any(|(n, _)| n == name) {
            continue;
        }
        out.series.push((std::mem::take(name), c));
    }
    out
}

/// The per-cgroup series of one target (collectd's namespace or another),
/// read after read; logs each change (a named cgroup gone or back, the
/// limit passed or fitting again, the switch to `/proc` and back) once.
#[derive(Debug)]
pub struct CgroupReport {
    config: Cgroups,
    /// Put before log lines: "" or "namespace web: ".
    label: String,
    present: Vec<bool>,
    over_limit: bool,
    on_procfs: bool,
    walk_failed: bool,
}

impl CgroupReport {
    pub fn new(config: &Cgroups, label: String) -> CgroupReport {
        CgroupReport {
            config: config.clone(),
            label,
            present: vec![true; config.named.len()],
            over_limit: false,
            on_procfs: false,
            walk_failed: false,
        }
    }

    /// The series of a read served by netlink.
    pub fn read(&mut self, counts: &CgroupCounts, hierarchy: &mut Hierarchy) -> Series {
        let label = &self.label;
        if std::mem::take(&mut self.on_procfs) {
            info!("{label}netlink works again: per-cgroup series are back");
        }
        match hierarchy.learn(counts.iter().map(|(id, _)| id)) {
            Ok(()) => self.walk_failed = false,
            Err(err) => {
                if !std::mem::replace(&mut self.walk_failed, true) {
                    warn!(
                        "{label}cannot read the cgroup hierarchy at {}: {err}; \
                         sockets of cgroups not known yet are not attributed",
                        hierarchy.mount().display()
                    );
                }
            }
        }
        let now_present = hierarchy.named_present();
        for ((named, present), &now) in self
            .config
            .named
            .iter()
            .zip(&mut self.present)
            .zip(now_present)
        {
            if now != std::mem::replace(present, now) {
                match now {
                    true => info!(
                        "{label}Cgroup {}: there; reported as {}-cgroup",
                        named.path, named.name
                    ),
                    false => info!(
                        "{label}Cgroup {}: not in {}; left out until it is",
                        named.path,
                        hierarchy.mount().display()
                    ),
                }
            }
        }
        let paths: Vec<(&str, Counts)> = counts
            .iter()
            .filter_map(|(id, c)| hierarchy.path(id).map(|p| (p, *c)))
            .collect();
        let out = series(&self.config, &self.present, &paths);
        if let Some(depth) = self.config.depth {
            let over = out.over_limit > 0;
            if over != std::mem::replace(&mut self.over_limit, over) {
                let limit = self.config.limit;
                match over {
                    true => warn!(
                        "{label}CgroupDepth {depth}: {} cgroups hold connections, more than \
                         CgroupLimit {limit}; reporting the {limit} with the most connections \
                         (logged once, until they fit again)",
                        usize::try_from(limit).unwrap_or(usize::MAX) + out.over_limit
                    ),
                    false => info!(
                        "{label}CgroupDepth {depth}: the cgroups with connections fit \
                         CgroupLimit {limit} again"
                    ),
                }
            }
        }
        out
    }

    /// A read served by `/proc`, which has no cgroup ids: no series.
    pub fn on_procfs(&mut self) {
        if !std::mem::replace(&mut self.on_procfs, true) {
            info!(
                "{}reading /proc, which has no cgroup ids: per-cgroup series are left out \
                 until netlink works again",
                self.label
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount_on_hybrid_and_unified_hosts() {
        // This machine's (hybrid): v1 controllers, v2 at .../unified.
        let hybrid = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        assert_eq!(
            v2_mount(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let unified = "\
25 20 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
";
        assert_eq!(v2_mount(unified), Some(PathBuf::from("/sys/fs/cgroup")));
        let v1_only = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        assert_eq!(v2_mount(v1_only), None);
        // A bind mount of a sub-tree is not the hierarchy's root; escapes.
        let odd = "\
50 31 0:38 /sub /mnt/x rw - cgroup2 cgroup2 rw
51 31 0:38 / /mnt/my\\040cgroups rw - cgroup2 cgroup2 rw
";
        assert_eq!(v2_mount(odd), Some(PathBuf::from("/mnt/my cgroups")));
        assert_eq!(v2_mount("garbage\n\n - \n"), None);
    }

    #[test]
    fn paths_within_and_at_depth() {
        assert!(within("/a/b", "/a"));
        assert!(within("/a", "/a"));
        assert!(within("/a", "/"));
        assert!(!within("/ab", "/a"));
        assert!(!within("/a", "/a/b"));
        assert_eq!(at_depth("/a/b/c", 1), Some("/a"));
        assert_eq!(at_depth("/a/b/c", 2), Some("/a/b"));
        assert_eq!(at_depth("/a/b/c", 3), Some("/a/b/c"));
        assert_eq!(at_depth("/a/b/c", 4), None);
        assert_eq!(at_depth("/", 1), None);
        assert_eq!(at_depth("/a", 1), Some("/a"));
    }

    fn counts(est: u32, listen: u32) -> Counts {
        let mut c = [0; STATE_COUNT];
        c[0] = est;
        c[9] = listen;
        c
    }

    use crate::config::NamedCgroup;

    fn config(named: &[(&str, &str)], depth: Option<u32>, limit: u32) -> Cgroups {
        Cgroups {
            named: named
                .iter()
                .map(|(p, n)| NamedCgroup {
                    path: (*p).into(),
                    name: (*n).into(),
                })
                .collect(),
            depth,
            limit,
        }
    }

    #[test]
    fn named_cgroups_sum_their_subtree_and_missing_ones_are_left_out() {
        let data = [
            ("/svc/a", counts(2, 1)),
            ("/svc/a/worker", counts(3, 0)),
            ("/svc/ab", counts(5, 0)),
            ("/", counts(7, 0)),
        ];
        let cfg = config(
            &[("/svc/a", "a"), ("/gone", "gone"), ("/", "all")],
            None,
            10,
        );
        let s = series(&cfg, &[true, false, true], &data);
        assert_eq!(
            s.series,
            vec![("a".into(), counts(5, 1)), ("all".into(), counts(17, 1))]
        );
    }

    #[test]
    fn depth_series_keep_the_busiest_up_to_the_limit() {
        let data = [
            ("/system.slice/a.service", counts(1, 1)),
            ("/system.slice/b.service/x", counts(5, 0)),
            ("/system.slice/c.service", counts(3, 0)),
            ("/system.slice/idle.service", counts(0, 0)),
            ("/system.slice", counts(9, 0)),
            ("/user.slice/d.scope", counts(2, 0)),
        ];
        let s = series(&config(&[], Some(2), 3), &[], &data);
        assert_eq!(s.over_limit, 1);
        assert_eq!(
            s.series,
            // d.scope ties with a.service (2 each) and loses by path.
            vec![
                ("a.service".into(), counts(1, 1)),
                ("b.service".into(), counts(5, 0)),
                ("c.service".into(), counts(3, 0)),
            ]
        );
        let all = series(&config(&[], Some(2), 10), &[], &data);
        assert_eq!(all.over_limit, 0);
        assert_eq!(all.series.len(), 4, "{:?}", all.series);
    }

    #[test]
    fn depth_names_are_safe_and_unique() {
        let data = [
            ("/a.slice/same", counts(1, 0)),
            ("/b.slice/same", counts(1, 0)),
            ("/b.slice/user@1000.service", counts(1, 0)),
            ("/b.slice/x\\x2dy.mount", counts(1, 0)),
            ("/named/n", counts(1, 0)),
        ];
        let cfg = config(&[("/named/n", "n")], Some(2), 10);
        let names: Vec<String> = series(&cfg, &[true], &data)
            .series
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            names,
            [
                "n",
                "a.slice_same",
                "b.slice_same",
                "user_1000.service",
                "x_x2dy.mount"
            ]
        );
    }

    #[test]
    fn counts_per_id_and_the_hierarchy_walk() {
        let mut c = CgroupCounts::default();
        c.add(7, 0);
        c.add(7, 0);
        c.add(9, 9);
        let mut got: Vec<(u64, Counts)> = c.iter().map(|(id, c)| (id, *c)).collect();
        got.sort();
        assert_eq!(got, vec![(7, counts(2, 0)), (9, counts(0, 1))]);
        c.clear();
        assert_eq!(c.iter().count(), 0);

        // Any directory tree stands in for the hierarchy: ids are inodes.
        let root = crate::Scratch::new("cgroup");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        let ino = |p: &str| std::fs::metadata(root.join(p)).unwrap().ino();
        let named = config(&[("/a/b", "b"), ("/c", "c")], None, 1).named;
        let mut h = Hierarchy::new(root.to_path_buf(), &named);
        h.learn([ino("a/b"), 1].into_iter()).unwrap();
        assert_eq!(h.walks, 1);
        assert_eq!(h.path(ino("a/b")), Some("/a/b"));
        assert_eq!(h.path(ino("a")), Some("/a"));
        assert_eq!(h.path(ino(".")), Some("/"));
        h.look();
        assert_eq!(h.named_present(), [true, false]);
        // Known and already-missed ids cost no walk.
        h.learn([ino("a"), 1].into_iter()).unwrap();
        assert_eq!(h.walks, 1);
        std::fs::create_dir(root.join("c")).unwrap();
        h.learn([ino("c")].into_iter()).unwrap();
        assert_eq!((h.walks, h.path(ino("c"))), (2, Some("/c")));
        h.look();
        assert_eq!(h.named_present(), [true, true]);
    }
}
