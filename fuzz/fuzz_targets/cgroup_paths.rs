//! What the cgroup code reads from procfs: `/proc/self/mountinfo`
//! (`cgroup::v2_mount`) and `/proc/PID/cgroup` (`discover::cgroup_leaf`),
//! and the path arithmetic on what the kernel's hierarchy holds
//! (`cgroup::within`, `cgroup::at_depth`).
//!
//! Input: text (UTF-8, lossily). Invariants: no panic; a mount found is a
//! `cgroup2` line's mount point; a leaf has no `/` and is not empty; a
//! path at a depth is a prefix of the path, ends at a component boundary,
//! has that many components, and holds the path (`within`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tcpconns::cgroup::{at_depth, v2_mount, within};
use tcpconns::discover::cgroup_leaf;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(mount) = v2_mount(&text) {
        assert!(text.contains("cgroup2"), "{mount:?} from no cgroup2 line");
    }
    if let Some(leaf) = cgroup_leaf(&text) {
        assert!(!leaf.is_empty() && !leaf.contains('/'), "{leaf:?}");
    }
    // Each line as a cgroup path, as the hierarchy walk makes them.
    for line in text.lines().filter(|l| l.starts_with('/')) {
        for depth in 0..6u32 {
            let Some(at) = at_depth(line, depth) else {
                continue;
            };
            assert!(line.starts_with(at), "{line:?} {depth} -> {at:?}");
            if depth > 0 {
                let rest = &line[at.len()..];
                assert!(rest.is_empty() || rest.starts_with('/'), "{line:?} {depth} -> {at:?}");
                assert_eq!(at.matches('/').count(), depth as usize, "{line:?} -> {at:?}");
                assert!(within(line, at), "{line:?} not within {at:?}");
            }
        }
    }
});
