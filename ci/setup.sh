#!/usr/bin/env bash
# Installs what building, testing and the demo need on a fresh Debian machine
# (run as root): collectd-core (collectd and Debian's C tcpconns.so),
# iproute2 (ip netns, ss), a C compiler and binutils (test shim, nm), python3
# (demo population), and for tests/prometheus.rs the Prometheus server and
# promtool, curl, and the two libraries collectd's write_prometheus.so needs
# (collectd-core only suggests them). Rust comes from rustup or Debian's
# cargo (>= 1.81: `cargo +1.81 test --no-run --all-targets` builds).
set -euo pipefail

need=()
command -v collectd >/dev/null 2>&1 || [ -x /usr/sbin/collectd ] || need+=(collectd-core)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v ss >/dev/null 2>&1 || need+=(iproute2)
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
command -v nm >/dev/null 2>&1 || need+=(binutils)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v cargo >/dev/null 2>&1 || need+=(cargo)
# tests/install.rs: `cargo deb` resolves the package's library dependencies
# with dpkg-shlibdeps (dpkg-dev).
command -v dpkg-shlibdeps >/dev/null 2>&1 || need+=(dpkg-dev)
# tests/prometheus.rs: collectd's write_prometheus scraped by a real
# Prometheus (the package brings promtool); curl for what
# docs/prometheus/record.sh records.
[ -x /usr/bin/prometheus ] || need+=(prometheus)
command -v curl >/dev/null 2>&1 || need+=(curl)
ldconfig -p | grep 'libmicrohttpd\.so\.12 ' >/dev/null || need+=(libmicrohttpd12)
ldconfig -p | grep 'libprotobuf-c\.so\.1 ' >/dev/null || need+=(libprotobuf-c1)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian's collectd-core ships the C plugin we compare against.
test -f /usr/lib/collectd/tcpconns.so
if ! cargo --version >/dev/null 2>&1; then
  echo "setup: cargo does not run; install Rust 1.81 or newer (rustup)" >&2
  exit 1
fi
# tests/install.rs builds the Debian package with cargo-deb (pinned; needs
# Rust 1.85; about a minute to compile, once per machine). Only that test
# needs it, so a failure here is a warning (the test tries again).
if ! cargo deb --version >/dev/null 2>&1; then
  cargo install --locked --quiet cargo-deb --version 3.8.0 ||
    echo "setup: cargo install cargo-deb failed; tests/install.rs needs it" >&2
fi
