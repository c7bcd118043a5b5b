#!/usr/bin/env bash
# The real packets behind docs/logstash.md: collectd with this project's
# tcpconns.so (the blog post's block) and the ready network snippet
# (collectd.d/network.conf: UDP to 127.0.0.1:25826) in a network namespace of
# its own, with docs/logstash/codec_fields.py listening on that port and
# printing each tcpconns value as the Logstash collectd codec's event.
# Run as root after `cargo build --release --lib`; takes about 25 s.
set -euo pipefail
cd "$(dirname "$0")/../.."
. ci/lib.sh
ns=tcpconns-logstash
scratch logstash
fresh_netns "$ns"
# sshd on 22 with 2 sessions, a web server on 8080 with 3 clients.
ip netns exec "$ns" python3 -c '
import socket, time
def listen(p):
    l = socket.socket(); l.bind(("127.0.0.1", p)); l.listen(); return l
keep = []
for port, n in ((22, 2), (8080, 3)):
    l = listen(port); keep.append(l)
    for _ in range(n):
        keep.append(socket.create_connection(("127.0.0.1", port))); keep.append(l.accept()[0])
time.sleep(3600)' &
pids+=($!)
ip netns exec "$ns" python3 docs/logstash/codec_fields.py 127.0.0.1 25826 22 > "$work/events" 2>/dev/null &
listener=$!
pids+=("$listener")
sleep 1
cat > "$work/collectd.conf" <<CONF
Hostname "web-1"
FQDNLookup false
Interval 10
BaseDir "$work"
PIDFile "$work/collectd.pid"
PluginDir "$work/plugins"
LoadPlugin tcpconns
PluginDir "/usr/lib/collectd"
$(snippet_block collectd.d/tcpconns.conf)
Include "$PWD/collectd.d/network.conf"
CONF
ip netns exec "$ns" /usr/sbin/collectd -f -C "$work/collectd.conf" >/dev/null 2>&1 &
pids+=($!)
wait "$listener" || true
echo "$(wc -l < "$work/events") tcpconns events in 22 s; those of 22-local and 8080-local that are not 0, in arrival order:"
grep -E '"plugin_instance": "(22|8080)-local"' "$work/events" | grep -v '"value": 0.0' || true
echo "one zero, for the record:"
grep '"plugin_instance": "25-local"' "$work/events" | head -n 1
