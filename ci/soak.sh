#!/usr/bin/env bash
# Soak test: runs the real collectd with our tcpconns.so at `Interval 0.1`
# for SOAK_READS reads over a churning socket population and checks that
# collectd's RSS stays flat after warm-up (max - min <= 1 MiB) and that its
# file descriptor count stays constant. Run as root:
#
#   ci/soak.sh                                  # 10,000 reads per variant, ~17 min each
#   SOAK_READS=300 SOAK_VARIANTS=procfs ci/soak.sh
#
# Variants (SOAK_VARIANTS, default "netlink procfs"): "netlink" reads
# through sock_diag as usual; "procfs" runs collectd with the LD_PRELOAD shim
# tests/shim/no_netlink.c refusing netlink, so every read comes from
# /proc/net/tcp{,6} (and netlink is retried now and then, as the plugin does).
#
# Per variant: a network namespace of its own (lo up, ephemeral ports
# 10000-60999, tcp_tw_reuse 0; with SOAK_OWN_EHASH=1, the default, its own
# TCP hash table, see make_ns), ci/soak/population.py inside it (7 base
# listeners on IPv4, IPv6 and dual-stack sockets, SOAK_BASE_CONNS stable
# connections, SOAK_CHURN_RATE connections opened and closed per second,
# leaving TIME_WAIT, FIN_WAIT2/CLOSE_WAIT and RSTs, and every
# SOAK_LISTEN_PERIOD seconds a listener on one of ports 7001-7008 started or
# stopped), and `collectd -f` there with Interval 0.1, ReadThreads 1,
# WriteThreads 1, logfile (info), csv (StoreRates false; one row per read in
# tcpconns-all/tcp_connections-LISTEN-* counts the reads) and tcpconns with
# ListeningPorts, AllPortsSummary, LocalPort, RemotePort and (SOAK_EXTRAS=1,
# the default) AcceptQueue, LocalNetwork, RemoteNetwork.
# ci/soak/sample.py samples every SOAK_SAMPLE_SECS seconds: reads so far,
# VmRSS and VmHWM, /proc/PID/fd entries, threads, CPU, the namespace's
# sockets (ss); ci/soak/report.py judges the samples after the first
# SOAK_WARMUP reads and the log, and prints the summary.
#
# Settings (environment, defaults): SOAK_READS 10000, SOAK_VARIANTS
# "netlink procfs", SOAK_WARMUP min(1000, SOAK_READS/10), SOAK_RSS_LIMIT_KIB
# 1024, SOAK_SAMPLE_SECS 5, SOAK_CHURN_RATE 200, SOAK_BASE_CONNS 300,
# SOAK_LISTEN_PERIOD 3, SOAK_EXTRAS 1, SOAK_OWN_EHASH 1, SOAK_KEEP_CSV 0,
# SOAK_OUT (a new directory). A variant that stops making reads for 30 s,
# or needs more than 0.4 s per read on average, fails.
#
# Output (kept; its path is printed): SOAK_OUT or /tmp/tcpconns-soak.XXXXXX
# with samples.tsv, summary.txt and per variant collectd.conf, collectd.log,
# population.log, fd listings, and csv/soak/tcpconns-all (the rest of the
# csv files is removed unless SOAK_KEEP_CSV=1: about 70 MB per variant).
#
# Exit status: 0 every variant passed, 1 a verdict failed, 2 bad settings,
# 130/143 interrupted. Ctrl-C stops collectd and the population, deletes the
# namespace and keeps what was sampled so far.
set -euo pipefail
cd "$(dirname "$0")/.."

reads=${SOAK_READS:-10000}
variants=${SOAK_VARIANTS:-netlink procfs}
default_warmup=$((reads / 10 < 1000 ? reads / 10 : 1000))
warmup=${SOAK_WARMUP:-$default_warmup}
rss_limit=${SOAK_RSS_LIMIT_KIB:-1024}
every=${SOAK_SAMPLE_SECS:-5}
churn=${SOAK_CHURN_RATE:-200}
base_conns=${SOAK_BASE_CONNS:-300}
listen_period=${SOAK_LISTEN_PERIOD:-3}
extras=${SOAK_EXTRAS:-1}
keep_csv=${SOAK_KEEP_CSV:-0}
own_ehash=${SOAK_OWN_EHASH:-1}
collectd=/usr/sbin/collectd

die() { echo "soak: $*" >&2; exit 2; }
for v in "$reads" "$rss_limit" "$every" "$churn" "$base_conns" "$listen_period"; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || die "not a positive whole number: '$v'"
done
[[ $warmup =~ ^[0-9]+$ ]] && [ "$warmup" -lt "$reads" ] || die "SOAK_WARMUP must be below SOAK_READS"
read -ra variant_list <<<"$variants"
for v in "${variant_list[@]}"; do
  case $v in netlink | procfs) ;; *) die "unknown variant '$v' (netlink, procfs)" ;; esac
