#!/usr/bin/env bash
# Runs every test: unit tests on the pure parts, then end-to-end and
# differential tests that load the plugin into the real collectd inside
# network namespaces the tests make (needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
ci/setup.sh
cargo build --release --lib
cargo test --all-targets
