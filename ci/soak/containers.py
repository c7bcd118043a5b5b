#!/usr/bin/env python3
"""Namespace churner for the cgroups variant of ci/soak.sh.

Keeps COUNT "containers" alive. A container is one process started with
`unshare -n` (a network namespace of its own, no /run/netns name) in a
fresh cgroup PARENT/ctr-<n> of its own; it brings lo up, listens on
127.0.0.1:9000 and makes 2 connections to itself (1 listener + 4
established sockets, all in its cgroup), then waits. Every PERIOD seconds
on average (0.8 to 1.2 times PERIOD, at random with a fixed seed, so that
samples taken every 5 s do not always see the same moment of a turn) the
oldest is killed (SIGKILL), its cgroup removed, and a new one started.
So network namespaces (found by collectd's `Namespace "all"`) and depth-2
cgroups (`CgroupDepth 2`) come and go all the time.

Usage: containers.py --parent DIR --log FILE --ready FILE [--count K] [--period S]
       containers.py --child PORT            (what runs in a container)

The log (one event a line, tab-separated, times from time.time()):
  # count=K period=S parent=DIR
  <time> started <name> <pid>   (pid as seen in this PID namespace)
  <time> killed  <name> <pid>
  <time> removed <name>         (its cgroup)
  <time> failed  <name> <why>
  <time> stopped <containers started in all>
READY is written once the first COUNT containers are up. SIGTERM/SIGINT:
kills every container, removes their cgroups, exits.
"""
import argparse
import collections
import os
import random
import select
import signal
import socket
import subprocess
import sys
import time

PORT = 9000


def child(port):
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind(("127.0.0.1", port))
    lsock.listen(16)
    keep = []
    for _ in range(2):
        c = socket.create_connection(("127.0.0.1", port))
        a, _ = lsock.accept()
        keep.append((c, a))
    print("ready", flush=True)
    while True:
        signal.pause()


class Churner:
    def __init__(self, args):
        self.args = args
        self.n = 0
        self.alive = collections.deque()  # (name, Popen, cgroup dir)
        self.to_remove = []  # cgroup dirs of killed containers not removed yet
        self.log = open(args.log, "a", buffering=1)
        self.log.write(f"# count={args.count} period={args.period} parent={args.parent}\n")

    def event(self, *fields):
        self.log.write("\t".join([f"{time.time():.3f}", *map(str, fields)]) + "\n")

    def start(self):
        self.n += 1
        name = f"ctr-{self.n}"
        cg = os.path.join(self.args.parent, name)
        os.mkdir(cg)

        def into_cgroup():  # in the child, before exec: "0" moves the writer
            with open(os.path.join(cg, "cgroup.procs"), "w") as f:
                f.write("0")

        p = subprocess.Popen(
            ["unshare", "-n", "--", sys.executable, os.path.abspath(__file__),
             "--child", str(PORT)],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, preexec_fn=into_cgroup)
        ready, _, _ = select.select([p.stdout], [], [], 10.0)
        line = p.stdout.readline() if ready else b""
        if line.strip() != b"ready":
            self.event("failed", name, f"not ready (exit {p.poll()})")
            p.kill()
            p.wait()
            self.to_remove.append((name, cg))
            return
        self.event("started", name, p.pid)
        self.alive.append((name, p, cg))

    def kill(self, entry):
        name, p, cg = entry
        p.kill()
        p.wait()
        p.stdout.close()
        self.event("killed", name, p.pid)
        self.to_remove.append((name, cg))

    def remove_dead_cgroups(self, patience=0.0):
        deadline = time.monotonic() + patience
        while True:
            left = []
            for name, cg in self.to_remove:
                try:
                    os.rmdir(cg)
                    self.event("removed", name)
                except FileNotFoundError:
                    pass
                except OSError:  # EBUSY: the killed process is not out yet
                    left.append((name, cg))
            self.to_remove = left
            if not left or time.monotonic() >= deadline:
                return
            time.sleep(0.05)

    def run(self, stop):
        for _ in range(self.args.count):
            self.start()
        open(self.args.ready, "w").close()
        rng = random.Random(1)
        next_turn = time.monotonic() + self.args.period
        while not stop:
            now = time.monotonic()
            if now >= next_turn:
                next_turn += self.args.period * rng.uniform(0.8, 1.2)
                if self.alive:
                    self.kill(self.alive.popleft())
                self.start()
            self.remove_dead_cgroups()
            time.sleep(min(0.1, max(0.0, next_turn - time.monotonic())))
        while self.alive:
            self.kill(self.alive.popleft())
        self.remove_dead_cgroups(patience=5.0)
        for name, _ in self.to_remove:
            self.event("failed", name, "cgroup not removed")
        self.event("stopped", self.n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", type=int)
    ap.add_argument("--parent")
    ap.add_argument("--log")
    ap.add_argument("--ready")
    ap.add_argument("--count", type=int, default=4)
    ap.add_argument("--period", type=float, default=5.0)
    args = ap.parse_args()
    if args.child is not None:
        child(args.child)
        return
    if not (args.parent and args.log and args.ready):
        ap.error("--parent, --log and --ready are needed")
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    Churner(args).run(stop)


if __name__ == "__main__":
    main()
