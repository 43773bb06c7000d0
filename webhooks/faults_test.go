package webhooks

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	packnowv1alpha1 "github.com/packnow/packnow-operator/api/v1alpha1"
	"github.com/packnow/packnow-operator/hack/testenv"
)

// TestFaultWebhookDown: while the API server cannot reach the webhook server, pods still create in namespaces
// that did not opt in and in the control plane's; in an enforced namespace the create is denied with a message
// that names the webhook the API server failed to call. Once the server is reachable again admissions succeed,
// with no restart of the operator or the API server.
func TestFaultWebhookDown(t *testing.T) {
	s := apiServer(t)
	ctx := context.Background()
	c := s.Client
	wh := s.Env.WebhookInstallOptions
	backend := net.JoinHostPort(wh.LocalServingHost, strconv.Itoa(wh.LocalServingPort))

	enforced := namespace(t, ModeEnforce)
	unscoped := namespace(t, "")
	// PackNowApps get a namespace of their own: the operator enforces pod security where they live.
	apps := namespace(t, "")
	// The control plane's namespaces stay out of scope even when labelled.
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, PodSecurityLabel, ModeEnforce)
	system := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kube-system"}}
	if err := c.Create(ctx, system); client.IgnoreAlreadyExists(err) != nil {
		t.Fatal(err)
	}
	if err := c.Patch(ctx, system, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatal(err)
	}

	createPod := func(ns string) error {
		p := compliantPod("pod-"+randSuffix(), ns)
		if err := c.Create(ctx, p); err != nil {
			return err
		}
		t.Cleanup(func() { _ = c.Delete(context.Background(), p) })
		return nil
	}
	// recovered waits until a pod in the enforced namespace is admitted, logs how long that took from since, and
	// checks that PackNowApps create again.
	var disposable *packnowv1alpha1.PackNowApp // deleted while the webhook is down
	recovered := func(t *testing.T, since time.Time, what string) {
		t.Helper()
		deadline := since.Add(time.Minute)
		for {
			err := createPod(enforced)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("admissions still failing a minute after the webhook server came back: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("recovery: %s from %s to the first admitted pod", time.Since(since).Round(time.Millisecond), what)
		var err error
		if disposable, err = createApp(ctx, "app-"+randSuffix(), apps, `{}`); err != nil {
			t.Errorf("PackNowApp create after recovery: %v", err)
		}
	}

	ready, stop := runOperator(t, Options{CertManager: true})
	eventually(t, 2*time.Minute, func() error { return ready(nil) })
	eventually(t, time.Minute, func() error { return createPod(enforced) })
	app, err := createApp(ctx, "app-"+randSuffix(), apps, `{}`)
	if err != nil {
		t.Fatal(err)
	}
	if disposable, err = createApp(ctx, "app-"+randSuffix(), apps, `{}`); err != nil {
		t.Fatal(err)
	}

	// whileDown checks what users see while the API server cannot reach the webhook server.
	whileDown := func(t *testing.T) {
		for _, ns := range []string{unscoped, "kube-system"} {
			if err := createPod(ns); err != nil {
				t.Errorf("namespace %s: %v", ns, err)
			}
		}
		err := createPod(enforced)
		wantUnavailable(t, "pod in an enforced namespace", err, "pods.pod-security.packnow.io")

		// The PackNowApp webhooks select every namespace: creates and updates wait for the webhook server too,
		// while deletes and the status subresource, which they do not cover, go through.
		_, err = createApp(ctx, "app-"+randSuffix(), apps, `{}`)
		wantUnavailable(t, "PackNowApp create", err, "default.packnowapps.packnow.io")
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			live := &packnowv1alpha1.PackNowApp{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(app), live); err != nil {
				return err
			}
			live.Labels = map[string]string{"edited": randSuffix()}
			return c.Update(ctx, live)
		})
		wantUnavailable(t, "PackNowApp update", err, "default.packnowapps.packnow.io")
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			live := &packnowv1alpha1.PackNowApp{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(app), live); err != nil {
				return err
			}
			live.Status.ObservedGeneration++
			return c.Status().Update(ctx, live)
		})
		if err != nil {
			t.Errorf("PackNowApp status update: %v", err)
		}
		if err := c.Delete(ctx, disposable); err != nil {
			t.Errorf("PackNowApp delete: %v", err)
		}
	}

	// The operator stops and a new one starts in its place: nothing listens on the webhook port meanwhile.
	top := t
	t.Run("operator restarted", func(t *testing.T) {
		stop()
		whileDown(t)
		start := time.Now()
		ready, _ := runOperator(top, Options{CertManager: true}) // serves the rest of the test
		eventually(t, 2*time.Minute, func() error { return ready(nil) })
		recovered(t, start, "the new operator's start")
	})

	// The operator keeps running; the network between the API server and it fails, in three ways.
	proxy := newFaultProxy(t, backend)
	routeWebhooks(t, c, proxy.addr)
	eventually(t, time.Minute, func() error {
		if err := createPod(enforced); err != nil {
			return err
		}
		if proxy.connections() == 0 {
			return errors.New("the API server does not call through the proxy yet")
		}
		return nil
	})
	for _, f := range []fault{refused, reset, silent} {
		t.Run(string(f), func(t *testing.T) {
			proxy.cut(f)
			whileDown(t)
			proxy.restore()
			recovered(t, time.Now(), "the network's return")
		})
	}
}

