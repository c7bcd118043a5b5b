#!/usr/bin/env bash
# Benchmark: CPU and peak memory of one tcpconns read, Debian's C plugin
# (/usr/lib/collectd/tcpconns.so) against ours, on large loopback socket
# populations in a network namespace of its own. Run as root:
#
#   ci/bench.sh                              # N = 10000 50000 100000, 11 reps
#   BENCH_SIZES="10000" BENCH_REPS=3 ci/bench.sh
#
# Per N it builds one population (N established connections = 2N sockets,
# half IPv4, half IPv6, on listeners 80, 443, 5432, 6379) and measures three
# cases on it: "base"; "1k-listen" (plus 1,000 idle listening ports
# 20000-20999); "timewait" (plus BENCH_TIMEWAIT TIME_WAIT sockets, default
# 4000). The connections are spread over 10 cgroups v2 made for the run
# (<cgroup2 mount>/tcpconns-bench-PID/c0..c9, a tenth in each, both ends;
# the 1k-listen and timewait processes sit in tcpconns-bench-PID itself).
# Each case runs five tcpconns configs: "default" (empty block:
# ListeningPorts), "summary" (AllPortsSummary true), "ports" (LocalPort 5432,
# RemotePort 6379), "health" ("ports" with ConnectionHealth true, for ours;
# the C plugin, which has no such key, runs "ports"), "cgroups" ("summary"
# with CgroupDepth 2 and CgroupLimit 10, for ours: one series per c<i>; the
# C plugin runs "summary"). Without a cgroup v2 hierarchy there are no
# cgroups and no "cgroups" config. Each measurement is a whole `collectd -T` (init, one read
# of every plugin, exit) with the C plugin, with ours, and without tcpconns
# (baseline, subtracted); the three are interleaved and repeated
# BENCH_REPS times, medians reported. Each is run twice: once for CPU,
# once traced for its exact peak RSS (ci/bench/runstat.c). Before
# measuring, one collectd -f run per config and plugin writes csv and its
# values are checked against the population. Numbers are printed, never
# asserted; the script fails only if something did not work (population,
# netlink, values).
#
# The goals it reports against (ci/bench/report.py; docs/benchmark.md), at
# 100k connections: CPU per read ours/C <= 0.50 for `ports`, <= 0.95 for
# `default` (<= 0.25 with 1,000 listening ports), <= 1.0 for `summary`;
# ours with ConnectionHealth <= 1.3 x ours without (`health` / `ports`);
# ours with per-cgroup series <= 1.2 x ours without (`cgroups` / `summary`);
# memory: collectd's peak RSS with ours minus with the C plugin <= 512 KiB,
# the same at every N (nothing of ours grows with the socket count).
#
# Tables go to stdout, progress to stderr. Ctrl-C cleans up (namespace,
# processes, cgroups, temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."

sizes=${BENCH_SIZES:-10000 50000 100000}
reps=${BENCH_REPS:-11}
tw_count=${BENCH_TIMEWAIT:-4000}
for v in $sizes $reps $tw_count; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "bench: not a positive number: $v" >&2; exit 2; }
done
configs=(default summary ports health)
# The cgroup v2 hierarchy (the mount of its root), where the population's
# cgroups are made; none: no cgroups, no `cgroups` config.
. ci/cgroup2.sh
cg_mount=$(cgroup2_mount)
cg_count=10
cg_parent=""
listen_first=20000
listen_count=1000
tw_port=8080
# A TIME_WAIT socket lives 60 s (TCP_TIMEWAIT_LEN, not tunable). A step in
# the timewait case only starts if it can end this many seconds after the
# batch was made; otherwise the old batch is left to expire and a new one
# made, so that every timewait number sees exactly BENCH_TIMEWAIT of them.
tw_safe=50
collectd=/usr/sbin/collectd
bench_t0=$(date +%s.%N)

