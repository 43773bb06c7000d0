#!/usr/bin/env bash
# Builds the Kubernetes control-plane binaries the tests and the demo run, from the Go module proxy only, into
# bin/k8s/<version>-<os>-<arch>/ (the layout envtest's BinaryAssetsDirectory expects). Each binary is built once
# and reused; delete it to rebuild.
#
#   hack/controlplane.sh [envtest|all]
#     envtest (default): kube-apiserver, etcd
#     all:               also kube-controller-manager, kube-scheduler, kubectl
# Prints the assets directory on the last line.
set -euo pipefail

K8S_VERSION=1.37.2
K8S_MINOR=37
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/bin/k8s/${K8S_VERSION}-$(go env GOOS)-$(go env GOARCH)"
mod="$root/hack/tools/controlplane"
mkdir -p "$dir"

# Clients parse the server's version; an unset one ('v0.0.0-master+$Format:%H$') breaks them.
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=v${K8S_VERSION} -X $pkg.gitMajor=1 -X $pkg.gitMinor=${K8S_MINOR}"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

build() { # name package
  local name=$1 pkg=$2
  if [ -x "$dir/$name" ]; then return; fi
  echo "building $name (first time only; minutes on a cold cache)" >&2
  local start=$SECONDS
  (cd "$mod" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$dir/$name.tmp" "$pkg")
  mv "$dir/$name.tmp" "$dir/$name"
  echo "built $name in $((SECONDS - start))s" >&2
}

build etcd ./etcd
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
if [ "${1:-envtest}" = all ]; then
  build kubectl k8s.io/kubernetes/cmd/kubectl
  build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
  build kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler
fi
echo "$dir"
