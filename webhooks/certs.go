package webhooks

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// +kubebuilder:rbac:groups="",namespace=packnow-system,resources=secrets,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations;mutatingwebhookconfigurations,verbs=get;list;watch;update

// addCertRotator makes the operator its own CA: cert-controller keeps a CA and a serving certificate in the
// Secret, renews them before they expire and writes the CA into the webhook configurations' caBundle. Every
// replica copies the Secret into CertDir itself, where the webhook server's certificate watcher picks up a new
// certificate without a restart; a kubelet-mounted Secret would lag by up to a minute behind the caBundle.
func addCertRotator(mgr manager.Manager, o *Options, ready chan struct{}) error {
	key := types.NamespacedName{Namespace: o.Namespace, Name: o.CertSecretName}
	if err := ensureSecret(mgr.GetAPIReader(), mgr.GetClient(), key); err != nil {
		return err
	}
	r := &rotator.CertRotator{
		SecretKey:      key,
		CertDir:        o.CertDir,
		CAName:         "packnow-operator-ca",
		CAOrganization: "packnow-operator",
		DNSName:        o.dnsName(),
		ExtraDNSNames:  o.ExtraDNSNames,
		IsReady:        ready,
		Webhooks: []rotator.WebhookInfo{
			{Name: o.ValidatingWebhookConfiguration, Type: rotator.Validating},
			{Name: o.MutatingWebhookConfiguration, Type: rotator.Mutating},
		},
		FieldOwner: "packnow-operator",
		// Every replica serves webhooks, so certificates must not wait for leadership.
		RequireLeaderElection:  false,
		CaCertDuration:         o.CACertDuration,
		ServerCertDuration:     o.CertDuration,
		RotationCheckFrequency: o.RotationCheckFrequency,
		LookaheadInterval:      o.LookaheadInterval,
	}
	if err := rotator.AddRotator(mgr, r); err != nil {
		return fmt.Errorf("adding the webhook certificate rotator: %w", err)
	}
	return addCertWriter(mgr, key, o.CertDir)
}

// ensureSecret creates the empty Secret that cert-controller fills; it refuses to start without one.
func ensureSecret(r client.Reader, w client.Writer, key types.NamespacedName) error {
	ctx := context.Background()
	err := r.Get(ctx, key, &corev1.Secret{})
	if !apierrors.IsNotFound(err) {
		return err
	}
	s := &corev1.Secret{Type: corev1.SecretTypeOpaque}
	s.Namespace, s.Name = key.Namespace, key.Name
	s.Labels = map[string]string{"app.kubernetes.io/managed-by": "packnow-operator", "app.kubernetes.io/component": "webhook"}
	if err := w.Create(ctx, s); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating webhook certificate secret %s: %w", key, err)
	}
	return nil
}

// addCertWriter copies the certificate Secret into dir whenever it changes, watching only that one Secret.
func addCertWriter(mgr manager.Manager, key types.NamespacedName, dir string) error {
	c, err := cache.New(mgr.GetConfig(), cache.Options{
		Scheme:            mgr.GetScheme(),
		Mapper:            mgr.GetRESTMapper(),
		DefaultNamespaces: map[string]cache.Config{key.Namespace: {}},
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Field: fields.OneTermEqualSelector("metadata.name", key.Name)},
		},
	})
	if err != nil {
		return fmt.Errorf("webhook certificate cache: %w", err)
	}
	if err := mgr.Add(everyReplica{c}); err != nil {
		return err
	}
	ctrl, err := controller.NewUnmanaged("webhook-cert-writer", controller.Options{
		Reconciler: reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
			s := &corev1.Secret{}
			if err := c.Get(ctx, req.NamespacedName, s); err != nil {
				return reconcile.Result{}, client.IgnoreNotFound(err)
			}
			return reconcile.Result{}, writeCerts(dir, s.Data)
		}),
	})
	if err != nil {
		return err
	}
	if err := ctrl.Watch(source.Kind(c, &corev1.Secret{}, &handler.TypedEnqueueRequestForObject[*corev1.Secret]{})); err != nil {
		return err
	}
	return mgr.Add(everyReplica{ctrl})
}

// writeCerts writes the key before the certificate: the watcher reloads on the certificate, and a certificate
// with a stale key would fail to load.
func writeCerts(dir string, data map[string][]byte) error {
	crt, key := data[corev1.TLSCertKey], data[corev1.TLSPrivateKeyKey]
	if len(crt) == 0 || len(key) == 0 {
		return nil // cert-controller has not filled the Secret yet; its update triggers another pass
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{corev1.TLSPrivateKeyKey, key}, {corev1.TLSCertKey, crt}} {
		path := filepath.Join(dir, f.name)
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, f.data) {
			continue
		}
		// Rename so that the watcher never reads a half-written file.
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, f.data, 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
	}
	return nil
}

// everyReplica runs a runnable whether or not this replica leads.
type everyReplica struct{ manager.Runnable }

func (everyReplica) NeedLeaderElection() bool { return false }