// wantUnavailable checks that err is the API server's report of a webhook it could not call, naming it.
func wantUnavailable(t *testing.T, what string, err error, webhook string) {
	t.Helper()
	want := fmt.Sprintf("failed calling webhook %q: failed to call webhook", webhook)
	if err == nil || !apierrors.IsInternalError(err) || !strings.Contains(err.Error(), want) {
		t.Errorf("%s: got %v, want an internal error saying %q", what, err, want)
		return
	}
	t.Logf("%s: %v", what, err)
}

// fault is how a cut faultProxy fails the connections the API server opens.
type fault string

const (
	refused fault = "refused" // nothing listens
	reset   fault = "reset"   // a connection is reset as soon as it opens
	silent  fault = "silent"  // a connection opens and nothing ever answers
)

// faultProxy forwards TCP connections on loopback to a backend until it is cut. Cutting also closes the
// connections already open, since the API server keeps its connections to a webhook alive between calls.
type faultProxy struct {
	backend, addr string

	mu       sync.Mutex
	ln       net.Listener
	fault    fault // "" while forwarding
	conns    map[net.Conn]bool
	accepted int
}

func newFaultProxy(t *testing.T, backend string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{backend: backend, addr: ln.Addr().String(), conns: map[net.Conn]bool{}}
	p.serve(ln)
	t.Cleanup(func() { p.cut(refused) })
	return p
}

func (p *faultProxy) serve(ln net.Listener) {
	p.ln = ln
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return // closed by cut
			}
			p.handle(conn)
		}
	}()
}

func (p *faultProxy) handle(conn net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.fault {
	case reset:
		_ = conn.(*net.TCPConn).SetLinger(0) // close with RST
		_ = conn.Close()
	case silent:
		p.conns[conn] = true // closed on restore
	default:
		p.accepted++
		p.conns[conn] = true
		go p.forward(conn)
	}
}

func (p *faultProxy) forward(conn net.Conn) {
	up, err := net.Dial("tcp", p.backend)
	if err != nil {
		p.close(conn)
		return
	}
	p.mu.Lock()
	if !p.conns[conn] { // cut meanwhile
		p.mu.Unlock()
		_ = up.Close()
		return
	}
	p.conns[up] = true
	p.mu.Unlock()
	go func() {
		_, _ = io.Copy(up, conn)
		p.close(conn, up)
	}()
	_, _ = io.Copy(conn, up)
	p.close(conn, up)
}

