#!/usr/bin/env python3
"""Listens on UDP (default 127.0.0.1:25826) for collectd's network plugin
and prints each value of plugin tcpconns as the event that Logstash's
`collectd` codec builds from it: the same part-to-field mapping (TYPEMAP in
logstash-codec-collectd's lib/logstash/codecs/collectd.rb: host, @timestamp,
plugin, plugin_instance, collectd_type, type_instance, and value for a
one-value type; intervals pruned, the default), applied to the real packets.
It is not Logstash: it shows which fields the codec fills, and with what,
for docs/logstash.md.

    python3 docs/logstash/codec_fields.py [ADDR PORT [SECONDS]]
"""
import datetime
import json
import socket
import struct
import sys
import time

addr = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 25826
seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 15.0

STRINGS = {0: "host", 2: "plugin", 3: "plugin_instance", 4: "collectd_type", 5: "type_instance"}
# What the codec keeps from one value to the next (INTERVAL_BASE_FIELDS);
# after a values part, and after an interval part (prune_intervals, the
# default), everything else is dropped: events carry no interval.
BASE = {"host", "@timestamp", "plugin", "plugin_instance", "collectd_type", "type_instance"}


def hires(raw):
    return struct.unpack(">Q", raw)[0] / 2**30


def decode(packet):
    """Yields one event per values part, as the codec does."""
    state = {}
    pos = 0
    while pos + 4 <= len(packet):
        ptype, plen = struct.unpack(">HH", packet[pos:pos + 4])
        body = packet[pos + 4:pos + plen]
        pos += plen
        if plen < 4:
            break
        if ptype in STRINGS:
            state[STRINGS[ptype]] = body[:-1].decode()
        elif ptype == 1:  # time, seconds
            state["@timestamp"] = float(struct.unpack(">Q", body)[0])
        elif ptype == 8:  # time, 2^-30 s
            state["@timestamp"] = hires(body)
        elif ptype in (7, 9):  # interval: pruned
            state = {k: v for k, v in state.items() if k in BASE}
        elif ptype == 6:  # values
            n = struct.unpack(">H", body[:2])[0]
            kinds = body[2:2 + n]
            raw = body[2 + n:]
            values = []
            for i, kind in enumerate(kinds):
                chunk = raw[8 * i:8 * i + 8]
                # GAUGE is little-endian double; the others big-endian integers.
                values.append(struct.unpack("<d", chunk)[0] if kind == 1
                              else struct.unpack(">q" if kind == 2 else ">Q", chunk)[0])
            event = dict(state)
            for k in ("plugin_instance", "type_instance"):
                if event.get(k) == "":
                    del event[k]
            if len(values) == 1:
                event["value"] = values[0]
            ts = event.get("@timestamp")
            if ts is not None:
                event["@timestamp"] = datetime.datetime.fromtimestamp(
                    ts, datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            yield event


sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((addr, port))
sock.settimeout(0.5)
print(f"listening on udp {addr}:{port} for {seconds:.0f} s", file=sys.stderr, flush=True)
end = time.time() + seconds
while time.time() < end:
    try:
        packet, _ = sock.recvfrom(65536)
    except socket.timeout:
        continue
    for event in decode(packet):
        if event.get("plugin") == "tcpconns":
            print(json.dumps(event, sort_keys=True), flush=True)
