#!/usr/bin/env bash
# Builds helm from Go modules (helm is not packaged in Debian) and prints the binary's path. Cached outside the
# repository, keyed by the helm and Go versions, like testenv/build.sh does for Kubernetes: a second run returns
# at once. Never commit the binary.
set -euo pipefail
HELM_VERSION=${KEDGE_HELM_VERSION:-3.22.0}
command -v go >/dev/null || { echo "testenv/helm.sh: Go is required and was not found" >&2; exit 1; }
export GOTOOLCHAIN=local CGO_ENABLED=0
CACHE=${KEDGE_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kedge-testenv}
BIN="$CACHE/helm-v$HELM_VERSION-$(go env GOVERSION)/bin"
if [ -x "$BIN/helm" ]; then echo "$BIN/helm"; exit 0; fi
mkdir -p "$BIN"
TMP="$BIN.partial"; rm -rf "$TMP"; mkdir -p "$TMP"
start=$(date +%s)
# Without -X helm reports its version as v3.x-dev; these are the variables helm's Makefile sets.
GOBIN="$TMP" go install -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
  "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION" >&2
mv "$TMP/helm" "$BIN/helm"
rmdir "$TMP"
echo "testenv/helm.sh: built helm v$HELM_VERSION in $(( $(date +%s) - start ))s into $BIN" >&2
echo "$BIN/helm"
