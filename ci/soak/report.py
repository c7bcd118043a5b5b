#!/usr/bin/env python3
"""Judges a ci/soak.sh run and prints its summary; exit 1 if a verdict fails.

Usage: report.py OUTDIR WARMUP TARGET RSS_LIMIT_KIB VARIANT...

Reads OUTDIR/samples.tsv (sample.py) and, per variant, OUTDIR/VARIANT/:
collectd.log, sampler.rc, csv/ (the read timestamps in
soak/tcpconns-all/tcp_connections-LISTEN-*).

A variant passes when: its sampler ended normally with reads >= TARGET;
after warm-up (samples with reads >= WARMUP) VmRSS max - min <= RSS_LIMIT_KIB
and the resting fd count (fd_rest, see sample.py) never changes; the log has no tcpconns line saying failed/error (except, in the
procfs variant, the one line announcing the fallback) and shows the
expected source (netlink or /proc) being used.

The cgroups variant (environment SOAK_CONTAINERS: the containers kept
alive, K) is judged on fds differently, as namespaces come and go: the
resting count after warm-up never exceeds the one at warm-up + K + 2, and
the count after the churner stopped (fd-after.txt, 10 reads after the last
container was killed) equals the one before the first container
(fd-baseline.txt). Besides, from containers.log (ci/soak/containers.py) and
the log: every container that lived 2 s or more was found (`found
namespace ctr-<n> (/proc/<its pid>/ns/net)`) and every one found is gone by
the end; no `gone` line before the container was killed, no `netlink
failed` and no `not there` line for a container before it was killed (the
log's times are whole seconds: 1 s of slack), at most one `not there` per
container; every container found has a `tcpconns-ctr-<n>-*-cgroup` series
in csv (for the first three: LISTEN 1 and ESTABLISHED 4 at some read),
and so have the population's cgroups svc0..svc3.
"""
import csv
import glob
import os
import re
import sys
import time

FALLBACK = re.compile(r"tcpconns plugin: netlink failed: .*reading /proc/net/tcp "
                      r"and /proc/net/tcp6 instead")
NETLINK_OK = "tcpconns plugin: reading sockets from netlink (sock_diag)"
BAD = re.compile(r"fail|error", re.I)
SEVERE = re.compile(r"\[(warning|error)\]")
OVERRUN = re.compile(r"read-function of the `tcpconns' plugin took ([0-9.]+) seconds")
STAMP = re.compile(r"^\[[^]]*\] ")
LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\]")
FOUND = re.compile(r"Namespace all: found namespace (\S+) \(/proc/(\d+)/ns/net\)")
GONE = re.compile(r"tcpconns plugin: namespace (\S+): gone; no longer read")
NOT_THERE = re.compile(r"tcpconns plugin: namespace (\S+) \(.*\): not there")
NS_FAILED = re.compile(r"tcpconns plugin: namespace (\S+) \(.*\): netlink failed")
# For the summary of the log: one line per kind of message.
GENERIC = [(re.compile(r"\bctr-\d+"), "ctr-N"), (re.compile(r"/proc/\d+/"), "/proc/PID/")]


def generic(msg):
    for rx, repl in GENERIC:
        msg = rx.sub(repl, msg)
    return msg


def log_time(line):
    m = LOG_TIME.match(line)
    return time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) if m else None


def settled(path):
    """reads fd_rest fd_min fd_max, from sample.py --settle."""
    try:
        return [int(x) for x in open(path).read().split()]
    except (FileNotFoundError, ValueError):
        return None


def csv_max(path_glob):
    best = None
    for path in glob.glob(path_glob):
        with open(path) as f:
            for line in f:
                if line.startswith("epoch") or not line.endswith("\n"):
                    continue
                v = float(line.rstrip().split(",")[1])
                best = v if best is None else max(best, v)
    return best


