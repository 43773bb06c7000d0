// Package testenv starts the real servers that integration tests run against: a kube-apiserver with etcd
// (envtest, binaries built by hack/controlplane.sh from the Go module proxy), PostgreSQL and Redis. Each server
// is a throw-away instance on a free port that the caller stops.
package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
)

// KubernetesVersion is the version of the control plane hack/controlplane.sh builds.
const KubernetesVersion = "1.37.2"

// RepoRoot is the repository's top folder.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// AssetsDir is where kube-apiserver and etcd are: $KUBEBUILDER_ASSETS, else bin/k8s/<version>-<os>-<arch>. It
// fails, naming the make target that builds them, when either is missing.
func AssetsDir() (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		dir = filepath.Join(RepoRoot(), "bin", "k8s", fmt.Sprintf("%s-%s-%s", KubernetesVersion, runtime.GOOS, runtime.GOARCH))
	}
	for _, name := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return "", fmt.Errorf("%s not found in %s: run `make envtest` (or set KUBEBUILDER_ASSETS)", name, dir)
		}
	}
	return dir, nil
}

// Scheme knows the built-in kinds, PackNowApp and Gateway API v1.
func Scheme() *k8sruntime.Scheme {
	s := k8sruntime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(packnowv1alpha1.AddToScheme(s))
	utilruntime.Must(gatewayv1.AddToScheme(s))
	return s
}

// APIServer is a running envtest control plane with the PackNowApp CRD installed.
type APIServer struct {
	Env    *envtest.Environment
	Config *rest.Config
	Client client.Client
	// certDir holds kube-apiserver's certificates.
	certDir string
}

// APIServerOptions adds to what StartAPIServer installs.
type APIServerOptions struct {
	// CRDDirectoryPaths are installed besides config/crd/bases.
	CRDDirectoryPaths []string
	// WithoutProjectCRDs leaves config/crd/bases out, for tests that install the CRD themselves (the Helm chart).
	WithoutProjectCRDs bool
	// Webhooks, when set, are installed with the API server calling back to a local webhook server over TLS.
	Webhooks *envtest.WebhookInstallOptions
	// Flags are extra kube-apiserver flags (name without dashes → value), e.g. a wider service-cluster-ip-range
	// than envtest's /24, which holds only 254 Services.
	Flags map[string]string
	// AuditLogPath, when set, makes the API server write its audit log (JSON lines) there, so that a benchmark
	// can count requests by user, verb and resource.
	AuditLogPath string
	// AuditPolicy is the audit policy (YAML) for AuditLogPath; empty logs every request at level Metadata.
	AuditPolicy string
}

// metadataAuditPolicy logs who did what to which object, without bodies; one line per request, when its
// response is complete (a watch adds one when it starts).
const metadataAuditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
`

// StartAPIServer starts kube-apiserver and etcd and installs the CRDs. Call Stop when done, typically from
// TestMain.
func StartAPIServer(opts APIServerOptions) (*APIServer, error) {
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	crds := opts.CRDDirectoryPaths
	if !opts.WithoutProjectCRDs {
		crds = append([]string{filepath.Join(RepoRoot(), "config", "crd", "bases")}, crds...)
	}
	// Certificates in a folder of the helper's own survive a stop of kube-apiserver (envtest removes and
	// regenerates its own), so that clients configured before a restart still trust it.
	certDir, err := os.MkdirTemp("", "packnow-apiserver-")
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		ControlPlane:             envtest.ControlPlane{APIServer: &envtest.APIServer{CertDir: certDir}},
		BinaryAssetsDirectory:    assets,
		CRDDirectoryPaths:        crds,
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	if opts.Webhooks != nil {
		env.WebhookInstallOptions = *opts.Webhooks
	}
	srv := &APIServer{Env: env, certDir: certDir}
	for name, value := range opts.Flags {
		env.ControlPlane.GetAPIServer().Configure().Set(name, value)
	}
	if opts.AuditLogPath != "" {
		if err := configureAudit(env, opts.AuditLogPath, opts.AuditPolicy); err != nil {
			return nil, errors.Join(err, srv.Stop())
		}
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, errors.Join(fmt.Errorf("start envtest: %w", err), srv.Stop())
	}
	c, err := client.New(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		return nil, errors.Join(err, srv.Stop())
	}
	srv.Config, srv.Client = cfg, c
	return srv, nil
}

// configureAudit writes the policy beside the log and points the API server at both.
func configureAudit(env *envtest.Environment, logPath, policy string) error {
	if policy == "" {
		policy = metadataAuditPolicy
	}
	policyPath := logPath + ".policy.yaml"
	if err := os.WriteFile(policyPath, []byte(policy), 0o600); err != nil {
		return fmt.Errorf("audit policy: %w", err)
	}
	env.ControlPlane.GetAPIServer().Configure().
		Set("audit-policy-file", policyPath).
		Set("audit-log-path", logPath).
		Set("audit-log-format", "json")
	return nil
}

// Stop stops the API server and etcd and removes their data.
func (s *APIServer) Stop() error {
	return errors.Join(s.Env.Stop(), os.RemoveAll(s.certDir))
}

// StopKubeAPIServer stops kube-apiserver alone; etcd keeps running with its data. Like a kubelet, it sends
// SIGTERM and kills the process once grace has passed: a graceful shutdown waits for requests in flight, and a
// Service create caught by it can hang for the full request timeout (its cluster IP is allocated through the
// server's loopback client, which has already stopped).
func (s *APIServer) StopKubeAPIServer(grace time.Duration) error {
	pid, err := s.kubeAPIServerPID()
	if err != nil {
		return err
	}
	stopped := make(chan error, 1)
	go func() { stopped <- s.Env.ControlPlane.APIServer.Stop() }()
	select {
	case err := <-stopped:
		return err
	case <-time.After(grace):
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill kube-apiserver: %w", err)
	}
	return <-stopped
}

// kubeAPIServerPID finds this server's kube-apiserver by its certificate folder, which no other server shares;
// envtest does not tell the process.
func (s *APIServer) kubeAPIServerPID() (int, error) {
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		return 0, err
	}
	flag := []byte("--cert-dir=" + s.certDir + "\x00")
	for _, p := range procs {
		cmdline, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(cmdline, flag) {
			continue
		}
		return strconv.Atoi(filepath.Base(filepath.Dir(p)))
	}
	return 0, fmt.Errorf("no kube-apiserver process with --cert-dir=%s", s.certDir)
}

// StartKubeAPIServer starts kube-apiserver again after StopKubeAPIServer, on the same address and with the same
// certificates, so that every client configured before reconnects.
func (s *APIServer) StartKubeAPIServer() error { return s.Env.ControlPlane.APIServer.Start() }