progress() { echo "[$(date +%T)] $*" >&2; }
elapsed() { awk -v now="$(date +%s.%N)" -v t0="$1" 'BEGIN { printf "%.3f", now - t0 }'; }  # seconds since $1 (date +%s.%N)

# --- cleanup, also on Ctrl-C ------------------------------------------------
ns=""
work=""
pop_pid=""
listen_pid=""
check_pid=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # Background children ignore SIGINT (non-interactive shell), so they are
  # stopped here explicitly, by the PIDs recorded when they were started.
  for pid in $check_pid $listen_pid $pop_pid; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in $check_pid $listen_pid $pop_pid; do
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "$ns" ]; then ip netns del "$ns" 2>/dev/null || true; fi
  # The cgroups once their processes are gone: the population's workers
  # die with it (SIGKILL on the parent's death), a little after it.
  if [ -n "$cg_parent" ]; then remove_cgroups; fi
  if [ -n "$work" ]; then rm -rf "$work"; fi
  exit "$rc"
}
remove_cgroups() {
  local i t0=$SECONDS dir
  for i in $(seq 0 $((cg_count - 1))) ""; do
    dir=$cg_parent${i:+/c$i}
    [ -d "$dir" ] || continue
    until rmdir "$dir" 2>/dev/null; do
      if (( SECONDS - t0 > 10 )); then
        echo "bench: cannot remove cgroup $dir: $(tr '\n' ' ' < "$dir/cgroup.procs")" >&2
        return 0
      fi
      sleep 0.1
    done
  done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- cgroups ------------------------------------------------------------------
if [ -n "$cg_mount" ]; then
  cg_parent=$cg_mount/tcpconns-bench-$$
  mkdir "$cg_parent"
  for i in $(seq 0 $((cg_count - 1))); do mkdir "$cg_parent/c$i"; done
  configs+=(cgroups)
fi

# --- build ------------------------------------------------------------------
ci/setup.sh
cargo build --release --lib
work=$(mktemp -d /tmp/tcpconns-bench.XXXXXX)
mkdir -p "$work/plugins" "$work/conf" "$work/check" "$work/state"
# A copy: the other builds in target/ may replace the file during the run.
cp target/release/libtcpconns.so "$work/plugins/tcpconns.so"
# The kernel alone: one dump with the plugin's request, outside collectd.
cargo build --release --example bare_dump
cp target/release/examples/bare_dump "$work/bare_dump"
# collectd is started through this small program so that its peak RSS and
# CPU come out exactly (ci/bench/runstat.c says why). Static when libc.a is
# there: then it maps next to nothing before forking collectd.
cc -O2 -static -o "$work/runstat" ci/bench/runstat.c 2>/dev/null ||
  cc -O2 -o "$work/runstat" ci/bench/runstat.c
raw=$work/raw.tsv
: > "$raw"
: > "$work/timings.tsv"
: > "$work/checks.txt"
: > "$work/notes.txt"
: > "$work/daemon.tsv"
timing() { printf '%s\t%s\t%.1f\n' "$1" "$2" "$3" >> "$work/timings.tsv"; }
note() { echo "$*" >> "$work/notes.txt"; progress "NOTE: $*"; }

# --- machine ----------------------------------------------------------------
echo "tcpconns benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "nproc:     $(nproc)"
echo "kernel:    $(uname -r)"
echo "cpu:       $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "memory:    $(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
echo "collectd:  $("$collectd" -h | grep -m1 '^collectd ')"
echo "rustc:     $(rustc --version 2>/dev/null || echo unknown)"
echo "ours:      $(sha256sum "$work/plugins/tcpconns.so" | cut -c1-16), $(stat -c %s "$work/plugins/tcpconns.so") bytes," \
  "tree $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock build.rs examples ci/bench.sh ci/bench 2>/dev/null || echo ' + uncommitted changes to what is measured or measures')"
echo "C plugin:  /usr/lib/collectd/tcpconns.so ($(dpkg-query -W -f '${Package} ${Version}' collectd-core 2>/dev/null))"
# CPU time is per process, but a busy machine still moves it (caches,
# frequency): say how busy this one was.
echo "load:      $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) at start"
echo "sizes:     $sizes; reps: $reps; TIME_WAIT sockets: $tw_count; RLIMIT_NOFILE hard: $(ulimit -Hn)"
if [ -n "$cg_parent" ]; then
  echo "cgroups:   $cg_parent/c0..c$((cg_count - 1)), a tenth of the connections in each"
else
  echo "cgroups:   none (no cgroup v2 hierarchy mounted): no cgroups config"
fi
echo

# --- collectd configs ---------------------------------------------------------
# Every run reads with the same collectd setup; only the tcpconns part
# differs. conf_file FILE VARIANT CONFIG [CSVDIR]
conf_file() {
  local file=$1 variant=$2 config=$3 csv=${4:-}
  local stem=${file%.conf}
  {
    cat <<EOF
Hostname "bench"
FQDNLookup false
Interval 3600
BaseDir "$work/state"
PIDFile "$stem.pid"
WriteThreads 1
LoadPlugin logfile
<Plugin logfile>
  LogLevel "info"
  File "$stem.log"
</Plugin>
# A trivial read plugin in every variant, the baseline included: without any
# read callback collectd -T takes a shorter path ("No read-functions are
# registered", no write threads) and the baseline would not cover everything
# the tcpconns runs pay for apart from the plugin itself.
LoadPlugin load
EOF
    if [ -n "$csv" ]; then
      printf 'LoadPlugin csv\n<Plugin csv>\n  DataDir "%s"\n  StoreRates false\n</Plugin>\n' "$csv"
    fi
    case $variant in
      c) echo 'LoadPlugin tcpconns' ;;  # from collectd's own PluginDir
      ours) printf 'PluginDir "%s"\nLoadPlugin tcpconns\nPluginDir "/usr/lib/collectd"\n' "$work/plugins" ;;
      none) return 0 ;;
    esac
    echo '<Plugin tcpconns>'
    case $config in
      default) ;;  # empty: ListeningPorts is on when nothing else is selected
      summary) echo '  AllPortsSummary true' ;;
      ports) printf '  LocalPort 5432\n  RemotePort 6379\n' ;;
      # `ports` with ConnectionHealth; the C plugin does not know the key,
      # so its variant runs the plain `ports` block.
      health)
        printf '  LocalPort 5432\n  RemotePort 6379\n'
        if [ "$variant" = ours ]; then echo '  ConnectionHealth true'; fi
        ;;
      # `summary` with one series per cgroup 2 levels down (c0..c9); the C
      # plugin has no such keys: its variant runs the plain `summary` block.
      cgroups)
        echo '  AllPortsSummary true'
        if [ "$variant" = ours ]; then printf '  CgroupDepth 2\n  CgroupLimit %d\n' "$cg_count"; fi
        ;;
    esac
    echo '</Plugin>'
  } > "$file"
}
for config in "${configs[@]}"; do
  for variant in c ours none; do
    conf_file "$work/conf/$config-$variant.conf" "$variant" "$config"
  done
  for variant in c ours; do
    conf_file "$work/check/$config-$variant.conf" "$variant" "$config" "$work/check/$config-$variant/csv"
  done
