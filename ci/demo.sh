#!/usr/bin/env bash
# Sets up (apt packages, release build), starts a small changing socket
# population in a network namespace of its own, runs the real collectd with
# our tcpconns.so on an embedded config there, and prints what the plugin
# dispatches each interval as a table. Ctrl-C stops everything cleanly;
# DEMO_READS=N stops after N reads. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
ci/setup.sh
cargo build --release --lib --quiet

. ci/lib.sh
ns=tcpconns-demo
scratch demo
trap 'cleanup; echo "demo stopped"' INT TERM EXIT
fresh_netns "$ns"

# The population: an "ssh" listener with 2 sessions, a dual-stack web server
# on 8080 whose client count rises and falls (closed ones leave TIME_WAIT),
# and an application holding 3 connections to a database on 5432.
cat > "$work/population.py" <<'PY'
import socket, time, itertools
def listen(addr, port, family=socket.AF_INET):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port)); s.listen(128); return s
keep = [listen("127.0.0.1", 22), listen("::", 8080, socket.AF_INET6), listen("127.0.0.1", 5432)]
def connect(port, addr="127.0.0.1"):
    c = socket.create_connection((addr, port))
    a, _ = keep[[22, 8080, 5432].index(port)].accept()
    return c, a
sessions = [connect(22) for _ in range(2)] + [connect(5432) for _ in range(3)]
web = []
open(__import__("sys").argv[1], "w").close()  # population is up
for step in itertools.count():
    target = [4, 8, 12, 6, 2, 10][step % 6]
    while len(web) < target:
        web.append(connect(8080, "127.0.0.1" if len(web) % 2 else "::1"))
    while len(web) > target:
        c, a = web.pop()
        c.close(); a.close()
    time.sleep(2)
PY
ip netns exec "$ns" python3 "$work/population.py" "$work/ready" &
pids+=($!)
for _ in $(seq 100); do [ -e "$work/ready" ] && break; sleep 0.1; done

{ collectd_conf demo 2; cat <<CONF; } > "$work/collectd.conf"
<Plugin tcpconns>
  ListeningPorts true
  AllPortsSummary true
  RemotePort 5432
</Plugin>
CONF
echo "collectd config: $work/collectd.conf (tcpconns block: ListeningPorts true, AllPortsSummary true, RemotePort 5432)"
ip netns exec "$ns" /usr/sbin/collectd -f -C "$work/collectd.conf" &
pids+=($!)

# Print each read once: the newest row of every csv file, zeros left out.
last=""
reads=0
logged=0
while :; do
  sleep 0.5
  newest=$(cat "$work"/csv/demo/tcpconns-all/tcp_connections-LISTEN-* 2>/dev/null | tail -n 1 | cut -d, -f1)
  [ -n "$newest" ] && [ "$newest" != "$last" ] || continue
  sleep 0.3 # let the rest of this read reach the csv files
  last=$newest
  reads=$((reads + 1))
  lines=$(grep -c "tcpconns plugin" "$work/collectd.log" || true)
  grep -h "tcpconns plugin" "$work/collectd.log" | tail -n +$((logged + 1)) | sed 's/^/log: /'
  logged=$lines
  printf '\n--- read %d at %s (states with 0 connections not shown) ---\n' \
    "$reads" "$(date -d "@${newest%.*}" +%T)"
  # The plugin instance is <port>-local, <port>-remote or all.
  for f in "$work"/csv/demo/tcpconns-*/tcp_connections-*; do
    series=${f%/*}; series=${series##*/tcpconns-}
    case $series in
      all) port=all direction=both ;;
      *) port=${series%-*} direction=${series##*-} ;;
    esac
    state=${f##*/tcp_connections-}; state=${state%-????-??-??}
    value=$(tail -n 1 "$f" | cut -d, -f2)
    printf '%s %s %s %.0f\n' "$port" "$direction" "$state" "$value"
  done | awk '$4 != 0' | sort -k1,1V -k2,2 -k3,3 |
    { echo "PORT DIRECTION STATE COUNT"; cat; } | column -t
  if [ -n "${DEMO_READS:-}" ] && [ "$reads" -ge "$DEMO_READS" ]; then
    break
  fi
done
