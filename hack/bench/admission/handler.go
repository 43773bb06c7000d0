package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
// keep-alive connections, trusting the CA of the webhook configuration.
type reviewClient struct {
	url    string
	client *http.Client
	deck   []podCase

	firstErr struct {
		sync.Once
		err error
	}
}

func newReviewClient(url, serverName string, caBundle []byte, connections int, deck []podCase) (*reviewClient, error) {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caBundle) {
		return nil, errors.New("the webhook configuration's caBundle holds no certificate")
	}
	transport := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, ServerName: serverName, MinVersion: tls.VersionTLS12},
		MaxConnsPerHost:     connections,
		MaxIdleConnsPerHost: connections,
		IdleConnTimeout:     time.Minute,
	}
	// The API server appends the webhook's timeout to the path.
	return &reviewClient{url: url + "?timeout=" + webhookTimeout.String(), deck: deck,
		client: &http.Client{Transport: transport, Timeout: webhookTimeout}}, nil
}

// send posts the review for slot (the deck's case at that position) and checks the answer.
func (c *reviewClient) send(slot int) outcome {
	pc := c.deck[slot%len(c.deck)]
	uid := requestUID(slot)
	o, err := c.post(pc, uid)
	if err != nil {
		c.firstErr.Do(func() { c.firstErr.err = fmt.Errorf("%s pod: %w", pc.name, err) })
	}
	return o
}

func (c *reviewClient) post(pc podCase, uid string) (outcome, error) {
	body := make([]byte, 0, len(pc.prefix)+len(uid)+len(pc.suffix))
	body = append(append(append(body, pc.prefix...), uid...), pc.suffix...)
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return transportFailed, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, */*")
	resp, err := c.client.Do(req)
	if err != nil {
		return transportFailed, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return transportFailed, err
	}
	if resp.StatusCode != http.StatusOK {
		return statusNot200, fmt.Errorf("status %d: %.200s", resp.StatusCode, data)
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(data, &review); err != nil || review.Response == nil {
		return verdictWrong, fmt.Errorf("not an AdmissionReview response (%v): %.200s", err, data)
	}
	if string(review.Response.UID) != uid {
		return verdictWrong, fmt.Errorf("response UID %q, sent %q", review.Response.UID, uid)
	}
	if review.Response.Allowed != pc.allowed {
		msg := ""
		if review.Response.Result != nil {
			msg = review.Response.Result.Message
		}
		return verdictWrong, fmt.Errorf("allowed %v, want %v: %s", review.Response.Allowed, pc.allowed, msg)
	}
	return verdictExpected, nil
}

// check sends each entry of the deck once and fails on any unexpected answer, so that a broken setup stops the
// benchmark instead of measuring errors. Its UIDs lie above any slot's.
func (c *reviewClient) check() error {
	for i, pc := range c.deck {
		if _, err := c.post(pc, requestUID(1<<44+i)); err != nil {
			return fmt.Errorf("%s pod: %w", pc.name, err)
		}
	}
	return nil
}