done

# --- namespace and populations ------------------------------------------------
# Foreground commands only: a function run with & is a subshell, and $! would
# be that subshell, not the process to kill later. Background processes are
# started with `nsenter` directly (it execs: $! is the process itself).
nsx() { ip netns exec "$ns" "$@"; }
# What must see the cgroup hierarchy (the population, which joins its
# cgroups, and every collectd) enters only the network namespace:
# `ip netns exec` also mounts a fresh sysfs, which hides /sys/fs/cgroup.
nsn() { nsenter --net="/run/netns/$ns" "$@"; }

make_namespace() {
  ns=tcpconns-bench-$$-$1
  ip netns add "$ns"
  nsx ip link set lo up
  # Ports for the clients: the full range, minus the ports the population
  # listens on later (a client already bound to 20123 would make bind()
  # fail, and would be counted as that port's connection too). No reuse of
  # TIME_WAIT ports, so the TIME_WAIT count stays what was made. A long
  # accept queue, so batches of connects never overflow it.
  nsx sysctl -qw net.ipv4.ip_local_port_range="1024 65535" \
    net.ipv4.ip_local_reserved_ports="5432,6379,$tw_port,$listen_first-$((listen_first + listen_count - 1))" \
    net.ipv4.tcp_tw_reuse=0 net.core.somaxconn=65535
}