func (p *faultProxy) close(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

func (p *faultProxy) cut(f fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f == refused && p.fault != refused {
		_ = p.ln.Close()
	}
	p.fault = f
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

func (p *faultProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fault == refused {
		ln, err := net.Listen("tcp", p.addr)
		if err != nil {
			panic(err) // the port was just ours; nothing else on loopback asks for it by number
		}
		p.serve(ln)
	}
	p.fault = ""
	for c := range p.conns { // held open by silent
		_ = c.Close()
		delete(p.conns, c)
	}
}

func (p *faultProxy) connections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// routeWebhooks points every webhook of both configurations at addr instead of the webhook server, until the
// test ends.
func routeWebhooks(t *testing.T, c client.Client, addr string) {
	t.Helper()
	setHost := func(host func(u *url.URL) string) error {
		edit := func(cc *admissionregistrationv1.WebhookClientConfig) error {
			u, err := url.Parse(*cc.URL)
			if err != nil {
				return err
			}
			u.Host = host(u)
			cc.URL = ptr.To(u.String())
			return nil
		}
		return editWebhooks(c, edit)
	}
	port := func(a string) string {
		_, p, _ := net.SplitHostPort(a)
		return p
	}
	wh := apiServer(t).Env.WebhookInstallOptions
	// Keep the name the certificate is for; change only the port.
	if err := setHost(func(u *url.URL) string { return net.JoinHostPort(u.Hostname(), port(addr)) }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := setHost(func(u *url.URL) string { return net.JoinHostPort(u.Hostname(), strconv.Itoa(wh.LocalServingPort)) }); err != nil {
			t.Error(err)
		}
	})
}

// editWebhooks applies edit to the client configuration of every webhook in both configurations.
func editWebhooks(c client.Client, edit func(*admissionregistrationv1.WebhookClientConfig) error) error {
	ctx := context.Background()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var v admissionregistrationv1.ValidatingWebhookConfiguration
		if err := c.Get(ctx, client.ObjectKey{Name: "validating-webhook-configuration"}, &v); err != nil {
			return err
		}
		for i := range v.Webhooks {
			if err := edit(&v.Webhooks[i].ClientConfig); err != nil {
				return err
			}
		}
		return c.Update(ctx, &v)
	})
	if err != nil {
		return err
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var m admissionregistrationv1.MutatingWebhookConfiguration
		if err := c.Get(ctx, client.ObjectKey{Name: "mutating-webhook-configuration"}, &m); err != nil {
			return err
		}
		for i := range m.Webhooks {
			if err := edit(&m.Webhooks[i].ClientConfig); err != nil {
				return err
			}
		}
		return c.Update(ctx, &m)
	})
}

// TestFaultOperatorKilledDuringCertRotation kills the operator's process (SIGKILL: no cleanup, no graceful stop)
// at several moments of its certificate's life: while bootstrapping it, while renewing the serving certificate and
// while replacing the CA. Each time a new operator starts with an empty certificate directory, from what the API
// server holds. At the end the certificate is consistent everywhere and pods in an enforced namespace are admitted.
func TestFaultOperatorKilledDuringCertRotation(t *testing.T) {
	s := apiServer(t)
	ctx := context.Background()
	c := s.Client
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "packnow-system"}}); client.IgnoreAlreadyExists(err) != nil {
		t.Fatal(err)
	}
	// Registered before any operator starts, so that it runs after the last one has stopped.
	t.Cleanup(func() { restoreCABundle(t, c, s.Env.WebhookInstallOptions.LocalServingCAData) })
	secretKey := client.ObjectKey{Namespace: "packnow-system", Name: "packnow-operator-webhook-cert"}
	// Start from no certificate at all, so that the first operator bootstraps one.
	if err := c.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: secretKey.Namespace, Name: secretKey.Name}}); client.IgnoreNotFound(err) != nil {
		t.Fatal(err)
	}
	const lookahead = time.Hour
	options := func() Options {
		return Options{
			Namespace:                      "packnow-system",
			CertDir:                        t.TempDir(),
			ValidatingWebhookConfiguration: "validating-webhook-configuration",
			MutatingWebhookConfiguration:   "mutating-webhook-configuration",
			ExtraDNSNames:                  []string{testenv.WebhookHost},
			// Renewed seconds after they are issued: the serving certificate every few seconds, the CA less often.
			LookaheadInterval:      lookahead,
			CACertDuration:         lookahead + 10*time.Second,
			CertDuration:           lookahead + 3*time.Second,
			RotationCheckFrequency: time.Second,
		}
	}
	addr := net.JoinHostPort(s.Env.WebhookInstallOptions.LocalServingHost, strconv.Itoa(s.Env.WebhookInstallOptions.LocalServingPort))
	enforced := namespace(t, ModeEnforce)

	certs := watchCertState(t, secretKey, addr)
	admissions := probeAdmissions(t, c, enforced)
	var (
		kills []time.Time
		up    []interval // from an operator's readiness to its kill
	)
	for _, m := range killMoments {
		op := startOperatorProcess(t, options())
		deadline := op.started.Add(m.within)
		caught := false
		for !caught && time.Now().Before(deadline) {
			// Look again as soon as the API server announces a change, which the operator reacts to as fast,
			// and every few milliseconds for the certificate served.
			select {
			case <-certs.changed:
			case <-time.After(10 * time.Millisecond):
			}
			if m.afterReady && !op.isReady() {
				continue
			}
			caught = m.now(certs.state())
		}
		killed := op.kill()
		kills = append(kills, killed)
		if op.isReady() {
			up = append(up, interval{op.readyAt, killed})
		}
		if !caught {
			t.Logf("killed %s after start: did not catch the moment %q", killed.Sub(op.started).Round(time.Millisecond), m.name)
			continue
		}
		left := ""
		if m.inAPIServer {
			// Did the kill land before the operator's next write? Give the watch time to report such a write.
			time.Sleep(200 * time.Millisecond)
			left = fmt.Sprintf(" (left so in the API server: %t)", m.now(certs.state()))
		}
		t.Logf("killed %s after start: %s%s", killed.Sub(op.started).Round(time.Millisecond), m.name, left)
	}

	op := startOperatorProcess(t, options())
	op.waitReady(t)
	up = append(up, interval{op.readyAt, time.Now().Add(time.Hour)})
	eventually(t, 30*time.Second, func() error { return certs.state().consistent() })
	eventually(t, 30*time.Second, func() error {
		return c.Create(ctx, compliantPod("pod-"+randSuffix(), enforced))
	})
	results := admissions.stop()

	// Report the outages after each kill and any failure while an operator was running.
	var longest time.Duration
	for _, k := range kills {
		for _, r := range results {
			if r.start.After(k) && r.err == nil {
				longest = max(longest, r.start.Sub(k))
				break
			}
		}
	}
	var failedWhileUp []string
	for _, r := range results {
		for _, u := range up {
			if r.err != nil && u.contains(r.start, r.end) {
				failedWhileUp = append(failedWhileUp, fmt.Sprintf("%s after readiness: %v", r.start.Sub(u.from).Round(time.Millisecond), r.err))
			}
		}
	}
	t.Logf("%d kills, %d admissions; longest outage after a kill (kill to the first admission that passed): %s; failed while an operator was ready: %d",
		len(kills), len(results), longest.Round(time.Millisecond), len(failedWhileUp))
	for _, f := range failedWhileUp {
		t.Logf("failed while ready: %s", f)
	}
}

