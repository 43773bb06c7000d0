# PackNow operator. `make help` lists the targets.

# Image of the operator for deploy/docker-build.
IMG ?= packnow-operator:dev
# Image of the PackNow API the operator deploys by default.
API_IMG ?= packnow-api:dev
# Release version written into both binaries (main.version).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# docker, or podman.
CONTAINER_TOOL ?= docker
PLATFORMS ?= linux/amd64,linux/arm64

SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
CONTROLLER_TOOLS_VERSION ?= v0.23.0
HELM ?= $(LOCALBIN)/helm
HELM_VERSION ?= v4.3.2
CHART ?= charts/packnow-operator
KUBECTL ?= $(LOCALBIN)/k8s/$(K8S_VERSION)-$(shell go env GOOS)-$(shell go env GOARCH)/kubectl
K8S_VERSION ?= 1.37.2
# envtest's control plane: kube-apiserver and etcd built from the Go module proxy by hack/controlplane.sh.
# Point KUBEBUILDER_ASSETS elsewhere to use binaries you already have.
KUBEBUILDER_ASSETS ?= $(LOCALBIN)/k8s/$(K8S_VERSION)-$(shell go env GOOS)-$(shell go env GOARCH)
export KUBEBUILDER_ASSETS

GO_TEST_FLAGS ?= -count=1 -timeout 30m
STATIC_DIR ?= $(LOCALBIN)/static

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Display this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate the CRD, RBAC role and webhook configurations from markers; copy them into the chart.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd webhook paths="./..." output:crd:artifacts:config=config/crd/bases
	$(MAKE) -s helm-sync