def judge_containers(outdir, variant, lines, res, problems, notes):
    """The cgroups variant's fd bounds, containers and cgroup series."""
    vdir = os.path.join(outdir, variant)
    k = int(os.environ.get("SOAK_CONTAINERS", "4"))
    base, after = settled(os.path.join(vdir, "fd-baseline.txt")), settled(
        os.path.join(vdir, "fd-after.txt"))
    res.update(k=k, fd_base=base, fd_after=after, fd_limit=res["fd_warm"] + k + 2)
    if res["fd_hi"] > res["fd_limit"]:
        problems.append(f"fd count after warm-up reached {res['fd_hi']}, above "
                        f"{res['fd_warm']} (at warm-up) + {k} + 2")
    if base is None:
        problems.append("no fd count before the containers (fd-baseline.txt)")
    elif after is None:
        problems.append("no fd count after the containers (fd-after.txt)")
    elif after[1] != base[1]:
        problems.append(f"fd count after the containers {after[1]}, not the {base[1]} "
                        f"before them (see fd-baseline.txt.fds, fd-after.txt.fds)")

    started, killed = {}, {}
    failed = []
    try:
        for line in open(os.path.join(vdir, "containers.log")):
            if line.startswith("#"):
                continue
            f = line.rstrip("\n").split("\t")
            if f[1] == "started":
                started[f[2]] = (float(f[0]), int(f[3]))
            elif f[1] == "killed":
                killed[f[2]] = float(f[0])
            elif f[1] == "failed":
                failed.append(" ".join(f[2:]))
    except FileNotFoundError:
        problems.append("no containers.log")
    if failed:
        problems.append(f"the churner failed {len(failed)} time(s): {failed[:3]}")
    end = max(killed.values(), default=0.0)
    found, gone, not_there, ns_failed = {}, {}, {}, []
    for line in lines:
        t = log_time(line)
        if m := FOUND.search(line):
            found.setdefault(m.group(1), (t, int(m.group(2))))
        elif m := GONE.search(line):
            gone.setdefault(m.group(1), t)
        elif m := NOT_THERE.search(line):
            not_there.setdefault(m.group(1), []).append(t)
        elif m := NS_FAILED.search(line):
            ns_failed.append((m.group(1), t, line))
    res.update(ctr_started=len(started), ctr_killed=len(killed),
               ctr_found=sum(1 for n in found if n in started),
               ctr_gone=sum(1 for n in gone if n in started),
               ctr_not_there=sum(len(v) for n, v in not_there.items() if n in started))
    others = sorted(n for n in found if n not in started)
    if others:
        notes.append(f"namespaces found that are not the soak's containers: {others[:5]}")
    if len(started) < 2 * k:
        problems.append(f"only {len(started)} containers started")
    missed = [n for n, (t0, _) in started.items() if killed.get(n, end) - t0 >= 2 and n not in found]
    if missed:
        problems.append(f"{len(missed)} container(s) never found: {missed[:5]}")
    wrong_pid = [n for n, (_, pid) in found.items() if n in started and started[n][1] != pid]
    if wrong_pid:
        problems.append(f"{len(wrong_pid)} container(s) found through another process: "
                        f"{wrong_pid[:5]}")
    not_gone = [n for n in found if n in started and n not in gone]
    if not_gone:
        problems.append(f"{len(not_gone)} container(s) found but never gone: {not_gone[:5]}")
    early = [n for n, t in gone.items() if n in killed and t is not None and t + 1 < killed[n]]
    if early:
        problems.append(f"{len(early)} container(s) gone while alive: {early[:5]}")
    alive_nt = [n for n, ts in not_there.items()
                if n in started and any(t is not None and t + 1 < killed.get(n, 1e18) for t in ts)]
    if alive_nt:
        problems.append(f"'not there' for {len(alive_nt)} live container(s): {alive_nt[:5]}")
    twice = [n for n, ts in not_there.items() if len(ts) > 1]
    if twice:
        problems.append(f"more than one 'not there' line for {twice[:5]}")
    live_failed = [l for n, t, l in ns_failed
                   if n not in killed or t is None or t + 1 < killed[n]]
    res["ctr_failed_dying"] = len(ns_failed) - len(live_failed)
    if live_failed:
        problems.append(f"{len(live_failed)} 'netlink failed' line(s) for a live namespace")
        res["log_bad"] = res.get("log_bad", []) + live_failed

    csv_dir = os.path.join(vdir, "csv", "soak")
    no_series = [n for n in found if n in started
                 and not glob.glob(os.path.join(csv_dir, f"tcpconns-{n}-*-cgroup"))]
    res["ctr_series"] = res["ctr_found"] - len(no_series)
    if no_series:
        problems.append(f"{len(no_series)} container(s) found with no cgroup series in csv: "
                        f"{no_series[:5]}")
    checked = []
    for n in sorted((n for n in found if n in started), key=lambda n: int(n.split("-")[1]))[:3]:
        inst = os.path.join(csv_dir, f"tcpconns-{n}-{n}-cgroup")
        got = (csv_max(os.path.join(inst, "tcp_connections-LISTEN-*")),
               csv_max(os.path.join(inst, "tcp_connections-ESTABLISHED-*")))
        checked.append(f"{n}-{n}-cgroup LISTEN {got[0]} ESTABLISHED {got[1]}")
        if got != (1.0, 4.0):
            problems.append(f"series {n}-{n}-cgroup: max LISTEN, ESTABLISHED {got}, "
                            f"not (1, 4)")
    res["ctr_checked"] = checked
    svc = [f"svc{i}" for i in range(4)
           if not glob.glob(os.path.join(csv_dir, f"tcpconns-svc{i}-cgroup"))]
    if svc:
        problems.append(f"no series for the population's cgroups {svc}")



