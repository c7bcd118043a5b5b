#!/usr/bin/env python3
"""Checks what one collectd read wrote through the csv plugin against the
population ci/bench.sh made, so that the CPU numbers are known to come from
plugins that really counted and dispatched every socket.

  check.py CSVDIR CONFIG POPULATION_JSON [--listen FIRST COUNT] [--timewait K]

CSVDIR is the csv plugin's DataDir (host "bench"). It is polled until every
expected tcpconns file is there and nothing changed for a while (collectd -f
keeps writing after the read; -T would drop queued values at shutdown), then
the last value of every file is compared. Prints one line; exit 1 on any
difference.
"""
import glob
import json
import os
import sys
import time

STATES = ["ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",
          "TIME_WAIT", "CLOSED", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING"]
TIMEOUT = 120  # seconds: 1,004 series are 11,044 csv files
QUIET = 1.5    # seconds without change = the read is fully written


def expected(config, pop, listen, timewait):
    """{plugin_instance: {state: value}}; states not given are 0."""
    per_port = {int(p): c for p, c in pop["per_port"].items()}
    lpp = pop["listeners_per_port"]
    exp = {}
    if config == "default":
        # ListeningPorts (on by default): every port with a LISTEN socket.
        # TIME_WAIT sockets belong to the clients' ephemeral ports: not here.
        for port, c in per_port.items():
            exp["%d-local" % port] = {"ESTABLISHED": c, "LISTEN": lpp}
        if listen:
            first, count = listen
            for port in range(first, first + count):
                exp["%d-local" % port] = {"LISTEN": 1}
    elif config in ("summary", "cgroups"):
        # AllPortsSummary alone: only "all", every socket of the namespace.
        listeners = pop["listeners"] + (listen[1] if listen else 0)
        exp["all"] = {"ESTABLISHED": 2 * pop["connections"], "LISTEN": listeners}
        if timewait:
            exp["all"]["TIME_WAIT"] = timewait
        if config == "cgroups":
            # CgroupDepth 2: one series per cgroup of the population
            # (<parent>/c<i>), what was made in it: both ends of its
            # connections, and the listeners left there. The 1k-listen
            # listeners are in <parent> (depth 1: in no series); TIME_WAIT
            # entries carry no cgroup.
            if not pop.get("cgroups"):
                sys.exit("config cgroups, but the population is in no cgroups")
            for name, cg in pop["cgroups"].items():
                exp["%s-cgroup" % name] = {"ESTABLISHED": 2 * cg["connections"],
                                           "LISTEN": cg["listeners"]}
    elif config in ("ports", "health"):
        # LocalPort 5432: the server sides (and the 2 listeners);
        # RemotePort 6379: the client sides.
        exp["5432-local"] = {"ESTABLISHED": per_port[5432], "LISTEN": lpp}
        exp["6379-remote"] = {"ESTABLISHED": per_port[6379]}
    else:
        sys.exit("unknown config " + config)
    return exp


def snapshot(csvdir):
    files = glob.glob(os.path.join(csvdir, "bench", "tcpconns-*", "tcp_connections-*"))
    return files, sum(os.path.getsize(f) for f in files)


def main(argv):
    csvdir, config, popfile = argv[1], argv[2], argv[3]
    rest = argv[4:]
    listen = timewait = None
    while rest:
        if rest[0] == "--listen":
            listen = (int(rest[1]), int(rest[2]))
            rest = rest[3:]
        elif rest[0] == "--timewait":
            timewait = int(rest[1])
            rest = rest[2:]
        else:
            sys.exit("unknown argument " + rest[0])
    with open(popfile) as f:
        pop = json.load(f)
    exp = expected(config, pop, listen, timewait)
    want_files = 11 * len(exp)

    t0 = time.monotonic()
    deadline = t0 + TIMEOUT
    last, since = None, t0
    first = complete = None  # when the first / the last expected file appeared
    while True:
        files, size = snapshot(csvdir)
        now = time.monotonic()
        if files and first is None:
            first = now - t0
        if len(files) >= want_files and complete is None:
            complete = now - t0
        if (len(files), size) != last:
            last, since = (len(files), size), now
        elif files and now - since >= (0.3 if len(files) >= want_files else QUIET):
            break
        if now > deadline:
            break
        time.sleep(0.1)

    got = {}
    for f in files:
        inst = os.path.basename(os.path.dirname(f))[len("tcpconns-"):]
        state = os.path.basename(f)[len("tcp_connections-"):].rsplit("-", 3)[0]
        with open(f) as fh:
            rows = [l for l in fh.read().splitlines() if l and not l.startswith("epoch")]
        got.setdefault(inst, {})[state] = float(rows[-1].split(",")[1]) if rows else None

    problems = []
    for inst in sorted(set(exp) | set(got)):
        if inst not in got:
            problems.append("%s missing" % inst)
            continue
        if inst not in exp:
            problems.append("%s not expected (%s)" % (inst, got[inst]))
            continue
        for state in STATES:
            want = exp[inst].get(state, 0)
            have = got[inst].get(state)
            if have != want:
                problems.append("%s %s = %s, expected %d" % (inst, state, have, want))
    values = sum(len(v) for v in got.values())
    if problems:
        print("FAIL: %d problem(s): %s%s" % (len(problems), "; ".join(problems[:8]),
                                              " ..." if len(problems) > 8 else ""))
        sys.exit(1)
    shown = "; ".join("%s %s" % (i, " ".join("%s=%d" % sv for sv in exp[i].items()))
                      for i in ("5432-local", "6379-remote", "all") if i in exp)
    cgroups = sorted(i for i in exp if i.endswith("-cgroup"))
    if cgroups:
        shown += "; %d x -cgroup, ESTABLISHED %d..%d, LISTEN %d in all" % (
            len(cgroups), min(exp[i]["ESTABLISHED"] for i in cgroups),
            max(exp[i]["ESTABLISHED"] for i in cgroups),
            sum(exp[i]["LISTEN"] for i in cgroups))
    print("ok: %d series, %d values as expected (%s); csv complete after %.1f s"
          % (len(exp), values, shown, complete))


if __name__ == "__main__":
    try:
        main(sys.argv)
    except KeyboardInterrupt:  # Ctrl-C: bench.sh cleans up, no traceback
        sys.exit(130)
