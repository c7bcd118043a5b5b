#!/usr/bin/env bash
# Soak test: runs the real collectd with our tcpconns.so at `Interval 0.1`
# for SOAK_READS reads over a churning socket population and checks that
# collectd's RSS stays flat after warm-up (max - min <= 1 MiB) and that its
# file descriptor count stays constant. Run as root:
#
#   ci/soak.sh                                  # 10,000 reads per variant, ~17 min each
#   SOAK_READS=300 SOAK_VARIANTS=procfs ci/soak.sh
#   SOAK_READS=3000 SOAK_VARIANTS=cgroups ci/soak.sh   # ~6 min
#
# Variants (SOAK_VARIANTS, default "netlink procfs"): "netlink" reads
# through sock_diag as usual; "procfs" runs collectd with the LD_PRELOAD shim
# tests/shim/no_netlink.c refusing netlink, so every read comes from
# /proc/net/tcp{,6} (and netlink is retried now and then, as the plugin does).
# "cgroups" (only when asked for) is netlink plus `CgroupDepth 2`,
# `CgroupLimit 100` and `Namespace "all"` over churning namespaces and
# cgroups: the population's sockets belong to cgroups
# <cgroup2 mount>/tcpconns-soak-PID/svc0..svc3 (depth 2), and
# ci/soak/containers.py keeps SOAK_CONTAINERS (4) "containers" alive, each a
# process with a network namespace of its own (unshare -n, no /run/netns
# name) in a fresh cgroup tcpconns-soak-PID/ctr-<n>, listening with 2
# connections to itself; every SOAK_CONTAINER_PERIOD (5) seconds (on
# average, +-20 %) the oldest is killed, its cgroup removed and a new one
# started. collectd, the churner and the containers run in a PID and mount namespace of their own (with an
# empty /run/netns) so that `Namespace "all"` finds the containers and
# nothing else of the host (another job's namespaces would move the fd
# counts); collectd and the population are started with
# `nsenter --net=/run/netns/NAME`, not `ip netns exec`, which mounts a sysfs
# without the cgroup hierarchy. Its fd verdicts differ (see report.py): the
# count never exceeds the one at warm-up + SOAK_CONTAINERS + 2, and after
# the churner has stopped and collectd done 10 more reads (2 namespace
# scans) it is exactly the one measured before the first container.
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
# SOAK_CONTAINERS 4, SOAK_CONTAINER_PERIOD 5, SOAK_OUT (a new directory). A
# variant that stops making reads for 30 s, or needs more than 0.4 s per
# read on average, fails.
#
# Output (kept; its path is printed): SOAK_OUT or /tmp/tcpconns-soak.XXXXXX
# with samples.tsv, summary.txt and per variant collectd.conf, collectd.log,
# population.log, fd listings, and csv/soak/tcpconns-all (the rest of the
# csv files is removed unless SOAK_KEEP_CSV=1: about 70 MB per variant).
#
# Exit status: 0 every variant passed, 1 a verdict failed, 2 bad settings,
# 130/143 interrupted. Ctrl-C stops collectd and the population, deletes the
# namespace (and the containers and cgroups of the cgroups variant) and
# keeps what was sampled so far.
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/cgroup2.sh

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
containers=${SOAK_CONTAINERS:-4}
ctr_period=${SOAK_CONTAINER_PERIOD:-5}
collectd=/usr/sbin/collectd

die() { echo "soak: $*" >&2; exit 2; }
for v in "$reads" "$rss_limit" "$every" "$churn" "$base_conns" "$listen_period" "$containers" \
  "$ctr_period"; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || die "not a positive whole number: '$v'"
