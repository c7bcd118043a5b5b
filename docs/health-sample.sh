#!/usr/bin/env bash
# Prints the real values behind the ConnectionHealth section of
# docs/options.md: a population made to have queues, a slow link and lost
# acknowledgements, `ss -tni` of it, and one read of the real collectd with
# this project's tcpconns.so. Run as root after `cargo build --release --lib`.
set -euo pipefail
shopt -s nullglob
cd "$(dirname "$0")/.."
. ci/lib.sh
ns=tcpconns-health
scratch health
fresh_netns "$ns"
# (Foreground commands only: a function run with & is a subshell, and $!
# would be its PID, not the program's.)
nsx() { ip netns exec "$ns" "$@"; }

# lo at 4 Mbit/s with a 1,500-byte MTU: segments sent together wait behind
# each other, as on a slow link. Once the connections are made, packets from
# port 5432 (the database's acknowledgements) go to a class that holds
# none: they are all dropped.
nsx ip link set lo mtu 1500
nsx tc qdisc add dev lo root handle 1: htb default 10
nsx tc class add dev lo parent 1: classid 1:10 htb rate 4mbit burst 16kb 2>/dev/null
nsx tc class add dev lo parent 1: classid 1:20 htb rate 8bit ceil 8bit 2>/dev/null
nsx tc qdisc add dev lo parent 1:20 pfifo limit 0

# A web server on 8080: 3 clients that each downloaded 300 KB (RTT samples
# on the slow link), one client whose 2,000-byte request the server never
# reads, one client that never reads while the server writes until its
# buffers are full. 2 connections to a database on 5432 that never answers:
# their 1,500-byte queries are retransmitted.
cat > "$work/population.py" <<'PY'
import os, socket, sys, threading, time
def listen(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); s.listen(16); return s
keep = []
web, db = listen(8080), listen(5432)
keep += [web, db]
def download():
    c = socket.create_connection(("127.0.0.1", 8080)); a, _ = web.accept()
    t = threading.Thread(target=a.sendall, args=(b"w" * 300000,)); t.start()
    got = 0
    while got < 300000: got += len(c.recv(65536))
    t.join(); keep.extend([c, a])
for _ in range(3): download()
c = socket.create_connection(("127.0.0.1", 8080)); a, _ = web.accept(); keep += [c, a]
c.sendall(b"r" * 2000)
c = socket.socket(); c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
c.connect(("127.0.0.1", 8080)); a, _ = web.accept(); keep += [c, a]
a.setblocking(False)
try:
    while True: a.send(b"s" * 65536)
except BlockingIOError:
    pass
queries = []
for _ in range(2):
    c = socket.create_connection(("127.0.0.1", 5432)); a, _ = db.accept(); keep += [c, a]
    queries.append(c)
open(sys.argv[1], "w").close()
while not os.path.exists(sys.argv[2]): time.sleep(0.05)
for c in queries: c.sendall(b"q" * 1500)
time.sleep(3600)
PY
ip netns exec "$ns" python3 "$work/population.py" "$work/ready" "$work/go" &
pids+=($!)
for _ in $(seq 300); do [ -e "$work/ready" ] && break; sleep 0.1; done
nsx tc filter add dev lo parent 1: protocol ip u32 match ip sport 5432 0xffff flowid 1:20
touch "$work/go"
# Let the first retransmissions happen and the writes settle.
sleep 3
echo "ss -tni in $ns (the info line cut to rtt, retrans):"
nsx ss -tni | awk '/^[A-Z]/ { line = $0; next }
  { rtt = ""; re = ""
    for (i = 1; i <= NF; i++) { if ($i ~ /^rtt:/) rtt = $i; if ($i ~ /^retrans:/) re = $i }
    printf "  %-70s %s %s\n", line, rtt, re }' | sed 's/  */ /g'

block='<Plugin tcpconns>
  LocalPort 8080
  RemotePort 5432
  ConnectionHealth true
</Plugin>'
{ collectd_conf sample 3600; echo "$block"; } > "$work/collectd.conf"
ip netns exec "$ns" /usr/sbin/collectd -f -C "$work/collectd.conf" > "$work/stdout" 2>&1 &
pid=$!
csv_settled "$work" "$pid"
kill "$pid"; wait "$pid" || true
echo
echo "$block" | sed 's/^/    /'
echo "  -> every value that is not a tcp_connections one:"
csv_last "$work" sample | grep -v '/tcp_connections-' \
  | sort -V | column -t | sed 's/^/  /'
