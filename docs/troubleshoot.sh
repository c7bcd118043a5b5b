#!/usr/bin/env bash
# Reproduces each case of docs/troubleshooting.md with the real collectd and
# prints what collectd says: netlink refused, "plugin not found", the
# PluginDir order, permissions. Run as root after `cargo build --release
# --lib`; it works in scratch directories and a network namespace of its own.
set -uo pipefail
shopt -s nullglob
cd "$(dirname "$0")/.." || exit 1
repo=$PWD
. ci/lib.sh
ns=tcpconns-trouble
scratch trouble
fresh_netns "$ns"
ip netns exec "$ns" python3 -c '
import socket, time
l = socket.socket(); l.bind(("127.0.0.1", 22)); l.listen()
c = socket.create_connection(("127.0.0.1", 22)); a, _ = l.accept()
time.sleep(120)' &
popid=$!
pids+=("$popid")
sleep 0.5

# case_ TITLE SECONDS [PREFIX_COMMAND...] < config: runs collectd for SECONDS
# (or until it exits) on the config read from stdin, with a logfile and a csv
# writer added in front (Interval $INTERVAL, default 1); prints the config's
# own lines, the log, the exit status, how many reads of tcpconns reached csv,
# and with MAPS=1 which tcpconns.so the running collectd has mapped.
case_() {
  local title=$1 seconds=$2; shift 2
  local dir
  dir=$(mktemp -d "$work/case.XXXXXX")
  chmod 777 "$dir"
  {
    cat <<HEAD
Hostname "trouble"
FQDNLookup false
Interval ${INTERVAL:-1}
BaseDir "$dir"
PIDFile "$dir/collectd.pid"
LoadPlugin logfile
<Plugin logfile>
  LogLevel "info"
  File "$dir/collectd.log"
  Timestamp false
</Plugin>
LoadPlugin csv
<Plugin csv>
  DataDir "$dir/csv"
  StoreRates false
</Plugin>
HEAD
    cat > "$dir/body"
    cat "$dir/body"
  } > "$dir/collectd.conf"
  echo
  echo "=== $title"
  sed 's/^/  | /' "$dir/body"
  ip netns exec "$ns" "$@" /usr/sbin/collectd -f -C "$dir/collectd.conf" > "$dir/out" 2>&1 &
  local pid=$! status
  for _ in $(seq $((seconds * 10))); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    if [ -n "${MAPS:-}" ]; then
      echo "  \$ grep tcpconns /proc/<collectd pid>/maps | awk '{print \$6}' | sort -u"
      grep tcpconns "/proc/$pid/maps" 2>/dev/null |
        awk '{print "  " $6}' | sort -u
    fi
    kill "$pid"
    wait "$pid"
    status="still running after ${seconds}s (stopped)"
  else
    wait "$pid"
    status="exited with status $?"
  fi
  sed 's/^/  log: /' "$dir/collectd.log" | grep -v 'Stopping\|Exiting normally\|logfile" successfully'
  grep -v 'logfile" successfully' "$dir/out" | sed 's/^/  stderr: /'
  echo "  collectd $status"
  local f=("$dir"/csv/trouble/tcpconns-22-local/tcp_connections-ESTABLISHED-*)
  if [ ${#f[@]} -gt 0 ]; then
    echo "  reads in csv: $(grep -vc epoch "${f[0]}"); 22-local ESTABLISHED:" \
      "$(grep -v epoch "${f[0]}" | cut -d, -f2 | xargs)"
  elif [ "${status#still}" != "$status" ]; then
    echo "  reads in csv: 0"
  fi
}

ours="PluginDir \"$work/plugins\"
LoadPlugin tcpconns
PluginDir \"/usr/lib/collectd\""
block='<Plugin tcpconns>
  LocalPort 22
</Plugin>'
body() { printf '%s\n' "$@"; }

echo "##### netlink refused (seccomp: socket(AF_NETLINK) fails with EAFNOSUPPORT), Interval 3600: one read, at start"
body "$ours" "$block" | INTERVAL=3600 case_ "ours, netlink refused" 3 python3 "$repo/docs/deny_netlink.py"
body "LoadPlugin tcpconns" "$block" |
  INTERVAL=3600 case_ "Debian's C plugin, netlink refused" 3 python3 "$repo/docs/deny_netlink.py"

echo
echo "##### plugin not found"
body 'PluginDir "/usr/local/lib/collectd-tcpconns"' "LoadPlugin tcpconns" 'PluginDir "/usr/lib/collectd"' "$block" |
  case_ "PluginDir names a directory that does not exist" 3
mkdir -p "$work/empty"
body "PluginDir \"$work/empty\"" "LoadPlugin tcpconns" 'PluginDir "/usr/lib/collectd"' "$block" |
  case_ "PluginDir exists, no tcpconns.so in it" 3
body "PluginDir \"$work/plugins\"" "LoadPlugin tcpconns" "$block" "LoadPlugin memory" |
  case_ "No PluginDir back-switch: later plugins are looked up in ours" 3
body 'Include "/usr/local/lib/collectd-tcpconns/load.conf"' "$block" |
  case_ "The snippet after the plugin was removed" 3

echo
echo "##### --side-by-side: which tcpconns.so is loaded?"
body "AutoLoadPlugin true" "$block" "$ours" |
  MAPS=1 case_ "AutoLoadPlugin true and the <Plugin tcpconns> block before the switch" 2

echo
echo "##### permissions"
body "$ours" "$block" | case_ "collectd as user nobody" 2 setpriv --reuid=nobody --regid=nogroup --clear-groups
chmod 600 "$work/plugins/tcpconns.so"
body "$ours" "$block" |
  case_ "tcpconns.so not readable by collectd's user (mode 600, collectd as nobody)" 3 \
    setpriv --reuid=nobody --regid=nogroup --clear-groups
chmod 644 "$work/plugins/tcpconns.so"
body "$ours" "<Plugin tcpconns>" "  LocalPort 22" "  Namespace \"/run/netns/$ns\" \"self\"" "</Plugin>" |
  case_ "Namespace as user nobody (setns needs CAP_SYS_ADMIN)" 6 \
    setpriv --reuid=nobody --regid=nogroup --clear-groups
echo
echo "=== ci/install.sh as a user who may not write /usr/lib/collectd"
setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME=/tmp "$repo/ci/install.sh" --no-build 2>&1 |
  sed 's/^/  /'
kill $popid 2>/dev/null
