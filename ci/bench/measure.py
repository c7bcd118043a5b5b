#!/usr/bin/env python3
"""One measurement round for ci/bench.sh, run inside the benchmark namespace:

  measure.py RUNSTAT BARE_DUMP CONFDIR REP CASE N CONFIG... >> raw.tsv

For each CONFIG, runs `collectd -T -C CONFDIR/CONFIG-VARIANT.conf` (init, one
read of every plugin, exit) twice per variant: c (Debian's C tcpconns.so),
ours, none (no tcpconns: the baseline); once for CPU, once under `RUNSTAT -m`
for the exact peak RSS (the tracing that needs costs CPU). The variant order
is rotated with REP so that no variant always runs first or last (drift,
cache warmth).

Prints one TSV line per variant: case n config variant rep cpu_ms user_ms
sys_ms maxrss_kib wall_ms peak_rss_kib. CPU and maxrss are collectd's own
rusage in the first run, from wait4() in RUNSTAT (runstat.c, which says why
not from here): user + system time of collectd and all its threads to the
microsecond. The user/system split is sampled at the timer tick; only their
sum is exact. ru_maxrss is the kernel's approximate peak; peak_rss, from the
second run, the exact one (runstat.c says how, and by how much ru_maxrss was
off here).

Then it runs BARE_DUMP (examples/bare_dump.rs: one dump with the plugin's
request, no collectd) once unfiltered and once with the `ports` filter,
through RUNSTAT for CPU: config "kernel", variants "all" and "ports".

A run fails the round (exit 1) if collectd fails or if its log does not show
that the plugin read through netlink, so a silent procfs fallback can never
pass for a netlink number; and, for ours in the `cgroups` config, that it
found the cgroup v2 hierarchy (without it the plugin leaves the per-cgroup
series out and reads like `summary`).
"""
import os
import subprocess
import sys
import time

COLLECTD = "/usr/sbin/collectd"
VARIANTS = ["c", "ours", "none"]
# The ports of bench.sh's `ports` config (LocalPort, RemotePort), for the
# bare dump with the same filter.
PORTS_CONFIG = ["5432", "6379"]
# What each plugin logs at INFO when its first read went through netlink.
NETLINK_LOG = {
    "c": "tcpconns plugin: Reading from netlink succeeded",
    "ours": "tcpconns plugin: reading sockets from netlink",
}
# What ours logs at init when it found the hierarchy for Cgroup/CgroupDepth.
CGROUP_LOG = "tcpconns plugin: per-cgroup series from the cgroup v2 hierarchy at"


def run(runstat, confdir, config, variant, memory=False):
    base = os.path.join(confdir, "%s-%s" % (config, variant))
    log = base + ".log"
    if os.path.exists(log):
        os.unlink(log)  # the log must show this run only
    statfile = base + ".rusage"
    with open(base + ".out", "w") as out:
        t0 = time.monotonic()
        proc = subprocess.run([runstat] + (["-m"] if memory else []) +
                              [statfile, COLLECTD, "-T", "-C", base + ".conf"],
                              stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL)
        wall = time.monotonic() - t0
    if proc.returncode != 0:
        sys.exit("%s: collectd exited %d; see %s.out and %s"
                 % (base, proc.returncode, base, log))
    if variant in NETLINK_LOG:
        with open(log) as f:
            text = f.read()
        if NETLINK_LOG[variant] not in text:
            sys.exit("%s: no %r in %s: the plugin did not read via netlink\n%s"
                     % (base, NETLINK_LOG[variant], log, text))
        if config == "cgroups" and variant == "ours" and CGROUP_LOG not in text:
            sys.exit("%s: no %r in %s: the plugin has no per-cgroup series\n%s"
                     % (base, CGROUP_LOG, log, text))
    with open(statfile) as f:
        _, user_us, system_us, maxrss, peak = map(int, f.read().split())
    if memory and peak <= 0:
        sys.exit("%s: runstat -m could not read collectd's RSS" % base)
    return user_us / 1e6, system_us / 1e6, maxrss, wall, peak


def bare(runstat, dump, confdir, mode):
    statfile = os.path.join(confdir, "bare-%s.rusage" % mode)
    args = ["all"] if mode == "all" else ["ports"] + PORTS_CONFIG
    proc = subprocess.run([runstat, statfile, dump] + args, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0 or not proc.stdout.strip().isdigit() or int(proc.stdout) == 0:
        sys.exit("bare_dump %s failed (exit %d): %s%s"
                 % (" ".join(args), proc.returncode, proc.stdout, proc.stderr))
    with open(statfile) as f:
        _, user_us, system_us, maxrss, _ = map(int, f.read().split())
    return user_us / 1e3, system_us / 1e3, maxrss


def main(argv):
    runstat, dump, confdir = argv[1], argv[2], argv[3]
    rep, case, n = int(argv[4]), argv[5], argv[6]
    configs = argv[7:]
    k = rep % len(VARIANTS)
    order = VARIANTS[k:] + VARIANTS[:k]
    for config in configs:
        for variant in order:
            user, system, maxrss, wall, _ = run(runstat, confdir, config, variant)
            peak = run(runstat, confdir, config, variant, memory=True)[4]
            print("\t".join([case, n, config, variant, str(rep),
                             "%.3f" % ((user + system) * 1e3),
                             "%.3f" % (user * 1e3), "%.3f" % (system * 1e3),
                             str(maxrss), "%.3f" % (wall * 1e3), str(peak)]), flush=True)
    for mode in (["all", "ports"] if rep % 2 else ["ports", "all"]):
        user, system, maxrss = bare(runstat, dump, confdir, mode)
        print("\t".join([case, n, "kernel", mode, str(rep), "%.3f" % (user + system),
                         "%.3f" % user, "%.3f" % system, str(maxrss), "0", "-1"]), flush=True)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except KeyboardInterrupt:  # Ctrl-C: bench.sh cleans up, no traceback
        sys.exit(130)