done
[[ $warmup =~ ^[0-9]+$ ]] && [ "$warmup" -lt "$reads" ] || die "SOAK_WARMUP must be below SOAK_READS"
read -ra variant_list <<<"$variants"
for v in "${variant_list[@]}"; do
  case $v in netlink | procfs | cgroups) ;; *) die "unknown variant '$v' (netlink, procfs, cgroups)" ;; esac
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
# cgroups variant: the launchers (nsenter) of collectd and the churner, the
# churner itself, the PID namespace's holder (unshare --kill-child: when it
# ends, everything in the namespace is killed) and the soak's cgroup.
cd_launcher=""
churner_launcher=""
churner_pid=""
world_pid=""
cg_parent=""
# shellcheck disable=SC2317,SC2329 # called from cleanup (trap)
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
remove_cgroups() { # kills what is left in the soak's cgroups (ours), removes them
  local d pid i
  [ -n "$cg_parent" ] && [ -d "$cg_parent" ] || return 0
  for ((i = 0; i < 50; i++)); do
    local left=0
    while read -r d; do
      while read -r pid; do
        [ -n "$pid" ] && { kill -KILL "$pid" 2>/dev/null || true; left=1; }
      done <"$d/cgroup.procs"
    done < <(find "$cg_parent" -depth -type d)
    [ "$left" = 0 ] && break
    sleep 0.1
  done
  find "$cg_parent" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  [ ! -d "$cg_parent" ] || echo "soak: could not remove $cg_parent" >&2
  cg_parent=""
}
stop_variant() {
  stop_pid "$sampler_pid" 2
  sampler_pid=""
  stop_pid "$churner_pid" 10
  churner_pid=""
  stop_pid "$churner_launcher" 2
  churner_launcher=""
  stop_pid "$cd_pid" 15
  cd_pid=""
  stop_pid "$cd_launcher" 2
  cd_launcher=""
  stop_pid "$world_pid" 5
  world_pid=""
  stop_pid "$pop_pid" 5
  pop_pid=""
  remove_cgroups
  if [ -n "$ns" ]; then ip netns del "$ns" 2>/dev/null || true; fi
  if [ -n "$parent_ns" ]; then ip netns del "$parent_ns" 2>/dev/null || true; fi
  ns=""
  parent_ns=""
}
# shellcheck disable=SC2317,SC2329 # the EXIT trap
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
  if [ "$1" = cgroups ]; then
    cat >>"$vdir/collectd.conf" <<CONF
  CgroupDepth 2
  CgroupLimit 100
  Namespace "all"
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

# ready FILE PID LOG WHAT SECS: waits until FILE exists; dies, showing LOG,
# if process PID ends first or SECS seconds pass.
ready() {
  local file=$1 pid=$2 log=$3 what=$4 secs=$5 i
  for ((i = 0; i < secs * 10; i++)); do
    [ -e "$file" ] && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "$what did not start"; }
    sleep 0.1
  done
  die "$what not ready after $secs s"
}

# cgroups variant: a PID and mount namespace (the "world") whose holder is in
# namespace $ns; its /proc shows only its own processes and its /run/netns
# is an empty tmpfs, so `Namespace "all"` sees only the soak's containers.
start_world() { # vdir
  # shellcheck disable=SC2016 # expanded by that sh
  nsenter --net="/run/netns/$ns" unshare --pid --fork --mount-proc --kill-child -- \
    sh -c 'for f in /run/netns/*; do umount -l "$f" 2>/dev/null; done
           umount -l /run/netns 2>/dev/null
           mount -t tmpfs soak-netns /run/netns && touch "$1" && exec sleep infinity' \
    sh "$1/world.ready" 2>"$1/world.log" &
  world_pid=$!
  ready "$1/world.ready" "$world_pid" "$1/world.log" "the PID namespace" 10
  world_init=$(pgrep -P "$world_pid" | head -n 1)
  [ -n "$world_init" ] || die "no init in the PID namespace"
}
# Runs a command in the world and in namespace $ns; sets launched (nsenter,
# our child) and launched_pid (the command, nsenter's child).
launch_in_world() { # log command...
  local log=$1 i
  shift
  nsenter --target "$world_init" --pid --mount --net="/run/netns/$ns" -- "$@" >"$log" 2>&1 &
  launched=$!
  launched_pid=""
  for ((i = 0; i < 50; i++)); do
    launched_pid=$(pgrep -P "$launched" | head -n 1) && [ -n "$launched_pid" ] && break
    sleep 0.1
  done
  [ -n "$launched_pid" ] || { cat "$log" >&2; die "could not start $1 in the PID namespace"; }
}

