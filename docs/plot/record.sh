#!/usr/bin/env bash
# Records the csv behind docs/connections-per-state.png: runs
# docs/plot/loadgen.py (a changing load: see there) in a network namespace of
# its own, with the real collectd reading it through this project's
# tcpconns.so every 2 s and writing csv, then keeps the csv files the plot
# uses in docs/plot/data/. Run as root after `cargo build --release --lib`;
# takes RECORD_SECONDS (default 300) seconds. Then: python3 docs/plot/plot.py
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${RECORD_SECONDS:-300}
. ci/lib.sh
ns=tcpconns-plot
scratch plot
fresh_netns "$ns"
# An "Elasticsearch" on 127.0.0.1:9200 that never answers: inside the
# namespace nftables drops every packet to that port, so connects hang in
# SYN_SENT. Nothing leaves the namespace's loopback.
command -v nft >/dev/null 2>&1 || {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nftables >/dev/null
}
ip netns exec "$ns" nft -f - <<'NFT'
table inet plot {
  chain out {
    type filter hook output priority 0; policy accept;
    tcp dport 9200 drop
  }
}
NFT
ip netns exec "$ns" sysctl -q -w net.ipv4.tcp_syn_retries=3
ip netns exec "$ns" sysctl -q -w net.ipv4.ip_local_port_range="40000 60999"

{ collectd_conf plot 2; cat <<CONF; } > "$work/collectd.conf"
<Plugin tcpconns>
  ListeningPorts true
  AllPortsSummary true
  RemotePort 5432
  RemotePort 9200
</Plugin>
CONF

: > "$work/phases.csv"
ip netns exec "$ns" python3 docs/plot/loadgen.py "$work/ready" "$work/phases.csv" "$seconds" &
pids+=($!)
for _ in $(seq 100); do [ -e "$work/ready" ] && break; sleep 0.1; done
ip netns exec "$ns" /usr/sbin/collectd -f -C "$work/collectd.conf" &
collectd_pid=$!
pids+=("$collectd_pid")
echo "recording for $seconds s (collectd config: $work/collectd.conf)"
wait "${pids[0]}"
sleep 3
kill "$collectd_pid"
wait "$collectd_pid" || true
grep "tcpconns plugin" "$work/collectd.log" || true

out=docs/plot/data
rm -rf "$out"
mkdir -p "$out"
cp "$work/phases.csv" "$out/phases.csv"
# The "all" series (every state, zeros included, as written) and the
# per-port files of the second panel.
cp -r "$work/csv/plot/tcpconns-all" "$out/"
for f in 8080-local/tcp_connections-ESTABLISHED 5432-remote/tcp_connections-ESTABLISHED \
  9200-remote/tcp_connections-SYN_SENT 8080-local/tcp_connections-CLOSE_WAIT; do
  mkdir -p "$out/tcpconns-${f%%/*}"
  cp "$work"/csv/plot/tcpconns-"$f"-* "$out/tcpconns-${f%%/*}/"
done
echo "kept in $out:"
find "$out" -type f | sort
