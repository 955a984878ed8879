# Sourced by scripts/test. Creates the project's Python virtualenv (.venv) used by the test tiers
# that drive edasd with the official Alibaba Cloud SDKs and kubectl. Idempotent.
EDAS_VENV="${EDAS_VENV:-$PWD/.venv}"
if [ ! -x "$EDAS_VENV/bin/python" ]; then
  python3 -m venv "$EDAS_VENV"
  "$EDAS_VENV/bin/pip" install --quiet --upgrade pip
fi
export EDAS_VENV
# Install the pinned requirements only when they changed since the last install.
if [ -f scripts/requirements.txt ] && ! cmp -s scripts/requirements.txt "$EDAS_VENV/.requirements"; then
  "$EDAS_VENV/bin/pip" install --quiet -r scripts/requirements.txt
  cp scripts/requirements.txt "$EDAS_VENV/.requirements"
fi
