#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok from Go modules and prints the
# directory holding them. The result is cached outside the repository, keyed by the Kubernetes, kwok and Go
# versions, so a second run returns in well under a second. Never commit the binaries.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$HERE/versions.env"
command -v go >/dev/null || { echo "testenv/build.sh: Go is required (apt or golang.org) and was not found" >&2; exit 1; }
export GOTOOLCHAIN=local CGO_ENABLED=0
CACHE=${KEDGE_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kedge-testenv}
BIN="$CACHE/k8s-v$K8S_VERSION-kwok-$KWOK_VERSION-$(go env GOVERSION)/bin"
NAMES="etcd kube-apiserver kube-controller-manager kube-scheduler kwok"
have_all() { for n in $NAMES; do [ -x "$BIN/$n" ] || return 1; done; }
if have_all; then echo "$BIN"; exit 0; fi
mkdir -p "$BIN"
TMP="$BIN.partial"; rm -rf "$TMP"; mkdir -p "$TMP"
MINOR=$(cut -d. -f2 <<<"$K8S_VERSION")
# Without -X the binaries report v0.0.0-master; these are the variables upstream's hack/lib/version.sh sets.
LDF="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LDF="$LDF -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$MINOR"
  LDF="$LDF -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done
start=$(date +%s)
( cd "$HERE/k8s-bin"
  go build -mod=readonly -trimpath -ldflags "$LDF" -o "$TMP/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler
  ETCDV=$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
  go build -mod=readonly -trimpath -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=module-$ETCDV" \
    -o "$TMP/etcd" go.etcd.io/etcd/server/v3 ) >&2
# kwok is installed on its own so its newer dependencies never change the apiserver's dependency set.
GOBIN="$TMP" go install -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" \
  "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" >&2
for n in $NAMES; do mv "$TMP/$n" "$BIN/$n"; done
rmdir "$TMP"
echo "testenv/build.sh: built $NAMES in $(( $(date +%s) - start ))s into $BIN" >&2
echo "$BIN"