// killMoment is a moment in the operator's handling of its certificate at which the test kills it.
type killMoment struct {
	name        string
	afterReady  bool          // whether the operator has become ready by then
	inAPIServer bool          // whether it is a state of the API server alone, which a kill leaves behind
	within      time.Duration // how long to wait for it before killing anyway
	now         func(certState) bool
}

var killMoments = []killMoment{
	{"CA and certificate in the Secret, not yet in the webhook configurations", false, true, 10 * time.Second, func(s certState) bool {
		return s.secretCA != nil && !bytes.Equal(s.secretCA, s.validatingCA)
	}},
	{"CA in the webhook configurations, webhook server not yet serving", false, false, 10 * time.Second, func(s certState) bool {
		return s.secretCA != nil && bytes.Equal(s.secretCA, s.validatingCA) && bytes.Equal(s.secretCA, s.mutatingCA) && s.served() == nil
	}},
	{"new serving certificate in the Secret, server still presenting the previous one", true, false, 15 * time.Second, func(s certState) bool {
		served := s.served()
		return served != nil && s.secretCert != nil && !bytes.Equal(served.Raw, s.secretCert.Raw)
	}},
	{"new CA in the Secret, webhook configurations still trusting the previous one", true, true, 20 * time.Second, func(s certState) bool {
		return s.secretCA != nil && !bytes.Equal(s.secretCA, s.validatingCA)
	}},
	{"one webhook configuration trusting the new CA, the other the previous one", true, true, 20 * time.Second, func(s certState) bool {
		return !bytes.Equal(s.validatingCA, s.mutatingCA)
	}},
	{"webhook configurations trusting a new CA, server still presenting the previous CA's certificate", true, false, 20 * time.Second, func(s certState) bool {
		served := s.served()
		return served != nil && s.verify(served, s.validatingCA) != nil
	}},
}

// certState is where the webhook's certificate stands: the Secret, the configurations' caBundle and, asked
// for, the certificate the server presents.
type certState struct {
	secretCA                 []byte
	secretCert               *x509.Certificate
	validatingCA, mutatingCA []byte
	addr                     string
}

// served is the certificate the webhook server presents, nil when it does not accept connections.
func (s certState) served() *x509.Certificate {
	cert, _ := servedCert(s.addr)
	return cert
}