def read_times(outdir, variant):
    times = []
    for path in sorted(glob.glob(os.path.join(
            outdir, variant, "csv", "soak", "tcpconns-all", "tcp_connections-LISTEN-*"))):
        with open(path) as f:
            for line in f:
                if line.startswith("epoch") or not line.endswith("\n"):
                    continue
                times.append(float(line.split(",", 1)[0]))
    return sorted(times)


def fmt_mib(kib):
    return f"{kib / 1024:.2f} MiB"


def fmt_dur(s):
    return f"{int(s) // 60}m{int(s) % 60:02d}s"


def judge(outdir, variant, rows, warmup, target, limit):
    problems, notes = [], []
    res = {"variant": variant}
    try:
        rc = int(open(os.path.join(outdir, variant, "sampler.rc")).read().strip())
    except (FileNotFoundError, ValueError):
        rc = None
    why = {3: "collectd exited early", 4: "the population exited early",
           5: "reads stalled", 6: "deadline passed", None: "sampler did not finish"}
    if rc != 0:
        problems.append(why.get(rc, f"sampler exit status {rc}"))
    if not rows:
        problems.append("no samples")
        res.update(reads=0, verdict="FAIL", problems=problems, notes=notes)
        return res
    res["reads"] = int(rows[-1]["reads"])
    res["samples"] = len(rows)
    if res["reads"] < target:
        problems.append(f"only {res['reads']} reads of {target}")

    # Read pace, from the csv timestamps of every read.
    times = read_times(outdir, variant)
    if len(times) >= 2:
        dur = times[-1] - times[0]
        gaps = [b - a for a, b in zip(times, times[1:])]
        res["duration"] = dur
        res["rate"] = (len(times) - 1) / dur if dur > 0 else 0.0
        gaps_sorted = sorted(gaps)
        res["gap_p99"] = gaps_sorted[int(0.99 * (len(gaps) - 1))]
        res["gap_max"] = gaps_sorted[-1]
        res["gaps_slow"] = sum(1 for g in gaps if g > 0.2)
        if res["rate"] < 9.5:
            notes.append(f"collectd fell behind Interval 0.1: {res['rate']:.2f} reads/s "
                         f"(the read count is what is judged)")
    else:
        res["duration"] = float(rows[-1]["elapsed_s"])
        res["rate"] = 0.0

    post = [r for r in rows if int(r["reads"]) >= warmup]
    res["cpu_ms_per_read"] = None
    if len(post) >= 2 and int(post[-1]["reads"]) > int(post[0]["reads"]):
        res["cpu_ms_per_read"] = 1000 * (float(post[-1]["cpu_s"]) - float(post[0]["cpu_s"])) / (
            int(post[-1]["reads"]) - int(post[0]["reads"]))
    if len(post) < 2:
        problems.append(f"fewer than 2 samples after warm-up ({warmup} reads)")
        post = rows[-1:]
    rss = [int(r["vmrss_kib"]) for r in post]
    frest = [int(r["fd_rest"]) for r in post]
    fmin = [int(r["fd_min"]) for r in post]
    fmax = [int(r["fd_max"]) for r in post]
    socks = [int(r["socks"]) for r in post]
    tw = [int(r["time_wait"]) for r in post]
    lports = [int(r["listen_ports"]) for r in post]
    res.update(
        warm_reads=int(post[0]["reads"]), rss_warm=rss[0], rss_end=rss[-1],
        rss_min=min(rss), rss_max=max(rss), rss_spread=max(rss) - min(rss),
        hwm_end=int(post[-1]["vmhwm_kib"]),
        rss_first=int(rows[0]["vmrss_kib"]),
        fd_lo=min(frest), fd_hi=max(frest), fd_seen_lo=min(fmin), fd_seen_hi=max(fmax),
        socks_lo=min(socks), socks_hi=max(socks), tw_lo=min(tw), tw_hi=max(tw),
        lports_lo=min(lports), lports_hi=max(lports),
        pop_errors=int(rows[-1]["pop_errors"]))
    if res["rss_spread"] > limit:
        problems.append(f"RSS after warm-up varied by {res['rss_spread']} KiB "
                        f"(limit {limit} KiB)")
    res["fd_warm"] = frest[0]
    if variant != "cgroups" and res["fd_lo"] != res["fd_hi"]:
        problems.append(f"fd count after warm-up not constant: {res['fd_lo']}..{res['fd_hi']}")
    if res["pop_errors"]:
        notes.append(f"the population logged {res['pop_errors']} failures "
                     f"(see population.log)")
    if res["socks_lo"] < 1000:
        problems.append(f"population too small after warm-up: {res['socks_lo']} sockets")
    if res["lports_lo"] == res["lports_hi"]:
        problems.append("the set of listening ports never changed")

    # The log.
    log_path = os.path.join(outdir, variant, "collectd.log")
    try:
        lines = open(log_path, errors="replace").read().splitlines()
    except FileNotFoundError:
        lines = []
        problems.append("no collectd.log")
    tc = [l for l in lines if "tcpconns" in l]
    own = [l for l in lines if "tcpconns plugin:" in l]
    overruns = [float(m.group(1)) for m in map(OVERRUN.search, lines) if m]
    bad = []
    fallback = 0
    for l in tc:
        if variant == "cgroups" and NS_FAILED.search(l):
            continue  # judged with the containers
        if FALLBACK.search(l):
            fallback += 1
            if variant != "procfs" or fallback > 1:
                bad.append(l)
        elif BAD.search(l):
            bad.append(l)
    if bad:
        problems.append(f"{len(bad)} failed/error line(s) from tcpconns in the log")
    if variant == "procfs":
        if fallback == 0:
            problems.append("the log does not show the fallback to /proc")
        if any("netlink works again" in l for l in tc):
            problems.append("netlink came back although the shim refuses it")
    elif variant in ("netlink", "cgroups"):
        if not any(NETLINK_OK in l for l in tc):
            problems.append("the log does not show netlink being used")
    if overruns:
        notes.append(f"collectd warned {len(overruns)} time(s) that a tcpconns read took longer "
                     f"than the interval (longest {max(overruns):.3f} s)")
    others = [l for l in lines if SEVERE.search(l) and l not in bad and not OVERRUN.search(l)]
    res.update(log_own=own, log_bad=bad, log_others=others, log_lines=len(lines))
    if variant == "cgroups" and "fd_warm" in res:
        judge_containers(outdir, variant, lines, res, problems, notes)
    res["problems"], res["notes"] = problems, notes
    res["verdict"] = "PASS" if not problems else "FAIL"
    return res


