# shellcheck shell=bash
# Shared by ci/demo.sh and the scripts under docs/ that run collectd on a
# population of their own: a scratch directory holding our tcpconns.so in
# plugins/, network namespaces made fresh, and one cleanup on exit that stops
# what was started (PIDs in `pids`) and removes both. Source it from the
# repository root after `cargo build --release --lib`.

pids=()
namespaces=()
work=""

# scratch TAG: $work becomes a new /tmp/tcpconns-TAG.XXXXXX with
# plugins/tcpconns.so (a copy: a rebuild during the run cannot change it).
scratch() {
  work=$(mktemp -d "/tmp/tcpconns-$1.XXXXXX")
  chmod 755 "$work"
  mkdir -p "$work/plugins"
  install -m 644 target/release/libtcpconns.so "$work/plugins/tcpconns.so"
}

# fresh_netns NAME: the network namespace NAME, made anew (one left by an
# earlier run goes first), loopback up; removed by cleanup.
fresh_netns() {
  ip netns del "$1" 2>/dev/null || true
  ip netns add "$1"
  ip -n "$1" link set lo up
  namespaces+=("$1")
}

cleanup() {
  trap - INT TERM EXIT
  local p n
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for n in "${namespaces[@]}"; do ip netns del "$n" 2>/dev/null || true; done
  if [ -n "$work" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT

# collectd_conf HOSTNAME INTERVAL [DIR]: the part of a collectd.conf that
# every run here shares, on stdout: state, PID file, log (info) and csv
# under DIR (default $work), one write thread, and our tcpconns.so loaded
# from $work/plugins (PluginDir switched back for anything loaded after it).
# The caller adds the <Plugin tcpconns> block.
collectd_conf() {
  local dir=${3:-$work}
  cat <<CONF
Hostname "$1"
FQDNLookup false
Interval $2
WriteThreads 1
BaseDir "$dir"
PIDFile "$dir/collectd.pid"
LoadPlugin logfile
<Plugin logfile>
  LogLevel "info"
  File "$dir/collectd.log"
</Plugin>
LoadPlugin csv
<Plugin csv>
  DataDir "$dir/csv"
  StoreRates false
</Plugin>
# Ours from its own directory; everything else from Debian's.
PluginDir "$work/plugins"
LoadPlugin tcpconns
PluginDir "/usr/lib/collectd"
CONF
}

# snippet_block FILE: the <Plugin tcpconns> block of a collectd.d/ snippet,
# without its comment lines, so scripts run exactly what is shipped.
snippet_block() {
  sed -n '/^<Plugin tcpconns>/,/^<\/Plugin>/p' "$1" | grep -v '^[[:space:]]*#'
}

# csv_settled DIR PID: waits (15 s at most) until the collectd with PID has
# written csv under DIR/csv and it has not changed for 1 s (the read is
# written out), or until that collectd has exited.
csv_settled() {
  local dir=$1 pid=$2 last="" now quiet=0
  for _ in $(seq 150); do
    sleep 0.1
    kill -0 "$pid" 2>/dev/null || return 0
    now=$(cat "$dir"/csv/*/*/* 2>/dev/null | wc -l)
    if [ "$now" != 0 ] && [ "$now" = "$last" ]; then
      quiet=$((quiet + 1))
      [ $quiet -ge 10 ] && return 0
    else
      quiet=0
    fi
    last=$now
  done
}

# csv_last DIR HOST: "series value" for every tcpconns csv file collectd
# wrote for HOST under DIR/csv, the series as `tcpconns-<instance>/<type>`
# and the value of its last row.
csv_last() {
  local f series
  for f in "$1"/csv/"$2"/tcpconns-*/*; do
    series=${f#"$1"/csv/"$2"/}; series=${series%-????-??-??}
    printf '%s %s\n' "$series" "$(tail -n 1 "$f" | cut -d, -f2)"
  done
}