done
[ ${#variant_list[@]} -gt 0 ] || die "SOAK_VARIANTS is empty"
[ "$(id -u)" = 0 ] || die "run as root (network namespaces)"

progress() { echo "[$(date +%T)] $*" >&2; }
t_start=$(date +%s)

# --- cleanup, also on Ctrl-C --------------------------------------------------
out=""
ns=""
parent_ns=""
pop_pid=""
cd_pid=""
sampler_pid=""
# shellcheck disable=SC2329 # called from cleanup (trap)
prune_csv() {
  [ "$keep_csv" = 1 ] || [ -z "$out" ] && return 0
  local d
  for d in "$out"/*/csv/soak; do
    [ -d "$d" ] || continue
    find "$d" -mindepth 1 -maxdepth 1 ! -name tcpconns-all -exec rm -rf {} +
  done
}
stop_pid() { # pid seconds: SIGTERM, then SIGKILL if still there after seconds
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
stop_variant() {
  stop_pid "$sampler_pid" 2
  sampler_pid=""
  stop_pid "$cd_pid" 15
  cd_pid=""
  stop_pid "$pop_pid" 5
  pop_pid=""
  if [ -n "$ns" ]; then ip netns del "$ns" 2>/dev/null || true; fi
  if [ -n "$parent_ns" ]; then ip netns del "$parent_ns" 2>/dev/null || true; fi
  ns=""
  parent_ns=""
}
# shellcheck disable=SC2329 # the EXIT trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_variant
  prune_csv
  if [ -n "$out" ]; then
    echo "soak: output kept in $out (samples: $out/samples.tsv)" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "soak: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

# --- build --------------------------------------------------------------------
ci/setup.sh
cargo build --release --lib
if [ -n "${SOAK_OUT:-}" ]; then
  out=$SOAK_OUT
  [ ! -e "$out" ] || [ -z "$(ls -A "$out")" ] || die "SOAK_OUT $out exists and is not empty"
  mkdir -p "$out"
else
  out=$(mktemp -d /tmp/tcpconns-soak.XXXXXX)
fi
out=$(cd "$out" && pwd)
mkdir -p "$out/plugins"
# A copy: other builds in target/ may replace the file during the run.
cp target/release/libtcpconns.so "$out/plugins/tcpconns.so"
# A .so built with collectd-plugin's `stub` feature drops every value.
nm -D "$out/plugins/tcpconns.so" | grep -q ' U plugin_dispatch_values' ||
  die "target/release/libtcpconns.so does not call plugin_dispatch_values (stub build?)"
shim=""
case " ${variant_list[*]} " in *" procfs "*)
  shim=$out/plugins/no_netlink.so
  cc -shared -fPIC -O2 -o "$shim" tests/shim/no_netlink.c -ldl ;;
esac
echo "soak: reads $reads per variant ($variants), warm-up $warmup, sample every ${every}s," \
  "population $base_conns base connections + $churn/s churn, listener toggle every ${listen_period}s;" \
  "output $out" >&2

# --- one variant ---------------------------------------------------------------
write_conf() { # variant dir
  local vdir=$2
  cat >"$vdir/collectd.conf" <<CONF
Hostname "soak"
FQDNLookup false
Interval 0.1
ReadThreads 1
WriteThreads 1
BaseDir "$vdir"
PIDFile "$vdir/collectd.pid"
LoadPlugin logfile
<Plugin logfile>
  LogLevel "info"
  File "$vdir/collectd.log"
  Timestamp true
  PrintSeverity true
</Plugin>
LoadPlugin csv
<Plugin csv>
  DataDir "$vdir/csv"
  StoreRates false
</Plugin>
PluginDir "$out/plugins"
LoadPlugin tcpconns
PluginDir "/usr/lib/collectd"
<Plugin tcpconns>
  ListeningPorts true
  AllPortsSummary true
  # 8080: steady churn; 7001: a listener that comes and goes.
  LocalPort 8080 7001
  RemotePort 5432
  RemotePort 9000
CONF
  if [ "$extras" = 1 ]; then
    cat >>"$vdir/collectd.conf" <<CONF
  AcceptQueue true
  LocalNetwork "127.0.0.0/8"
  RemoteNetwork "::1/128"
CONF
  fi
  echo "</Plugin>" >>"$vdir/collectd.conf"
}

# A namespace normally shares the host's TCP hash table (262,144 buckets
# here): every netlink dump and every /proc/net/tcp read walks all of it and
# every socket of every namespace on the machine (another job's 100,000
# connections made reading an empty /proc/net/tcp take 0.27 s). With
# SOAK_OWN_EHASH=1 (default) the namespace gets a table of its own (65,536
# buckets; also allows 32,768 TIME_WAIT sockets): it is made from a parent
# namespace whose net.ipv4.tcp_child_ehash_entries is set, so the host's
# setting is left alone. Falls back to a plain namespace where the kernel
# (< 6.1) lacks the setting.
make_ns() { # name
  local name=$1
  ip netns del "$name" 2>/dev/null || true
  if [ "$own_ehash" = 1 ]; then
    parent_ns=$name-parent
    ip netns del "$parent_ns" 2>/dev/null || true
    ip netns add "$parent_ns"
    if ip netns exec "$parent_ns" sysctl -q -w net.ipv4.tcp_child_ehash_entries=65536 2>/dev/null; then
      touch "/run/netns/$name"
      nsenter --net="/run/netns/$parent_ns" unshare --net="/run/netns/$name" true
      ip netns del "$parent_ns"
      parent_ns=""
      progress "namespace $name: TCP hash table of its own" \
        "($(ip netns exec "$name" sysctl -n net.ipv4.tcp_ehash_entries) buckets)"
      return 0
    fi
    ip netns del "$parent_ns"
    parent_ns=""
    progress "namespace $name: this kernel has no tcp_child_ehash_entries; sharing the host's TCP hash table"
  fi
  ip netns add "$name"
}

run_variant() { # variant; the sampler's status goes to VARIANT/sampler.rc
  local v=$1 vdir=$out/$1 i rc
  mkdir -p "$vdir"
  ns=tcpconns-soak-$$-$v
  make_ns "$ns"
  ip -n "$ns" link set lo up
  ip netns exec "$ns" sysctl -q -w net.ipv4.ip_local_port_range="10000 60999" net.ipv4.tcp_tw_reuse=0

  progress "[$v] starting the population in namespace $ns"
  ip netns exec "$ns" python3 ci/soak/population.py "$vdir/population.ready" \
    --base "$base_conns" --rate "$churn" --period "$listen_period" 2>"$vdir/population.log" &
  pop_pid=$!
  for ((i = 0; i < 300; i++)); do
    [ -e "$vdir/population.ready" ] && break
    kill -0 "$pop_pid" 2>/dev/null || { cat "$vdir/population.log" >&2; die "population did not start"; }
    sleep 0.1
  done
  [ -e "$vdir/population.ready" ] || die "population not ready after 30 s"

  write_conf "$v" "$vdir"
  local preload=()
  [ "$v" = procfs ] && preload=(env "LD_PRELOAD=$shim")
  progress "[$v] starting collectd (Interval 0.1) with $vdir/collectd.conf"
  # ip netns exec and env exec, so $! is collectd itself.
  ip netns exec "$ns" "${preload[@]}" "$collectd" -f -C "$vdir/collectd.conf" \
    >"$vdir/collectd.out" 2>&1 &
  cd_pid=$!
  for ((i = 0; i < 50; i++)); do
    [ "$(cat "/proc/$cd_pid/comm" 2>/dev/null)" = collectd ] && break
    sleep 0.1
  done
  if [ "$(cat "/proc/$cd_pid/comm" 2>/dev/null)" != collectd ]; then
    cat "$vdir/collectd.out" >&2
    die "collectd did not start"
  fi
  if [ "$v" = procfs ] && ! grep -q no_netlink.so "/proc/$cd_pid/maps"; then
    die "the no_netlink shim is not loaded in collectd"
  fi

  local deadline=$((reads * 4 / 10 + 300))
  python3 ci/soak/sample.py --variant "$v" --pid "$cd_pid" --pop-pid "$pop_pid" \
    --pop-log "$vdir/population.log" --ns "$ns" \
    --reads-glob "$vdir/csv/soak/tcpconns-all/tcp_connections-LISTEN-*" \
    --tsv "$out/samples.tsv" --fd-dump-prefix "$vdir/fds-" \
    --transient "$vdir/csv/" --transient "$vdir/collectd.log" \
    --target "$reads" --warmup "$warmup" --every "$every" --deadline "$deadline" &
  sampler_pid=$!
  rc=0
  wait "$sampler_pid" || rc=$?
  sampler_pid=""
  echo "$rc" >"$vdir/sampler.rc"
  if [ "$rc" = 3 ]; then
    progress "[$v] collectd exited early; its output and log:"
    tail -n 20 "$vdir/collectd.out" "$vdir/collectd.log" >&2 || true
  fi
  progress "[$v] stopping collectd and the population"
  stop_variant
}

for v in "${variant_list[@]}"; do
  run_variant "$v"
done

rc=0
python3 ci/soak/report.py "$out" "$warmup" "$reads" "$rss_limit" "${variant_list[@]}" |
  tee "$out/summary.txt" || rc=1
total=$(($(date +%s) - t_start))
echo "soak: total run time $((total / 60))m$((total % 60))s; samples in $out/samples.tsv" |
  tee -a "$out/summary.txt"
exit "$rc"