delete_namespace() {
  ip netns del "$ns"
  ns=""
}

# wait_ready FILE PID TIMEOUT: the population process writes FILE when done.
wait_ready() {
  local file=$1 pid=$2 timeout=$3 t0=$SECONDS
  until [ -e "$file" ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "bench: population process $pid died" >&2; exit 1
    fi
    if (( SECONDS - t0 > timeout )); then
      echo "bench: population not ready after $timeout s" >&2; exit 1
    fi
    sleep 0.2
  done
}

# sockets: "COUNT TRANSIENT HISTOGRAM" of the namespace's TCP sockets.
# TRANSIENT counts states other than LISTEN, ESTAB and TIME-WAIT.
sockets() {
  nsx ss -Htan | awk '{ n++; s[$1]++ }
    END { h = ""; for (k in s) h = h k "=" s[k] " ";
          print n + 0, n - s["LISTEN"] - s["ESTAB"] - s["TIME-WAIT"], h }'
}

# wait_settled WANT: until `ss -Htan | wc -l` is WANT with no socket in a
# transient state, twice in a row (each look at 200k sockets takes ~0.5 s).
wait_settled() {
  local want=$1 t0=$SECONDS count transient hist prev=-1
  while :; do
    read -r count transient hist < <(sockets)
    if (( count == want && transient == 0 && prev == count )); then
      progress "  sockets settled: $count ($hist)"
      return 0
    fi
    if (( SECONDS - t0 > 120 )); then
      echo "bench: expected $want settled sockets, have $count ($hist)" >&2; exit 1
    fi
    prev=$count
    sleep 0.3
  done
}

timewait_now() { nsx ss -Htan state time-wait | wc -l; }

# ensure_timewait SECONDS: before a step of the timewait case that may take
# SECONDS, make sure exactly tw_count TIME_WAIT sockets will exist until its
# end (see tw_safe).
tw_born=""
ensure_timewait() {
  local need=$1 t
  if [ -n "$tw_born" ] && (( $(date +%s) - tw_born + need < tw_safe )); then
    return 0
  fi
  if [ -n "$tw_born" ]; then
    t=$(date +%s.%N)
    progress "  TIME_WAIT batch is $(( $(date +%s) - tw_born )) s old, next step ~$need s: waiting for it to expire"
    while (( $(timewait_now) > 0 )); do sleep 1; done
    timing "$n" "timewait: wait for old batch to expire" "$(elapsed "$t")"
  fi
  t=$(date +%s.%N)
  tw_born=$(date +%s)  # before the first socket enters TIME_WAIT
  rm -f "$work/tw.json"
  nsn python3 ci/bench/population.py timewait "$tw_port" "$tw_count" "$work/tw.json" ${cg_parent:+--cgroup "$cg_parent"}
  wait_settled $((base_sockets + tw_count))
  timing "$n" "timewait: make $tw_count TIME_WAIT + settle" "$(elapsed "$t")"
}

# --- value checks (collectd -f + csv) -------------------------------------------
# check_values CASE CONFIG VARIANT [check.py options]: one real read through
# collectd -f (Interval 3600: the read happens at start) with the csv writer;
# check.py polls the files until stable and compares every value.
check_values() {
  local case=$1 config=$2 variant=$3 stem result ok=1 t0 t1 checked stopped want=$2
  shift 3
  # The C plugin's `cgroups` block is the `summary` one (see conf_file).
  if [ "$config" = cgroups ] && [ "$variant" = c ]; then want=summary; fi
  t0=$(date +%s.%N)
  stem=$work/check/$config-$variant
  rm -rf "$stem/csv" "$stem.log"
  nsenter --net="/run/netns/$ns" "$collectd" -f -C "$stem.conf" > "$stem.out" 2>&1 &
  check_pid=$!
  result=$(python3 ci/bench/check.py "$stem/csv" "$want" "$work/pop.json" "$@") || ok=0
  checked=$(elapsed "$t0")
  # What a long-running collectd holds after its first read (the measured
  # rounds below are one-shot processes): its RSS counted page by page
  # (smaps_rollup), not VmHWM, whose high-water part comes from the kernel's
  # approximate per-CPU counters (ci/bench/runstat.c).
  printf '%s\t%s\t%s\t%s\t%s\n' "$case" "$n" "$config" "$variant" \
    "$(awk '/^Rss:/ { print $2 }' "/proc/$check_pid/smaps_rollup" 2>/dev/null || echo 0)" >> "$work/daemon.tsv"
  t1=$(date +%s.%N)
  kill "$check_pid" 2>/dev/null || true
  wait "$check_pid" || true
  check_pid=""
  stopped=$(elapsed "$t1")
  if ! grep -q -e "Reading from netlink succeeded" -e "reading sockets from netlink" "$stem.log"; then
    result="$result; no netlink message in the log"; ok=0
  fi
  printf '%-9s N=%-6s %-7s %-4s %s\n' "$case" "$n" "$config" "$variant" "$result" >> "$work/checks.txt"
  progress "  values $config/$variant: $result [checked after ${checked%?} s, collectd stopped ${stopped%?} s later]"
  if (( ! ok )); then echo "FAIL" >> "$work/checks.failed"; fi
}

# --- one case: value checks, then the measured rounds -----------------------------
# run_case CASE [check.py options]
round_secs=5  # estimate until a round has been timed
run_case() {
  local case=$1 t config variant rep tw r0 count hist
  shift
  progress "case $case, N=$n"
  t=$(date +%s.%N)
  for config in "${configs[@]}"; do
    for variant in c ours; do
      # One value check takes 1-2 s (up to ~10 s with 1,000 listening
      # ports, not a timewait case): 15 s is room enough.
      if [ "$case" = timewait ]; then ensure_timewait 15; fi
      check_values "$case" "$config" "$variant" "$@"
    done
  done
  timing "$n" "$case: value checks ($((2 * ${#configs[@]})) collectd -f runs)" "$(elapsed "$t")"
  t=$(date +%s.%N)
  for rep in $(seq 1 "$reps"); do
    if [ "$case" = timewait ]; then ensure_timewait $((round_secs + 2)); fi
    r0=$(date +%s.%N)
    nsn python3 ci/bench/measure.py "$work/runstat" "$work/bare_dump" "$work/conf" "$rep" "$case" "$n" "${configs[@]}" >> "$raw"
    round_secs=$(awk -v s="$(elapsed "$r0")" 'BEGIN { printf "%d", s + 1 }')
    if [ "$case" = timewait ]; then
      tw=$(timewait_now)
      if (( tw != tw_count )); then
        note "N=$n timewait round $rep ended with $tw TIME_WAIT sockets, not $tw_count"
      fi
    fi
  done
  timing "$n" "$case: $reps rounds x ${#configs[@]} configs x 3 variants (collectd -T)" "$(elapsed "$t")"
  # The population must not have moved while it was measured.
  read -r count _ hist < <(sockets)
  progress "  after measuring: $count sockets ($hist)"
}

# --- per size ------------------------------------------------------------------
for n in $sizes; do
  progress "=== N=$n: building the population ($((2 * n)) connection sockets)"
  make_namespace "$n"
  t=$(date +%s.%N)
  rm -f "$work/pop.json"
  # A tenth of the connections in each cgroup (both ends; the listeners
  # end up in the last).
  cg_dirs=()
  if [ -n "$cg_parent" ]; then
    for i in $(seq 0 $((cg_count - 1))); do cg_dirs+=("$cg_parent/c$i"); done
  fi
  nsenter --net="/run/netns/$ns" python3 ci/bench/population.py base "$n" "$work/pop.json" "${cg_dirs[@]}" &
  pop_pid=$!
  wait_ready "$work/pop.json" "$pop_pid" 1200
  timing "$n" "base population: build" "$(elapsed "$t")"
  t=$(date +%s.%N)
  base_sockets=$((2 * n + 8))
  wait_settled "$base_sockets"
  timing "$n" "base population: settle check" "$(elapsed "$t")"
  progress "  $(cat "$work/pop.json")"

  run_case base

  t=$(date +%s.%N)
  rm -f "$work/listen.json"
  nsenter --net="/run/netns/$ns" python3 ci/bench/population.py listen "$listen_first" "$listen_count" "$work/listen.json" \
    ${cg_parent:+--cgroup "$cg_parent"} &
  listen_pid=$!
  wait_ready "$work/listen.json" "$listen_pid" 120
  wait_settled $((base_sockets + listen_count))
  timing "$n" "1k-listen: open $listen_count listeners + settle" "$(elapsed "$t")"
  run_case 1k-listen --listen "$listen_first" "$listen_count"
  kill "$listen_pid"; wait "$listen_pid" || true; listen_pid=""
  wait_settled "$base_sockets"

  tw_born=""
  run_case timewait --timewait "$tw_count"

  t=$(date +%s.%N)
  kill "$pop_pid"; wait "$pop_pid" || true; pop_pid=""
  delete_namespace
  timing "$n" "teardown" "$(elapsed "$t")"
done

# --- report ----------------------------------------------------------------------
python3 ci/bench/report.py "$raw"
echo
echo "RSS of the long-running daemon (collectd -f with the csv writer, smaps_rollup Rss after its first read, KiB):"
echo
awk -F'\t' '{ k = $1 "\t" $2 "\t" $3; hwm[k, $4] = $5; if (!(k in seen)) { seen[k] = 1; order[++n] = k } }
  END {
    printf "%-9s  %6s  %-7s  %8s  %8s  %10s\n", "case", "N", "config", "C KiB", "ours KiB", "ours-C KiB"
    printf "%-9s  %6s  %-7s  %8s  %8s  %10s\n", "---------", "------", "-------", "--------", "--------", "----------"
    for (i = 1; i <= n; i++) {
      split(order[i], f, "\t"); c = hwm[order[i], "c"]; o = hwm[order[i], "ours"]
      printf "%-9s  %6s  %-7s  %8d  %8d  %10s\n", f[1], f[2], f[3], c, o, (c > 0 && o > 0 ? sprintf("%+d", o - c) : "n/a")
    }
  }' "$work/daemon.tsv"
echo
echo "Value checks (one collectd -f read per case, config and plugin, csv compared with the population):"
cat "$work/checks.txt"
echo
echo "Timings (seconds):"
awk -F'\t' '{ printf "  N=%-7s %-62s %7.1f\n", $1, $2, $3 }' "$work/timings.tsv"
printf '  total %.0f s\n' "$(elapsed "$bench_t0")"
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min)"
if [ -s "$work/notes.txt" ]; then
  echo
  echo "Notes:"
  sed 's/^/  /' "$work/notes.txt"
fi
if [ -e "$work/checks.failed" ]; then
  echo "bench: $(wc -l < "$work/checks.failed") value check(s) failed: the numbers above are not trustworthy" >&2
  exit 1
fi
