#!/usr/bin/env python3
"""Socket populations for ci/bench.sh. Run inside the benchmark's network
namespace (nsenter --net=/run/netns/NS python3 population.py MODE ...; not
`ip netns exec`, whose fresh sysfs hides the cgroup hierarchy).

  base N READY [CGROUP...]
                     listeners on 80, 443, 5432, 6379 (IPv4 and IPv6, so 8
                     LISTEN sockets) and N established loopback connections
                     spread over them, half IPv4, half IPv6 (2N sockets).
                     Writes READY (JSON: what was made) and keeps every
                     socket open until killed (SIGTERM), spread over worker
                     processes when RLIMIT_NOFILE is too low for one.
                     With CGROUPs (cgroup v2 directories), the connections
                     are cut into as many equal parts, each made by
                     processes in its cgroup, both ends: a socket belongs to
                     the cgroup of the process that creates it, an accepted
                     one to its listener's. So each part gets listeners of
                     its own, made in its cgroup and closed once its
                     connections are accepted; the last part's stay open:
                     the 8 LISTEN sockets end up in the last cgroup.
  listen START COUNT READY
                     COUNT idle IPv4 listeners on START..START+COUNT-1; keeps
                     them open until killed.
  timewait PORT K READY
                     K connections to PORT (half IPv4, half IPv6); the client
                     closes first, so each client socket goes to TIME_WAIT
                     (the kernel keeps it 60 s after we exit); the server
                     side closes second and is gone (LAST_ACK -> CLOSED).
                     Exits when done.

listen and timewait take --cgroup DIR after READY: the process joins that
cgroup before making any socket.

READY is written last, through a rename, so its presence means "done".
"""
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time

PORTS = [80, 443, 5432, 6379]
# Connections per (source, destination address, destination port): each needs
# its own ephemeral port, 64512 of them with ip_local_port_range 1024 65535.
# Staying far below that keeps connect()'s port search short.
PER_DEST = 20000
# Connect this many, then accept them: well under the listen backlog, so the
# accept queue never overflows (an overflow leaves half-open connections).
BATCH = 1000


