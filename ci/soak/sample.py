#!/usr/bin/env python3
"""Samples a running collectd for ci/soak.sh until it has done enough reads.

Every --every seconds it appends one row to --tsv (writing the header if the
file is new):

  variant  time  elapsed_s  reads  reads_per_s  vmrss_kib  vmhwm_kib
  fd_rest  fd_min  fd_max  threads  cpu_s  socks  estab  time_wait  listen  other
  listen_ports  pop_errors

reads: rows collectd's csv plugin wrote to --reads-glob (one per read).
fd_min/fd_max: entries in /proc/PID/fd over a burst of --fd-burst listings
40 ms apart. Some files are open only for a moment: /proc/net/tcp{,6} while
the plugin reads them (procfs), a csv file while the writer appends, the
log file. fd_rest is the least, over the burst, of the count with at most
one open file of each of these kinds left out: the resting count. A leak of
any kind makes it rise (two leaked /proc/net/tcp files count as one). socks...listen_ports:
`ss -Htan` in the namespace (the population plus collectd's own). cpu_s:
collectd's utime+stime.

At the first sample with reads >= --warmup and at the last one it writes
the targets of /proc/PID/fd to --fd-dump-prefix{warmup,end}.txt.

Exit status: 0 reads >= --target; 3 collectd exited; 4 the population
exited; 5 no new read for --stall seconds; 6 --deadline seconds passed;
7 the --churner-pid process (cgroups variant) exited.

With --settle N --settle-out FILE (cgroups variant) it takes no samples:
it waits until collectd has done N more reads than when it started (or
exits 5 after --stall seconds without a read), then writes one line
"reads fd_rest fd_min fd_max" to FILE and the fd targets to FILE.fds.
"""
import argparse
import datetime
import glob
import os
import re
import subprocess
import sys
import time

