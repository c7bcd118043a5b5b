//! `Namespace "all"`: the network namespaces of the host, one per namespace
//! (its nsfs identity): those with a name in `/run/netns` (`ip netns add`),
//! which may have no process in them, then those the processes are in
//! (`/proc/*/ns/net`), named after the cgroup of the first process in one
//! (a container's scope), else `pid<PID>`.

use std::path::{Path, PathBuf};

use crate::config::{name_from, MAX_NAMESPACE_NAME};
use crate::netns::{identity, Identity};

/// A namespace found by [`scan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub identity: Identity,
    /// How to enter it: `/run/netns/<name>`, or `/proc/<pid>/ns/net` of the
    /// lowest process id in it.
    pub path: PathBuf,
    pub name: String,
}

/// The last component of a process's cgroup v2 path, from the text of
/// `/proc/PID/cgroup` (the `0::/path` line); `None` for the root.
pub fn cgroup_leaf(text: &str) -> Option<&str> {
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    path.rsplit('/').next().filter(|leaf| !leaf.is_empty())
}

/// Every network namespace named in `run_netns` or of a process under
/// `proc`, except those in `skip` (collectd's own, the configured ones):
/// the named ones by name, then the others by process id. Names are
/// unique and none is in `taken`.
pub fn scan(proc: &Path, run_netns: &Path, skip: &[Identity], taken: &[String]) -> Vec<Found> {
    let mut found: Vec<Found> = Vec::new();
    let mut used: Vec<String> = taken.to_vec();
    // Checked before a name is made: most processes share a namespace
    // already seen (collectd's own, mostly).
    let wanted = |found: &[Found], id: Identity| {
        !skip.contains(&id) && !found.iter().any(|f| f.identity == id)
    };
    let mut add = |found: &mut Vec<Found>, identity, path, name: Option<String>, fallback| {
        let name = name.filter(|n| !used.contains(n)).unwrap_or(fallback);
        used.push(name.clone());
        found.push(Found {
            identity,
            path,
            name,
        });
    };
    let mut named: Vec<(String, PathBuf)> = std::fs::read_dir(run_netns)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.to_owned(), e.path())))
        .collect();
    named.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (name, path) in named {
        // A name made by `ip netns add` but whose namespace is gone (or a
        // stray file) has no identity.
        match identity(&path) {
            Ok(id) if wanted(&found, id) => {
                let safe = name_from(&name, MAX_NAMESPACE_NAME, "netns");
                add(&mut found, id, path, Some(safe), format!("netns{}", id.1));
            }
            _ => {}
        }
    }
    let Ok(entries) = std::fs::read_dir(proc) else {
        return found;
    };
    let mut pids: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let dir = proc.join(pid.to_string());
        let path = dir.join("ns/net");
        // A process that ended or that may not be looked at is skipped.
        let Ok(id) = identity(&path) else {
            continue;
        };
        if !wanted(&found, id) {
            continue;
        }
        let fallback = format!("pid{pid}");
        let cgroup = std::fs::read_to_string(dir.join("cgroup"))
            .ok()
            .and_then(|text| {
                cgroup_leaf(&text).map(|leaf| name_from(leaf, MAX_NAMESPACE_NAME, &fallback))
            });
        add(&mut found, id, path, cgroup, fallback);
    }
    found
}

/// How the namespaces followed change after a scan.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes<'a> {
    /// Followed but not found any more: forget them.
    pub gone: Vec<Identity>,
    /// Followed and still there (their path may be new).
    pub kept: Vec<&'a Found>,
    /// Found, not followed yet, within the limit: follow them.
    pub new: Vec<&'a Found>,
    /// Found but past the limit.
    pub left_out: usize,
}

