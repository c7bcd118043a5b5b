#!/usr/bin/env bash
# Reproduces what docs/prometheus.md pastes: runs tests/prometheus.rs (as
# root; ci/setup.sh installs Prometheus and the rest) with
# TCPCONNS_PROM_RECORD, so the test writes, besides checking them, the
# exporter's lines (curl), Prometheus' targets, each PromQL query of the doc
# and ALERTS through `promtool query instant`, `promtool check rules`,
# `ss -ltn`, collectd's log and the write_prometheus lines of the
# namespace trap into docs/prometheus/run/.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$PWD/docs/prometheus/run
rm -rf "$out"
TCPCONNS_PROM_RECORD=$out cargo test --test prometheus -- --nocapture 2>&1 |
  grep -E '^(recorded|test |test result)'
