#!/usr/bin/env bash
# Prometheus tier (issue 21, releases that judge): the tests named `prometheus_*`, `#[ignore]`d in
# the plain run, each starting its own Prometheus server (Debian's `prometheus`, EDAS_PROMETHEUS,
# installed by scripts/setup.d/50-prometheus.sh) on 127.0.0.1 with a generated configuration that
# scrapes its targets every second: the Prometheus provider against the real server (scalar,
# one-sample vector, several samples, an empty answer, a bad query, an unreachable server) in
# crates/edas-analysis/tests/prometheus.rs, and releases judged by a Prometheus check on `local`
# (on edasd's proxy counters, and on edas-testapp's own /metrics with its instances as file-
# discovered targets) and on the fake Kubernetes API server in crates/edasd/tests.
#
# EDAS_PROMETHEUS unset: skipped, unless EDAS_TEST_REQUIRE_PROMETHEUS=1, which makes it a failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -z "${EDAS_PROMETHEUS:-}" ]; then
  if [ "${EDAS_TEST_REQUIRE_PROMETHEUS:-}" = 1 ]; then
    echo "40-prometheus.sh: EDAS_TEST_REQUIRE_PROMETHEUS=1 but EDAS_PROMETHEUS names no prometheus binary;" \
      "source scripts/setup.d/50-prometheus.sh (it needs root and Debian's prometheus)" >&2
    exit 1
  fi
  echo "40-prometheus.sh: SKIPPED: EDAS_PROMETHEUS is not set" \
    "(${EDAS_PROMETHEUS_SETUP_FAILED:+see the prometheus setup message above; }it needs root and Debian's prometheus)"
  exit 0
fi
started=$(date +%s)
# --workspace with a filter reuses what the main nextest run built.
cargo nextest run --workspace --locked --profile ci --run-ignored ignored-only \
  -E 'test(/^prometheus_/)'
echo "40-prometheus.sh: passed in $(( $(date +%s) - started )) s"