.PHONY: helm-sync
helm-sync: ## Copy the CRDs, config/rbac, the webhook configurations and the alerts into the chart's files/, which its templates render.
	rm -rf $(CHART)/files
	mkdir -p $(CHART)/files/crds $(CHART)/files/rbac $(CHART)/files/webhook $(CHART)/files/prometheus
	cp config/crd/bases/*.yaml $(CHART)/files/crds/
	cp $$(ls config/rbac/*.yaml | grep -v /kustomization.yaml) $(CHART)/files/rbac/
	cp config/webhook/manifests.yaml $(CHART)/files/webhook/
	cp config/prometheus/alerts.yaml $(CHART)/files/prometheus/

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods from markers.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: fmt
fmt: ## Run gofmt on the code.
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: verify
verify: generate manifests ## Fail when generated files are stale, gofmt finds anything or go vet complains.
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed on:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	@git diff --exit-code -- api config $(CHART)/files || { echo "generated files are stale: run 'make generate manifests' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- api config $(CHART)/files)" || { echo "untracked generated files: run 'make generate manifests' and commit"; git status --porcelain -- api config $(CHART)/files; exit 1; }
	go vet ./...

.PHONY: test
test: envtest test-deps ## Run every test against a real API server, PostgreSQL and Redis, then the demo (test-demo).
	go test $(GO_TEST_FLAGS) ./...
	$(MAKE) test-demo

.PHONY: test-demo
test-demo: envtest test-deps ## Run the demo end to end as a test: hack/demo.sh up (tour included), checks, down.
	go test -tags demo -count=1 -timeout 20m ./hack/demo/

.PHONY: test-faults
test-faults: envtest ## Run only the fault tests (part of make test too), verbose, with the recovery times they measure.
	go test $(GO_TEST_FLAGS) -v -run '^TestFault' ./controllers/ ./webhooks/ ./hack/faults/ | grep -E '^(=== RUN|--- |\s+\S+_test.go:[0-9]+: |ok|FAIL|PASS)'

.PHONY: test-deps
test-deps: ## Install the servers the tests start (PostgreSQL, redis-server) with apt when missing.
	@if ! command -v redis-server >/dev/null || ! test -x "$$(pg_config --bindir 2>/dev/null)/postgres"; then \
		apt-get update -qq && apt-get install -y -qq postgresql redis-server >/dev/null; fi

##@ Build

.PHONY: build
build: generate ## Build the manager and the API binaries into bin/.
	go build -o $(LOCALBIN)/manager .
	go build -o $(LOCALBIN)/packnow-api ./app/cmd/packnow-api

.PHONY: build-static
build-static: ## Build both binaries static (CGO off, trimpath, version ldflags) into bin/static/, as the images do.
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$(VERSION) -X main.defaultAPIImage=$(API_IMG)" \
		-o $(STATIC_DIR)/manager .
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" \
		-o $(STATIC_DIR)/packnow-api ./app/cmd/packnow-api

.PHONY: docker-build
docker-build: ## Build the operator image $(IMG) and the API image $(API_IMG) (needs a Docker engine).
	$(CONTAINER_TOOL) build --target manager --build-arg VERSION=$(VERSION) --build-arg API_IMG=$(API_IMG) -t $(IMG) .
	$(CONTAINER_TOOL) build --target packnow-api --build-arg VERSION=$(VERSION) -t $(API_IMG) .

.PHONY: docker-push
docker-push: ## Push both images.
	$(CONTAINER_TOOL) push $(IMG)
	$(CONTAINER_TOOL) push $(API_IMG)

.PHONY: docker-buildx
docker-buildx: ## Build and push both images for $(PLATFORMS) with buildx.
	- $(CONTAINER_TOOL) buildx create --name packnow-builder
	$(CONTAINER_TOOL) buildx use packnow-builder
	$(CONTAINER_TOOL) buildx build --push --platform=$(PLATFORMS) --target manager \
		--build-arg VERSION=$(VERSION) --build-arg API_IMG=$(API_IMG) -t $(IMG) .
	$(CONTAINER_TOOL) buildx build --push --platform=$(PLATFORMS) --target packnow-api \
		--build-arg VERSION=$(VERSION) -t $(API_IMG) .
	- $(CONTAINER_TOOL) buildx rm packnow-builder

.PHONY: run
run: manifests generate ## Run the manager against the cluster in ~/.kube/config (or $$KUBECONFIG).
	go run . --leader-elect=false --enable-webhooks=false --default-api-image=$(API_IMG)

##@ Deployment

.PHONY: install
install: manifests kubectl ## Install the CRDs into the cluster in ~/.kube/config (or $$KUBECONFIG).
	$(KUBECTL) apply --server-side -f config/crd/bases

.PHONY: uninstall
uninstall: manifests kubectl ## Remove the CRDs (and every PackNowApp) from the cluster.
	$(KUBECTL) delete --ignore-not-found -f config/crd/bases

.PHONY: deploy
deploy: manifests kubectl ## Deploy the operator with image $(IMG) to the cluster (kustomize config/default).
	$(KUBECTL) kustomize config/default | sed 's|image: controller:latest|image: $(IMG)|' | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy
undeploy: kubectl ## Remove the operator, its CRDs and every PackNowApp from the cluster.
	$(KUBECTL) kustomize config/default | $(KUBECTL) delete --ignore-not-found -f -

.PHONY: helm-lint
helm-lint: helm ## Lint the chart strictly.
	$(HELM) lint --strict $(CHART)

.PHONY: helm-package
helm-package: helm manifests ## Package the chart into bin/charts/ with appVersion $(VERSION), the image tag it defaults to.
	$(HELM) package $(CHART) --app-version $(VERSION) -d $(LOCALBIN)/charts

##@ Demo

.PHONY: demo
demo: ## Run the whole system on this machine: a KWOK cluster, the operator, PostgreSQL, Redis and the API.
	hack/demo.sh up

.PHONY: demo-tour
demo-tour: ## Show again what the running demo does (the tour at the end of make demo).
	hack/demo.sh tour

.PHONY: demo-down
demo-down: ## Stop the demo and remove its state (bin/demo).
	hack/demo.sh down

##@ Dependencies

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Install controller-gen into bin/.
$(CONTROLLER_GEN):
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)

.PHONY: helm
helm: $(HELM) ## Install helm into bin/.
$(HELM):
	GOBIN=$(LOCALBIN) go install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)

.PHONY: envtest
envtest: ## Build kube-apiserver and etcd for envtest into bin/k8s/ (once).
	hack/controlplane.sh envtest >/dev/null

KWOK_VERSION ?= v0.8.0

.PHONY: kwok
kwok: $(LOCALBIN)/kwok $(LOCALBIN)/kwokctl ## Install kwok and kwokctl (simulated nodes for the demo) into bin/.
$(LOCALBIN)/kwok $(LOCALBIN)/kwokctl:
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/kwok/cmd/kwok@$(KWOK_VERSION) sigs.k8s.io/kwok/cmd/kwokctl@$(KWOK_VERSION)

.PHONY: kubectl
kubectl: ## Build kubectl (and the rest of the local control plane) into bin/k8s/ (once).
	hack/controlplane.sh all >/dev/null

##@ Benchmarks (each prints the machine, the commit and a table; docs/performance.md holds the latest)

# Flags for hack/bench/admission, e.g. BENCH_ADMISSION_FLAGS="-modes handler -rates 1000 -duration 30s".
BENCH_ADMISSION_FLAGS ?=

.PHONY: bench-admission
bench-admission: envtest ## Measure the pod webhook's latency: TLS load at 100-2000 rps, and dry-run creates through the API server (~2 min).
	go run ./hack/bench/admission $(BENCH_ADMISSION_FLAGS)

# Flags for hack/bench/appload, e.g. BENCH_APP_FLAGS="-duration 30s -conns 16,64" (go run ./hack/bench/appload -h).
BENCH_APP_FLAGS ?=

.PHONY: bench-app
bench-app: test-deps ## Benchmark packnow-api with real PostgreSQL and Redis: orders and login at 16/64/256 connections, a 500-login flood (~3 min).
	go run ./hack/bench/appload $(BENCH_APP_FLAGS)

# Flags for hack/bench/reconcile, e.g. BENCH_RECONCILE_FLAGS="-apps 100 -namespaces 5 -steady 30s".
BENCH_RECONCILE_FLAGS ?=

.PHONY: bench-reconcile
bench-reconcile: envtest ## 1,000 PackNowApps at once on envtest against the operator binary, then 5 min of steady state (~7 min).
	go run ./hack/bench/reconcile $(BENCH_RECONCILE_FLAGS)