HEADER = ("variant time elapsed_s reads reads_per_s vmrss_kib vmhwm_kib fd_rest "
          "fd_min fd_max threads cpu_s socks estab time_wait listen other listen_ports "
          "pop_errors").split()


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def count_reads(pattern):
    n = 0
    for path in glob.glob(pattern):
        with open(path, "rb") as f:
            for line in f:
                if line.endswith(b"\n") and not line.startswith(b"epoch"):
                    n += 1
    return n


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, val = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(val.split()[0])
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(") ", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    out["cpu"] = (int(fields[11]) + int(fields[12])) / ticks
    return out


PROC_NET_TCP = re.compile(r"^/proc/.*/net/tcp6?$")


def fd_counts(pid, burst, transient_prefixes):
    counts, rests = [], []
    for i in range(burst):
        if i:
            time.sleep(0.04)
        kinds = set()
        names = os.listdir(f"/proc/{pid}/fd")
        for name in names:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{name}")
            except OSError:
                continue  # closed while listing
            if PROC_NET_TCP.match(target):
                kinds.add("proc")
            for prefix in transient_prefixes:
                if target.startswith(prefix):
                    kinds.add(prefix)
        counts.append(len(names))
        rests.append(len(names) - len(kinds))
    return min(rests), min(counts), max(counts)


def dump_fds(pid, path):
    rows = []
    for name in sorted(os.listdir(f"/proc/{pid}/fd"), key=int):
        try:
            rows.append(f"{name}\t{os.readlink(f'/proc/{pid}/fd/{name}')}")
        except OSError:
            pass
    with open(path, "w") as f:
        f.write("\n".join(rows) + "\n")


def sockets(ns):
    out = subprocess.run(["ip", "netns", "exec", ns, "ss", "-Htan"],
                         capture_output=True, text=True, check=True).stdout
    total = estab = tw = lst = 0
    ports = set()
    for line in out.splitlines():
        cols = line.split()
        if not cols:
            continue
        total += 1
        if cols[0] == "ESTAB":
            estab += 1
        elif cols[0] == "TIME-WAIT":
            tw += 1
        elif cols[0] == "LISTEN":
            lst += 1
            ports.add(cols[3].rsplit(":", 1)[1])
    return total, estab, tw, lst, total - estab - tw - lst, len(ports)


def pop_errors(path):
    try:
        with open(path) as f:
            return sum(1 for line in f if "failed" in line)
    except FileNotFoundError:
        return 0


def settle(args):
    start = count_reads(args.reads_glob)
    last, last_t = start, time.monotonic()
    while True:
        time.sleep(0.1)
        if not alive(args.pid):
            print(f"soak: collectd (pid {args.pid}) exited", file=sys.stderr)
            return 3
        reads = count_reads(args.reads_glob)
        now = time.monotonic()
        if reads > last:
            last, last_t = reads, now
        elif now - last_t > args.stall:
            print(f"soak: no new read for {args.stall:.0f}s (stuck at {reads})", file=sys.stderr)
            return 5
        if reads >= start + args.settle:
            break
    frest, fmin, fmax = fd_counts(args.pid, args.fd_burst, args.transient)
    with open(args.settle_out, "w") as f:
        f.write(f"{reads} {frest} {fmin} {fmax}\n")
    dump_fds(args.pid, args.settle_out + ".fds")
    return 0


def main():
    if "--settle" in sys.argv:
        ap = argparse.ArgumentParser()
        ap.add_argument("--settle", type=int, required=True)
        ap.add_argument("--settle-out", required=True)
        ap.add_argument("--pid", type=int, required=True)
        ap.add_argument("--reads-glob", required=True)
        ap.add_argument("--fd-burst", type=int, default=5)
        ap.add_argument("--transient", action="append", default=[])
        ap.add_argument("--stall", type=float, default=30.0)
        return settle(ap.parse_args())
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--pop-pid", type=int, required=True)
    ap.add_argument("--churner-pid", type=int)
    ap.add_argument("--pop-log", required=True)
    ap.add_argument("--ns", required=True)
    ap.add_argument("--reads-glob", required=True)
    ap.add_argument("--tsv", required=True)
    ap.add_argument("--fd-dump-prefix", required=True)
    ap.add_argument("--target", type=int, required=True)
    ap.add_argument("--warmup", type=int, required=True)
    ap.add_argument("--every", type=float, default=5.0)
    ap.add_argument("--fd-burst", type=int, default=5)
    ap.add_argument("--transient", action="append", default=[],
                    help="path prefix of files collectd opens only for a moment")
    ap.add_argument("--stall", type=float, default=30.0)
    ap.add_argument("--deadline", type=float, required=True)
    args = ap.parse_args()

    new = not os.path.exists(args.tsv)
    tsv = open(args.tsv, "a")
    if new:
        tsv.write("\t".join(HEADER) + "\n")
        tsv.flush()
    t0 = time.monotonic()
    last_reads, last_t = 0, t0
    last_progress_t = t0
    last_print = t0
    warm_dumped = False
    next_sample = t0
    while True:
        now = time.monotonic()
        if now < next_sample:
            time.sleep(next_sample - now)
        next_sample += args.every
        if not alive(args.pid):
            print(f"soak[{args.variant}]: collectd (pid {args.pid}) exited", file=sys.stderr)
            return 3
        if not alive(args.pop_pid):
            print(f"soak[{args.variant}]: the population (pid {args.pop_pid}) exited", file=sys.stderr)
            return 4
        if args.churner_pid and not alive(args.churner_pid):
            print(f"soak[{args.variant}]: the churner (pid {args.churner_pid}) exited",
                  file=sys.stderr)
            return 7
        try:
            st = status(args.pid)
            frest, fmin, fmax = fd_counts(args.pid, args.fd_burst, args.transient)
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited between the check and the read: next round says so
        reads = count_reads(args.reads_glob)
        socks = sockets(args.ns)
        now = time.monotonic()
        rate = (reads - last_reads) / (now - last_t) if now > last_t else 0.0
        if reads > last_reads:
            last_progress_t = now
        last_reads, last_t = reads, now
        row = [args.variant, datetime.datetime.now().strftime("%H:%M:%S"),
               f"{now - t0:.1f}", reads, f"{rate:.2f}", st["VmRSS"], st["VmHWM"],
               frest, fmin, fmax, st["Threads"], f"{st['cpu']:.2f}", *socks,
               pop_errors(args.pop_log)]
        tsv.write("\t".join(map(str, row)) + "\n")
        tsv.flush()
        if not warm_dumped and reads >= args.warmup:
            dump_fds(args.pid, args.fd_dump_prefix + "warmup.txt")
            warm_dumped = True
        if now - last_print >= 60 or reads >= args.target:
            last_print = now
            print(f"soak[{args.variant}] {now - t0:6.0f}s reads={reads}/{args.target} "
                  f"({rate:.1f}/s) rss={st['VmRSS']}KiB fds={frest} (seen {fmin}-{fmax}) "
                  f"sockets={socks[0]} (estab {socks[1]}, time-wait {socks[2]}, "
                  f"listen ports {socks[5]})", file=sys.stderr, flush=True)
        if reads >= args.target:
            dump_fds(args.pid, args.fd_dump_prefix + "end.txt")
            return 0
        if now - last_progress_t > args.stall:
            print(f"soak[{args.variant}]: no new read for {args.stall:.0f}s "
                  f"(stuck at {reads})", file=sys.stderr)
            return 5
        if now - t0 > args.deadline:
            print(f"soak[{args.variant}]: deadline of {args.deadline:.0f}s passed "
                  f"at {reads} reads", file=sys.stderr)
            return 6


if __name__ == "__main__":
    sys.exit(main())
