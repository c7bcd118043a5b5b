# shellcheck shell=bash
# cgroup2_mount: the mount point of the cgroup v2 hierarchy, read from
# /proc/self/mountinfo as the plugin reads it (the filesystem type follows
# the " - " separator; the optional fields before it vary); nothing when
# there is none. Sourced by ci/bench.sh, ci/soak.sh and docs/cgroups-sample.sh.
cgroup2_mount() {
  awk '{ for (i = 7; i <= NF; i++) if ($i == "-") break;
         if ($(i + 1) == "cgroup2" && $4 == "/") { print $5; exit } }' /proc/self/mountinfo
}
