#!/usr/bin/env bash
# Browser tier: headless Chromium (Debian `chromium` + `chromium-driver`, driven by Python
# `selenium` through WebDriver) runs the README's gray release entirely from the web console
# against the real edasd on `local` (tests/browser). Screenshots and the list of every request
# the page made go to <target>/browser-artifacts/ (EDAS_BROWSER_ARTIFACTS). Skipped, with the
# reason, only when Chromium cannot be installed (scripts/setup.d/40-browser.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/../.."
python="${EDAS_VENV:-$PWD/.venv}/bin/python"
[ -x "$python" ] || { echo "30-browser.sh: no project venv; run scripts/setup.d/00-venv.sh" >&2; exit 1; }
for tool in "${EDAS_CHROMIUM:-chromium}" "${EDAS_CHROMEDRIVER:-chromedriver}"; do
  if ! command -v "$tool" >/dev/null; then
    echo "30-browser.sh: SKIPPED: Chromium cannot be installed here: no $tool" \
      "(${EDAS_BROWSER_SETUP_FAILED:+see the browser setup message above; }it needs root and Debian's chromium and chromium-driver)"
    exit 0
  fi
done
# After scripts/test's nextest run the binaries are built (building edasd alone would unify
# features differently); on its own the tier builds them. tests/browser finds them with cargo
# metadata unless EDASD_BIN / EDAS_TESTAPP_BIN say where they are.
[ -n "${EDAS_BINS_BUILT:-}" ] || cargo build --locked --bin edasd --bin edas-testapp
started=$(date +%s)
"$python" -m pytest tests/browser -q -p no:cacheprovider
echo "30-browser.sh: passed in $(( $(date +%s) - started )) s"
