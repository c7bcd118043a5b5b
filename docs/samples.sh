#!/usr/bin/env bash
# Prints the real values behind docs/options.md: one fixed socket population
# in a network namespace of its own, and the real collectd (one read,
# csv writer) with this project's tcpconns.so on one <Plugin tcpconns> block
# per option. Run as root after `cargo build --release --lib`.
set -euo pipefail
shopt -s nullglob
cd "$(dirname "$0")/.."
. ci/lib.sh
ns=tcpconns-samples
ns2=tcpconns-samples-web
scratch samples
fresh_netns "$ns"
fresh_netns "$ns2"

# The population: sshd on 22 with 2 sessions, a dual-stack web server on 8080
# with 3 IPv4 and 1 IPv6 keep-alive clients and 1 finished request (TIME_WAIT),
# an idle mail server on 25, 2 connections to a database on 5432, and a
# listener on 7000 with backlog 7 whose 5 clients were never accepted.
# In the second namespace: a web server on 8080 with 2 clients.
cat > "$work/population.py" <<'PY'
import socket, sys, time
def listen(addr, port, family=socket.AF_INET, backlog=128):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port)); s.listen(backlog); return s
def pair(l, addr, port):
    c = socket.create_connection((addr, port)); a, _ = l.accept(); return c, a
keep = []
if sys.argv[2] == "main":
    ssh, web, smtp, db = listen("127.0.0.1", 22), listen("::", 8080, socket.AF_INET6), \
        listen("127.0.0.1", 25), listen("127.0.0.1", 5432)
    keep += [ssh, web, smtp, db]
    keep += [pair(ssh, "127.0.0.1", 22) for _ in range(2)]
    keep += [pair(web, "127.0.0.1", 8080) for _ in range(3)]
    keep += [pair(web, "::1", 8080)]
    keep += [pair(db, "127.0.0.1", 5432) for _ in range(2)]
    c, a = pair(web, "127.0.0.1", 8080); c.close(); a.recv(1); a.close()  # client: TIME_WAIT
    q = listen("127.0.0.1", 7000, backlog=7); keep.append(q)
    keep += [socket.create_connection(("127.0.0.1", 7000)) for _ in range(5)]
else:
    web = listen("127.0.0.1", 8080); keep.append(web)
    keep += [pair(web, "127.0.0.1", 8080) for _ in range(2)]
open(sys.argv[1], "w").close()
time.sleep(3600)
PY
ip netns exec "$ns" python3 "$work/population.py" "$work/ready1" main &
pids+=($!)
ip netns exec "$ns2" python3 "$work/population.py" "$work/ready2" web &
pids+=($!)
for _ in $(seq 100); do [ -e "$work/ready1" ] && [ -e "$work/ready2" ] && break; sleep 0.1; done
sleep 0.5
echo "The population (ss -tan in $ns):"
ip netns exec "$ns" ss -tan | sed 's/^/  /'

# run TITLE BLOCK: one read with this <Plugin tcpconns> block, then every
# value it dispatched that is not 0, and how many values there were.
run() {
  local title=$1 block=$2 dir
  dir=$(mktemp -d "$work/run.XXXXXX")
  { collectd_conf sample 3600 "$dir"; echo "$block"; } > "$dir/collectd.conf"
  ip netns exec "$ns" /usr/sbin/collectd -f -C "$dir/collectd.conf" > "$dir/stdout" 2>&1 &
  local pid=$!
  csv_settled "$dir" "$pid"
  kill "$pid" 2>/dev/null || true
  wait "$pid" || true
  echo
  echo "### $title"
  echo "$block" | sed 's/^/    /'
  local total=0 f series value
  for f in "$dir"/csv/sample/tcpconns-*/*; do
    total=$((total + 1))
  done
  echo "  -> $total values; those that are not 0:"
  for f in "$dir"/csv/sample/tcpconns-*/*; do
    series=${f#"$dir"/csv/sample/}; series=${series%-????-??-??}
    value=$(tail -n 1 "$f" | cut -d, -f2)
    printf '%s %.0f\n' "$series" "$value"
  done | awk '$2 != 0' | sort -V | column -t | sed 's/^/  /'
  grep -h "tcpconns plugin" "$dir/collectd.log" | grep -v "reading sockets from netlink" | sed 's/^/  log: /' || true
  if [ "$total" = 0 ]; then sed 's/^/  stderr: /' "$dir/stdout"; fi
}

run "No block at all (ListeningPorts is on by default)" ""
run "The blog post's block (collectd.d/tcpconns.conf)" "$(snippet_block collectd.d/tcpconns.conf)"
run "LocalPort and RemotePort" '<Plugin tcpconns>
  LocalPort 8080
  RemotePort 5432
</Plugin>'
run "AllPortsSummary (collectd.d/tcpconns-summary.conf)" '<Plugin tcpconns>
  AllPortsSummary true
</Plugin>'
run "ListeningPorts with AllPortsSummary" '<Plugin tcpconns>
  ListeningPorts true
  AllPortsSummary true
</Plugin>'
run "AcceptQueue" '<Plugin tcpconns>
  LocalPort 7000 8080
  AcceptQueue true
</Plugin>'
run "LocalNetwork and RemoteNetwork" '<Plugin tcpconns>
  LocalNetwork "::1/128"
  RemoteNetwork "127.0.0.0/8"
</Plugin>'
run "Namespace" "<Plugin tcpconns>
  LocalPort 8080
  Namespace \"/run/netns/$ns2\" \"web2\"
</Plugin>"
run "An invalid port" '<Plugin tcpconns>
  LocalPort "22abc"
</Plugin>'