def raise_nofile(n):
    """Soft RLIMIT_NOFILE up to the hard limit; the hard limit itself needs
    CAP_SYS_RESOURCE, which containers often lack."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if n > hard:
        sys.exit("need %d descriptors, RLIMIT_NOFILE hard limit is %d" % (n, hard))
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def listener(family, addr, port, backlog):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        # A separate IPv6 socket, not a dual-stack one: IPv4 clients then land
        # on the IPv4 listener and both families are really exercised.
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, port))
    s.listen(backlog)
    # accept() must never hang the build: a missing connection is an error.
    s.settimeout(10)
    return s


def connect_accept(lst, family, dst, port, count, keep):
    """count connections to (dst, port), accepted on lst; all kept open."""
    done = 0
    while done < count:
        n = min(BATCH, count - done)
        for _ in range(n):
            c = socket.socket(family, socket.SOCK_STREAM)
            c.connect((dst, port))  # loopback: established when this returns
            keep.append(c)
        for _ in range(n):
            a, _ = lst.accept()
            keep.append(a)
        done += n


def split(total, parts):
    """total spread over parts as evenly as possible."""
    q, r = divmod(total, parts)
    return [q + (1 if i < r else 0) for i in range(parts)]


_v6_added = set()


def v6_destinations(k):
    """k IPv6 destination addresses on lo: ::1 and, only if more are needed,
    fd00::2, fd00::3 ... (added to lo here, once; the namespace is ours)."""
    addrs = ["::1"]
    for i in range(2, k + 1):
        a = "fd00::%d" % i
        if a not in _v6_added:
            subprocess.run(["ip", "-6", "addr", "add", a + "/128", "dev", "lo", "nodad"],
                           check=True)
            _v6_added.add(a)
        addrs.append(a)
    return addrs


def write_ready(path, info):
    with open(path + ".tmp", "w") as f:
        json.dump(info, f)
    os.rename(path + ".tmp", path)


def hold_forever():
    # The sockets live as long as this process: sleep until killed.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    while True:
        signal.pause()


def die_with_parent():
    """A worker must not outlive the process that bench.sh kills."""
    import ctypes
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:
        os._exit(1)


def plan(n):
    """The connections to make: [(family, destination, port, count)], and
    how many go to each port and family."""
    tasks = []
    per_port = {}
    per_family = {}
    v4, v6 = split(n, 2)
    for family, fam_total in ((socket.AF_INET, v4), (socket.AF_INET6, v6)):
        name = "ipv4" if family == socket.AF_INET else "ipv6"
        per_family[name] = fam_total
        for port, count in zip(PORTS, split(fam_total, len(PORTS))):
            k = max(1, -(-count // PER_DEST))  # destinations needed
            if family == socket.AF_INET:
                # all of 127/8 is on lo already
                dests = ["127.0.0.%d" % (i + 1) for i in range(k)]
            else:
                dests = v6_destinations(k) if k > 1 else ["::1"]
            for dst, c in zip(dests, split(count, k)):
                tasks.append((family, dst, port, c))
            per_port[port] = per_port.get(port, 0) + count
    return tasks, per_port, per_family


def cut(tasks, sizes):
    """The task list cut, in order, into consecutive parts of the given
    numbers of connections (sum(sizes) = all connections of tasks)."""
    rest = list(tasks)
    parts = []
    for size in sizes:
        part, room = [], size
        while room > 0 or (rest and rest[0][3] == 0):
            family, dst, port, count = rest[0]
            take = min(count, room)
            if take:
                part.append((family, dst, port, take))
            room -= take
            if take == count:
                rest.pop(0)
            else:
                rest[0] = (family, dst, port, count - take)
        parts.append(part)
    return parts


def join_cgroup(path):
    """Moves this process (and so every socket it makes from now on, and
    every child it forks) into the cgroup v2 directory path."""
    with open(os.path.join(path, "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))


def chunks(tasks, size):
    """Cut the task list into pieces of at most size connections each."""
    piece, room = [], size
    for family, dst, port, count in tasks:
        while count > 0:
            take = min(count, room)
            piece.append((family, dst, port, take))
            count -= take
            room -= take
            if room == 0:
                yield piece
                piece, room = [], size
    if piece:
        yield piece


def base(n, ready, cgroups):
    tasks, per_port, per_family = plan(n)
    # Each connection costs two descriptors (client and accepted server side),
    # and the hard RLIMIT_NOFILE may be low and not raisable (no
    # CAP_SYS_RESOURCE in a container): spread the connections over worker
    # processes that each stay within the limit. Workers run one after the
    # other, so each accept() takes the connection its own connect() made.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 4096:
        sys.exit("RLIMIT_NOFILE hard limit %d is too low" % hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    per_worker = (hard - 256) // 2
    groups = cgroups or [None]
    sizes = split(n, len(groups))
    workers = []
    lst = {}
    for cgroup, part in zip(groups, cut(tasks, sizes)):
        if cgroup:
            join_cgroup(cgroup)
        # The listeners of the part before (closed in its workers already):
        # an accepted socket stays in its listener's cgroup, so each part
        # listens anew from its own cgroup. Accepted sockets outlive their
        # listener; SO_REUSEADDR lets the new one bind next to them.
        for s in lst.values():
            s.close()
        lst = {}
        for port in PORTS:
            lst[(socket.AF_INET, port)] = listener(socket.AF_INET, "0.0.0.0", port, 65535)
            lst[(socket.AF_INET6, port)] = listener(socket.AF_INET6, "::", port, 65535)
        for piece in chunks(part, per_worker):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(r)
                die_with_parent()
                keep = []
                for family, dst, port, count in piece:
                    connect_accept(lst[(family, port)], family, dst, port, count, keep)
                # Only the parent keeps the listeners (a worker's copy would
                # keep a closed one listening).
                for s in lst.values():
                    s.close()
                os.write(w, b"k")
                hold_forever()
            os.close(w)
            if os.read(r, 1) != b"k":
                sys.exit("population worker %d failed" % pid)
            os.close(r)
            workers.append(pid)

    def stop(*_):
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        os._exit(0)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    write_ready(ready, {
        "connections": n,
        "per_family": per_family,
        # connections to each port: the server sockets have it as local port,
        # the client sockets as remote port
        "per_port": {str(p): c for p, c in per_port.items()},
        "listeners_per_port": 2,
        "listeners": 2 * len(PORTS),
        "sockets": 2 * n + 2 * len(PORTS),
        "workers": len(workers),
        # per cgroup (by its last path component): connections made in it
        # (2 ESTABLISHED sockets each) and LISTEN sockets left in it
        "cgroups": {os.path.basename(c.rstrip("/")): {
            "connections": size,
            "listeners": 2 * len(PORTS) if i == len(groups) - 1 else 0}
            for i, (c, size) in enumerate(zip(groups, sizes)) if c},
        "nofile_hard_limit": hard,
    })
    while True:
        signal.pause()


def listen(start, count, ready, cgroup):
    if cgroup:
        join_cgroup(cgroup)
    raise_nofile(count + 1024)
    keep = [listener(socket.AF_INET, "0.0.0.0", p, 16) for p in range(start, start + count)]
    write_ready(ready, {"first": start, "count": count, "sockets": len(keep)})
    hold_forever()


def timewait(port, k, ready, cgroup):
    if cgroup:
        join_cgroup(cgroup)
    raise_nofile(2 * BATCH + 1024)
    l4 = listener(socket.AF_INET, "127.0.0.1", port, 4096)
    l6 = listener(socket.AF_INET6, "::1", port, 4096)
    made = 0
    while made < k:
        n = min(BATCH, k - made)
        pairs = []
        for i in range(n):
            fam, lst, dst = ((socket.AF_INET, l4, "127.0.0.1") if (made + i) % 2 == 0
                             else (socket.AF_INET6, l6, "::1"))
            c = socket.socket(fam, socket.SOCK_STREAM)
            c.connect((dst, port))
            a, _ = lst.accept()
            pairs.append((c, a))
        # Client first: its FIN makes the server side CLOSE_WAIT; the server's
        # close then puts the client in TIME_WAIT and the server through
        # LAST_ACK to CLOSED. On loopback each step completes inside close().
        for c, _ in pairs:
            c.close()
        for _, a in pairs:
            a.close()
        made += n
    l4.close()
    l6.close()
    write_ready(ready, {"timewait": k, "port": port, "made_at": time.time()})


def main(argv):
    mode = argv[1]
    cgroup = None
    if mode in ("listen", "timewait") and len(argv) == 7 and argv[5] == "--cgroup":
        cgroup, argv = argv[6], argv[:5]
    if mode == "base" and len(argv) >= 4:
        base(int(argv[2]), argv[3], argv[4:])
    elif mode == "listen" and len(argv) == 5:
        listen(int(argv[2]), int(argv[3]), argv[4], cgroup)
    elif mode == "timewait" and len(argv) == 5:
        timewait(int(argv[2]), int(argv[3]), argv[4], cgroup)
    else:
        sys.exit("usage: population.py base N READY [CGROUP...]"
                 " | listen START COUNT READY [--cgroup DIR]"
                 " | timewait PORT K READY [--cgroup DIR]")


if __name__ == "__main__":
    main(sys.argv)
