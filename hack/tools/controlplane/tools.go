//go:build tools

// Package controlplane pins the Kubernetes control-plane commands that hack/controlplane.sh builds, so that
// go mod tidy records every go.sum entry they need.
package controlplane

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
