package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"github.com/packnow/packnow-operator/webhooks"
)

// webhookTimeout is the pod webhook's timeoutSeconds: an answer slower than this fails the admission in the
// API server, so the generator counts it as an error too.
const webhookTimeout = 5 * time.Second

// podCase is one kind of pod in the load mix, as an AdmissionReview split around its request UID.
type podCase struct {
	name           string
	allowed        bool
	prefix, suffix []byte
}

// size is the review's length in bytes.
func (pc podCase) size() int { return len(pc.prefix) + len(requestUID(0)) + len(pc.suffix) }

// uidMarker stands in for the request UID while the review template is marshalled.
const uidMarker = "00000000-uid-marker-00000000"

// newPodCase wraps pod, as the API server passes it to validating webhooks (defaulted, named, with uid and
// creation time), into the AdmissionReview of a ReplicaSet controller creating it in namespace.
func newPodCase(name string, allowed bool, pod *corev1.Pod, namespace string) (podCase, error) {
	pod = pod.DeepCopy()
	pod.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}
	pod.Namespace = namespace
	raw, err := json.Marshal(pod)
	if err != nil {
		return podCase{}, err
	}
	podKind := metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}
	podResource := metav1.GroupVersionResource{Version: "v1", Resource: "pods"}
	review, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:             uidMarker,
			Kind:            podKind,
			Resource:        podResource,
			RequestKind:     &podKind,
			RequestResource: &podResource,
			Name:            pod.Name,
			Namespace:       namespace,
			Operation:       admissionv1.Create,
			UserInfo: authenticationv1.UserInfo{
				Username: "system:serviceaccount:kube-system:replicaset-controller",
				UID:      "6f1a3c2e-8d4b-4f7a-9c1e-2b5d7e9f0a13",
				Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"},
			},
			Object:  runtime.RawExtension{Raw: raw},
			DryRun:  ptr.To(false),
			Options: runtime.RawExtension{Raw: []byte(`{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1"}`)},
		},
	})
	if err != nil {
		return podCase{}, err
	}
	prefix, suffix, ok := bytes.Cut(review, []byte(uidMarker))
	if !ok {
		return podCase{}, errors.New("review template lost its UID marker")
	}
	return podCase{name: name, allowed: allowed, prefix: prefix, suffix: suffix}, nil
}

// requestUID is a UUID-shaped UID unique to the slot, which the response must echo.
func requestUID(slot int) string {
	hex := strconv.FormatInt(int64(slot), 16)
	return "00000000-0000-4000-8000-" + zeros[:12-min(len(hex), 12)] + hex
}

const zeros = "000000000000"

// reviewClient posts AdmissionReviews to the webhook server as the API server does: JSON over TLS with HTTP/1.1
// keep-alive connections, trusting the CA of the webhook configuration. Each connection is driven by one
// goroutine that writes the request and reads the answer itself: net/http's client hands every request to two
// goroutines of its own and back, which on two cores cost the generator more CPU than the server it measures.
type reviewClient struct {
	addr, path string
	tls        *tls.Config
	deck       []podCase

	firstErr struct {
		sync.Once
		err error
	}
}

func newReviewClient(addr, serverName string, caBundle []byte, deck []podCase) (*reviewClient, error) {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caBundle) {
		return nil, errors.New("the webhook configuration's caBundle holds no certificate")
	}
	return &reviewClient{
		addr: addr,
		// The API server appends the webhook's timeout to the path.
		path: webhooks.PodsPath + "?timeout=" + webhookTimeout.String(),
		tls:  &tls.Config{RootCAs: roots, ServerName: serverName, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}},
		deck: deck,
	}, nil
}

// reviewConn is one keep-alive connection, used by one goroutine at a time; it dials again after a failure.
type reviewConn struct {
	c    *reviewClient
	conn *tls.Conn
	in   *bufio.Reader
	buf  []byte
	body bytes.Buffer
}

func (c *reviewClient) newConn() *reviewConn { return &reviewConn{c: c} }

func (rc *reviewConn) close() {
	if rc.conn != nil {
		_ = rc.conn.Close()
		rc.conn = nil
	}
}

// send posts the review for slot (the deck's case at that position) and checks the answer.
func (rc *reviewConn) send(slot int) outcome {
	pc := rc.c.deck[slot%len(rc.c.deck)]
	uid := requestUID(slot)
	o, err := rc.post(pc, uid)
	if err != nil {
		rc.c.firstErr.Do(func() { rc.c.firstErr.err = fmt.Errorf("%s pod: %w", pc.name, err) })
	}
	return o
}

func (rc *reviewConn) post(pc podCase, uid string) (outcome, error) {
	if rc.conn == nil {
		d := &tls.Dialer{Config: rc.c.tls, NetDialer: &net.Dialer{Timeout: webhookTimeout}}
		conn, err := d.Dial("tcp", rc.c.addr)
		if err != nil {
			return transportFailed, err
		}
		rc.conn, rc.in = conn.(*tls.Conn), bufio.NewReaderSize(conn, 16<<10)
	}
	o, err := rc.roundTrip(pc, uid)
	if o == transportFailed {
		rc.close()
	}
	return o, err
}

// roundTrip writes the request in one write (one TLS record) and reads the answer.
func (rc *reviewConn) roundTrip(pc podCase, uid string) (outcome, error) {
	if err := rc.conn.SetDeadline(time.Now().Add(webhookTimeout)); err != nil {
		return transportFailed, err
	}
	rc.buf = fmt.Appendf(rc.buf[:0], "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"+
		"Accept: application/json, */*\r\nContent-Length: %d\r\n\r\n", rc.c.path, rc.c.addr, pc.size())
	rc.buf = append(append(append(rc.buf, pc.prefix...), uid...), pc.suffix...)
	if _, err := rc.conn.Write(rc.buf); err != nil {
		return transportFailed, err
	}
	resp, err := http.ReadResponse(rc.in, nil)
	if err != nil {
		return transportFailed, err
	}
	rc.body.Reset()
	_, err = rc.body.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		return transportFailed, err
	}
	if resp.Close {
		rc.close()
	}
	data := rc.body.Bytes()
	if resp.StatusCode != http.StatusOK {
		return statusNot200, fmt.Errorf("status %d: %.200s", resp.StatusCode, data)
	}
	// Only what the verdict check reads.
	var review struct {
		Response *struct {
			UID     string `json:"uid"`
			Allowed bool   `json:"allowed"`
			Status  *struct {
				Message string `json:"message"`
			} `json:"status"`
		} `json:"response"`
	}
	if err := json.Unmarshal(data, &review); err != nil || review.Response == nil {
		return verdictWrong, fmt.Errorf("not an AdmissionReview response (%v): %.200s", err, data)
	}
	if review.Response.UID != uid {
		return verdictWrong, fmt.Errorf("response UID %q, sent %q", review.Response.UID, uid)
	}
	if review.Response.Allowed != pc.allowed {
		msg := ""
		if review.Response.Status != nil {
			msg = review.Response.Status.Message
		}
		return verdictWrong, fmt.Errorf("allowed %v, want %v: %s", review.Response.Allowed, pc.allowed, msg)
	}
	return verdictExpected, nil
}

// check sends each entry of the deck once and fails on any unexpected answer, so that a broken setup stops the
// benchmark instead of measuring errors. Its UIDs lie above any slot's.
func (c *reviewClient) check() error {
	rc := c.newConn()
	defer rc.close()
	for i, pc := range c.deck {
		if _, err := rc.post(pc, requestUID(1<<44+i)); err != nil {
			return fmt.Errorf("%s pod: %w", pc.name, err)
		}
	}
	return nil
}
