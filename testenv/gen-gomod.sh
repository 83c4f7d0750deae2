#!/usr/bin/env bash
# Regenerates testenv/k8s-bin/go.mod + go.sum for a Kubernetes version, from the module proxy alone.
# Usage: testenv/gen-gomod.sh 1.36.5
set -euo pipefail
K=${1:?kubernetes version, e.g. 1.36.5}
cd "$(dirname "$0")/k8s-bin"
export GOTOOLCHAIN=local
rm -f go.mod go.sum
go mod init kedge.invalid/testenv/k8s-bin
go mod edit -go=1.26.0 -godebug=default=go1.26
KMOD=$(go mod download -json "k8s.io/kubernetes@v$K" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/.*#\1#p' "$KMOD" | while read -r m; do
  go mod edit -replace="$m=$m@v0.${K#1.}"
done
go mod edit -require="k8s.io/kubernetes@v$K"
go mod tidy
go list -m k8s.io/kubernetes go.etcd.io/etcd/server/v3 google.golang.org/protobuf
