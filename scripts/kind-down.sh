#!/usr/bin/env bash
# make kind-down: delete the kind cluster `make kind-test` made (KIND_CLUSTER, default tripclick).
# The generated development values under .state/kind (certificates, passwords, lake) stay for the next
# run; delete that folder too for a clean start.
set -euo pipefail

CLUSTER=${KIND_CLUSTER:-tripclick}
if ! command -v kind >/dev/null 2>&1; then
  echo "kind-down: kind is not installed, so there is no kind cluster to delete" >&2
  exit 1
fi
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  kind delete cluster --name "$CLUSTER"
else
  echo "kind-down: no kind cluster named $CLUSTER"
fi
