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
"""
import csv
import glob
import os
import re
import sys

FALLBACK = re.compile(r"tcpconns plugin: netlink failed: .*reading /proc/net/tcp "
                      r"and /proc/net/tcp6 instead")
NETLINK_OK = "tcpconns plugin: reading sockets from netlink (sock_diag)"
BAD = re.compile(r"fail|error", re.I)
SEVERE = re.compile(r"\[(warning|error)\]")
OVERRUN = re.compile(r"read-function of the `tcpconns' plugin took ([0-9.]+) seconds")
STAMP = re.compile(r"^\[[^]]*\] ")


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
    if res["fd_lo"] != res["fd_hi"]:
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
    elif variant == "netlink":
        if not any(NETLINK_OK in l for l in tc):
            problems.append("the log does not show netlink being used")
    if overruns:
        notes.append(f"collectd warned {len(overruns)} time(s) that a tcpconns read took longer "
                     f"than the interval (longest {max(overruns):.3f} s)")
    others = [l for l in lines if SEVERE.search(l) and l not in bad and not OVERRUN.search(l)]
    res.update(log_own=own, log_bad=bad, log_others=others, log_lines=len(lines))
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
            print(f"population after warm-up: {r['socks_lo']}..{r['socks_hi']} sockets, "
                  f"{r['tw_lo']}..{r['tw_hi']} in TIME_WAIT, "
                  f"{r['lports_lo']}..{r['lports_hi']} listening ports")
        print(f"log: {r.get('log_lines', 0)} lines; the plugin's own (count, message):")
        seen = {}
        for l in r.get("log_own", []):
            msg = STAMP.sub("", l)
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