/// Compares a scan (`now`) with the namespaces `followed`: those followed
/// stay while they are there, new ones are added in scan order while fewer
/// than `limit` are followed.
pub fn changes<'a>(now: &'a [Found], followed: &[Identity], limit: usize) -> Changes<'a> {
    let mut out = Changes {
        gone: followed
            .iter()
            .filter(|id| !now.iter().any(|f| f.identity == **id))
            .copied()
            .collect(),
        ..Changes::default()
    };
    let mut count = followed.len() - out.gone.len();
    for f in now {
        if followed.contains(&f.identity) {
            out.kept.push(f);
        } else if count < limit {
            out.new.push(f);
            count += 1;
        } else {
            out.left_out += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_followed_stay_new_ones_come_within_the_limit() {
        let found = |ino: u64| Found {
            identity: (1, ino),
            path: PathBuf::from(format!("/proc/{ino}/ns/net")),
            name: format!("pid{ino}"),
        };
        let now = [found(1), found(2), found(3), found(4)];
        // 5 is gone; 2 stays; 1, 3 fill the limit of 3; 4 is left out.
        let c = changes(&now, &[(1, 5), (1, 2)], 3);
        assert_eq!(c.gone, [(1, 5)]);
        assert_eq!(c.kept, [&now[1]]);
        assert_eq!(c.new, [&now[0], &now[2]]);
        assert_eq!(c.left_out, 1);
        // Already over the limit (it was lowered): none are dropped, none added.
        let c = changes(&now, &[(1, 1), (1, 2), (1, 3)], 2);
        assert_eq!((c.kept.len(), c.new.len(), c.left_out), (3, 0, 1));
        assert_eq!(changes(&[], &[], 0), Changes::default());
    }

    #[test]
    fn the_cgroup_leaf_of_a_process() {
        let hybrid = "9:name=systemd:/\n4:memory:/x\n0::/system.slice/docker-ab12.scope\n";
        assert_eq!(cgroup_leaf(hybrid), Some("docker-ab12.scope"));
        assert_eq!(cgroup_leaf("0::/\n"), None);
        assert_eq!(cgroup_leaf("4:memory:/x\n"), None);
    }

    /// A fake /proc: `ns/net` of each "process" is a plain file whose
    /// identity (device, inode) stands for the namespace; two processes
    /// share one by a hard link.
    #[test]
    fn one_entry_per_namespace_named_by_netns_then_cgroup_then_pid() {
        let root = crate::Scratch::new("discover");
        let proc = root.join("proc");
        let run = root.join("netns");
        std::fs::create_dir_all(&run).unwrap();
        let process = |pid: u32, cgroup: &str| {
            let dir = proc.join(pid.to_string()).join("ns");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(proc.join(pid.to_string()).join("cgroup"), cgroup).unwrap();
            dir.join("net")
        };
        std::fs::write(process(1, "0::/init.scope\n"), "").unwrap();
        std::fs::write(process(20, "0::/box/web.scope\n"), "").unwrap();
        // 21 shares 20's namespace; the lower pid names it.
        std::fs::hard_link(proc.join("20/ns/net"), process(21, "0::/other\n")).unwrap();
        std::fs::write(process(30, "0::/\n"), "").unwrap();
        std::fs::write(process(40, "0::/box/web.scope\n"), "").unwrap();
        std::fs::write(process(50, "0::/x\n"), "").unwrap();
        std::fs::hard_link(proc.join("50/ns/net"), run.join("blue")).unwrap();
        std::fs::create_dir_all(proc.join("self")).unwrap();
        let own = identity(&proc.join("1/ns/net")).unwrap();
        // A namespace named in /run/netns with no process in it.
        std::fs::write(run.join("empty"), "").unwrap();
        let got: Vec<(PathBuf, String)> = scan(&proc, &run, &[own], &["taken".into()])
            .into_iter()
            .map(|f| (f.path, f.name))
            .collect();
        let at = |p: &str| proc.join(p).join("ns/net");
        assert_eq!(
            got,
            [
                (run.join("blue"), "blue".to_owned()),
                (run.join("empty"), "empty".to_owned()),
                // Entered through the first process in it.
                (at("20"), "web.scope".to_owned()),
                (at("30"), "pid30".to_owned()),
                // Its cgroup's name is already used.
                (at("40"), "pid40".to_owned()),
            ]
        );
        let taken = scan(&proc, &run, &[own], &["blue".into()]);
        let inode = identity(&run.join("blue")).unwrap().1;
        assert_eq!(
            taken[0].name,
            format!("netns{inode}"),
            "a name already taken"
        );
    }
}
