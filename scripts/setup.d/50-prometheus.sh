# Sourced by scripts/test. Installs Debian's `prometheus` for the Prometheus tier
# (scripts/tiers.d/40-prometheus.sh: release analysis with a Prometheus provider, issue 21) when it
# is missing, and exports EDAS_PROMETHEUS (the server binary). Only the binary is used: each test
# starts its own server on 127.0.0.1 with a generated configuration in a temporary directory, so
# the Debian service is stopped and disabled if the package started it. Idempotent. When it
# cannot be installed (not root, or apt-get fails) it says why and exports nothing: the tier then
# skips with that message.
edas_prometheus_setup() {
  local bin
  bin="$(command -v prometheus || true)"
  if [ -z "$bin" ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "prometheus: prometheus is not installed and this is not root, so it cannot be installed" \
        "(run as root, or: apt-get install prometheus)" >&2
      return 1
    fi
    echo "prometheus: installing prometheus from Debian"
    # policy-rc.d 101: the package's service must not start (tests run their own servers).
    local policy=/usr/sbin/policy-rc.d created=
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created=1
    fi
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }; then
      [ -n "$created" ] && rm -f "$policy"
      echo "prometheus: apt-get install prometheus failed" >&2
      return 1
    fi
    [ -n "$created" ] && rm -f "$policy"
    bin="$(command -v prometheus || true)"
    if [ -z "$bin" ]; then
      echo "prometheus: installed, but no prometheus on PATH" >&2
      return 1
    fi
  fi
  export EDAS_PROMETHEUS="$bin"
  echo "prometheus: $("$bin" --version 2>&1 | head -n 1) at $bin"
}
if ! edas_prometheus_setup; then
  echo "prometheus: setup failed; the Prometheus tier will be skipped" >&2
  export EDAS_PROMETHEUS_SETUP_FAILED=1
fi
unset -f edas_prometheus_setup
