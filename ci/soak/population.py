#!/usr/bin/env python3
"""Churning TCP socket population for ci/soak.sh (run inside its namespace).

Stable base (never closed while it runs):
  listeners  22 (127.0.0.1), 80 ([::] dual-stack), 443 ([::1]),
             5432 (127.0.0.1), 6379 ([::1]), 8080 ([::] dual-stack),
             9000 (127.0.0.1)
  BASE established connections (default 300, i.e. 2 x 300 sockets) spread
  over 22, 80 (IPv4-mapped and IPv6), 443, 5432 and 6379.

Churn, continuously:
  - RATE new connections per second (default 200) to 8080 (IPv4-mapped and
    IPv6) and 9000 (IPv4), each held for a random 0-2 s and then closed:
    70 % client first (client socket -> TIME_WAIT for 60 s),
    20 % server first, the client half 0.3 s later (server FIN_WAIT2 /
         client CLOSE_WAIT in between, then server TIME_WAIT),
    10 % by RST (SO_LINGER 0: no TIME_WAIT).
  - every PERIOD seconds (default 3) one of the ports 7001-7008 toggles: a
    listener is started there (with 3 connections) or stopped (with its
    connections), so the set of listening ports changes between reads.

Ephemeral ports: the caller widens net.ipv4.ip_local_port_range; steady
state is about RATE*0.7*60 client TIME_WAIT sockets (8,400 at 200/s).

With --cgroups DIR,DIR,... (the cgroups variant) the process moves itself
between those cgroup v2 directories so that its sockets belong to them:
base listener i and the client end of base connection i are made in
cgroup i mod n (an accepted end belongs to its listener's cgroup), and the
churn's client ends in one cgroup after the other, a new one every PERIOD
seconds.

Usage: population.py READY_FILE [--base N] [--rate R] [--period S] [--seed N]
                     [--cgroups DIR,...]
Writes READY_FILE when the base is up; prints a one-line status to stderr
every 60 s; exits on SIGTERM/SIGINT.
"""
import argparse
import collections
import heapq
import random
import resource
import signal
import socket
import sys
import time

V4, V6, DUAL = "v4", "v6", "dual"
BASE_LISTENERS = [(22, V4), (80, DUAL), (443, V6), (5432, V4), (6379, V6),
                  (8080, DUAL), (9000, V4)]
BASE_TARGETS = [(22, "127.0.0.1"), (80, "127.0.0.1"), (80, "::1"),
                (443, "::1"), (5432, "127.0.0.1"), (6379, "::1")]
CHURN_TARGETS = [(8080, "127.0.0.1"), (8080, "::1"), (9000, "127.0.0.1")]
TOGGLE_PORTS = [(7001, V4), (7002, DUAL), (7003, V6), (7004, V4),
                (7005, DUAL), (7006, V6), (7007, V4), (7008, DUAL)]
TOGGLE_CONNS = 3


def listen(port, kind):
    if kind == V4:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        addr = "127.0.0.1"
    else:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if kind == V6 else 0)
        addr = "::1" if kind == V6 else "::"
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(1024)
    return s


def connect(listener, port, addr):
    """A connected (client, server) pair; the server side accepted at once."""
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    c = socket.socket(family, socket.SOCK_STREAM)
    try:
        c.connect((addr, port))
        a, _ = listener.accept()
    except BaseException:
        c.close()
        raise
    return c, a


def rst_close(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()


def enter_cgroup(path):
    """Moves this (single-threaded) process into the cgroup v2 directory path."""
    with open(f"{path}/cgroup.procs", "w") as f:
        f.write("0")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ready")
    ap.add_argument("--base", type=int, default=300)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--period", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cgroups", default="")
    args = ap.parse_args()
    cgroups = [c for c in args.cgroups.split(",") if c]
    moved = 0

    def cgroup_for(i):
        nonlocal moved
        if cgroups:
            enter_cgroup(cgroups[i % len(cgroups)])
            moved += 1
    rng = random.Random(args.seed)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    listeners = {}
    for i, (port, kind) in enumerate(BASE_LISTENERS):
        cgroup_for(i)
        listeners[port] = listen(port, kind)
    base = []
    for i in range(args.base):
        port, addr = BASE_TARGETS[i % len(BASE_TARGETS)]
        cgroup_for(i)
        base.append(connect(listeners[port], port, addr))
    toggles = 0

    toggled = {}  # port -> (listener, [pairs])
    held = []  # heap of (deadline, seq, pair, how)
    half_closed = collections.deque()  # (deadline, client) awaiting close
    stats = collections.Counter()
    open(args.ready, "w").close()

    interval = 1.0 / args.rate if args.rate > 0 else None
    t0 = time.monotonic()
    next_open = t0
    next_toggle = t0 + args.period
    next_status = t0 + 60
    while not stop:
        now = time.monotonic()
        # Open connections on schedule (catch up at most 50 at once).
        if interval is not None:
            n = 0
            while next_open <= now and n < 50:
                port, addr = CHURN_TARGETS[rng.randrange(len(CHURN_TARGETS))]
                try:
                    pair = connect(listeners[port], port, addr)
                    r = rng.random()
                    how = "client" if r < 0.7 else ("server" if r < 0.9 else "rst")
                    heapq.heappush(held, (now + rng.uniform(0.0, 2.0), stats["opened"], pair, how))
                    stats["opened"] += 1
                except OSError as e:
                    stats["connect_errors"] += 1
                    if stats["connect_errors"] <= 5:
                        print(f"population: connect to {addr}:{port} failed: {e}",
                              file=sys.stderr, flush=True)
                next_open += interval
                n += 1
            if next_open < now - 1.0:  # fell far behind: do not burst later
                next_open = now
        # Close the ones whose time is up.
        while held and held[0][0] <= now:
            _, _, (c, a), how = heapq.heappop(held)
            if how == "client":
                c.close()
                a.close()
            elif how == "server":
                a.close()
                half_closed.append((now + 0.3, c))
            else:
                rst_close(c)
                a.close()
            stats["closed_" + how] += 1
        while half_closed and half_closed[0][0] <= now:
            half_closed.popleft()[1].close()
        # Toggle one listener port.
        if now >= next_toggle:
            next_toggle += args.period
            toggles += 1
            cgroup_for(toggles)
            port, kind = TOGGLE_PORTS[rng.randrange(len(TOGGLE_PORTS))]
            if port in toggled:
                lsock, pairs = toggled.pop(port)
                for c, a in pairs:
                    c.close()
                    a.close()
                lsock.close()
                stats["listeners_stopped"] += 1
            else:
                try:
                    lsock = listen(port, kind)
                    addr = "127.0.0.1" if kind in (V4, DUAL) else "::1"
                    if kind == DUAL:
                        addrs = ["127.0.0.1", "::1", "127.0.0.1"]
                    else:
                        addrs = [addr] * TOGGLE_CONNS
                    pairs = [connect(lsock, port, a) for a in addrs]
                    toggled[port] = (lsock, pairs)
                    stats["listeners_started"] += 1
                except OSError as e:
                    stats["listen_errors"] += 1
                    print(f"population: listener {port} failed: {e}",
                          file=sys.stderr, flush=True)
        if now >= next_status:
            next_status += 60
            print(f"population: t={now - t0:.0f}s held={len(held)} "
                  f"toggled={sorted(toggled)} cgroup_moves={moved} "
                  f"{dict(sorted(stats.items()))}",
                  file=sys.stderr, flush=True)
        time.sleep(0.005)

    print(f"population: stopping after {time.monotonic() - t0:.0f}s "
          f"{dict(sorted(stats.items()))}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
