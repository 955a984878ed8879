#!/usr/bin/env bash
# SDK compatibility tier: the official Alibaba Cloud Python SDKs (classic aliyun-python-sdk-edas
# and Tea alibabacloud-edas20170801), unmodified, drive the real edasd binary on a loopback port.
# Needs the project venv (scripts/setup.d/00-venv.sh exports EDAS_VENV).
set -euo pipefail
cd "$(dirname "$0")/../.."
EDAS_VENV="${EDAS_VENV:-$PWD/.venv}"
if [ ! -x "$EDAS_VENV/bin/python" ]; then
  echo "10-sdk.sh: no Python venv at $EDAS_VENV; run scripts/setup.d/00-venv.sh first" >&2
  exit 1
fi
# scripts/test runs this tier right after `cargo nextest run --workspace`, which built every
# workspace binary; building edasd alone would unify features differently and rebuild half the
# dependency graph. Run on its own, the tier builds edasd (and edas-testapp, the program the
# traffic tests deploy, and edas-fake-kube, the cluster the ingress tests bind load balancers
# on) first.
if [ -z "${EDAS_BINS_BUILT:-}" ]; then
  cargo build --locked --bin edasd --bin edas-testapp --bin edas-fake-kube
fi
# Wherever cargo put them: CARGO_TARGET_DIR, a `build.target-dir` config, or ./target.
target_dir="$(cargo metadata --format-version 1 --no-deps --locked \
  | "$EDAS_VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
export EDASD_BIN="$target_dir/debug/edasd"
export EDAS_TESTAPP_BIN="$target_dir/debug/edas-testapp"
export EDAS_FAKE_KUBE_BIN="$target_dir/debug/edas-fake-kube"
"$EDAS_VENV/bin/python" -m pytest tests/sdk -q -p no:cacheprovider
