//go:build tools

// Package tools pins the Kubernetes control-plane commands that testenv/build.sh compiles.
// It is never compiled itself; it only keeps `go mod tidy` from dropping the requirements.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