def main():
    outdir, warmup, target, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    variants = sys.argv[5:]
    rows = {}
    tsv = os.path.join(outdir, "samples.tsv")
    if os.path.exists(tsv):
        with open(tsv) as f:
            for r in csv.DictReader(f, delimiter="\t"):
                rows.setdefault(r["variant"], []).append(r)
    results = [judge(outdir, v, rows.get(v, []), warmup, target, limit) for v in variants]

    print()
    print(f"=== soak summary: Interval 0.1, target {target} reads per variant, "
          f"warm-up {warmup} reads, RSS limit {limit} KiB ===")
    head = ["variant", "reads", "duration", "reads/s", "RSS@warm-up", "RSS@end",
            "max-min", "fd min/max", "verdict"]
    table = [head]
    for r in results:
        if "rss_warm" not in r:
            table.append([r["variant"], str(r.get("reads", 0)), "-", "-", "-", "-", "-", "-",
                          r["verdict"]])
            continue
        table.append([
            r["variant"], str(r["reads"]), fmt_dur(r["duration"]), f"{r['rate']:.2f}",
            f"{fmt_mib(r['rss_warm'])} (read {r['warm_reads']})", fmt_mib(r["rss_end"]),
            f"{r['rss_spread']} KiB", f"{r['fd_lo']}/{r['fd_hi']}", r["verdict"]])
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())

    for r in results:
        print(f"\n--- {r['variant']}: {r['verdict']} ---")
        if "rss_warm" in r:
            print(f"RSS: {fmt_mib(r['rss_first'])} at the first sample, "
                  f"{fmt_mib(r['rss_min'])}..{fmt_mib(r['rss_max'])} after warm-up "
                  f"({r['rss_spread']} KiB), VmHWM {fmt_mib(r['hwm_end'])} at the end")
            print(f"fds: {r['fd_lo']}..{r['fd_hi']} at rest after warm-up; listings saw "
                  f"{r['fd_seen_lo']}..{r['fd_seen_hi']} (with /proc/net/tcp, csv or log "
                  f"files open for a moment); see fds-warmup.txt, fds-end.txt")
            if "gap_max" in r:
                print(f"read pace: {r['rate']:.2f} reads/s over {fmt_dur(r['duration'])}; "
                      f"gap between reads p99 {r['gap_p99'] * 1000:.0f} ms, max "
                      f"{r['gap_max'] * 1000:.0f} ms, {r['gaps_slow']} gaps > 200 ms")
            if r["cpu_ms_per_read"] is not None:
                print(f"collectd CPU: {r['cpu_ms_per_read']:.2f} ms per read "
                      f"(plugin + csv writer + collectd)")
            if "ctr_started" in r:
                base, after = r["fd_base"], r["fd_after"]
                print(f"fds with namespaces coming and going: {base[1] if base else '-'} before "
                      f"the first container (read {base[0] if base else '-'}), "
                      f"{r['fd_warm']} at warm-up, at most {r['fd_hi']} after it "
                      f"(limit {r['fd_limit']} = {r['fd_warm']} + {r['k']} + 2), "
                      f"{after[1] if after else '-'} after the last container "
                      f"(read {after[0] if after else '-'})")
                print(f"containers: {r['ctr_started']} started, {r['ctr_killed']} killed; "
                      f"log: {r['ctr_found']} found, {r['ctr_gone']} gone, "
                      f"{r['ctr_not_there']} 'not there' (died before a scan), "
                      f"{r['ctr_failed_dying']} 'netlink failed' for dying ones; "
                      f"{r['ctr_series']} of {r['ctr_found']} found have cgroup series in csv")
                for c in r["ctr_checked"]:
                    print(f"  checked: {c}")
            print(f"population after warm-up: {r['socks_lo']}..{r['socks_hi']} sockets, "
                  f"{r['tw_lo']}..{r['tw_hi']} in TIME_WAIT, "
                  f"{r['lports_lo']}..{r['lports_hi']} listening ports")
        print(f"log: {r.get('log_lines', 0)} lines; the plugin's own (count, message):")
        seen = {}
        for l in r.get("log_own", []):
            msg = generic(STAMP.sub("", l))
            seen[msg] = seen.get(msg, 0) + 1
        for msg, n in seen.items():
            print(f"  {n:5d}  {msg}")
        for l in r.get("log_bad", [])[:20]:
            print(f"  BAD: {l}")
        if r.get("log_others"):
            print("other warnings/errors in the log:")
            for l in r["log_others"][:20]:
                print(f"  {l}")
            if len(r["log_others"]) > 20:
                print(f"  ... ({len(r['log_others']) - 20} more)")
        for n in r.get("notes", []):
            print(f"note: {n}")
        for p in r.get("problems", []):
            print(f"FAIL: {p}")
    ok = all(r["verdict"] == "PASS" for r in results)
    print(f"\nsoak: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
