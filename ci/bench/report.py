#!/usr/bin/env python3
"""Tables for ci/bench.sh from the raw TSV written by measure.py:

  report.py raw.tsv

Medians over the repetitions; "net" is a variant's median CPU minus the
median of the baseline (collectd without tcpconns) measured in the same
rounds, i.e. what loading, initialising, one read and unloading of the
plugin cost. Peak RSS is the exact peak of `runstat -m` (runstat.c says why
not ru_maxrss, which the raw table shows too); memory is reported as ours
minus C in KiB, the figure the goal is about (GOALS below). Nothing is
asserted: this only prints, the goals with the figures measured against
them.
"""
import statistics
import sys
from collections import defaultdict

CASES = ["base", "1k-listen", "timewait"]
# `health` is `ports` with ConnectionHealth, which only ours has: its C
# variant runs the `ports` block, so its ours/C is against the C plugin
# doing the C plugin's work, and HEALTH_GOAL compares ours with ours. The
# same for `cgroups`: `summary` with CgroupDepth, the C variant runs
# `summary`, CGROUP_GOAL compares ours with ours.
CONFIGS = ["default", "summary", "ports", "health", "cgroups"]
VARIANTS = ["c", "ours", "none"]

# The goals (issue #12), at 100k connections (200k sockets): CPU per read
# ours/C for each (case, config), and memory as a difference, not a ratio:
# what collectd's whole RSS is made of moves by hundreds of KiB between
# starts for either plugin, and the plugin's share is a fixed cost that
# must not grow with the socket count.
GOAL_N = 100000
CPU_GOALS = [  # (config, cases, ours/C at most)
    ("ports", ["base", "1k-listen", "timewait"], 0.50),
    ("default", ["base", "timewait"], 0.95),
    ("default", ["1k-listen"], 0.25),
    ("summary", ["base", "1k-listen", "timewait"], 1.0),
]
RSS_GOAL_KIB = 512
# Issue #13: ours with ConnectionHealth against ours without, `ports` config.
HEALTH_GOAL = 1.3
# Issue #14: ours with per-cgroup series (CgroupDepth 2, the connections
# spread over 10 cgroups) against ours with AllPortsSummary alone.
CGROUP_GOAL = 1.2
# (label, config, against config, at most): ours against ours.
OURS_GOALS = [
    ("CPU health/ports (ours)", "health", "ports", HEALTH_GOAL),
    ("CPU cgroups/summary (ours)", "cgroups", "summary", CGROUP_GOAL),
]


