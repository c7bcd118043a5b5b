#!/usr/bin/env bash
# Prints the real values behind the Cgroup and Namespace "all" sections of
# docs/options.md: three "services" in cgroups of a slice, a container-like
# process in a network namespace of its own, `ss -tan --cgroup`, one read of
# the real collectd with this project's tcpconns.so, what its csv writer
# named the files and what write_graphite sent. Run as root on a host with
# cgroup v2 after `cargo build --release --lib`.
set -euo pipefail
shopt -s nullglob
cd "$(dirname "$0")/.."
. ci/lib.sh
. ci/cgroup2.sh
mount=$(cgroup2_mount)
[ -n "$mount" ] || { echo "no cgroup v2 hierarchy mounted" >&2; exit 1; }
ns=tcpconns-cgroups
scratch cgroups
fresh_netns "$ns"
slice=$mount/tcpconns-sample.slice
mkdir -p "$slice"/{web.service,db.service,user@1000.service,app.scope}
# Remove the cgroups once the processes in them are gone.
remove_cgroups() { sleep 0.5; rmdir "$slice"/*/ "$slice" 2>/dev/null || true; }
trap 'cleanup; remove_cgroups' EXIT

# Each service is a process that moves itself into its cgroup, then makes
# its sockets: db listens on 5432; web listens on 8080, has 3 clients from
# user@1000.service and is itself a client of db twice; one client of web
# closed first (a TIME_WAIT, which has no cgroup).
cat > "$work/service.py" <<'PY'
import os, socket, sys, time
cgroup, ready = sys.argv[1], sys.argv[2]
open(cgroup + "/cgroup.procs", "w").write(str(os.getpid()))
keep = []
def connect(port, n):
    for _ in range(n):
        keep.append(socket.create_connection(("127.0.0.1", port)))
def listen(port):
    s = socket.socket(); s.bind(("127.0.0.1", port)); s.listen(64); keep.append(s); return s
role = os.path.basename(cgroup)
if role == "db.service":
    db = listen(5432)
elif role == "web.service":
    web = listen(8080); connect(5432, 2)
elif role == "user@1000.service":
    connect(8080, 3)
    c = socket.create_connection(("127.0.0.1", 8080)); time.sleep(0.2); c.close()
open(ready, "w").close()
# Accept what comes; the accepted ends stay in the listener's cgroup.
listeners = [s for s in keep if s.getsockname()[1] in (5432, 8080)]
for s in listeners:
    s.setblocking(False)
while True:
    for s in listeners:
        try:
            keep.append(s.accept()[0])
        except BlockingIOError:
            pass
    time.sleep(0.05)
PY
for svc in db.service web.service user@1000.service; do
  nsenter --net=/run/netns/$ns python3 "$work/service.py" "$slice/$svc" "$work/$svc.ready" &
  pids+=($!)
  for _ in $(seq 100); do [ -e "$work/$svc.ready" ] && break; sleep 0.05; done
done
# A "container": a process with a network namespace of its own (no name in
# /run/netns), in app.scope, listening on 9000 with one connection.
cat > "$work/app.py" <<'PY'
import os, socket, sys, time
open(sys.argv[1] + "/cgroup.procs", "w").write(str(os.getpid()))
os.system("ip link set lo up")
s = socket.socket(); s.bind(("127.0.0.1", 9000)); s.listen(8)
c = socket.create_connection(("127.0.0.1", 9000)); a, _ = s.accept()
open(sys.argv[2], "w").close()
time.sleep(3600)
PY
unshare -n python3 "$work/app.py" "$slice/app.scope" "$work/app.ready" &
pids+=($!)
for _ in $(seq 100); do [ -e "$work/app.ready" ] && break; sleep 0.05; done
sleep 0.5
echo "ss -tan --cgroup in $ns:"
nsenter --net=/run/netns/$ns ss -tan --cgroup | sed 's/  */ /g; s/^/  /'

# write_graphite to a listener that keeps what it is sent.
cat > "$work/graphite.py" <<'PY'
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 2003)); s.listen(1)
out = open(sys.argv[1], "ab")
while True:
    c, _ = s.accept()
    while True:
        d = c.recv(65536)
        if not d: break
        out.write(d); out.flush()
PY
nsenter --net=/run/netns/$ns python3 "$work/graphite.py" "$work/graphite.txt" &
pids+=($!)
sleep 0.3

block='<Plugin tcpconns>
  Cgroup "/tcpconns-sample.slice/web.service" "web"
  CgroupDepth 2
  Namespace "all"
</Plugin>'
{
  collectd_conf sample 3600
  echo "$block"
  cat <<'CONF'
LoadPlugin write_graphite
<Plugin write_graphite>
  <Node "local">
    Host "127.0.0.1"
    Port "2003"
    Prefix "collectd."
  </Node>
</Plugin>
CONF
} > "$work/collectd.conf"
nsenter --net=/run/netns/$ns /usr/sbin/collectd -f -C "$work/collectd.conf" > "$work/stdout" 2>&1 &
pid=$!
csv_settled "$work" "$pid"
kill "$pid"; wait "$pid" || true
echo
echo "$block" | sed 's/^/    /'
echo "  -> the values that are not 0 (series of this sample's cgroups and namespace):"
csv_last "$work" sample | grep -Ev ' (0|0\.000000)$' | grep -E 'cgroup|scope' | sort -V | column -t | sed 's/^/  /'
echo "  log lines of tcpconns:"
grep 'tcpconns plugin' "$work/collectd.log" | sed 's/^\[[^]]*\] //; s/^/  /'
echo "  csv files of the depth series for user@1000.service:"
(cd "$work/csv/sample" && ls -d tcpconns-user*/tcp_connections-ESTABLISHED-* | sed 's/^/  /')
echo "  write_graphite lines for it:"
grep -a 'user_1000' "$work/graphite.txt" | grep ESTABLISHED | cut -d' ' -f1-2 | sed 's/^/  /'
