#!/usr/bin/env python3
"""Draws docs/connections-per-state.png from the csv files that collectd's
csv plugin wrote for our tcpconns plugin during docs/plot/record.sh
(kept in docs/plot/data/). Needs matplotlib (pip install matplotlib).

Top: plugin instance "all" (AllPortsSummary), one line per TCP state that
was ever non-zero. Bottom: a few per-port series. Shaded: the phases of
docs/plot/loadgen.py.
"""
import csv
import glob
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

here = os.path.dirname(os.path.abspath(__file__))
data = os.path.join(here, "data")
out = sys.argv[1] if len(sys.argv) > 1 else os.path.normpath(os.path.join(here, "..", "connections-per-state.png"))


def series(instance, state):
    """(epoch, value) rows of tcpconns-<instance>/tcp_connections-<state>-*."""
    rows = []
    pattern = os.path.join(data, f"tcpconns-{instance}", f"tcp_connections-{state}-*")
    for path in sorted(glob.glob(pattern)):
        with open(path) as f:
            for r in csv.reader(f):
                if r and r[0] != "epoch":
                    rows.append((float(r[0]), float(r[1])))
    return rows


states = ["ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT",
          "CLOSED", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING"]
all_rows = {s: series("all", s) for s in states}
t0 = min(t for rows in all_rows.values() for t, _ in rows)
with open(os.path.join(data, "phases.csv")) as f:
    phases = [(float(t) - t0, name) for t, name in csv.reader(f)]
end = max(t for rows in all_rows.values() for t, _ in rows) - t0

fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7.5), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 2]})
shades = ["#f2f2f2", "#ffffff"]
for ax in (top, bottom):
    for i, (start, name) in enumerate(phases):
        stop = phases[i + 1][0] if i + 1 < len(phases) else end
        ax.axvspan(start, stop, color=shades[i % 2], zorder=0)
for i, (start, name) in enumerate(phases):
    top.text(start + 1.5, 1.01 + 0.055 * (i % 2), name, transform=top.get_xaxis_transform(),
             fontsize=8, va="bottom", color="#444444")

# FIN_WAIT2 follows CLOSE_WAIT one for one here (the two ends of the same
# connections): drawn dashed and on top, so that both stay visible.
dashed = {"FIN_WAIT2", "FIN_WAIT1"}
for s in states:
    rows = all_rows[s]
    if rows and any(v for _, v in rows):
        top.plot([t - t0 for t, _ in rows], [v for _, v in rows], label=s,
                 linewidth=2.2 if s in dashed else 1.6,
                 linestyle=(0, (3, 3)) if s in dashed else "-",
                 zorder=3 if s in dashed else 2)
top.set_ylabel("connections")
top.set_title('plugin instance "all" (AllPortsSummary): every TCP socket, per state',
              fontsize=10, pad=30)
top.legend(loc="upper left", fontsize=8, ncol=2)
top.grid(True, linewidth=0.3)

for instance, state, label in [
    ("8080-local", "ESTABLISHED", "8080-local ESTABLISHED (web clients)"),
    ("8080-local", "CLOSE_WAIT", "8080-local CLOSE_WAIT (answered, never closed)"),
    ("5432-remote", "ESTABLISHED", "5432-remote ESTABLISHED (database pool)"),
    ("9200-remote", "SYN_SENT", "9200-remote SYN_SENT (backend unreachable)"),
]:
    rows = series(instance, state)
    bottom.plot([t - t0 for t, _ in rows], [v for _, v in rows], label=label, linewidth=1.6)
bottom.set_ylabel("connections")
bottom.set_xlabel("seconds since the first read (collectd Interval 2)")
bottom.set_title("per-port series", fontsize=10)
bottom.legend(loc="upper left", fontsize=8)
bottom.grid(True, linewidth=0.3)
bottom.set_xlim(0, end)

fig.suptitle("collectd-tcpconns: connections per state during a real run with changing load\n"
             "(csv written by collectd's csv plugin from this plugin's values; "
             "load: docs/plot/loadgen.py)", fontsize=11)
fig.tight_layout()
fig.savefig(out, dpi=110)
print(f"wrote {out} ({len(all_rows['ESTABLISHED'])} reads)")
