#!/usr/bin/env python3
"""A changing TCP load for the plot in docs/ (run by docs/plot/record.sh
inside a network namespace of its own).

A small service with its clients, over about five minutes:

  0 s    baseline: 2 ssh sessions on 22, a pool of 4 connections to a
         database on 5432, 5 keep-alive web clients on 8080, and 1 short
         request per second (each leaves a TIME_WAIT socket for 60 s)
  20 s   web ramp-up: keep-alive clients grow to 40, 3 short requests/s
  80 s   backend outage: the app tries 1 new connection per second to an
         unreachable Elasticsearch at 127.0.0.1:9200 (record.sh drops its packets); each hangs in
         SYN_SENT until the kernel gives up (tcp_syn_retries=3: 15 s)
  140 s  app bug: the web server stops closing the short requests it has
         answered: CLOSE_WAIT piles up on the server, the clients' closed
         sockets sit in FIN_WAIT2
  200 s  app restart: the leaked sockets are closed at once
  220 s  ramp-down: back to 5 keep-alive clients, short requests stop
  300 s  the load stops: every socket is closed (the keep-alive ones leave
         TIME_WAIT behind)

Phase changes are appended to argv[2] (csv: epoch,phase) for the plot.
"""
import errno
import socket
import sys
import time

ready_file, phase_file = sys.argv[1], sys.argv[2]
duration = float(sys.argv[3]) if len(sys.argv) > 3 else 300.0


def listen(addr, port, family=socket.AF_INET):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(512)
    return s


listeners = {
    22: listen("127.0.0.1", 22),
    5432: listen("127.0.0.1", 5432),
    8080: listen("::", 8080, socket.AF_INET6),
}


def connect(port):
    c = socket.create_connection(("127.0.0.1", port))
    a, _ = listeners[port].accept()
    return c, a


keep = [connect(22) for _ in range(2)] + [connect(5432) for _ in range(4)]
web = []          # keep-alive (client, server) pairs on 8080
leaked = []       # server sockets the buggy app never closed
pending = []      # (deadline, socket) non-blocking connects to the backend

phases = [
    (0, "baseline"),
    (20, "web ramp-up"),
    (80, "backend outage (SYN_SENT)"),
    (140, "app stops closing (CLOSE_WAIT)"),
    (200, "app restart"),
    (220, "ramp-down"),
]


def phase_at(t):
    name = phases[0][1]
    for start, n in phases:
        if t >= start:
            name = n
    return name


def short_request(leak):
    """A request/response on a new connection; the client closes first."""
    c, a = connect(8080)
    c.sendall(b"GET / HTTP/1.0\r\n\r\n")
    a.recv(64)
    a.sendall(b"HTTP/1.0 200 OK\r\n\r\n")
    c.recv(64)
    c.close()  # client: FIN_WAIT -> TIME_WAIT once the server closes too
    if leak:
        leaked.append(a)  # server: CLOSE_WAIT until someone closes it
    else:
        a.recv(64)  # the client's FIN
        a.close()


open(ready_file, "w").close()
start = time.time()
last_phase = None
tick = 0
with open(phase_file, "a") as pf:
    while True:
        now = time.time()
        t = now - start
        if t >= duration:
            pf.write(f"{now:.3f},load stops\n")
            break
        phase = phase_at(t)
        if phase != last_phase:
            pf.write(f"{now:.3f},{phase}\n")
            pf.flush()
            last_phase = phase
        # Keep-alive web clients.
        if t < 20:
            target = 5
        elif t < 80:
            target = 5 + int((t - 20) / 60 * 35)
        elif t < 220:
            target = 40
        else:
            target = max(5, 40 - int((t - 220) / 40 * 35))
        while len(web) < target:
            web.append(connect(8080))
        while len(web) > target:
            c, a = web.pop()
            c.close()
            a.close()
        # Short requests, a few per second (ticks are 1/3 s).
        rate = 0 if t >= 220 else (1 if t < 20 else 3)
        if rate and tick % (3 // rate) == 0:
            short_request(leak=140 <= t < 200)
        if 200 <= t and leaked:
            for a in leaked:
                a.close()
            leaked.clear()
        # The unreachable backend.
        if 80 <= t < 140 and tick % 3 == 0:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            err = s.connect_ex(("127.0.0.1", 9200))
            if err not in (errno.EINPROGRESS, 0):
                print(f"backend connect: {errno.errorcode.get(err, err)}", file=sys.stderr)
            pending.append(s)
        for s in list(pending):
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                s.close()
                pending.remove(s)
        tick += 1
        time.sleep(1 / 3)
