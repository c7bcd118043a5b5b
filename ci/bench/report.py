#!/usr/bin/env python3
"""Tables for ci/bench.sh from the raw TSV written by measure.py:

  report.py raw.tsv

Medians over the repetitions; "net" is a variant's median CPU minus the
median of the baseline (collectd without tcpconns) measured in the same
rounds, i.e. what loading, initialising, one read and unloading of the
plugin cost. Peak RSS is the exact peak of `runstat -m` (runstat.c says why
not ru_maxrss, which the raw table shows too). Nothing is asserted: this
only prints.
"""
import statistics
import sys
from collections import defaultdict

CASES = ["base", "1k-listen", "timewait"]
CONFIGS = ["default", "summary", "ports"]
VARIANTS = ["c", "ours", "none"]


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
                          "%.2f" % (o_rss / c_rss)])
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
                 "peak RSS C KiB", "peak RSS ours KiB", "RSS ours/C"],
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


if __name__ == "__main__":
    main(sys.argv[1])
