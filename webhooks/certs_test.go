package webhooks

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/packnow/packnow-operator/hack/testenv"
)

// TestCertificateRotation runs the operator with its own CA and certificates that expire within seconds of the
// renewal window: cert-controller renews them over and over while pods are admitted without a break.
func TestCertificateRotation(t *testing.T) {
	s := apiServer(t)
	ctx := context.Background()
	if err := s.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "packnow-system"}}); client.IgnoreAlreadyExists(err) != nil {
		t.Fatal(err)
	}
	// Give the configurations back envtest's CA for the other tests, once the operator has stopped.
	t.Cleanup(func() { restoreCABundle(t, s.Client, s.Env.WebhookInstallOptions.LocalServingCAData) })
	const lookahead = time.Hour
	// In a process of its own: cert-controller's controller name can be taken only once per process.
	op := startOperatorProcess(t, Options{
		Namespace:                      "packnow-system",
		CertDir:                        t.TempDir(),
		ValidatingWebhookConfiguration: "validating-webhook-configuration",
		MutatingWebhookConfiguration:   "mutating-webhook-configuration",
		ExtraDNSNames:                  []string{testenv.WebhookHost},
		// A certificate counts as expiring once it expires within the lookahead: these are renewed a few
		// seconds after they are issued, the CA less often than the serving certificate.
		LookaheadInterval:      lookahead,
		CACertDuration:         lookahead + 12*time.Second,
		CertDuration:           lookahead + 5*time.Second,
		RotationCheckFrequency: time.Second,
	})
	op.waitReady(t)
	waitAdmitting(t)

	addr := net.JoinHostPort(s.Env.WebhookInstallOptions.LocalServingHost, strconv.Itoa(s.Env.WebhookInstallOptions.LocalServingPort))
	ns := namespace(t, ModeEnforce)
	bundles, served := map[string]bool{}, map[string]bool{}
	var admitted, failed int
	deadline := time.Now().Add(2 * time.Minute)
	for len(bundles) < 3 || len(served) < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("after 2 minutes: %d CA bundles, %d served certificates", len(bundles), len(served))
		}
		if err := s.Client.Create(ctx, compliantPod("pod-"+randSuffix(), ns)); err != nil {
			failed++
			t.Errorf("admission failed during rotation: %v", err)
		} else {
			admitted++
		}
		bundle, err := caBundle(ctx, s.Client)
		if err != nil {
			t.Fatal(err)
		}
		bundles[fingerprint(bundle)] = true
		cert, err := servedCert(addr)
		if err != nil {
			t.Fatal(err)
		}
		served[fingerprint(cert.Raw)] = true
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%d pods admitted, %d failed, across %d CA bundles and %d served certificates", admitted, failed, len(bundles), len(served))

	// Once settled, the served certificate chains to the CA in the webhook configurations, for the Service name.
	eventually(t, 30*time.Second, func() error {
		bundle, err := caBundle(ctx, s.Client)
		if err != nil {
			return err
		}
		cert, err := servedCert(addr)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(bundle)
		_, err = cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "packnow-operator-webhook-service.packnow-system.svc"})
		return err
	})
}

// caBundle is the CA of the pod webhook, checked to be the same in every webhook of both configurations.
func caBundle(ctx context.Context, c client.Client) ([]byte, error) {
	var v admissionregistrationv1.ValidatingWebhookConfiguration
	if err := c.Get(ctx, client.ObjectKey{Name: "validating-webhook-configuration"}, &v); err != nil {
		return nil, err
	}
	var m admissionregistrationv1.MutatingWebhookConfiguration
	if err := c.Get(ctx, client.ObjectKey{Name: "mutating-webhook-configuration"}, &m); err != nil {
		return nil, err
	}
	var bundles []string
	for _, w := range v.Webhooks {
		bundles = append(bundles, string(w.ClientConfig.CABundle))
	}
	for _, w := range m.Webhooks {
		bundles = append(bundles, string(w.ClientConfig.CABundle))
	}
	for _, b := range bundles[1:] {
		if b != bundles[0] {
			// cert-controller updates the configurations one after the other; the next read agrees.
			return caBundle(ctx, c)
		}
	}
	return []byte(bundles[0]), nil
}

func restoreCABundle(t *testing.T, c client.Client, ca []byte) {
	ctx := context.Background()
	var v admissionregistrationv1.ValidatingWebhookConfiguration
	var m admissionregistrationv1.MutatingWebhookConfiguration
	if err := c.Get(ctx, client.ObjectKey{Name: "validating-webhook-configuration"}, &v); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, client.ObjectKey{Name: "mutating-webhook-configuration"}, &m); err != nil {
		t.Fatal(err)
	}
	for i := range v.Webhooks {
		v.Webhooks[i].ClientConfig.CABundle = ca
	}
	for i := range m.Webhooks {
		m.Webhooks[i].ClientConfig.CABundle = ca
	}
	if err := c.Update(ctx, &v); err != nil {
		t.Fatal(err)
	}
	if err := c.Update(ctx, &m); err != nil {
		t.Fatal(err)
	}
}

// servedCert is the certificate the webhook server presents.
func servedCert(addr string) (*x509.Certificate, error) {
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only reads the certificate
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	certs := conn.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, fmt.Errorf("no certificate from %s", addr)
	}
	return certs[0], nil
}

func fingerprint(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
