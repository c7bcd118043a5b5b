#!/usr/bin/env bash
# Runs every test: unit tests on the pure parts, then end-to-end and
# differential tests that load the plugin into the real collectd inside
# network namespaces the tests make (needs root), and the ignored ones that
# change this host (install into /etc and /usr/local, dpkg -i): CI runs this
# as root on a fresh machine. Plain `cargo test` leaves out the ones that
# change the host, and without root skips the namespace ones too.
set -euo pipefail
cd "$(dirname "$0")/.."
ci/setup.sh
cargo build --release --lib
cargo test --all-targets -- --include-ignored