run_variant() { # variant; the sampler's status goes to VARIANT/sampler.rc
  local v=$1 vdir=$out/$1 i rc
  mkdir -p "$vdir"
  ns=tcpconns-soak-$$-$v
  make_ns "$ns"
  ip -n "$ns" link set lo up
  ip netns exec "$ns" sysctl -q -w net.ipv4.ip_local_port_range="10000 60999" net.ipv4.tcp_tw_reuse=0

  local pop_args=() enter=(ip netns exec "$ns")
  if [ "$v" = cgroups ]; then
    local mount
    mount=$(cgroup2_mount)
    [ -n "$mount" ] && [ -d "$mount" ] || die "no cgroup v2 hierarchy in /proc/self/mountinfo"
    cg_parent=$mount/tcpconns-soak-$$
    mkdir "$cg_parent" "$cg_parent"/svc{0,1,2,3}
    pop_args=(--cgroups "$(printf '%s,' "$cg_parent"/svc{0,1,2,3})")
    # Not `ip netns exec`: its fresh sysfs hides the cgroup hierarchy.
    enter=(nsenter --net="/run/netns/$ns")
    progress "[$v] cgroups in $cg_parent; starting a PID namespace for collectd and the containers"
    start_world "$vdir"
  fi

  progress "[$v] starting the population in namespace $ns"
  "${enter[@]}" python3 ci/soak/population.py "$vdir/population.ready" \
    --base "$base_conns" --rate "$churn" --period "$listen_period" "${pop_args[@]}" \
    2>"$vdir/population.log" &
  pop_pid=$!
  ready "$vdir/population.ready" "$pop_pid" "$vdir/population.log" "population" 30

  write_conf "$v" "$vdir"
  local preload=()
  [ "$v" = procfs ] && preload=(env "LD_PRELOAD=$shim")
  progress "[$v] starting collectd (Interval 0.1) with $vdir/collectd.conf"
  if [ "$v" = cgroups ]; then
    launch_in_world "$vdir/collectd.out" "$collectd" -f -C "$vdir/collectd.conf"
    cd_launcher=$launched
    cd_pid=$launched_pid
  else
    # ip netns exec and env exec, so $! is collectd itself.
    ip netns exec "$ns" "${preload[@]}" "$collectd" -f -C "$vdir/collectd.conf" \
      >"$vdir/collectd.out" 2>&1 &
    cd_pid=$!
  fi
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

  local reads_glob="$vdir/csv/soak/tcpconns-all/tcp_connections-LISTEN-*"
  local fd_args=(--pid "$cd_pid" --reads-glob "$reads_glob"
    --transient "$vdir/csv/" --transient "$vdir/collectd.log")
  local churner_args=()
  if [ "$v" = cgroups ]; then
    # The fd count with no container: after collectd's first reads (its
    # first namespace scan is at the first read), before the churner.
    python3 ci/soak/sample.py --settle 10 --settle-out "$vdir/fd-baseline.txt" "${fd_args[@]}" ||
      die "collectd made no reads before the containers"
    progress "[$v] fds with no container: $(cut -d' ' -f2 "$vdir/fd-baseline.txt");" \
      "starting $containers containers, one replaced every ${ctr_period}s"
    launch_in_world "$vdir/containers.out" python3 "$PWD/ci/soak/containers.py" \
      --parent "$cg_parent" --log "$vdir/containers.log" --ready "$vdir/containers.ready" \
      --count "$containers" --period "$ctr_period"
    churner_launcher=$launched
    churner_pid=$launched_pid
    ready "$vdir/containers.ready" "$churner_launcher" "$vdir/containers.out" \
      "the container churner" 30
    churner_args=(--churner-pid "$churner_pid")
  fi

  local deadline=$((reads * 4 / 10 + 300))
  python3 ci/soak/sample.py --variant "$v" "${fd_args[@]}" --pop-pid "$pop_pid" \
    --pop-log "$vdir/population.log" --ns "$ns" "${churner_args[@]}" \
    --tsv "$out/samples.tsv" --fd-dump-prefix "$vdir/fds-" \
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
  if [ "$v" = cgroups ] && [ "$rc" = 0 ]; then
    progress "[$v] stopping the churner (kills every container), then 10 more reads"
    stop_pid "$churner_pid" 10
    churner_pid=""
    stop_pid "$churner_launcher" 2
    churner_launcher=""
    local left
    left=$(find "$cg_parent" -mindepth 1 -maxdepth 1 -name 'ctr-*' | wc -l)
    [ "$left" = 0 ] || progress "[$v] $left container cgroups still there after the churner stopped"
    python3 ci/soak/sample.py --settle 10 --settle-out "$vdir/fd-after.txt" "${fd_args[@]}" ||
      progress "[$v] collectd made no reads after the containers"
    [ -e "$vdir/fd-after.txt" ] &&
      progress "[$v] fds after the containers: $(cut -d' ' -f2 "$vdir/fd-after.txt")"
  fi
  progress "[$v] stopping collectd and the population"
  stop_variant
}

for v in "${variant_list[@]}"; do
  run_variant "$v"
done

rc=0
SOAK_CONTAINERS=$containers \
  python3 ci/soak/report.py "$out" "$warmup" "$reads" "$rss_limit" "${variant_list[@]}" |
  tee "$out/summary.txt" || rc=1
total=$(($(date +%s) - t_start))
echo "soak: total run time $((total / 60))m$((total % 60))s; samples in $out/samples.tsv" |
  tee -a "$out/summary.txt"
exit "$rc"
