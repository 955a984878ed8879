#!/usr/bin/env bash
# Real-cluster tier: the Kubernetes release scenarios of crates/edasd/tests/kubernetes.rs
# (`real_cluster_*`: manual and automatic gray batches, batch timeout, abort, abort-and-rollback,
# edasd restart mid-release; issue 18: instances Kubernetes will not start (unschedulable CPU
# request, missing image, missing ConfigMap key) failing their batch at once with the cluster's
# reason, user ConfigMaps/Secrets in the cluster with immutable copies owned by their Deployment,
# a deleted or hand-scaled Deployment restored, a release across an API server cut off for 30 s
# through a local relay) against the cluster EDAS_TEST_KUBECONFIG names,
# each in a fresh
# namespace labelled `edas.test/run=1` that is deleted afterwards. The fake-API-server versions of
# the same scenarios run in every `cargo nextest run`; this tier adds the real thing.
#
# EDAS_TEST_KUBECONFIG unset: skipped, unless EDAS_TEST_REQUIRE_KUBERNETES=1, which makes it a
# failure. It assumes only Kubernetes' own controllers and pulls registry.k8s.io/pause images.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -z "${EDAS_TEST_KUBECONFIG:-}" ]; then
  if [ "${EDAS_TEST_REQUIRE_KUBERNETES:-}" = 1 ]; then
    echo "20-kubernetes.sh: EDAS_TEST_REQUIRE_KUBERNETES=1 but EDAS_TEST_KUBECONFIG names no kubeconfig;" \
      "set it to a kubeconfig of a test cluster (see README: real-cluster tests)" >&2
    exit 1
  fi
  echo "20-kubernetes.sh: SKIPPED: EDAS_TEST_KUBECONFIG is not set (see README: real-cluster tests)"
  exit 0
fi
if [ ! -r "$EDAS_TEST_KUBECONFIG" ]; then
  echo "20-kubernetes.sh: EDAS_TEST_KUBECONFIG=$EDAS_TEST_KUBECONFIG is not a readable file" >&2
  exit 1
fi
# --workspace with a filter reuses what the main nextest run built (building edasd alone would
# unify features differently and rebuild much of the dependency graph).
cargo nextest run --workspace --locked --profile ci --run-ignored ignored-only \
  -E 'binary(kubernetes) & test(/^real_cluster_/)'
# Issue 18 (failures 1, 2, 7) on the real cluster: crates/edasd/tests/kube_failures.rs
# (`real_cluster_*`: a crash-looping application deleted within 10 s, leaving nothing labelled
# with its id; a dead cluster isolated and swept when it comes back, through a relay in front of
# the API server).
cargo nextest run --workspace --locked --profile ci --run-ignored ignored-only \
  -E 'binary(kube_failures) & test(/^real_cluster_/)'
