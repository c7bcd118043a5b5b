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
    let mut add = |identity: Identity, path: PathBuf, name: Option<String>, fallback: String| {
        if skip.contains(&identity) || found.iter().any(|f| f.identity == identity) {
            return;
        }
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
    named.sort();
    for (name, path) in named {
        // A name made by `ip netns add` but whose namespace is gone (or a
        // stray file) has no identity.
        if let Ok(id) = identity(&path) {
            let safe = name_from(&name, MAX_NAMESPACE_NAME, "netns");
            add(id, path, Some(safe), format!("netns{}", id.1));
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
        let fallback = format!("pid{pid}");
        let cgroup = std::fs::read_to_string(dir.join("cgroup"))
            .ok()
            .and_then(|text| {
                cgroup_leaf(&text).map(|leaf| name_from(leaf, MAX_NAMESPACE_NAME, &fallback))
            });
        add(id, path, cgroup, fallback);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let root = std::env::temp_dir().join(format!("tcpconns-discover-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
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
        std::fs::remove_dir_all(&root).unwrap();
    }
}
