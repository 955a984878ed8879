# Sourced by scripts/test after 00-venv.sh (which installs Python `selenium` from
# scripts/requirements.txt into the venv). Installs Debian's `chromium` and `chromium-driver` for
# the browser tier (scripts/tiers.d/30-browser.sh) when they are missing, and exports
# EDAS_CHROMIUM and EDAS_CHROMEDRIVER. Idempotent. When they cannot be installed (not root, or
# apt-get fails) it says why and exports nothing: the tier then skips with that message.
edas_browser_setup() {
  local browser driver
  browser="$(command -v chromium || true)"
  driver="$(command -v chromedriver || true)"
  if [ -z "$browser" ] || [ -z "$driver" ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "browser: chromium/chromedriver are not installed and this is not root, so they cannot be" \
        "installed (run as root, or: apt-get install chromium chromium-driver)" >&2
      return 1
    fi
    # fonts-liberation (a recommendation skipped here) so that screenshots show text.
    echo "browser: installing chromium and chromium-driver from Debian"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-liberation >/dev/null; }; then
      echo "browser: apt-get install chromium chromium-driver failed" >&2
      return 1
    fi
    browser="$(command -v chromium || true)"
    driver="$(command -v chromedriver || true)"
    if [ -z "$browser" ] || [ -z "$driver" ]; then
      echo "browser: installed, but no chromium or chromedriver on PATH" >&2
      return 1
    fi
  fi
  export EDAS_CHROMIUM="$browser" EDAS_CHROMEDRIVER="$driver"
  echo "browser: $("$browser" --version 2>/dev/null | head -n 1), chromedriver at $driver"
}
if ! edas_browser_setup; then
  echo "browser: setup failed; the browser tier will be skipped" >&2
  export EDAS_BROWSER_SETUP_FAILED=1
fi
unset -f edas_browser_setup