def table(header, rows, align):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    def line(cells):
        return "  ".join(("%-*s" if a == "l" else "%*s") % (w, c)
                         for c, w, a in zip(cells, widths, align))
    out = [line(header), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    return "\n".join(out)


def ratio(a, b, floor):
    # A ratio of two numbers near zero (or below: noise) says nothing.
    if b < floor or a < 0:
        return "n/a"
    return "%.2f" % (a / b)


def main(path):
    runs = defaultdict(list)
    with open(path) as f:
        for line in f:
            case, n, config, variant, rep, cpu, user, system, maxrss, wall, rss = \
                line.split("\t")
            runs[(case, int(n), config, variant)].append(
                (float(cpu), float(user), float(system), int(rss), float(wall),
                 int(maxrss)))
    keys = sorted({k[:3] for k in runs if k[2] in CONFIGS},
                  key=lambda k: (k[1], CASES.index(k[0]), CONFIGS.index(k[2])))

    def med(key, i):
        return statistics.median(r[i] for r in runs[key])

    main_rows, raw_rows, kernel_rows = [], [], []
    cpu_ratio, rss_diff, ours_net = {}, {}, {}
    for case, n, config in keys:
        k = {v: (case, n, config, v) for v in VARIANTS}
        if not all(k[v] in runs for v in VARIANTS):
            continue
        base = med(k["none"], 0)
        c_net = med(k["c"], 0) - base
        o_net = med(k["ours"], 0) - base
        c_rss, o_rss = med(k["c"], 3), med(k["ours"], 3)
        main_rows.append([case, n, config, "%.2f" % c_net, "%.2f" % o_net,
                          ratio(o_net, c_net, 0.1), "%d" % c_rss, "%d" % o_rss,
                          "%+d" % (o_rss - c_rss)])
        cpu_ratio[(case, n, config)] = o_net / c_net if c_net >= 0.1 and o_net >= 0 else None
        rss_diff[(case, n, config)] = o_rss - c_rss
        ours_net[(case, n, config)] = o_net
        bare = {m: (case, n, "kernel", m) for m in ("all", "ports")}
        if config == "ports" and all(b in runs for b in bare.values()):
            b_all, b_ports = med(bare["all"], 0), med(bare["ports"], 0)
            kernel_rows.append([case, n, "%.2f" % b_all, "%.2f" % b_ports,
                                ratio(b_ports, b_all, 0.1), ratio(o_net, c_net, 0.1)])
        for v in VARIANTS:
            cpus = sorted(r[0] for r in runs[k[v]])
            raw_rows.append([case, n, config, v, len(cpus),
                             "%.2f" % med(k[v], 0), "%.2f" % med(k[v], 1),
                             "%.2f" % med(k[v], 2),
                             "%.2f-%.2f" % (cpus[0], cpus[-1]),
                             "%d" % med(k[v], 3), "%+d" % (med(k[v], 3) - med(k["none"], 3)),
                             "%d" % med(k[v], 5), "%.1f" % med(k[v], 4)])

    print("Per read, net of the baseline (median CPU of collectd -T with the plugin"
          " minus without it; user+system ms), and peak RSS of the whole collectd process:")
    print()
    print(table(["case", "N", "config", "C ms/read", "ours ms/read", "ours/C",
                 "peak RSS C KiB", "peak RSS ours KiB", "RSS ours-C KiB"],
                main_rows, "lrlrrrrrr"))
    print()
    if kernel_rows:
        print("The kernel alone: examples/bare_dump, one dump with the plugin's request and no"
              " collectd (median CPU of the")
        print("whole process, its start included, ms), unfiltered (the C plugin's request, on"
              " the plugin's socket without")
        print("CAP_NET_ADMIN) and with the `ports` filter; then ours/C for `ports` from the"
              " table above, for comparison:")
        print()
        print(table(["case", "N", "all ms", "ports ms", "ports/all", "ours/C ports"],
                    kernel_rows, "lrrrrr"))
        print()
    goals(cpu_ratio, rss_diff, ours_net)
    print()
    ours_rows = []
    for case, n, config in keys:
        for _, cfg, against, _ in OURS_GOALS:
            if config != cfg or not {(case, n, cfg), (case, n, against)} <= set(ours_net):
                continue
            mins = {}
            for c in (cfg, against):
                mins[c] = (min(r[0] for r in runs[(case, n, c, "ours")]) -
                           min(r[0] for r in runs[(case, n, c, "none")]))
            a, b = ours_net[(case, n, cfg)], ours_net[(case, n, against)]
            ours_rows.append([case, n, "%s/%s" % (cfg, against), "%.2f" % a, "%.2f" % b,
                              ratio(a, b, 0.1), "%.2f" % mins[cfg], "%.2f" % mins[against],
                              ratio(mins[cfg], mins[against], 0.1)])
    if ours_rows:
        print("Ours against ours (the goals above use the medians): net CPU per read, ms,"
              " median and minimum over the")
        print("repetitions (minimum: the variant's fastest run minus the baseline's"
              " fastest):")
        print()
        print(table(["case", "N", "configs", "median", "against", "ratio",
                     "min", "against", "ratio"], ours_rows, "lrlrrrrrr"))
        print()
    print("Raw medians per variant (c = Debian's C plugin, ours, none = baseline"
          " without tcpconns), with the spread over repetitions.")
    print("cpu = user + sys of the whole collectd -T process; the user/sys split is"
          " sampled at the timer tick,")
    print("only the sum is exact. RSS vs none: peak RSS minus the baseline's. ru_maxrss: the kernel's"
          " approximate peak, for comparison.")
    print()
    print(table(["case", "N", "config", "variant", "reps", "cpu ms", "user ms", "sys ms",
                 "cpu min-max", "peak RSS KiB", "RSS vs none", "ru_maxrss KiB", "wall ms"],
                raw_rows, "lrllrrrrrrrrr"))


def goals(cpu_ratio, rss_diff, ours_net):
    """The figures against the goals; a verdict per line, nothing asserted."""
    if not rss_diff:
        return
    sizes = sorted({k[1] for k in rss_diff})
    n = GOAL_N if GOAL_N in sizes else sizes[-1]
    print("Against the goals: CPU ours/C at N=%d%s; memory (peak RSS ours minus C)"
          " over every row." % (n, "" if n == GOAL_N else
                               " (the goals are for N=%d, not measured here)" % GOAL_N))
    print()
    rows = []
    for config, cases, limit in CPU_GOALS:
        got = [(c, cpu_ratio.get((c, n, config))) for c in cases
               if (c, n, config) in cpu_ratio]
        if not got:
            continue
        met = all(r is not None and round(r, 2) <= limit for _, r in got)
        rows.append(["CPU %s" % config, "<= %.2f" % limit,
                     "  ".join("%s %s" % (c, "n/a" if r is None else "%.2f" % r)
                               for c, r in got),
                     "yes" if met else "NO"])
    for label, config, against, limit in OURS_GOALS:
        pairs = [(c, ours_net.get((c, n, config)), ours_net.get((c, n, against)))
                 for c in CASES if (c, n, config) in ours_net]
        if not pairs:
            continue
        got = [(c, h / p if p is not None and p >= 0.1 and h >= 0 else None)
               for c, h, p in pairs]
        rows.append([label, "<= %.2f" % limit,
                     "  ".join("%s %s" % (c, "n/a" if r is None else "%.2f" % r)
                               for c, r in got),
                     "yes" if all(r is not None and round(r, 2) <= limit
                                  for _, r in got) else "NO"])
    diffs = list(rss_diff.values())
    rows.append(["RSS ours-C", "<= %d KiB" % RSS_GOAL_KIB,
                 "%+d..%+d KiB" % (min(diffs), max(diffs)),
                 "yes" if max(diffs) <= RSS_GOAL_KIB else "NO"])
    if len(sizes) > 1:
        # The same case and config at the smallest and the largest N: the
        # plugin's memory must not grow with the socket count.
        growth = [rss_diff[(c, sizes[-1], cfg)] - rss_diff[(c, sizes[0], cfg)]
                  for (c, m, cfg) in rss_diff
                  if m == sizes[0] and (c, sizes[-1], cfg) in rss_diff]
        if growth:
            rows.append(["RSS ours-C, N=%d -> %d" % (sizes[0], sizes[-1]),
                         "no growth", "%+d..%+d KiB" % (min(growth), max(growth)),
                         "-"])
    print(table(["goal", "target", "measured", "met"], rows, "llll"))
    if len(sizes) > 1:
        print()
        print("The last line is the change of ours-C from N=%d to N=%d for each case and config;"
              " it gets no verdict:" % (sizes[0], sizes[-1]))
        print("a few tens of KiB either way is the spread of single medians, a growth in every"
              " row would be the plugin's.")


if __name__ == "__main__":
    main(sys.argv[1])
