#!/usr/bin/env bash
# Writes seed corpora for the fuzz targets into fuzz/corpus/<target>/ (git
# ignored) from the real captures in tests/fixtures/ and the shipped
# collectd.d/ snippets. Safe to run again: it only adds or overwrites seeds.
#
#   bash fuzz/seed-corpus.sh
set -euo pipefail

fuzz=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$fuzz")
fixtures=$root/tests/fixtures
corpus=$fuzz/corpus
mkdir -p "$corpus"/{procfs_line,procfs_table,netlink_datagram,config,filter,cgroup_paths}

# procfs_line: every line of both tables (header included), one per file.
for table in tcp tcp6; do
    n=0
    while IFS= read -r line || [ -n "$line" ]; do
        printf '%s' "$line" >"$corpus/procfs_line/$table-line-$(printf %02d $n)"
        n=$((n + 1))
    done <"$fixtures/proc_net_$table.txt"
done

# procfs_table: a flags byte, the tcp bytes, NUL, the tcp6 bytes.
# Flags: 1 listeners only, 2 addresses, 4 no tcp6 file.
for flags in 0 1 2 3; do
    { printf "\\x0$flags"; cat "$fixtures/proc_net_tcp.txt"; printf '\0'
      cat "$fixtures/proc_net_tcp6.txt"; } >"$corpus/procfs_table/both-flags$flags"
done
{ printf '\x04'; cat "$fixtures/proc_net_tcp.txt"; } >"$corpus/procfs_table/tcp-only"
{ printf '\x00'; head -c 1000 "$fixtures/proc_net_tcp6.txt"; } >"$corpus/procfs_table/cut-no-newline"

# netlink_datagram: the .bin captures are records of a u32 little-endian
# length and that many bytes of datagram; one seed per datagram.
for bin in "$fixtures"/netlink_dump_*.bin; do
    name=$(basename "$bin" .bin)
    size=$(stat -c %s "$bin")
    off=0 n=0
    while [ "$off" -lt "$size" ]; do
        len=$(od -An -tu4 --endian=little -j "$off" -N4 "$bin" | tr -d ' ')
        tail -c +$((off + 5)) "$bin" | head -c "$len" \
            >"$corpus/netlink_datagram/$name-$n"
        off=$((off + 4 + len)) n=$((n + 1))
    done
    [ "$off" -eq "$size" ] || { echo "$bin: bad record framing" >&2; exit 1; }
done

# config: the option lines of every <Plugin tcpconns> block shipped in
# collectd.d/, one file per snippet, and one line per option kind.
for conf in "$root"/collectd.d/*.conf; do
    [ -e "$conf" ] || continue
    awk '/^[[:space:]]*<Plugin[[:space:]]+"?tcpconns"?[[:space:]]*>/ { on = 1; next }
         /^[[:space:]]*<\/Plugin>/ { on = 0 }
         on && !/^[[:space:]]*(#|$)/ { sub(/^[[:space:]]+/, ""); print }' \
        "$conf" >"$corpus/config/$(basename "$conf" .conf)"
    [ -s "$corpus/config/$(basename "$conf" .conf)" ] || rm "$corpus/config/$(basename "$conf" .conf)"
done
i=0
while IFS= read -r line; do
    printf '%s\n' "$line" >"$corpus/config/option-$(printf %02d $i)"
    i=$((i + 1))
done <<'OPTIONS'
ListeningPorts true
AllPortsSummary yes
AcceptQueue on
LocalPort 22 25 8080
RemotePort "443" 5432.0
LocalNetwork "127.0.0.0/8" "::1"
RemoteNetwork "10.0.0.0/8 fd00::/8"
Namespace "/run/netns/web"
Namespace "/proc/1234/ns/net" "pid"
Namespace "all"
NamespaceLimit 8
Cgroup "/system.slice/nginx.service"
Cgroup "/user.slice/user@1000.service" "u"
CgroupDepth 2
CgroupLimit 100
localport 65535
LocalPort 0
LocalPorts 22
OPTIONS
printf 'LocalPort 22\nRemotePort 80 443\nAllPortsSummary true\nAcceptQueue true\nLocalNetwork "192.168.0.0/16"\nNamespace "/run/netns/a" "b"\n' \
    >"$corpus/config/all-keys"

# filter: the input is `arbitrary` data; a few byte strings to start from.
printf '\x01\x00\x16\x00\x00' >"$corpus/filter/one-local"
head -c 300 /dev/zero | tr '\0' '\x07' >"$corpus/filter/many"

# cgroup_paths: this machine's kind of mountinfo and /proc/PID/cgroup, and
# cgroup paths as the hierarchy walk makes them.
cat /proc/self/mountinfo >"$corpus/cgroup_paths/mountinfo" 2>/dev/null || true
printf '31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n' \
    >"$corpus/cgroup_paths/hybrid"
printf '9:name=systemd:/\n0::/system.slice/docker-ab12.scope\n' >"$corpus/cgroup_paths/proc-cgroup"
printf '/\n/system.slice\n/system.slice/nginx.service\n/a/b/c/d\n' >"$corpus/cgroup_paths/paths"

for t in "$corpus"/*/; do
    echo "$(basename "$t"): $(ls "$t" | wc -l) seeds"
done
