// Package webhooks holds the operator's admission webhooks: pod security for Pods and the workloads that create
// them, defaulting and validation of PackNowApps, and the management of their serving certificate.
package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
)

// Options configures Setup. The zero value of every field except Namespace and CertDir means its default.
type Options struct {
	// Namespace is the operator's namespace, which holds the certificate Secret and the webhook Service.
	Namespace string
	// CertDir is the webhook server's certificate directory.
	CertDir string
	// CertManager leaves the serving certificate to cert-manager: it is mounted into CertDir and its CA is
	// injected by cert-manager's cainjector, so no rotator runs.
	CertManager bool

	// ServiceName is the webhook Service the API server calls (default packnow-operator-webhook-service).
	ServiceName string
	// CertSecretName is the Secret holding the operator-managed CA and certificate
	// (default packnow-operator-webhook-cert).
	CertSecretName string
	// ValidatingWebhookConfiguration and MutatingWebhookConfiguration name the configurations whose caBundle
	// the rotator keeps current (defaults as config/default names them).
	ValidatingWebhookConfiguration string
	MutatingWebhookConfiguration   string
	// ExtraDNSNames are further names for the serving certificate, for a webhook reached outside the Service.
	ExtraDNSNames []string

	// Certificate lifetimes and rotation; zero means cert-controller's defaults (CA 10 years, certificate 1 year,
	// renewed 90 days before expiry, checked every 12 hours).
	CACertDuration, CertDuration, LookaheadInterval, RotationCheckFrequency time.Duration
}

func (o *Options) dnsName() string {
	return fmt.Sprintf("%s.%s.svc", o.ServiceName, o.Namespace)
}

func (o *Options) defaults() error {
	if o.CertDir == "" {
		return errors.New("webhooks: CertDir is required")
	}
	if !o.CertManager && o.Namespace == "" {
		return errors.New("webhooks: Namespace is required for operator-managed certificates")
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.ServiceName, "packnow-operator-webhook-service")
	def(&o.CertSecretName, "packnow-operator-webhook-cert")
	def(&o.ValidatingWebhookConfiguration, "packnow-operator-validating-webhook-configuration")
	def(&o.MutatingWebhookConfiguration, "packnow-operator-mutating-webhook-configuration")
	return nil
}

// Setup adds the webhooks and, unless cert-manager provides it, the certificate rotator to mgr. The webhook
// server starts once its certificate is in place; the returned check reports ready from then on.
func Setup(mgr manager.Manager, o Options) (healthz.Checker, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	eval, err := NewPodEvaluator()
	if err != nil {
		return nil, err
	}
	pods := &PodHandler{
		Evaluator: eval,
		Reader:    mgr.GetCache(),
		Recorder:  mgr.GetEventRecorder("packnow-pod-security"),
	}
	defaulter := admission.WithDefaulter(mgr.GetScheme(), admission.Defaulter[*packnowv1alpha1.PackNowApp](PackNowAppDefaulter{}))
	validator := admission.WithValidator(mgr.GetScheme(), admission.Validator[*packnowv1alpha1.PackNowApp](PackNowAppValidator{Reader: mgr.GetCache()}))
	register := func() {
		srv := mgr.GetWebhookServer()
		srv.Register(PodsPath, &webhook.Admission{Handler: pods})
		srv.Register(WorkloadsPath, &webhook.Admission{Handler: pods})
		srv.Register(PackNowAppDefaultPath, defaulter)
		srv.Register(PackNowAppValidatePath, validator)
	}
	if err := (&NamespaceLabeler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		return nil, err
	}

	if o.CertManager {
		register()
		return mgr.GetWebhookServer().StartedChecker(), nil
	}

	// The server needs its certificate files before it starts: register (which adds the server to the
	// manager, so that it starts right away) only once the rotator has written them and injected the CA.
	ready := make(chan struct{})
	if err := addCertRotator(mgr, &o, ready); err != nil {
		return nil, err
	}
	var registered atomic.Bool
	err = mgr.Add(registerWhenReady{ready: ready, register: func() {
		register()
		registered.Store(true)
	}})
	if err != nil {
		return nil, err
	}
	return func(req *http.Request) error {
		if !registered.Load() {
			return errors.New("webhook certificate not ready")
		}
		return mgr.GetWebhookServer().StartedChecker()(req)
	}, nil
}

// registerWhenReady registers the webhooks once the certificate is in place, on every replica (standbys serve
// admissions too). As a runnable it gives up when the manager stops first: registering on a stopped manager panics.
type registerWhenReady struct {
	ready    <-chan struct{}
	register func()
}

func (r registerWhenReady) Start(ctx context.Context) error {
	select {
	case <-r.ready:
		r.register()
	case <-ctx.Done():
	}
	return nil
}

func (registerWhenReady) NeedLeaderElection() bool { return false }
