#!/usr/bin/env bash
# Browser tier: headless Chromium (Debian `chromium` + `chromium-driver`, driven by Python
# `selenium` through WebDriver) runs the README's gray release entirely from the web console
# against the real edasd on `local` (tests/browser). Screenshots and the list of every request
# the page made go to target/browser-artifacts/ (EDAS_BROWSER_ARTIFACTS). Skipped, with the
# reason, only when Chromium cannot be installed (scripts/setup.d/40-browser.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
EDAS_VENV="${EDAS_VENV:-$PWD/.venv}"
if [ ! -x "$EDAS_VENV/bin/python" ]; then
  echo "30-browser.sh: no Python venv at $EDAS_VENV; run scripts/setup.d/00-venv.sh first" >&2
  exit 1
fi
if ! command -v "${EDAS_CHROMIUM:-chromium}" >/dev/null || ! command -v "${EDAS_CHROMEDRIVER:-chromedriver}" >/dev/null; then
  echo "30-browser.sh: SKIPPED: Chromium cannot be installed here" \
    "(${EDAS_BROWSER_SETUP_FAILED:+see the browser setup message above; }needs root and Debian's chromium and chromium-driver)"
  exit 0
fi
if [ -z "${EDAS_BINS_BUILT:-}" ]; then
  cargo build --locked --bin edasd --bin edas-testapp
fi
target_dir="$(cargo metadata --format-version 1 --no-deps --locked \
  | "$EDAS_VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
export EDASD_BIN="$target_dir/debug/edasd"
export EDAS_TESTAPP_BIN="$target_dir/debug/edas-testapp"
export EDAS_BROWSER_ARTIFACTS="${EDAS_BROWSER_ARTIFACTS:-$target_dir/browser-artifacts}"
rm -rf "$EDAS_BROWSER_ARTIFACTS"
mkdir -p "$EDAS_BROWSER_ARTIFACTS"
started=$(date +%s)
"$EDAS_VENV/bin/python" -m pytest tests/browser -q -p no:cacheprovider
echo "30-browser.sh: passed in $(( $(date +%s) - started )) s; screenshots in $EDAS_BROWSER_ARTIFACTS"