// certWatch holds the latest certificate Secret and webhook configurations as the API server announces them.
type certWatch struct {
	mu      sync.Mutex
	st      certState
	changed chan struct{}
}

func watchCertState(t *testing.T, secret client.ObjectKey, addr string) *certWatch {
	t.Helper()
	s := apiServer(t)
	c, err := client.NewWithWatch(s.Config, client.Options{Scheme: testenv.Scheme(), Mapper: s.Client.RESTMapper()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w := &certWatch{st: certState{addr: addr}, changed: make(chan struct{}, 1)}
	// A watch from no resource version begins with the objects as they are.
	for _, l := range []client.ObjectList{&corev1.SecretList{}, &admissionregistrationv1.ValidatingWebhookConfigurationList{}, &admissionregistrationv1.MutatingWebhookConfigurationList{}} {
		opts := []client.ListOption{client.MatchingFields{"metadata.name": "validating-webhook-configuration"}}
		switch l.(type) {
		case *corev1.SecretList:
			opts = []client.ListOption{client.InNamespace(secret.Namespace), client.MatchingFields{"metadata.name": secret.Name}}
		case *admissionregistrationv1.MutatingWebhookConfigurationList:
			opts = []client.ListOption{client.MatchingFields{"metadata.name": "mutating-webhook-configuration"}}
		}
		wi, err := c.Watch(ctx, l, opts...)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for ev := range wi.ResultChan() {
				w.update(ev.Object, ev.Type == watch.Deleted)
			}
		}()
	}
	return w
}

func (w *certWatch) update(obj runtime.Object, deleted bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch o := obj.(type) {
	case *corev1.Secret:
		w.st.secretCA, w.st.secretCert = nil, nil
		if deleted {
			break
		}
		w.st.secretCA = o.Data["ca.crt"]
		if b, _ := pem.Decode(o.Data[corev1.TLSCertKey]); b != nil {
			w.st.secretCert, _ = x509.ParseCertificate(b.Bytes)
		}
	case *admissionregistrationv1.ValidatingWebhookConfiguration:
		w.st.validatingCA = o.Webhooks[0].ClientConfig.CABundle
	case *admissionregistrationv1.MutatingWebhookConfiguration:
		w.st.mutatingCA = o.Webhooks[0].ClientConfig.CABundle
	default:
		return // a watch error: the state keeps what it had
	}
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

func (w *certWatch) state() certState {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.st
}

func (certState) verify(cert *x509.Certificate, ca []byte) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	_, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "packnow-operator-webhook-service.packnow-system.svc"})
	return err
}

// consistent: the Secret's certificate chains to the CA of both configurations and is the one served.
func (s certState) consistent() error {
	if s.secretCert == nil {
		return errors.New("no certificate in the Secret")
	}
	for name, ca := range map[string][]byte{"validating": s.validatingCA, "mutating": s.mutatingCA} {
		if err := s.verify(s.secretCert, ca); err != nil {
			return fmt.Errorf("the Secret's certificate against the %s configuration's caBundle: %w", name, err)
		}
	}
	if served := s.served(); served == nil || !bytes.Equal(served.Raw, s.secretCert.Raw) {
		return errors.New("the server does not present the Secret's certificate")
	}
	return nil
}

type interval struct{ from, to time.Time }

func (i interval) contains(from, to time.Time) bool { return !from.Before(i.from) && !to.After(i.to) }

type probeResult struct {
	start, end time.Time
	err        error
}

type admissionProbe struct {
	once    sync.Once
	done    chan struct{}
	results chan []probeResult
}

// probeAdmissions creates pods in ns (dry run) one after the other until stopped.
func probeAdmissions(t *testing.T, c client.Client, ns string) *admissionProbe {
	p := &admissionProbe{done: make(chan struct{}), results: make(chan []probeResult, 1)}
	go func() {
		var results []probeResult
		for {
			select {
			case <-p.done:
				p.results <- results
				return
			default:
			}
			start := time.Now()
			err := c.Create(context.Background(), compliantPod("probe-"+randSuffix(), ns), client.DryRunAll)
			results = append(results, probeResult{start, time.Now(), err})
			time.Sleep(50 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { p.stop() })
	return p
}

// stop ends the probe and returns its admissions; a second call returns none.
func (p *admissionProbe) stop() []probeResult {
	var results []probeResult
	p.once.Do(func() {
		close(p.done)
		results = <-p.results
	})
	return results
}
